"""Thread-local sessions: what one thread's forwards do at each attention call (scale, tap, mask, capture, record).

A session (``ctrl.session(...)``, thread-local) can, per layer l:

* scale the layer's per-head **output** ``out_l = P_l V_l`` by a per-row α (``alpha={l: (B,)}``) — identical to
  scaling the probabilities P_l, since out is linear in P;
* add a zero tap to that output (``out_taps={l}`` → ``s.leaves[l]`` of shape (B, T, H, d)) whose gradient is
  ∂F/∂out_l: the output form of AttAttr, ``Attr_l = P ⊙ (Ḡ Vᵀ)`` (docs/architecture.md, "Output form");
* keep one head per entry of ``head_mask={l: (H,) or (B, H)}`` (1 keeps, 0 prunes), as output scaling;
* capture the layer's query/key/value, mask and arguments (``capture={l}`` → ``s.captured[l]``, a
  :class:`~.probs.Captured`), from which :func:`~.probs.attention_probs` forms P explicitly, in row tiles;
* for the reference/paper algorithms and dataset engines that need P itself (``record``, ``tap_layers``,
  ``grad_layers``): form P explicitly at that layer (eager maths) and apply α / a gradient leaf / a tap to P.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from transformers.integrations.sdpa_attention import repeat_kv

from ..errors import UnsupportedModelError, check_cancel
from .probs import Captured, attention_probs
from .layout import Layout
from .support import SUPPORTED_FAMILIES


@dataclass
class Session:
    """One thread's injection settings and what the forwards inside it produced (see the module docstring)."""

    layout: "Layout"
    alpha: dict[int, torch.Tensor] = field(default_factory=dict)
    grad_layers: frozenset[int] = frozenset()
    tap_layers: frozenset[int] = frozenset()
    out_taps: frozenset[int] = frozenset()
    head_mask: dict[int, torch.Tensor] = field(default_factory=dict)
    record: bool = False
    capture: frozenset[int] = frozenset()
    cancel: Any = None
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    leaves: dict[int, torch.Tensor] = field(default_factory=dict)
    captured: dict[int, Captured] = field(default_factory=dict)
    calls: int = 0
    spy: list | None = None  # discovery: (module, query heads, query length, key length) of every call, nothing changed

    def explicit(self, layer: int) -> bool:
        return self.record or layer in self.grad_layers or layer in self.tap_layers


_local = threading.local()


def _current() -> Session | None:
    return getattr(_local, "session", None)


@contextlib.contextmanager
def _session(s: Session) -> Iterator[Session]:
    prev = getattr(_local, "session", None)
    _local.session = s
    try:
        yield s
    finally:
        _local.session = prev
        _local.last = s


def _process(s: Session, layer: int, base: Callable, module, query, key, value, attention_mask, kwargs):
    """The session's work at one attention call; returns the attention function's ``(out, weights)``."""
    check_cancel(s.cancel)
    if layer in s.capture:
        s.captured[layer] = _capture(module, query, key, value, attention_mask, kwargs)
    if s.explicit(layer):
        c = _capture(module, query, key, value, attention_mask, kwargs, detach=False)
        probs = attention_probs(c).to(query.dtype)
        values = repeat_kv(value, query.shape[1] // value.shape[1])
        if layer in s.captured and s.captured[layer].out is None:
            s.captured[layer].out = torch.matmul(probs.detach(), values).transpose(1, 2)
        if s.record:
            s.attn[layer] = probs.detach()
        a = s.alpha.get(layer)
        if layer in s.grad_layers:
            leaf = probs.detach()
            if a is not None:
                leaf = leaf * a.to(leaf.dtype).view(-1, 1, 1, 1)
            probs = leaf.requires_grad_(True)
            s.leaves[layer] = probs
        elif a is not None:
            probs = probs * a.to(probs.dtype).view(-1, 1, 1, 1)
        if layer in s.tap_layers:
            tap = torch.zeros_like(probs, requires_grad=True)
            s.leaves[layer] = tap
            probs = probs + tap
        keep = s.head_mask.get(layer)
        if keep is not None:
            probs = _keep_heads(probs, keep, head_dim=1)  # probs (B, H, T, T)
        out = torch.matmul(probs.to(value.dtype), values)
        return out.transpose(1, 2).contiguous(), probs
    out, weights = base(module, query, key, value, attention_mask, **kwargs)
    if layer in s.captured and s.captured[layer].out is None:
        s.captured[layer].out = out.detach()
    a = s.alpha.get(layer)
    if a is not None:  # out (B, T, H, d): scaling P by α == scaling out by α
        out = out * a.to(out.dtype).view(-1, 1, 1, 1)
    if layer in s.out_taps:
        tap = torch.zeros_like(out, requires_grad=True)
        s.leaves[layer] = tap
        out = out + tap
    keep = s.head_mask.get(layer)
    if keep is not None:
        out = _keep_heads(out, keep, head_dim=2)  # out (B, T, H, d)
    if s.cancel is not None and out.requires_grad:
        out.register_hook(lambda g: (check_cancel(s.cancel), g)[1])  # Stop answers during the backward too
    return out, weights


def _keep_heads(x: torch.Tensor, keep: torch.Tensor, head_dim: int) -> torch.Tensor:
    """``x`` with each head scaled by ``keep`` ((H,) for every row, or (B, H) per row); ``head_dim``: the head
    axis of the 4-D ``x``."""
    keep = keep.to(device=x.device, dtype=x.dtype)
    shape = [1, 1, 1, 1] if keep.dim() == 1 else [keep.shape[0], 1, 1, 1]
    shape[head_dim] = -1
    return x * keep.view(shape)


def _capture(module, query, key, value, mask, kwargs, detach: bool = True) -> Captured:
    if getattr(module, "sinks", None) is not None:
        raise UnsupportedModelError(
            f"{type(module).__name__} uses attention sinks (gpt-oss), which attattr-widgets does not support; "
            f"supported: {SUPPORTED_FAMILIES}"
        )
    d = (lambda t: t.detach()) if detach else (lambda t: t)
    scaling = kwargs.get("scaling")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    is_causal = kwargs.get("is_causal")
    is_causal = getattr(module, "is_causal", False) if is_causal is None else is_causal
    pb = kwargs.get("position_bias")
    if mask is not None and mask.dim() == 2:  # flash attention gets the (B, T) padding mask, causality apart
        mask = mask.bool()[:, None, None, :]
        causal = bool(is_causal) and query.shape[2] > 1
    else:  # a 4-D mask already holds causality; SDPA's is_causal applies only when there is no mask
        causal = bool(is_causal) and mask is None and query.shape[2] > 1
    return Captured(
        query=d(query), key=d(key), value=d(value), mask=None if mask is None else d(mask),
        causal=causal, scaling=float(scaling),
        softcap=kwargs.get("softcap"), position_bias=None if pb is None else d(pb),
    )
