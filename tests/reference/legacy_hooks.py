"""The previous (v1) engine's attention injection, kept verbatim as a test reference only.

It materialises the probabilities of every layer through an eager "attattr_legacy" attention function and
swaps modules for prefix caching, i.e. it CHANGES the model it runs on: use it on a deep copy.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import torch
from torch import nn

from attattr_widgets.engine.errors import UnsupportedModelError

ATTN_IMPLEMENTATION = "attattr_legacy"

SUPPORTED_FAMILIES = (
    "BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA, ALBERT (encoders); GPT-2, Llama, Mistral, Qwen2, Gemma 1/2 "
    "and other decoders whose attention calls transformers' AttentionInterface"
)


def attattr_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    position_bias: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention with explicit probabilities.

    ``query`` (B, Hq, Tq, d), ``key``/``value`` (B, Hkv, Tk, d) → ``(out (B, Tq, Hq, d), probs (B, Hq, Tq, Tk))``.
    Handles grouped-query attention, boolean and additive masks, T5's ``position_bias`` and Gemma 2's
    ``softcap``. Half-precision inputs get fp32 scores and softmax.
    """
    if getattr(module, "sinks", None) is not None:
        raise UnsupportedModelError(
            f"{type(module).__name__} uses attention sinks (gpt-oss), which attattr-widgets does not support; "
            f"supported: {SUPPORTED_FAMILIES}"
        )
    if key.shape[1] != query.shape[1]:  # GQA / MQA: attribution is per query head
        groups = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    half = query.dtype in (torch.float16, torch.bfloat16)
    scores = torch.matmul(query, key.transpose(-1, -2))
    if half:
        scores = scores.float()
    scores = scores * scaling
    if position_bias is not None:
        scores = scores + position_bias
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., : key.shape[-2]].to(scores.dtype)
    probs = torch.softmax(scores, dim=-1).to(query.dtype)
    if dropout and module.training:
        probs = nn.functional.dropout(probs, p=dropout, training=True)
    ctrl = getattr(module, "_legacy_ctrl", None)
    if ctrl is not None:
        probs = ctrl._process(module, probs)
    out = torch.matmul(probs.to(value.dtype), value)
    return out.transpose(1, 2).contiguous(), probs


_register_lock = threading.Lock()
_registered = False


def register_attention() -> None:
    """Register the ``"attattr"`` attention and mask functions with transformers (idempotent)."""
    global _registered
    with _register_lock:
        if _registered:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        AttentionInterface.register(ATTN_IMPLEMENTATION, attattr_attention_forward)
        AttentionMaskInterface.register(ATTN_IMPLEMENTATION, eager_mask)
        _registered = True


@dataclass
class _Session:
    alpha: dict[int, torch.Tensor] = field(default_factory=dict)
    grad_layers: frozenset[int] = frozenset()
    tap_layers: frozenset[int] = frozenset()
    head_mask: dict[int, torch.Tensor] = field(default_factory=dict)
    record: bool = False


class _Passthrough(nn.Module):
    """Stands in for a transformer block whose output is supplied from a cache."""

    def forward(self, *args, **kwargs):
        return args[0] if args else kwargs["hidden_states"]


