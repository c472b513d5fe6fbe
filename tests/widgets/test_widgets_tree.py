"""TreeView widget: tree dict trait, live threshold, edge click -> linked Explorer selection."""
from __future__ import annotations

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_model

import attattr_widgets.widgets.tree as tree_mod
from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.analysis.tree import attribution_tree
from attattr_widgets.engine.model.tokens import special_mask
from attattr_widgets.widgets import Explorer, TreeView

KEYS = {"tokens", "num_layers", "threshold", "root", "nodes", "edges"}


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def attr(tokenizer):
    model = make_model("bert", "cls", layers=3, heads=4)
    return attribute(model, tokenizer, "the movie was not bad", "i love this film", steps=2)


def fake_tree(attribution, threshold):
    """The documented dict format, independent of the engine."""
    return {"tokens": list(attribution.tokens), "num_layers": 3, "threshold": threshold, "root": 1,
            "nodes": [{"index": 1, "token": attribution.tokens[1], "layer": 3},
                      {"index": 2, "token": attribution.tokens[2], "layer": 2}],
            "edges": [{"parent": 1, "child": 2, "layer": 2, "score": np.float32(0.5 + threshold)}]}


def test_fake_tree_dict_is_passed_through(monkeypatch, attr):
    monkeypatch.setattr(tree_mod, "_attribution_tree", fake_tree)
    w = TreeView(attr, threshold=0.3)
    state, bufs = wc.open_state(w)
    assert set(bufs) == {("layer_sums", "sums", "view")}   # the only binary: the embedded layer sums
    assert state["state"] == "done" and state["threshold"] == 0.3 and not state["linked"]
    assert set(state["tree"]) == KEYS and state["tree"]["edges"][0]["score"] == pytest.approx(0.8)
    assert type(state["tree"]["edges"][0]["score"]) is float


def test_threshold_from_slider_recomputes_in_one_update(attr):
    w = TreeView(attr)
    assert w.tree == attribution_tree(attr, threshold=0.4).to_dict()
    w.comm.log.clear()
    wc.from_front_end(w, {"threshold": 0.1})
    ups = wc.updates(w)
    assert len(ups) == 1 and ups[0][0]["tree"]["threshold"] == 0.1
    assert w.tree == attribution_tree(attr, threshold=0.1).to_dict()
    assert len(w.tree["nodes"]) >= len(attribution_tree(attr, threshold=0.4).nodes)


def test_edge_click_selects_layer_head_and_pair_in_linked_explorer(attr):
    ex = Explorer.from_attribution(attr)
    w = TreeView(attr, threshold=0.0, explorer=ex)
    assert w.linked and w.tree["edges"]
    e = w.tree["edges"][-1]
    wc.command_from_front_end(w, "_cmd_edge", {"parent": e["parent"], "child": e["child"], "layer": e["layer"]})
    li = attr.layers.index(e["layer"])
    head = int(np.argmax(attr.scores[li, :, e["parent"], e["child"]]))
    assert ex.selected == [li, head]
    assert ex.query == e["parent"] and ex.locked == [e["parent"], e["child"]]
    assert ex.head["layer"] == li and ex.head["head"] == head
    assert w.selected_edge == [e["parent"], e["child"], e["layer"]]
    assert w.special == special_mask(attr.tokens)
    # raising the threshold past that edge clears the highlight
    wc.from_front_end(w, {"threshold": 1.0})
    assert w.selected_edge == [] or w.selected_edge in [[x["parent"], x["child"], x["layer"]] for x in w.tree["edges"]]
    # malformed messages are ignored
    response, _ = wc.command_from_front_end(w, "_cmd_edge", {"parent": "x"})
    assert response["ok"] is False and response["error"]


def test_explorer_tree_view_helper(attr):
    ex = Explorer.from_attribution(attr)
    tv = ex.tree_view(0.2)
    assert tv.explorer is ex and tv.threshold == 0.2 and tv.state == "done"
    with pytest.raises(ValueError):
        Explorer().tree_view()


def test_tree_errors_are_shown(monkeypatch, attr):
    def boom(a, t):
        raise RuntimeError("no layers to build a tree from")

    monkeypatch.setattr(tree_mod, "_attribution_tree", boom)
    w = TreeView(attr)
    assert w.state == "error" and w.error == "RuntimeError: no layers to build a tree from" and w.tree == {}


def test_threshold_is_validated(attr):
    with pytest.raises(ValueError):
        TreeView(attr, threshold=1.5)


def test_answer_tree_carries_answer_start_and_the_snapshot_marks_the_answer(tokenizer, attr):
    """A causal LM's explained answer: ``Explorer.tree_view()`` sends ``answer_start`` (the first answer token's index
    in the tree's tokens) to the browser, for the whole answer and for one answer token; the static tree draws the
    answer's nodes in the answer colour after a boundary line. Other attributions send None."""
    from attattr_widgets import snapshot as snap

    ex = Explorer(make_model("gpt2", "lm", layers=2, heads=2), tokenizer)
    ex.explain("the cat sat on", target="the mat was", steps=2)
    a = ex.wait(60)
    assert a.answer_start is not None and 0 < a.answer_start < len(a.tokens)
    whole = ex.tree_view(0.0, answer_token=None)
    state, _ = wc.open_state(whole)
    assert state["answer_start"] == a.answer_start and state["tree"]["tokens"] == list(a.tokens)
    last = len(a.tokens) - a.answer_start - 1
    tv = ex.tree_view(0.0, answer_token=last)  # the last answer token's own tree: same tokens, same start
    assert wc.open_state(tv)[0]["answer_start"] == a.per_token[last].answer_start == a.answer_start
    assert TreeView(attr).answer_start is None and wc.open_state(TreeView(attr))[0]["answer_start"] is None

    def marks(w):
        idx = sorted(int(n["index"]) for n in w.tree["nodes"])
        out = snap.tree_html(w)
        answer_nodes = sum(i >= a.answer_start for i in idx)
        assert out.count(f'fill="{snap._ANSWER}"') == answer_nodes  # answer-coloured labels
        boundary = out.count('data-answer="boundary"')
        assert boundary == int(idx[0] < a.answer_start <= idx[-1])  # only between prompt and answer nodes
        assert out.count(f'stroke="{snap._ANSWER}"') == answer_nodes + boundary  # their boxes, the line
        return idx, boundary

    idx, boundary = marks(tv)
    assert idx[0] < a.answer_start <= idx[-1] and boundary == 1  # a tree reaching into the prompt and the answer
    marks(whole)
    assert 'data-answer' not in snap.tree_html(TreeView(attr, threshold=0.0))


def test_static_answer_marks_keep_hostile_tokens_as_text(monkeypatch):
    from types import SimpleNamespace

    from attattr_widgets import snapshot as snap

    monkeypatch.setattr(tree_mod, "_attribution_tree", fake_tree)
    hostile = SimpleNamespace(tokens=["a", "<b>x</b>", "<svg onload=alert(1)>"], answer_start=2)
    w = TreeView(hostile, threshold=0.0)
    assert w.answer_start == 2
    out = snap.tree_html(w)
    assert "<b>" not in out and "<svg onload" not in out and "&lt;b&gt;" in out
    assert out.count('data-answer="boundary"') == 1 and out.count(f'fill="{snap._ANSWER}"') == 1
    assert TreeView(SimpleNamespace(tokens=["a", "b", "c"], answer_start=7)).answer_start is None  # out of range
