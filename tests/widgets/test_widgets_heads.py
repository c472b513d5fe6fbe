"""HeadsView: traits and messages over the recording comm; results equal the engine's on the same data."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import widget_comm as wc
from conftest import PAIRS, SINGLES, make_strong_bert

import attattr_widgets.engine.analysis.maxima as maxima_mod
from attattr_widgets.engine.analysis.importance import head_importance
from attattr_widgets.engine.analysis.pruning import compare_pruning, effectiveness
from attattr_widgets.widgets import HeadsView

FRACTIONS = [0.0, 0.25, 0.5, 1.0]


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def bert():
    return make_strong_bert()


EXAMPLES = SINGLES + [{"text": p["text"] + " " + p["text_pair"], "label": p["label"]} for p in PAIRS]


def test_results_equal_the_engine(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:4], methods=("attattr", "taylor", "random"), eval_examples=EXAMPLES,
                   fractions=FRACTIONS, steps=2, interval=0.0)
    hv.run()
    res = hv.wait(120)
    assert hv.state == "done" and not res.partial and hv.phase == ""
    kw = dict(steps=2)
    ref = {m: head_importance(bert, tok, EXAMPLES[:4], method=m, **kw) for m in ("attattr", "taylor", "random")}
    for m, imp in ref.items():
        np.testing.assert_array_equal(np.asarray(res.importance[m]), imp)
        assert res.importance[m].num_examples == 4 and res.importance[m].method == m
    curves = compare_pruning(bert, tok, EXAMPLES, ref, fractions=FRACTIONS)
    assert [c.method for c in res.curves] == [c.method for c in curves]
    for got, want in zip(res.curves, curves):
        np.testing.assert_array_equal(got.accuracy, want.accuracy)
        np.testing.assert_array_equal(got.pruned, want.pruned)
    # the traits carry the same numbers (float32 on the wire)
    st = wc.merged_state(hv)
    assert st["state"] == "done"
    for m in ref:
        h = st["importance"][m]
        np.testing.assert_allclose(wc.decode(h, h["view"]), ref[m].astype(np.float32))
    c0 = st["curves"][0]
    np.testing.assert_allclose(wc.decode(c0["accuracy"], c0["accuracy"]["view"]), curves[0].accuracy, rtol=1e-6)
    assert c0["counts"] == [int(x) for x in curves[0].counts]
    assert st["progress"]["attattr"] == {**st["progress"]["attattr"], "done": 4, "total": 4}


def test_grid_fills_then_curves_draw_point_by_point(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:3], methods=("attattr", "random"), eval_examples=EXAMPLES,
                   fractions=FRACTIONS, steps=2, interval=0.0)
    hv.run()
    hv.wait(120)
    ups = [s for s, _ in wc.updates(hv)]
    # running estimate: the attattr count grows 1, 2, 3 before any pruning point
    dones = [s["progress"]["attattr"]["done"] for s in ups if "progress" in s and "attattr" in s["progress"]]
    assert dones[:1] == [0] and sorted(set(dones)) == [0, 1, 2, 3] and dones == sorted(dones)
    phases = [s["phase"] for s in ups if "phase" in s]
    assert phases == ["importance", "pruning", ""]
    # curve points: NaN for not-yet-evaluated fractions, filled one fraction at a time, in order
    seen = []
    for s, bufs in wc.updates(hv):
        if s.get("curves"):
            c = s["curves"][0]
            acc = wc.decode(c["accuracy"], bufs[("curves", 0, "accuracy", "view")])
            seen.append(int(np.isfinite(acc).sum()))
    assert seen[0] == 0 and seen[-1] == len(FRACTIONS) and seen == sorted(seen)
    assert len(set(seen)) == len(FRACTIONS) + 1   # one more point per update
    states = [s["state"] for s in ups if "state" in s]
    assert states == ["running", "done"]


def test_stop_keeps_partial_results(bert, tok, monkeypatch):
    gate, reached = threading.Event(), threading.Event()
    real = maxima_mod.iter_attributions

    def slow(*a, **kw):
        for i, attr in enumerate(real(*a, **kw)):
            yield attr
            if i == 1:
                reached.set()
                gate.wait(10)

    monkeypatch.setattr(maxima_mod, "iter_attributions", slow)
    hv = HeadsView(bert, tok, EXAMPLES, methods=("attattr", "random"), fractions=FRACTIONS, steps=2, interval=0.0)
    hv.run()
    assert reached.wait(60)
    wc.command_from_front_end(hv, "_cmd_cancel", {"run_id": hv.run_id})
    gate.set()
    res = hv.wait(60)
    assert hv.state == "cancelled" and res.partial
    assert res.importance["attattr"].num_examples == 2 and "random" not in res.importance and res.curves == []
    ref = head_importance(bert, tok, EXAMPLES[:2], method="attattr", steps=2)
    np.testing.assert_allclose(np.asarray(res.importance["attattr"]), ref, rtol=1e-12)
    # the view keeps the partial grid
    st = wc.merged_state(hv)
    assert st["state"] == "cancelled" and st["progress"]["attattr"]["done"] == 2
    assert np.isfinite(wc.decode(st["importance"]["attattr"], st["importance"]["attattr"]["view"])).all()
    # per-example scores: two rows filled, the rest NaN
    assert np.isfinite(res.example_scores["attattr"][:2]).all() and np.isnan(res.example_scores["attattr"][2:]).all()


def test_click_head_lists_examples_and_opens_the_explorer(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:4], methods=("attattr",), fractions=[0.0, 1.0], steps=2, interval=0.0)
    hv.run()
    res = hv.wait(120)
    wc.from_front_end(hv, {"selected": [1, 2]})
    rows = hv.head_examples
    per = res.example_scores["attattr"][:, 1, 2]
    assert [r["index"] for r in rows] == list(np.argsort(-per, kind="stable"))
    assert rows[0]["score"] == pytest.approx(per.max()) and rows[0]["text"] == EXAMPLES[rows[0]["index"]]["text"]
    wc.command_from_front_end(hv, "_cmd_open", {"index": rows[0]["index"], "layer": 1, "head": 2})
    attr = hv.explorer.wait(60)
    assert hv.explorer.state == "done" and hv.explorer.selected == [1, 2]
    assert attr.text == EXAMPLES[rows[0]["index"]]["text"] and attr.target == EXAMPLES[rows[0]["index"]]["label"]
    # the example's attattr head score is the max of the explorer's map for that head
    assert attr.head_scores("max")[1, 2] == pytest.approx(per.max(), rel=1e-5)


def test_effectiveness_and_correlation(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:3], methods=("attattr",), fractions=[0.0, 1.0],
                   effectiveness_examples=EXAMPLES[:3], steps=2, interval=0.0)
    hv.run()
    res = hv.wait(120)
    ref = effectiveness(bert, tok, EXAMPLES[:3], steps=2)
    for c in ("attribution", "attention"):
        for o in ("smallest-first", "largest-first"):
            np.testing.assert_array_equal(res.effectiveness.accuracy[c][o], ref.accuracy[c][o])
    assert hv.effectiveness["heads"] == list(range(5))
    other = np.arange(8, dtype=float).reshape(2, 4)
    corr = hv.compare_with(other)
    assert hv.view == "correlation" and hv.correlation["r"] == pytest.approx(corr.r)


def test_bad_arguments_are_refused(bert, tok):
    with pytest.raises(ValueError, match="methods"):
        HeadsView(bert, tok, EXAMPLES, methods=("magic",))
    with pytest.raises(TypeError, match="stepz"):
        HeadsView(bert, tok, EXAMPLES, stepz=3)
    with pytest.raises(Exception, match="no examples"):
        HeadsView(bert, tok, [])


def test_methods_without_per_example_scores_rank_examples_by_attattr(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:3], methods=("random", "attattr"), fractions=[0.0, 1.0], steps=2, interval=0.0)
    hv.run()
    res = hv.wait(120)
    assert np.isnan(res.example_scores["random"]).all()
    wc.from_front_end(hv, {"method": "random", "selected": [0, 1]})
    rows = hv.head_examples
    assert rows and all(r["method"] == "attattr" for r in rows)
    assert [r["index"] for r in rows] == list(np.argsort(-res.example_scores["attattr"][:, 0, 1], kind="stable"))


def test_example_ranking_matches_the_shared_cases():
    """heads.py and js/heads/heads-view.ts rank a head's examples by one rule (the JS side checks the same file)."""
    import json
    import pathlib

    from attattr_widgets.widgets.heads import rank_examples, ranking_method

    cases = json.loads((pathlib.Path(__file__).parents[1] / "data" / "top_examples_cases.json").read_text())["cases"]
    for c in cases:
        scores = [np.nan if x is None else x for x in c["scores"]]
        assert rank_examples(scores, c["k"]) == c["expected"], c
        assert ranking_method(c["method"], c["have"]) == c["expected_method"], c


