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
