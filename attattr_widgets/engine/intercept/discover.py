"""Discovering a model's :class:`~.layout.Layout` once, by one tiny forward.

Works without ``layer_idx`` (e.g. DistilBERT) and for ALBERT, whose single attention module runs once per layer
(indexed by call count). Models whose attention never reaches the interface (DeBERTa, XLNet, BLOOM, …; Falcon
before transformers 5.25) raise :class:`UnsupportedModelError`.
"""
from __future__ import annotations

import inspect

import torch
import transformers
from torch import nn

from ..errors import UnsupportedModelError
from .interface import _implementations, _watching
from .layout import Layout
from .session import Session, _session
from .shadow import _frozen_copy, _Observe, _shadow_with
from .support import _ROUTED_SINCE, SUPPORTED_FAMILIES


def _discover(model: nn.Module) -> Layout:
    """The tiny forwards run on a private eval copy (:func:`~.shadow._frozen_copy`): the user's model is not
    written and, even in ``train()`` mode, draws nothing from the global RNG (no dropout)."""
    impls = _implementations(model)
    calls: list = []
    originals: dict[int, nn.Module] = {}
    twin = _frozen_copy(model, None, originals=originals)
    with _watching(impls), _session(Session(layout=None, spy=calls)), torch.no_grad():  # type: ignore[arg-type]
        out = twin(**_dummy_inputs(model))
    order = [originals.get(id(m), m) for m, *_ in calls]
    heads = [h for _, h, _, _ in calls]
    if not order:
        model_type = getattr(model.config, "model_type", "?")
        since = _ROUTED_SINCE.get(model_type)
        upgrade = (f" transformers {'.'.join(map(str, since))} routes {model_type} through the interface; you have "
                   f"{transformers.__version__}: pip install 'transformers>={since[0]}.{since[1]}'." if since else "")
        raise UnsupportedModelError(
            f"{type(model).__name__} (model_type={model_type!r}) does not route its attention through "
            f"transformers' AttentionInterface, so its attention probabilities cannot be attributed.{upgrade} "
            f"Supported: {SUPPORTED_FAMILIES}. Not supported: DeBERTa, XLNet, BLOOM, MPT, GPT-Neo, Longformer, "
            f"BigBird and other models with a hand-written attention."
        )
    shared = len(set(map(id, order))) != len(order)
    roles = _roles(calls) if _encoder_decoder(model) else None
    # encoder-decoders: no single block list holds every attention module (prefix caching is off for them)
    blocks, path = (None, []) if shared or roles is not None else _find_blocks(model, order)
    block_io = {} if blocks is None else _block_output_kinds(twin, twin.get_submodule(".".join(path)), path)
    layout = Layout(
        modules=order, num_heads=heads[0], shared=shared, blocks=blocks, path=path, impls=impls,
        block_outputs_tuple=[block_io.get(i, False) for i in range(len(order))],
        outputs=_last_dim(getattr(out, "logits", None)), roles=roles,
        heads=None if roles is None else heads,
    )
    if not shared:
        layout.index = {id(m): i for i, m in enumerate(order)}
    return layout


def _encoder_decoder(model: nn.Module) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


def _roles(calls: list) -> list[str]:
    """Each attention call's kind, from its query / key lengths on the dummy input (source 3 tokens, target 2):
    encoder self-attention 3×3, decoder self-attention 2×2, cross-attention 2×3."""
    kinds = {(_SRC, _SRC): "encoder", (_TGT, _TGT): "decoder", (_TGT, _SRC): "cross"}
    roles = [kinds.get((tq, tk)) for _, _, tq, tk in calls]
    if None in roles:
        bad = calls[roles.index(None)]
        raise UnsupportedModelError(
            f"{type(bad[0]).__name__} attends {bad[2]} queries to {bad[3]} keys on a {_SRC}-token source and a "
            f"{_TGT}-token target, which is neither encoder, decoder nor cross-attention: this encoder-decoder "
            f"is not supported. Supported: {SUPPORTED_FAMILIES}")
    missing = [k for k in ("encoder", "decoder", "cross") if k not in roles]
    if missing:
        raise UnsupportedModelError(
            f"{type(calls[0][0]).__name__}'s model routes only part of its attention through transformers' "
            f"AttentionInterface (no {' or '.join(missing)} attention reached it), so it cannot be attributed as "
            f"a whole (LED and other encoder-decoders with a hand-written attention). Supported: {SUPPORTED_FAMILIES}")
    return roles


def _find_blocks(model: nn.Module, order: list[nn.Module]) -> tuple[nn.ModuleList | None, list[str]]:
    """The ``nn.ModuleList`` whose i-th child contains the i-th attention module, and its attribute path."""
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) == len(order):
            if all(any(sub is att for sub in block.modules()) for block, att in zip(m, order)):
                return m, name.split(".") if name else []
    return None, []


def _block_output_kinds(model: nn.Module, blocks: nn.ModuleList, path: list[str]) -> dict[int, bool]:
    """Whether each block returns a tuple (older block APIs) rather than a tensor, seen on the dummy input."""
    kinds: dict[int, bool] = {}
    shadow = _shadow_with(model, path, blocks, [_Observe(b, i, kinds) for i, b in enumerate(blocks)])
    with torch.no_grad():
        shadow(**_dummy_inputs(model))
    return kinds


def _last_dim(logits) -> int | None:
    return int(logits.shape[-1]) if isinstance(logits, torch.Tensor) and logits.dim() >= 2 else None


_SRC, _TGT = 3, 2  # dummy source / target lengths (encoder-decoders tell their attention kinds apart by them)


def _dummy_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    """Three token ids, or for a model over pixels only (no ``input_ids``) one blank image of its configured size."""
    param = next(model.parameters())
    device = param.device
    params = inspect.signature(model.forward).parameters
    if "pixel_values" in params and "input_ids" not in params:
        cfg = getattr(model.config, "vision_config", None) or model.config
        side = getattr(cfg, "image_size", 224)
        h, w = (side, side) if isinstance(side, int) else tuple(side)
        channels = int(getattr(cfg, "num_channels", 3) or 3)
        return {"pixel_values": torch.zeros(1, channels, h, w, dtype=param.dtype, device=device)}
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    ids = torch.tensor([[min(5 + i, vocab - 1) for i in range(_SRC)]], device=device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if _encoder_decoder(model):
        inputs["decoder_input_ids"] = torch.tensor([[min(4 + i, vocab - 1) for i in range(_TGT)]], device=device)
    return inputs