def test_view_gets_the_examples_and_their_scores_for_kernel_less_ranking(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:3], methods=("attattr", "random"), fractions=[0.0, 1.0], steps=2, interval=0.0)
    state, _ = wc.open_state(hv)
    assert [e["text"] for e in state["examples"]] == [e["text"] for e in EXAMPLES[:3]]
    hv.run()
    res = hv.wait(120)
    st = wc.merged_state(hv)
    assert set(st["example_scores"]) == {"attattr"}          # random has no per-example scores
    h = st["example_scores"]["attattr"]
    np.testing.assert_allclose(wc.decode(h, h["view"]), res.example_scores["attattr"].astype(np.float32))


def test_a_second_run_starts_clean(bert, tok):
    hv = HeadsView(bert, tok, EXAMPLES[:2], methods=("attattr",), fractions=[0.0, 1.0], steps=2, interval=0.0)
    hv.run()
    hv.wait(120)
    n = len(wc.updates(hv))
    hv.run()
    first = [s for s, _ in wc.updates(hv)[n:]]
    reset = next(s for s in first if s.get("state") == "running")
    assert reset["progress"] == {} and reset["importance"] == {} and reset["curves"] == [] and reset["example_scores"] == {}
    hv.wait(120)
    later = [s["progress"] for s in first if "progress" in s and s["progress"]]
    assert all(set(p) <= {"attattr", "pruning"} for p in later)
    assert later[0] == {"attattr": later[0]["attattr"]} and later[0]["attattr"]["done"] == 0   # no stale entries
    assert hv.state == "done" and hv.run_id == 2