class AttnController:
    """Per-model state of the attention injection. Create with :func:`controller_for`.

    Attributes: ``num_layers`` (L), ``num_heads`` (H, query heads), ``blocks`` (the ``nn.ModuleList`` of the
    L transformer blocks, or ``None`` where the layers share one module, as in ALBERT), ``attn`` and ``leaves``
    (filled during a session, keyed by layer index).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._session: _Session | None = None
        self._calls = 0
        self.attn: dict[int, torch.Tensor] = {}
        self.leaves: dict[int, torch.Tensor] = {}
        self._lock = threading.RLock()
        self._discover()

    # -- discovery ------------------------------------------------------------------------------------------
    def _discover(self) -> None:
        model = self.model
        order: list[nn.Module] = []
        heads: list[int] = []

        def spy(module, probs):
            order.append(module)
            heads.append(probs.shape[1])
            return probs

        self._spy = spy
        for m in model.modules():
            if hasattr(m, "_legacy_ctrl"):
                del m._legacy_ctrl
        # stamp every module that could be an attention module: we only learn which ones are by calling
        for m in model.modules():
            m._legacy_ctrl = self
        try:
            with torch.no_grad():
                model(**_dummy_inputs(model))
        finally:
            for m in model.modules():
                if m not in order and hasattr(m, "_legacy_ctrl"):
                    del m._legacy_ctrl
            self._spy = None
        if not order:
            raise UnsupportedModelError(
                f"{type(model).__name__} (model_type={getattr(model.config, 'model_type', '?')!r}) does not route "
                f"its attention through transformers' AttentionInterface, so its attention probabilities cannot "
                f"be attributed. Supported: {SUPPORTED_FAMILIES}. Not supported: DeBERTa, XLNet, Falcon, BLOOM, "
                f"Longformer, BigBird and other models with a hand-written attention."
            )
        self.shared = len(set(map(id, order))) != len(order)
        self.num_layers = len(order)
        self.num_heads = heads[0]
        self.modules = order
        if not self.shared:
            for i, m in enumerate(order):
                m._legacy_layer = i
        self.blocks = None if self.shared else _find_blocks(model, order)

    # -- the hook -------------------------------------------------------------------------------------------
    def _layer_of(self, module: nn.Module) -> int:
        if self.shared:
            layer = self._calls % self.num_layers
            self._calls += 1
            return layer
        return module._legacy_layer

    def _process(self, module: nn.Module, probs: torch.Tensor) -> torch.Tensor:
        if self._spy is not None:
            return self._spy(module, probs)
        layer = self._layer_of(module)
        s = self._session
        if s is None:
            return probs
        if s.record:
            self.attn[layer] = probs.detach()
        a = s.alpha.get(layer)
        if layer in s.grad_layers:
            leaf = probs.detach()
            if a is not None:
                leaf = leaf * a.to(leaf.dtype).view(-1, 1, 1, 1)
            probs = leaf.requires_grad_(True)
            self.leaves[layer] = probs
        elif a is not None:
            probs = probs * a.to(probs.dtype).view(-1, 1, 1, 1)
        if layer in s.tap_layers:
            tap = torch.zeros_like(probs, requires_grad=True)
            self.leaves[layer] = tap
            probs = probs + tap
        keep = s.head_mask.get(layer)
        if keep is not None:
            keep = keep.to(device=probs.device, dtype=probs.dtype)
            probs = probs * (keep.view(1, -1, 1, 1) if keep.dim() == 1 else keep.view(keep.shape[0], -1, 1, 1))
        return probs

    # -- sessions -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(
        self,
        *,
        alpha: dict[int, torch.Tensor] | None = None,
        grad_layers: Iterable[int] = (),
        tap_layers: Iterable[int] = (),
        head_mask: dict[int, torch.Tensor] | None = None,
        record: bool = False,
        cached_inputs: tuple[int, torch.Tensor] | None = None,
    ) -> Iterator["AttnController"]:
        """Configure the injection for the forwards run inside the ``with`` block.

        ``cached_inputs=(l, h)`` skips blocks 0..l-1 and feeds ``h`` (rows, T, d) to block l instead (prefix
        caching; needs ``self.blocks``). One session at a time per model.
        """
        with self._lock:
            self._session = _Session(
                alpha=dict(alpha or {}),
                grad_layers=frozenset(grad_layers),
                tap_layers=frozenset(tap_layers),
                head_mask=dict(head_mask or {}),
                record=record,
            )
            self.attn, self.leaves = {}, {}
            self._calls = 0
            restore: list[tuple[int, nn.Module]] = []
            handle = None
            try:
                if cached_inputs is not None:
                    start, hidden = cached_inputs
                    if self.blocks is None:
                        raise RuntimeError("prefix caching needs one block per layer")
                    for i in range(start):
                        restore.append((i, self.blocks[i]))
                        self.blocks[i] = _Passthrough()

                    def feed(module, args, kwargs):
                        if args:
                            return (hidden,) + tuple(args[1:]), kwargs
                        return args, {**kwargs, "hidden_states": hidden}

                    handle = self.blocks[start].register_forward_pre_hook(feed, with_kwargs=True)
                yield self
            finally:
                if handle is not None:
                    handle.remove()
                for i, block in restore:
                    self.blocks[i] = block
                self._session = None


def _find_blocks(model: nn.Module, order: list[nn.Module]) -> nn.ModuleList | None:
    """The ``nn.ModuleList`` whose i-th child contains the i-th attention module, if there is one."""
    for m in model.modules():
        if isinstance(m, nn.ModuleList) and len(m) == len(order):
            if all(any(sub is att for sub in block.modules()) for block, att in zip(m, order)):
                return m
    return None


def _dummy_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    ids = torch.tensor([[min(5, vocab - 1), min(6, vocab - 1), min(7, vocab - 1)]], device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


_controllers_lock = threading.Lock()


def controller_for(model: nn.Module) -> AttnController:
    """Prepare ``model`` for attribution once and return its controller (cached on the model).

    Switches the model to the ``"attattr"`` attention implementation (numerically identical to eager; the
    probabilities are materialised, which SDPA/flash never do) and discovers its attention layers.
    Raises :class:`UnsupportedModelError` for models that do not route through ``AttentionInterface``.
    """
    with _controllers_lock:
        ctrl = getattr(model, "_legacy_controller", None)
        if ctrl is not None and getattr(model.config, "_attn_implementation", None) == ATTN_IMPLEMENTATION:
            return ctrl
        register_attention()
        if getattr(model.config, "is_encoder_decoder", False):
            raise UnsupportedModelError(
                f"{type(model).__name__} is an encoder-decoder model; attattr-widgets attributes encoder "
                f"classifiers and decoder language models. Supported: {SUPPORTED_FAMILIES}"
            )
        try:
            model.set_attn_implementation(ATTN_IMPLEMENTATION)
        except (ValueError, KeyError, AttributeError) as exc:
            raise UnsupportedModelError(
                f"{type(model).__name__} cannot switch to a custom attention implementation ({exc}). "
                f"Supported: {SUPPORTED_FAMILIES}"
            ) from exc
        was_training = model.training
        model.eval()
        try:
            ctrl = AttnController(model)
        finally:
            model.train(was_training)
        model._legacy_controller = ctrl
        return ctrl
