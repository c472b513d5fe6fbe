"""Hardening, round 2 (issue 20): shared ``store=`` folders, tokenizer/model mismatches, label names, wrapped
models, bad Explorer arguments, unsorted pruning fractions and the weak list — each asserting the error class
AND that the message names the problem, or the right answer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SINGLES, make_model, make_tokenizer

import attattr_widgets as aw
from attattr_widgets.widgets import Explorer


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def bert():
    return make_model("bert", layers=2, heads=2, num_labels=3)


# ---------------------------------------------------------------------------------------------- 1. shared store
def test_two_results_in_one_store_folder_each_get_their_own_files(tok, bert, tmp_path):
    ref1 = aw.attribute(bert, tok, "the movie was great", steps=2)
    ref2 = aw.attribute(bert, tok, "a bad plot", steps=2)
    a1 = aw.attribute(bert, tok, "the movie was great", steps=2, store=tmp_path)
    a2 = aw.attribute(bert, tok, "a bad plot", steps=2, store=tmp_path)
    assert a1.store != a2.store and {a1.store, a2.store} <= {str(p) for p in tmp_path.iterdir()}
    np.testing.assert_array_equal(np.asarray(a1.scores), ref1.scores)  # the first is still readable, unchanged
    np.testing.assert_array_equal(np.asarray(a2.scores), ref2.scores)


def test_explorer_history_with_a_store_folder_keeps_every_run_readable(tok, bert, tmp_path):
    ex = Explorer(bert, tok)
    texts = ["the movie was great", "a bad plot", "i love the dog"]
    refs = [aw.attribute(bert, tok, t, steps=2) for t in texts]
    for t in texts:
        ex.explain(t, steps=2, store=str(tmp_path))
        ex.wait(60)
    assert ex.state == "done"
    keys = [h["key"] for h in ex.history]
    assert len(keys) == 3
    for key, ref in zip(keys, refs):
        ex.show_run(key)
        np.testing.assert_array_equal(np.asarray(ex.attribution.scores), ref.scores)
    assert len({ex._history[k].store for k in keys}) == 3
