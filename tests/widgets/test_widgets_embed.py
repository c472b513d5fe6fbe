"""What the views embed to work without a kernel (issue 13): every head's maps (float16, compressed, budget),
the tree's layer sums, the target label known while streaming, and the export's heads / max_bytes options."""
from __future__ import annotations

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_model
from test_widgets_explorer import PAIR, TEXT, fake_attr

from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.analysis.tree import attribution_tree, layer_sums, tree_from_layer_sums
from attattr_widgets.widgets import Explorer, TreeView
from attattr_widgets.widgets.embed import embed_heads, embed_layer_sums, head_order, inflate_array
from attattr_widgets.widgets.serialize import head_summary


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


def _decoded(data, i):
    x = inflate_array(data["chunks"][i]).astype(np.float32)
    sa, sb = data["scales"][i]
    return x[0] * sa, x[1] * sb


def test_every_head_embedded_as_scaled_float16_in_head_score_order():
    a = fake_attr(L=3, H=4, tokens=tuple(f"t{i}" for i in range(9)))
    a.scores[1, 2] *= 1e-6                                # tiny attributions keep their precision (scaled)
    d = embed_heads(a)
    assert d["L"] * d["H"] == len(d["heads"]) == 12 and d["omitted"] == 0 and d["policy"] == "all"
    assert d["heads"] == [list(p) for p in head_order(a.scores)]
    hs = np.stack([head_summary(s) for s in a.scores])
    assert [hs[l, h] for l, h in d["heads"]] == sorted(hs.ravel().tolist(), reverse=True)
    for i, (l, h) in enumerate(d["heads"]):
        attn, attr = _decoded(d, i)
        np.testing.assert_allclose(attn, a.attention[l, h], rtol=0, atol=np.abs(a.attention[l, h]).max() * 1e-3)
        np.testing.assert_allclose(attr, a.scores[l, h], rtol=0, atol=np.abs(a.scores[l, h]).max() * 1e-3)
    assert d["bytes"] == sum(len(c["view"]) for c in d["chunks"])


def test_budget_top_k_and_lists():
    a = fake_attr(L=3, H=4, tokens=tuple(f"t{i}" for i in range(12)))
    full = embed_heads(a)
    one = len(full["chunks"][0]["view"])
    d = embed_heads(a, "all", max_bytes=3 * one)
    assert d["bytes"] <= 3 * one and 1 <= len(d["heads"]) < 12 and d["omitted"] == 12 - len(d["heads"])
    assert d["heads"][0] == full["heads"][0]             # the strongest heads first
    assert embed_heads(a, "top-3")["heads"] == full["heads"][:3]
    assert embed_heads(a, 2)["heads"] == full["heads"][:2]
    assert embed_heads(a, [(2, 1), (0, 3), (2, 1)])["heads"] == [[2, 1], [0, 3]]
    assert embed_heads(a, "all", max_bytes=0)["heads"] == []
    for bad, arg in (("top-x", "heads"), ([(9, 0)], "outside"), ([("a", 1)], "pair"), ({"x": 1}, "heads")):
        with pytest.raises(ValueError, match=arg):
            embed_heads(a, bad)
    with pytest.raises(ValueError, match="max_bytes"):
        embed_heads(a, "all", max_bytes=-1)


def test_layer_sums_give_the_kernels_tree_for_any_threshold():
    a = fake_attr(L=3, H=2, tokens=("[CLS]", "a", "b", "c", "[SEP]"))
    d = embed_layer_sums(a)
    S = inflate_array(d["sums"])
    assert S.dtype == np.float32 and np.array_equal(S, layer_sums(a))
    assert d["exclude_row"] == 0 and d["layers"] == [0, 1, 2] and d["num_layers"] == 3
    for t in (0.0, 0.2, 0.4, 0.8):
        ours = tree_from_layer_sums(S, layers=d["layers"], num_layers=d["num_layers"], tokens=a.tokens, threshold=t,
                                    exclude_row=d["exclude_row"])
        assert ours.to_dict() == attribution_tree(a, threshold=t).to_dict()
    assert embed_layer_sums(a, max_bytes=10) is None       # over budget: the kernel computes the tree
    tv = TreeView(a)
    state, bufs = wc.open_state(tv)
    assert ("layer_sums", "sums", "view") in bufs


def test_explorer_state_embeds_heads_and_to_html_options_are_temporary():
    a = fake_attr(L=2, H=3)
    w = Explorer.from_attribution(a)
    assert len(w.heads_data["heads"]) == 6
    state, bufs = wc.open_state(w)
    assert sum(1 for p in bufs if p[0] == "heads_data") == 6   # one binary chunk per head
    html = w.to_html(None, heads="top-2")
    assert w.heads_data["policy"] == "all" and len(w.heads_data["heads"]) == 6   # restored after the export
    assert '"policy":"top-2"' in html
    html = w.to_html(None, heads=[(1, 2)], max_bytes=10_000)
    assert '"policy":"list"' in html and '"heads":[[1,2]]' in html
    with pytest.raises(ValueError, match="heads"):
        w.to_html(None, heads="some")


def test_streaming_header_has_the_label_from_the_first_layer(tokenizer):
    model = make_model("bert", "cls", layers=3, heads=2)
    w = Explorer(model, tokenizer)
    w.explain(TEXT, PAIR, steps=2)
    w.wait(60)
    first = next(st["meta"] for st, _ in wc.updates(w) if "target" in st.get("meta", {}))
    assert first["target_label"] and first["target_label"] == w.meta["target_label"]
    assert first["target_kind"] == "class" and first["label_names"] == w.meta["label_names"]
    assert w.heads_data is not None and len(w.heads_data["heads"]) == 3 * 2
    again = attribute(model, tokenizer, TEXT, PAIR, steps=2)
    assert again.target_label == first["target_label"]