def test_heads_for_a_generation_task_equal_the_engine(tok):
    """Examples with answers on a causal LM (issue 21): the view's importance and curves are the engine's —
    teacher-forced exact match as accuracy, the answers' mean log-probability per token beside it."""
    import torch
    from conftest import make_model

    lm = make_model("llama", "lm", layers=2, heads=4, dtype=torch.float64)
    data = [{"text": "the capital of france is", "target": " paris"}, {"text": "the cat sat on the", "target": " mat ."},
            {"text": "i love the", "target": " movie"}]
    hv = HeadsView(lm, tok, data, methods=("attattr", "taylor"), fractions=FRACTIONS, steps=2, interval=0.0)
    hv.run()
    res = hv.wait(120)
    assert hv.state == "done" and not res.partial
    ref = {m: head_importance(lm, tok, data, method=m, steps=2) for m in ("attattr", "taylor")}
    for m, imp in ref.items():
        np.testing.assert_array_equal(np.asarray(res.importance[m]), imp)
    for got, want in zip(res.curves, compare_pruning(lm, tok, data, ref, fractions=FRACTIONS)):
        np.testing.assert_array_equal(got.accuracy, want.accuracy)
        np.testing.assert_array_equal(got.answer_logprob, want.answer_logprob)
        assert np.isfinite(got.answer_logprob).all()
