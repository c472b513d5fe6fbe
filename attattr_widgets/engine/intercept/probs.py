"""Explicit attention probabilities: the one place P is formed, from what a layer's attention function received."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.integrations.sdpa_attention import repeat_kv


@dataclass
class Captured:
    """What layer l's attention function received in a clean pass (detached).

    ``query`` (B, Hq, T, d), ``key``/``value`` (B, Hkv, T, d), ``mask`` (None, bool or additive, broadcastable to
    (B, 1|H, T, T); flash attention's (B, T) padding mask becomes (B, 1, 1, T)), ``causal`` (apply a causal mask
    on top: SDPA's ``is_causal`` without a mask, or flash attention),
    ``scaling``, ``softcap``, ``position_bias``.
    """

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None
    causal: bool
    scaling: float
    softcap: float | None
    position_bias: torch.Tensor | None
    out: torch.Tensor | None = None  # the layer's per-head output P V, (B, T, Hq, d), at α = 1

    def values(self) -> torch.Tensor:
        """V per query head: (B, Hq, T, d) (grouped-query KV heads repeated)."""
        return repeat_kv(self.value, self.query.shape[1] // self.value.shape[1])


def attention_probs(c: Captured, rows: slice | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Post-softmax probabilities of query rows ``rows`` (default all): (B, Hq, t, Tk), without grad.

    Mirrors the eager maths of transformers (GQA, bool/additive masks, T5 position bias, Gemma 2 softcap);
    half precision is computed in fp32.
    """
    q = c.query if rows is None else c.query[:, :, rows]
    k = repeat_kv(c.key, c.query.shape[1] // c.key.shape[1])
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    scores = torch.matmul(q.to(work), k.to(work).transpose(-1, -2)) * c.scaling
    Tq0 = 0 if rows is None else (rows.start or 0)
    Tk = k.shape[-2]
    if c.position_bias is not None:
        pb = c.position_bias if rows is None else c.position_bias[..., rows, :]
        scores = scores + pb[..., :Tk].to(work)
    if c.softcap is not None:
        scores = torch.tanh(scores / c.softcap) * c.softcap
    if c.mask is not None:
        m = c.mask if rows is None or c.mask.shape[-2] == 1 else c.mask[..., rows, :]
        m = m[..., :Tk]
        if m.dtype == torch.bool:
            scores = scores.masked_fill(~m, torch.finfo(work).min)
        else:
            scores = scores + m.to(work)
    if c.causal:
        t = scores.shape[-2]
        qpos = torch.arange(Tq0, Tq0 + t, device=scores.device).view(-1, 1) + (Tk - c.query.shape[2])
        scores = scores.masked_fill(torch.arange(Tk, device=scores.device).view(1, -1) > qpos,
                                    torch.finfo(work).min)
    probs = torch.softmax(scores, dim=-1)
    return probs if dtype is None else probs.to(dtype)
