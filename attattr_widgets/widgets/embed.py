"""What a view carries in its own state so that it works without a kernel (exported pages, notebooks saved with
widget state and reopened with the kernel shut down).

* :func:`deflate_array` — ``{"codec": "deflate", "dtype", "shape", "view": <zlib bytes>}``: an array compressed
  with zlib (the browser's ``DecompressionStream("deflate")`` reads it; ``js/shared/inflate.ts``).
* :func:`embed_heads` — every head's attention and attribution map of an Attribution as float16, each map scaled
  by its max |value| (float16 alone would flush attribution values of 1e-6 to subnormals), one compressed chunk
  per head, heads in decreasing head score, up to ``max_bytes`` of compressed data. The Explorer's ``heads_data``
  trait; the front end draws any embedded head without the kernel and says which heads were left out.
* :func:`embed_layer_sums` — the float32 head sums ``S`` [L, n, n] the attribution tree is built from
  (``engine.analysis.tree.layer_sums``), so the TreeView recomputes the tree for any threshold in the browser with the
  shared algorithm (``engine.analysis.tree.tree_from_layer_sums`` / ``js/tree/tree-algo.ts``).
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from .serialize import as_sendable, head_summary

__all__ = ["DEFAULT_MAX_BYTES", "deflate_array", "embed_heads", "embed_layer_sums", "inflate_array", "head_order"]

DEFAULT_MAX_BYTES = 8_000_000
"""Default budget of embedded head maps (compressed bytes; base64 in an HTML page adds a third)."""

_TOP = re.compile(r"^top-?(\d+)$")


def deflate_array(a: Any, dtype: str | None = None, level: int = 6) -> dict:
    arr = as_sendable(a, dtype)
    return {"codec": "deflate", "dtype": str(arr.dtype.newbyteorder("=")), "shape": [int(s) for s in arr.shape],
            "view": memoryview(zlib.compress(arr.tobytes(), level))}


def inflate_array(obj: dict) -> np.ndarray:
    """Inverse of :func:`deflate_array` (tests, state round trips)."""
    dt = np.dtype(obj["dtype"]).newbyteorder("<")
    return np.frombuffer(zlib.decompress(bytes(obj["view"])), dtype=dt).reshape(obj["shape"])


def head_order(scores: np.ndarray, head_scores: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(layer index, head) pairs by decreasing head score (max attribution), computed layers only; ``head_scores``
    [L, H]: the summaries already computed from ``scores`` (else computed here)."""
    hs = (np.stack([head_summary(np.asarray(s, dtype=np.float32)) for s in scores]) if head_scores is None
          else np.asarray(head_scores))  # [L, H]
    flat = np.where(np.isfinite(hs), hs, -np.inf).ravel()
    order = np.argsort(-flat, kind="stable")
    H = hs.shape[1]
    return [(int(i // H), int(i % H)) for i in order]


def _resolve_heads(heads: Any, L: int, H: int, order: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], str]:
    if isinstance(heads, str):
        if heads == "all":
            return order, "all"
        m = _TOP.match(heads.strip().lower())
        if m:
            return order[: int(m.group(1))], f"top-{int(m.group(1))}"
        raise ValueError(f'heads must be "all", "top-<k>" (e.g. "top-12"), an int k or a list of (layer, head) '
                         f"pairs, got {heads!r}")
    if isinstance(heads, (int, np.integer)) and not isinstance(heads, bool):
        if heads < 0:
            raise ValueError(f"heads={heads}: the number of top heads must be >= 0")
        return order[: int(heads)], f"top-{int(heads)}"
    if isinstance(heads, Iterable):
        out = []
        for item in heads:
            try:
                l, h = (int(x) for x in item)
            except (TypeError, ValueError):
                raise ValueError(f"heads: each entry must be a (layer, head) pair of ints, got {item!r}") from None
            if not (0 <= l < L and 0 <= h < H):
                raise ValueError(f"heads: ({l}, {h}) is outside the attribution's {L} layers x {H} heads "
                                 "(layer = index on the attribution's layer axis, as in Explorer.select)")
            if (l, h) not in out:
                out.append((l, h))
        return out, "list"
    raise ValueError(f'heads must be "all", "top-<k>", an int k or a list of (layer, head) pairs, got {heads!r}')


def embed_heads(attribution: Any, heads: Any = "all", max_bytes: int | None = DEFAULT_MAX_BYTES, *,
                head_scores: np.ndarray | None = None) -> dict:
    """The ``heads_data`` trait: compressed float16 maps of the chosen heads that fit in ``max_bytes``.

    ``heads``: ``"all"``, ``"top-<k>"`` / an int k (the k heads with the largest head score) or a list of
    ``(layer_index, head)`` pairs (layer index on the attribution's layer axis, as :meth:`Explorer.select`).
    Heads are added in that order (``"all"`` / top-k: decreasing head score) while the compressed total stays
    within ``max_bytes`` (None = no limit); the rest are listed as omitted so the view can say so.
    ``head_scores`` [L, H]: the head summaries of ``attribution`` when the caller has them (the Explorer's run).

    Returns ``{"format": 1, "L", "H", "n", "heads": [[l, h], ...], "scales": [[attention max, attribution max],
    ...], "chunks": [deflate_array(float16 [2, n, n]) per head], "requested", "omitted", "policy", "budget",
    "bytes"}``.
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer))
                                  or max_bytes < 0):
        raise ValueError(f"max_bytes must be a number of bytes >= 0 or None (no limit), got {max_bytes!r}")
    scores = np.asarray(attribution.scores)
    attn = np.asarray(attribution.attention)
    L, H, n, _ = scores.shape
    wanted, policy = _resolve_heads(heads, L, H, head_order(scores, head_scores))
    out_heads, scales, chunks, total, omitted = [], [], [], 0, []
    smallest = None
    for k, (l, h) in enumerate(wanted):
        if max_bytes is not None and smallest is not None and max_bytes - total < smallest:
            omitted.extend([list(x) for x in wanted[k:]])   # full: no head of the sizes seen so far fits
            break
        pair = np.stack([attn[l, h], scores[l, h]]).astype(np.float32)
        m = np.abs(pair).reshape(2, -1).max(-1)
        m = np.where(np.isfinite(m) & (m > 0), m, 1.0)
        chunk = deflate_array(pair / m[:, None, None], "float16", level=1)   # fast: noisy float16 barely compresses
        size = len(chunk["view"])
        smallest = size if smallest is None else min(smallest, size)
        if max_bytes is not None and total + size > max_bytes:
            omitted.append([l, h])
            continue
        total += size
        out_heads.append([l, h])
        scales.append([float(m[0]), float(m[1])])
        chunks.append(chunk)
    return {"format": 1, "L": int(L), "H": int(H), "n": int(n), "heads": out_heads, "scales": scales,
            "chunks": chunks, "requested": len(wanted), "omitted": len(omitted) + (L * H - len(wanted)),
            "policy": policy, "budget": None if max_bytes is None else int(max_bytes), "bytes": int(total)}


def embed_layer_sums(attribution: Any, max_bytes: int | None = DEFAULT_MAX_BYTES) -> dict | None:
    """The TreeView's ``layer_sums`` trait: ``{"sums": deflate_array(float32 [L, n, n]), "layers", "num_layers",
    "exclude_row"}`` — exactly what ``tree_from_layer_sums`` consumes — or None when it is over ``max_bytes``.
    An encoder–decoder's result gives what ``seq2seq_tree_from_layer_sums`` consumes: ``{"encoder", "decoder",
    "cross"}`` (deflated float32 head sums), ``encoder_layers``, ``decoder_layers``, ``encoder_num_layers``,
    ``num_layers`` and ``exclude_source`` / ``exclude_answer`` (``max_bytes`` bounds the three together)."""
    from ..engine.analysis.tree import layer_sums, resolve_exclude_row
    from ..engine.results import Seq2SeqAttribution

    if isinstance(attribution, Seq2SeqAttribution):
        return _embed_seq2seq_sums(attribution, max_bytes)

    S = layer_sums(attribution)
    tokens = [str(t) for t in attribution.tokens]
    layers = [int(x) for x in attribution.layers]
    chunk = deflate_array(S, "float32")
    if max_bytes is not None and len(chunk["view"]) > max_bytes:
        return None
    return {"sums": chunk, "layers": layers,
            "num_layers": int(getattr(attribution, "num_layers", 0) or (max(layers) + 1 if layers else 0)),
            "exclude_row": resolve_exclude_row(tokens, "auto", S.shape[-1])}


def _embed_seq2seq_sums(res: Any, max_bytes: int | None) -> dict | None:
    from ..engine.analysis.tree import seq2seq_tree_inputs

    sums, inputs = seq2seq_tree_inputs(res)
    chunks = {name: deflate_array(S, "float32") for name, S in zip(("encoder", "decoder", "cross"), sums)}
    if max_bytes is not None and sum(len(c["view"]) for c in chunks.values()) > max_bytes:
        return None
    return {**chunks, **{k: v for k, v in inputs.items() if k not in ("source_tokens", "answer_tokens")}}
