"""TriggersView: traits and messages over the recording comm; patterns and attack results equal the engine's."""
from __future__ import annotations

import threading

import pytest
import widget_comm as wc

import attattr_widgets.engine.analysis.triggers as triggers_mod
from attattr_widgets.engine.model.tokens import special_mask
from attattr_widgets.engine.analysis.triggers import evaluate_triggers, mine_triggers, top_triggers
from attattr_widgets.widgets import TriggersView
from attattr_widgets.widgets.triggers import inserted_flags


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


def test_patterns_and_results_equal_the_engine(shortcut_model):
    model, tok, mine, test = shortcut_model
    tv = TriggersView(model, tok, mine, test, evaluate=2, sample=4, steps=4, min_score=0.0, interval=0.0)
    tv.run()
    res = tv.wait(120)
    assert tv.state == "done" and not res.partial
    ref = mine_triggers(model, tok, mine, steps=4, min_score=0.0)
    assert [p.to_dict() for p in res.patterns] == [p.to_dict() for p in ref]
    chosen = [p for lst in top_triggers(ref, per_class=2).values() for p in lst]
    want = evaluate_triggers(model, tok, test, chosen)
    assert [r.to_dict() for r in res.results] == [r.to_dict() for r in want]
    # table rows: sorted by score, evaluated ones carry per-class accuracy before -> after
    rows = tv.patterns
    assert [r["id"] for r in rows] == [p.example_index for p in ref]
    ev = {r["id"]: r for r in rows if r["evaluated"]}
    assert set(ev) == {p.example_index for p in chosen}
    for r in want:
        assert ev[r.pattern.example_index]["per_class"] == r.per_class
    # streaming order: mining progress grows one example at a time, then evaluation one pattern at a time
    ups = [s for s, _ in wc.updates(tv)]
    mined = [s["progress"]["mining"]["done"] for s in ups if "progress" in s and "evaluating" not in s["progress"]]
    assert mined == sorted(mined) and mined[0] == 0 and mined[-1] == len(mine)
    counts = [len(s["patterns"]) for s in ups if "patterns" in s and "evaluating" not in s.get("progress", {})]
    assert counts == sorted(counts) and counts[-1] == len(ref) and len(set(counts)) > 2
    evald = [sum(r["evaluated"] for r in s["patterns"]) for s in ups if "patterns" in s]
    assert evald == sorted(evald) and evald[-1] == len(chosen)
    assert [s["phase"] for s in ups if "phase" in s] == ["mining", "evaluating", ""]


def test_select_pattern_shows_attacked_samples_and_apply_flips(shortcut_model):
    model, tok, mine, test = shortcut_model
    tv = TriggersView(model, tok, mine, test, evaluate=1, sample=3, steps=4, min_score=0.0, interval=0.0)
    tv.run()
    res = tv.wait(120)
    cat = next(p for p in res.patterns if p.pred == 1 and "cat" in p.tokens)
    wc.from_front_end(tv, {"selected": cat.example_index})
    assert len(tv.samples) == 3
    for row in tv.samples:
        ins = [t for t, f in zip(row["tokens"], row["inserted"]) if f]
        assert sorted(ins) == sorted(cat.tokens)
        assert row["special"] == special_mask(row["tokens"]) and row["special"][0]  # [CLS]
    # a negative sentence typed by the user flips to the trigger's class
    wc.command_from_front_end(tv, "_cmd_apply", {"text": "the movie was awful and boring", "pattern": cat.example_index})
    out = tv.custom
    assert out["error"] == "" and out["before"]["label"] == "neg" and out["after"]["label"] == "pos"
    assert [t for t, f in zip(out["tokens"], out["inserted"]) if f] == [t for t in cat.tokens]
    assert out["special"] == special_mask(out["tokens"])
    # bad input is shown, not raised into the comm
    response, _ = wc.command_from_front_end(tv, "_cmd_apply", {"text": "   ", "pattern": cat.example_index})
    assert "type a sentence" in tv.custom["error"]
    assert response["ok"] is False and "type a sentence" in response["error"]


def test_stop_keeps_mined_patterns(shortcut_model, monkeypatch):
    model, tok, mine, test = shortcut_model
    gate, reached = threading.Event(), threading.Event()
    real = triggers_mod.iter_mine_triggers

    def slow(*a, **kw):
        for i, item in enumerate(real(*a, **kw)):
            yield item
            if i == 2:
                reached.set()
                gate.wait(10)

    monkeypatch.setattr(triggers_mod, "iter_mine_triggers", slow)
    tv = TriggersView(model, tok, mine, test, steps=2, min_score=0.0, interval=0.0)
    tv.run()
    assert reached.wait(60)
    wc.command_from_front_end(tv, "_cmd_cancel", {"run_id": tv.run_id})
    gate.set()
    res = tv.wait(60)
    assert tv.state == "cancelled" and res.partial and 1 <= len(res.patterns) <= 3 and res.results == []
    assert len(tv.patterns) == len(res.patterns)


def test_inserted_flags_alignment():
    assert inserted_flags([1, 5, 6, 2], [1, 9, 5, 6, 2]) == [False, True, False, False, False]
    # truncation dropped a trailing content token: only the trigger counts as inserted
    assert inserted_flags([1, 5, 6, 7, 2], [1, 9, 5, 6, 2]) == [False, True, False, False, False]


def test_bad_arguments(shortcut_model):
    model, tok, mine, test = shortcut_model
    with pytest.raises(TypeError, match="blacklist"):
        TriggersView(model, tok, mine, test, blacklist="the")
    with pytest.raises(TypeError, match="stepz"):
        TriggersView(model, tok, mine, test, stepz=2)
    with pytest.raises(ValueError, match="label"):
        TriggersView(model, tok, mine, [{"text": "a"}])


def test_table_keeps_the_best_rows_and_every_evaluated_one(shortcut_model):
    model, tok, mine, test = shortcut_model
    tv = TriggersView(model, tok, mine, test, evaluate=2, max_rows=3, steps=2, min_score=0.0, interval=0.0)
    tv.run()
    res = tv.wait(120)
    ids = [r["id"] for r in tv.patterns]
    best = [p.example_index for p in res.patterns[:3]]
    evaluated = {r.pattern.example_index for r in res.results}
    assert ids[:3] == best and set(ids) == set(best) | evaluated
    assert tv.meta["num_patterns"] == len(res.patterns) > len(ids)
    # attacked samples: examples of the classes the trigger attacks come first
    p = res.results[0].pattern
    wc.from_front_end(tv, {"selected": p.example_index})
    golds = [r["gold"] for r in tv.samples]
    other = sum(ex["label"] != p.pred for ex in test)
    assert golds[: min(other, len(golds))] == [g for g in golds if g != p.pred][: min(other, len(golds))]
    assert all(g != p.pred for g in golds[: min(other, len(golds))])
