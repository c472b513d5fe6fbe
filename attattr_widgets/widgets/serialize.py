"""Binary serialization of numpy arrays for the widget front ends.

Arrays never travel as JSON lists. An array becomes ``{"view": memoryview, "dtype": "float32", "shape": [...]}``
inside a synced trait (ipywidgets pulls the memoryview out into a binary websocket frame; the front end gets a
``DataView`` at the same path), or a ``{"dtype", "shape"}`` header plus one buffer in a custom message.
Only little-endian ``float16`` / ``float32`` / ``int32`` / ``uint8`` are sent; other dtypes are converted.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..engine.model.tokens import special_mask
from ..engine.reductions import reduce_heads

__all__ = ["SENDABLE_DTYPES", "as_sendable", "encode_array", "header", "pack", "decode_array", "jsonable",
           "thumbnails", "head_summary", "token_fields", "valid_strings", "valid_text"]

SENDABLE_DTYPES = ("float16", "float32", "int32", "uint8")

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(s: str) -> str:
    """``s`` with unpaired UTF-16 surrogates replaced by U+FFFD (a surrogate *pair* becomes its character).

    Comm messages travel as UTF-8 and exports as JSON, neither of which can carry a lone surrogate (a Python
    string from a crafted file or a broken decoder can hold one)."""
    if s.isascii() or not _SURROGATE.search(s):
        return s
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def valid_strings(obj: Any) -> Any:
    """Every string inside ``obj`` (dicts, lists, tuples) through :func:`valid_text`; other values unchanged."""
    if isinstance(obj, str):
        return valid_text(obj)
    if isinstance(obj, dict):
        return {valid_strings(k): valid_strings(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(valid_strings(v) for v in obj)
    return obj


def token_fields(tokens: Any) -> dict:
    """``{"tokens": [str, ...], "special": [bool, ...]}``: a token list as every view gets it, with the engine's
    per-token special-token flag (:func:`attattr_widgets.engine.model.tokens.special_mask`) — the browser reads ``special``
    and never re-derives it."""
    toks = [str(t) for t in tokens]
    return {"tokens": toks, "special": special_mask(toks)}


def as_sendable(a: Any, dtype: str | None = None) -> np.ndarray:
    """C-contiguous little-endian array of a dtype the front end decodes (float64 -> float32, int64 -> int32)."""
    arr = np.asarray(a)
    if dtype is None:
        kind = arr.dtype.kind
        if kind == "f":
            dtype = "float16" if arr.dtype == np.float16 else "float32"
        elif kind == "b" or arr.dtype == np.uint8:
            dtype = "uint8"
        elif kind in "iu":
            dtype = "int32"
        else:
            raise TypeError(f"cannot send an array of dtype {arr.dtype} to the front end")
    if dtype not in SENDABLE_DTYPES:
        raise ValueError(f"dtype must be one of {SENDABLE_DTYPES}, got {dtype!r}")
    return np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))


def header(a: np.ndarray) -> dict:
    return {"dtype": str(a.dtype.newbyteorder("=")), "shape": [int(s) for s in a.shape]}


def encode_array(a: Any, dtype: str | None = None) -> dict:
    """Trait form: ``{"view": memoryview, "dtype", "shape"}`` (zero copy when already contiguous)."""
    arr = as_sendable(a, dtype)
    return {"view": memoryview(arr).cast("B"), **header(arr)}


def pack(a: Any, dtype: str | None = None) -> tuple[dict, memoryview]:
    """Custom-message form: ``({"dtype", "shape"}, buffer)``."""
    arr = as_sendable(a, dtype)
    return header(arr), memoryview(arr).cast("B")


def decode_array(obj: dict, buffer: Any = None) -> np.ndarray:
    """Inverse of :func:`encode_array` / :func:`pack` (used by tests and by state round trips)."""
    buf = obj.get("view") if buffer is None else buffer
    dt = np.dtype(obj["dtype"]).newbyteorder("<")
    return np.frombuffer(bytes(buf), dtype=dt).reshape(obj["shape"]).astype(dt.newbyteorder("="))


def jsonable(value: Any, widget: Any = None) -> Any:
    """``to_json`` for traits holding nested dicts/lists with numpy arrays inside."""
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _blocks(n: int, t: int) -> list[tuple[int, int]]:
    """``t`` index ranges covering ``range(n)``: equal blocks when n ≥ t, else each index repeated (nearest)."""
    if n >= t:
        edges = np.linspace(0, n, t + 1).round().astype(int)
        return [(int(edges[a]), int(edges[a + 1])) for a in range(t)]
    return [(a * n // t, a * n // t + 1) for a in range(t)]


def _pool_maxabs(m: np.ndarray, size: int) -> np.ndarray:
    """Block-pool the last two axes [..., rows, cols] to a square (t, t), t = min(size, max(rows, cols)), keeping
    the signed value of largest magnitude per block (the shorter axis of a rectangular map is stretched)."""
    rows, cols = m.shape[-2:]
    t = min(size, max(rows, cols))
    if rows == cols == t:
        return m
    out = np.empty(m.shape[:-2] + (t, t), dtype=m.dtype)
    col_blocks = _blocks(cols, t)
    for a, (r0, r1) in enumerate(_blocks(rows, t)):
        band = m[..., r0:r1, :]
        for b, (c0, c1) in enumerate(col_blocks):
            blk = band[..., c0:c1].reshape(m.shape[:-2] + (-1,))
            idx = np.abs(blk).argmax(-1)
            out[..., a, b] = np.take_along_axis(blk, idx[..., None], -1)[..., 0]
    return out


def thumbnails(scores: np.ndarray, size: int = 32) -> np.ndarray:
    """[..., rows, cols] signed maps -> [..., t, t] float16 in [-1, 1] (t = min(size, max(rows, cols))), each map
    divided by its own max |value|."""
    s = np.asarray(scores, dtype=np.float32)
    pooled = _pool_maxabs(s, size)
    scale = np.abs(pooled).reshape(pooled.shape[:-2] + (-1,)).max(-1)
    scale = np.where(scale > 0, scale, 1.0)
    return (pooled / scale[..., None, None]).astype(np.float16)


def head_summary(scores: np.ndarray) -> np.ndarray:
    """[H, rows, cols] -> [H] float32: max attribution over token pairs (the engine's ``head_scores('max')``)."""
    return reduce_heads(np.asarray(scores, dtype=np.float32), "max")
