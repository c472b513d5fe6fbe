"""The continuation score F against values computed by hand from softmax probabilities."""
from __future__ import annotations

import math

import pytest
import torch

from attattr_widgets.engine.attribution.scores import continuation_score
from attattr_widgets.engine.errors import AttAttrError


def _case():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 7, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 7, (3, 4), generator=g)
    return logits, ids


def _by_hand(logits, ids, r, t):
    row = [math.exp(v) for v in logits[r, t].tolist()]
    return row[int(ids[r, t])] / sum(row)


def test_logprob_prob_logit_by_hand():
    logits, ids = _case()
    w = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.float64)
    lp = continuation_score(logits, ids, w, "logprob", torch.float64)
    pr = continuation_score(logits, ids, w, "prob", torch.float64)
    lg = continuation_score(logits, ids, w, "logit", torch.float64)
    assert lp.shape == (3,)
    for r in range(3):
        want = sum(float(w[r, t]) * math.log(_by_hand(logits, ids, r, t)) for t in range(4))
        assert lp[r].item() == pytest.approx(want, rel=1e-12)
        assert pr[r].item() == pytest.approx(math.exp(want), rel=1e-12)
        assert lg[r].item() == pytest.approx(sum(float(w[r, t]) * float(logits[r, t, ids[r, t]])
                                                 for t in range(4)), rel=1e-12)
    # one-hot weights: prob is that token's own probability
    assert pr[2].item() == pytest.approx(_by_hand(logits, ids, 2, 2), rel=1e-12)


def test_one_hot_rows_sum_to_whole_answer():
    logits, ids = _case()
    A = ids.shape[1]
    whole = continuation_score(logits[:1], ids[:1], torch.ones(1, A, dtype=torch.float64), "logprob", torch.float64)
    per = continuation_score(logits[:1].expand(A, -1, -1), ids[:1].expand(A, -1), torch.eye(A, dtype=torch.float64),
                             "logprob", torch.float64)
    assert per.sum().item() == pytest.approx(whole.item(), rel=1e-12)


def test_zero_weight_ignores_impossible_token():
    logits, ids = _case()
    logits[0, 3, ids[0, 3]] = -math.inf  # a padded position whose token has probability 0
    w = torch.tensor([[1.0, 1, 1, 0]], dtype=torch.float64)
    assert torch.isfinite(continuation_score(logits[:1], ids[:1], w, "logprob", torch.float64)).all()


def test_refusals():
    logits, ids = _case()
    w = torch.ones(3, 4)
    with pytest.raises(AttAttrError, match="continuation"):
        continuation_score(logits, ids, w, "entropy", torch.float64)
    with pytest.raises(AttAttrError, match=r"\[R, A, V\]"):
        continuation_score(logits[0], ids, w, "logprob", torch.float64)
