"""The one table of head-score reductions (attattr_widgets/engine/reductions.py) against loops over token pairs,
on numpy and torch alike, with padding left out; and the three places that reduced heads before it
(Attribution.head_scores, the attention importance, the widgets' head summary) give the same numbers through it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attattr_widgets.engine.errors import AttAttrError
from attattr_widgets.engine.reductions import HEAD_REDUCTIONS, reduce_heads

RNG = np.random.default_rng(0)


def _loops(maps: np.ndarray, valid: np.ndarray, name: str) -> np.ndarray:
    """The reference: one head at a time, a Python loop over its real pairs."""
    out = np.zeros(maps.shape[:-2])
    for idx in np.ndindex(*maps.shape[:-2]):
        vals = [float(maps[idx][i, j]) for i in range(maps.shape[-2]) for j in range(maps.shape[-1])
                if np.broadcast_to(valid, maps.shape)[idx][i, j]]
        out[idx] = {"max": max(vals), "absmax": max(abs(v) for v in vals), "sum": sum(vals)}[name]
    return out


def _padded(b=3, H=2, n=5):
    """Signed maps [b, H, n, n] whose real values are all negative in example 0, with padding (0 or large)."""
    maps = RNG.normal(size=(b, H, n, n))
    maps[0] = -np.abs(maps[0]) - 0.1
    lengths = [3, 5, 4]
    real = np.arange(n)[None, :] < np.array(lengths)[:, None]                    # [b, n]
    valid = real[:, None, :, None] & real[:, None, None, :]                      # [b, 1, n, n]
    maps = np.where(valid, maps, 100.0 * (np.arange(b) % 2)[:, None, None, None])  # padding: 0 or 100
    return maps, valid


@pytest.mark.parametrize("name", sorted(HEAD_REDUCTIONS))
def test_reductions_count_only_real_pairs(name):
    maps, valid = _padded()
    want = _loops(maps, valid, name)
    np.testing.assert_allclose(HEAD_REDUCTIONS[name](maps, valid), want, rtol=1e-12)
    got_t = HEAD_REDUCTIONS[name](torch.from_numpy(maps), torch.from_numpy(valid.astype(np.float32)))
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float64
    np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-12)
    assert (HEAD_REDUCTIONS["max"](maps, valid)[0] < 0).all()  # padding zeros never win the max
    full = np.ones_like(valid)
    np.testing.assert_allclose(reduce_heads(maps, name), _loops(maps, full, name), rtol=1e-12)


def test_unknown_reduction_names_the_choices():
    with pytest.raises(AttAttrError, match="unknown reduce 'mean': choose 'max', 'absmax' or 'sum'"):
        reduce_heads(np.zeros((1, 2, 2)), "mean")


@pytest.mark.parametrize("name", sorted(HEAD_REDUCTIONS))
def test_the_three_former_copies_keep_their_numbers(name):
    from result_samples import make_attr

    from attattr_widgets.widgets.serialize import head_summary

    # Attribution.head_scores: the flattened pairs of each head, in the dtype of the scores
    a = make_attr()
    flat = a.scores.reshape(a.scores.shape[0], a.scores.shape[1], -1)
    before = {"max": flat.max(-1), "absmax": np.abs(flat).max(-1), "sum": flat.sum(-1)}[name]
    got = a.head_scores(name)
    assert got.dtype == a.scores.dtype and np.array_equal(got, before)
    # the attention importance: torch attention maps with padded pairs zeroed, (attn * valid) reduced over (-1, -2)
    attn = torch.softmax(torch.from_numpy(RNG.normal(size=(3, 2, 5, 5))).float(), -1)
    m = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.float32)
    valid = m[:, None, :, None] * m[:, None, None, :]
    zeroed = attn * valid
    before_t = {"max": zeroed.amax((-1, -2)), "absmax": zeroed.abs().amax((-1, -2)), "sum": zeroed.sum((-1, -2))}[name]
    assert torch.equal(HEAD_REDUCTIONS[name](attn, valid), before_t)
    # the widgets' head summary: max over pairs, float32
    if name == "max":
        s = a.scores[1].astype(np.float64)
        assert np.array_equal(head_summary(s), reduce_heads(s.astype(np.float32)))
