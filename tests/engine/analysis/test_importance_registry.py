"""The head-importance method registry: built-ins in their order, a method of one's own, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SINGLES, make_model, make_tokenizer

import attattr_widgets.engine.analysis.importance as importance
from attattr_widgets.engine.analysis.importance import (
    METHODS, ImportanceStep, head_importance, importance_method, iter_head_importance,
)
from attattr_widgets.engine.errors import ArgumentError, AttAttrError


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry for the test (methods registered here vanish afterwards)."""
    monkeypatch.setattr(importance, "_REGISTRY", dict(importance._REGISTRY))


@pytest.fixture(scope="module")
def model_tok():
    return make_model("bert", layers=2, heads=4), make_tokenizer()


def test_built_in_methods_in_their_order():
    assert tuple(METHODS) == ("attattr", "attention", "taylor", "taylor-authors", "accuracy", "random")


def test_a_registered_method_runs_through_head_importance(registry, model_tok):
    model, tok = model_tok
    seen = []

    @importance_method("text-length")
    def text_length(req):
        """Every head scored by the mean text length, one step per example: checks what a method receives."""
        seen.append(req)
        total = 0.0
        for n, ex in enumerate(req.items, 1):
            total += len(ex.text)
            yield ImportanceStep(req.method, n, len(req.items), np.full((req.L, req.H), total / n),
                                 *req.empty_scores(), n == len(req.items))

    assert "text-length" in METHODS and METHODS[-1] == "text-length"
    imp = head_importance(model, tok, SINGLES, method="text-length", batch_size=2)
    want = np.mean([len(e["text"]) for e in SINGLES])
    np.testing.assert_allclose(np.asarray(imp), np.full((2, 4), want))
    assert imp.method == "text-length" and imp.num_examples == len(SINGLES)
    (req,) = seen
    assert [ex.text for ex in req.items] == [e["text"] for e in SINGLES] and req.batch_size == 2
    steps = list(iter_head_importance(model, tok, SINGLES, method="text-length"))
    assert [s.done for s in steps] == [1, 2, 3, 4, 5] and steps[-1].final


def test_registry_errors(registry, model_tok):
    model, tok = model_tok
    with pytest.raises(AttAttrError, match="unknown importance method 'nope': choose one of attattr, attention, "
                                           "taylor, taylor-authors, accuracy, random"):
        head_importance(model, tok, SINGLES, method="nope")
    with pytest.raises(ArgumentError, match="already registered"):
        importance_method("taylor")(lambda req: iter(()))
    with pytest.raises(ArgumentError, match="non-empty string"):
        importance_method("")

    @importance_method("wrong-shape")
    def wrong_shape(req):
        yield ImportanceStep(req.method, 1, 1, np.zeros(3), *req.empty_scores(), True)

    with pytest.raises(AttAttrError, match="'wrong-shape' gave an estimate of shape \\(3,\\)"):
        head_importance(model, tok, SINGLES, method="wrong-shape")
    importance_method("silent")(lambda req: iter(()))
    with pytest.raises(AttAttrError, match="'silent' yielded no ImportanceStep"):
        head_importance(model, tok, SINGLES, method="silent")


def test_random_needs_no_examples(model_tok):
    model, tok = model_tok
    imp = head_importance(model, tok, None, method="random", seed=3)
    np.testing.assert_array_equal(np.asarray(imp), np.random.default_rng(3).random((2, 4)))
    with pytest.raises(AttAttrError, match="examples is None"):
        head_importance(model, tok, None, method="attention")
