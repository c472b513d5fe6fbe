"""Explorer input bar over the recording comm: typed runs, the target selector, history, contrast."""
from __future__ import annotations

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_model

from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.errors import TargetError
from attattr_widgets.widgets import Explorer


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def model():
    m = make_model("bert", "cls", layers=2, heads=2, num_labels=3)
    m.config.id2label = {0: "neg", 1: "neutral", 2: "pos"}
    return m


@pytest.fixture(scope="module")
def lm():
    return make_model("gpt2", "lm", layers=2, heads=2)


def test_input_spec_and_target_options(model, lm, tokenizer):
    ex = Explorer(model, tokenizer)
    assert ex.interactive and ex.input_spec == {"kind": "class", "pair": True, "label_names": ["neg", "neutral", "pos"],
                                             "image": False, "answers": False}
    wc.command_from_front_end(ex, "_cmd_targets", {"text": "the movie was great", "text_pair": None})
    t = ex.targets
    assert t["kind"] == "class" and [o["label"] for o in t["options"]] == ["neg", "neutral", "pos"]
    assert sum(o["prob"] for o in t["options"]) == pytest.approx(1.0)
    ref = attribute(model, tokenizer, "the movie was great", steps=1, layers=[0])
    assert t["pred"] == ref.target and t["options"][ref.target]["prob"] == pytest.approx(ref.prob, rel=1e-5)
    # a causal LM offers its top-k next tokens, most probable first
    ex2 = Explorer(lm, tokenizer)
    assert ex2.input_spec["kind"] == "next-token" and not ex2.input_spec["pair"] and ex2.input_spec["answers"]
    t2 = ex2.predict_targets("the cat sat on the", k=5)
    probs = [o["prob"] for o in t2["options"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and t2["pred"] == t2["options"][0]["id"]
    # a model-less Explorer has no input bar
    assert not Explorer().interactive


def test_typed_run_streams_then_history_switches_back(model, tokenizer):
    ex = Explorer(model, tokenizer)
    ex.explain("the movie was great", steps=2)
    first = ex.wait(60)
    run1 = ex.run_id
    wc.command_from_front_end(ex, "_cmd_run", {"text": "bad plot", "text_pair": "i love this film", "target": 2})
    second = ex.wait(60)
    assert ex.run_id == run1 + 1 and ex.state == "done"
    assert second.text == "bad plot" and second.text_pair == "i love this film" and second.target == 2
    assert second.steps == 2     # the settings of the last explain() are kept for typed runs
    ref = attribute(model, tokenizer, "bad plot", "i love this film", target=2, steps=2)
    np.testing.assert_allclose(second.scores, ref.scores, rtol=1e-5, atol=1e-7)
    layers = [c for c, _ in wc.customs(ex) if c.get("type") == "layer" and c["run_id"] == ex.run_id]
    assert [c["index"] for c in layers] == [0, 1]
    assert [h["text"] for h in ex.history] == ["the movie was great", "bad plot"]
    assert ex.history[1]["target_label"] == "pos"
    # switch back to the first run: no recomputation, its numbers are shown again
    wc.command_from_front_end(ex, "_cmd_history", {"key": ex.history[0]["key"]})
    assert ex.state == "done" and ex.attribution is first and ex.meta["text"] == "the movie was great"
    np.testing.assert_array_equal(ex.head["attribution"], first.scores[ex.selected[0], ex.selected[1]])
    # a free-text target for a classifier names a class
    wc.command_from_front_end(ex, "_cmd_run", {"text": "fun", "target": "neg"})
    assert ex.wait(60).target == 0
    # a bad target is shown as an error, the comm survives
    wc.command_from_front_end(ex, "_cmd_run", {"text": "fun", "target": "nonsense"})
    with pytest.raises(TargetError, match="nonsense"):
        ex.wait(60)
    assert ex.state == "error" and "nonsense" in ex.error


def test_contrast_difference_map(model, tokenizer):
    ex = Explorer(model, tokenizer)
    ex.explain("the movie was not bad", target=2, steps=2)
    a = ex.wait(60)
    wc.command_from_front_end(ex, "_cmd_contrast", {"target": 0})
    b = ex.wait_contrast(60)
    assert ex.contrast["state"] == "done" and ex.contrast["target_label"] == "neg"
    ref = attribute(model, tokenizer, "the movie was not bad", target=0, steps=2)
    np.testing.assert_allclose(b.scores, ref.scores, rtol=1e-5, atol=1e-7)
    li, h = ex.selected
    np.testing.assert_array_equal(ex.head["contrast"], b.scores[li, h])
    wc.from_front_end(ex, {"selected": [1, 0]})
    np.testing.assert_array_equal(ex.head["contrast"], b.scores[1, 0])
    np.testing.assert_array_equal(ex.head["attribution"], a.scores[1, 0])
    st = wc.merged_state(ex)
    assert ("head", "contrast", "view") in {p for _, ps in wc.updates(ex) for p in ps}
    assert st["contrast"]["state"] == "done"
    wc.command_from_front_end(ex, "_cmd_contrast", {"target": None})
    assert ex.contrast == {} and "contrast" not in ex.head


def test_target_selector_is_filled_after_a_run(model, lm, tokenizer):
    ex = Explorer(model, tokenizer)
    ex.explain("i love this film", steps=1)
    ex.wait(60)
    assert ex.targets["text"] == "i love this film" and len(ex.targets["options"]) == 3
    assert ex.targets["pred"] == ex.attribution.target
    ex2 = Explorer(lm, tokenizer)
    ex2.explain("the cat sat on the", steps=1, layers=[1])
    a = ex2.wait(60)
    opts = ex2.targets["options"]
    assert ex2.targets["kind"] == "next-token" and len(opts) == 10 and opts[0]["id"] == a.target
    assert opts[0]["prob"] == pytest.approx(a.prob, rel=1e-4)


def test_history_is_bounded_by_count_and_memory(model, tokenizer, monkeypatch):
    import attattr_widgets.widgets.explorer as explorer_mod

    ex = Explorer(model, tokenizer)
    for i in range(explorer_mod.HISTORY + 2):
        ex.explain(f"the movie {'was ' * i}good", steps=1, layers=[0])
        ex.wait(60)
    assert len(ex.history) == explorer_mod.HISTORY and ex.history[-1]["text"].count("was") == explorer_mod.HISTORY + 1
    monkeypatch.setattr(explorer_mod, "HISTORY_BYTES", 1)   # every map is over the budget: only the newest stays
    ex.explain("fun", steps=1, layers=[0])
    ex.wait(60)
    assert [h["text"] for h in ex.history] == ["fun"] and len(ex._history) == 1
