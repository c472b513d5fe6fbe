"""Head-score reductions: one number per head from its [n, n] map, over real token pairs only.

:data:`HEAD_REDUCTIONS` is the one table behind ``Attribution.head_scores(reduce=...)``, the attention-based head
importance and the widgets' per-head summaries. Each entry maps ``maps`` [..., n, n] (and optionally ``valid``
[..., n, n], broadcastable, True / 1 for a real query × real key pair) to [...]:

* ``"max"`` — the largest value over real pairs (the paper's per-example head score, on attribution maps);
* ``"absmax"`` — the largest magnitude over real pairs;
* ``"sum"`` — the sum over real pairs.

Pairs outside ``valid`` (padding) never count. numpy arrays and torch tensors both work (torch is not imported
here) and keep their dtype; numpy maps reduce over the flattened last two axes, tensors with ``amax`` / ``sum`` over
``(-1, -2)``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import AttAttrError

__all__ = ["HEAD_REDUCTIONS", "reduce_heads"]


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "masked_fill")  # torch.Tensor, without importing torch


def _real(maps, valid, fill: float):
    """``maps`` with the pairs outside ``valid`` set to ``fill`` (``maps`` itself when ``valid`` is None)."""
    if valid is None:
        return maps
    if _is_tensor(maps):
        return maps.masked_fill(~valid.bool(), fill)
    return np.where(np.asarray(valid, dtype=bool), maps, np.asarray(fill, dtype=maps.dtype))


def _over_pairs(x, op: str):
    if _is_tensor(x):
        return x.amax((-1, -2)) if op == "max" else x.sum((-1, -2))
    flat = x.reshape(*x.shape[:-2], -1)
    return flat.max(-1) if op == "max" else flat.sum(-1)


def _max(maps, valid=None):
    return _over_pairs(_real(maps, valid, -np.inf), "max")


def _absmax(maps, valid=None):
    return _over_pairs(abs(_real(maps, valid, 0.0)), "max")


def _sum(maps, valid=None):
    return _over_pairs(_real(maps, valid, 0.0), "sum")


#: name -> reduction(maps [..., n, n], valid=None) -> [...]
HEAD_REDUCTIONS: dict[str, Callable[..., Any]] = {"max": _max, "absmax": _absmax, "sum": _sum}


def reduce_heads(maps, reduce: str = "max", valid=None):
    """``HEAD_REDUCTIONS[reduce](maps, valid)``: [..., n, n] -> [...]; an unknown ``reduce`` names the choices."""
    fn = HEAD_REDUCTIONS.get(reduce) if isinstance(reduce, str) else None
    if fn is None:
        *most, last = map(repr, HEAD_REDUCTIONS)
        raise AttAttrError(f"unknown reduce {reduce!r}: choose {', '.join(most)} or {last}")
    return fn(maps, valid)
