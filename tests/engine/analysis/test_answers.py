"""Heads for a generation task (issue 21): head importance and pruning on examples ``{"text": prompt,
"target": answer}`` of a causal LM, checked against per-example attributions and a plain teacher-forced forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_model

import attattr_widgets as aw
from attattr_widgets.engine.analysis.importance import head_importance
from attattr_widgets.engine.analysis.pruning import compare_pruning

DATA = [{"text": "the capital of france is", "target": " paris"},
        {"text": "the cat sat on the", "target": " mat ."},
        {"text": "i love the", "target": " movie and the film"}]


@pytest.fixture(scope="module")
def llama():
    return make_model("llama", "lm", layers=2, heads=4, hidden=32, dtype=torch.float64)


def _teacher_forced(model, tok, ex):
    """(exact match, mean log-probability per answer token) of one example, from one plain forward."""
    p = tok(ex["text"])["input_ids"]
    a = tok(ex["target"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + a])).logits[0, len(p) - 1: -1]
    lp = torch.log_softmax(logits, -1)[torch.arange(len(a)), torch.tensor(a)]
    return float((logits.argmax(-1) == torch.tensor(a)).all()), float(lp.mean())


def test_attattr_importance_is_the_mean_of_the_answers_head_maxima(llama, tokenizer):
    imp = head_importance(llama, tokenizer, DATA, method="attattr", steps=2)
    # an answer of one token (" paris") is an answer here: attribute() takes it as one when given as ids
    each = [aw.attribute(llama, tokenizer, ex["text"], steps=2,
                         target=tokenizer(ex["target"], add_special_tokens=False)["input_ids"]).head_scores("max")
            for ex in DATA]
    np.testing.assert_allclose(np.asarray(imp), np.mean(each, 0), rtol=1e-10)


def test_pruning_reports_exact_match_and_mean_log_probability_of_the_answers(llama, tokenizer, tmp_path):
    imp = np.arange(8.0).reshape(2, 4)
    (curve,) = compare_pruning(llama, tokenizer, DATA, {"ramp": imp}, fractions=[0.0, 0.5, 1.0])
    by_hand = np.array([_teacher_forced(llama, tokenizer, ex) for ex in DATA])
    assert curve.accuracy[0] == pytest.approx(by_hand[:, 0].mean())
    assert curve.answer_logprob[0] == pytest.approx(by_hand[:, 1].mean(), rel=1e-10)
    assert curve.answer_logprob[1] != pytest.approx(curve.answer_logprob[0])  # pruning changes the answers' fit
    back = aw.load_result(curve.save(tmp_path / "curve.npz"))
    np.testing.assert_array_equal(back.answer_logprob, curve.answer_logprob)


def test_other_methods_run_on_answers(llama, tokenizer):
    for method in ("attention", "taylor", "accuracy"):
        imp = np.asarray(head_importance(llama, tokenizer, DATA, method=method))
        assert imp.shape == (2, 4) and np.isfinite(imp).all(), method


def test_answers_refusals(llama, tokenizer):
    with pytest.raises(aw.AttAttrError, match="give every example an answer"):
        head_importance(llama, tokenizer, DATA + [{"text": "a dog"}], method="attention")
    with pytest.raises(aw.AttAttrError, match="target='gold'"):
        list(aw.iter_attributions(llama, tokenizer, DATA, target="pred", steps=2))
    cls = make_model("gpt2", "cls", layers=1)
    with pytest.raises(aw.AttAttrError, match="causal language model"):
        head_importance(cls, tokenizer, DATA, method="attention")
