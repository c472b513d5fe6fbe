"""Explorer on encoder–decoders (T5, BART, Marian): three attention sites behind one switch (``site``), the
cross-attention maps rectangular (answer rows × source columns), streamed live per site, static snapshots and
exports with all three sites. Traits and messages through a recording comm (no kernel, no browser)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_seq2seq, make_seq2seq_tokenizer
from test_widgets_explorer import _ts_interface_keys

from attattr_widgets import export, snapshot
from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.widgets import Explorer

SOURCE = "the cat sat on a mat"
ANSWER = "die katze sitzt"
SITES = ("encoder", "decoder", "cross")


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def tok():
    return make_seq2seq_tokenizer()


@pytest.fixture(scope="module", params=["t5", "bart", "marian"])
def s2s(request):
    return make_seq2seq(request.param)


def _check_site(ex, res, site):
    """The Explorer's traits show ``site`` of ``res`` exactly: tokens, column tokens, head maps, grid."""
    s = res.site(site)
    assert ex.site == site
    assert ex.tokens == s.row_tokens
    assert ex.col_tokens == ([] if site != "cross" else s.col_tokens)
    li, h = ex.selected
    np.testing.assert_array_equal(ex.head["attention"], s.attention[li, h].astype(np.float32))
    np.testing.assert_array_equal(ex.head["attribution"], s.scores[li, h].astype(np.float32))
    assert ex.head["attention"].shape == (len(s.row_tokens), len(s.col_tokens))
    np.testing.assert_allclose(ex.head_scores, s.head_scores().astype(np.float32), rtol=1e-6)
    assert ex.meta["completeness"] == pytest.approx(list(s.completeness))
    assert ex.meta["layers"] == s.layers and ex.meta["sites"] == list(SITES)
    # rows of the decoder and cross sites read the answer shifted right and predict its label tokens
    assert ex.meta["predicts"] == ([] if site == "encoder" else res.label_tokens)
    if site != "encoder":
        assert ex.meta["predicts"][:-1] == s.row_tokens[1:] and len(ex.meta["predicts"]) == len(s.row_tokens)


def test_live_run_streams_every_site_and_ends_on_the_alignment_view(s2s, tok):
    ex = Explorer(s2s, tok)
    assert ex.input_spec["kind"] == "answer" and ex.input_spec["answers"] is True
    streamed, orig = [], ex._on_layer

    def on_layer(run_id, r):  # what the readout knows while the first cross layer is shown
        orig(run_id, r)
        if r.site == "cross" and r.index == 0:
            streamed.append(list(ex.meta.get("predicts", [])))

    ex._on_layer = on_layer
    ex.explain(SOURCE, target=ANSWER, steps=2)
    res = ex.wait(120)
    assert ex.state == "done", ex.error
    ref = attribute(s2s, tok, SOURCE, target=ANSWER, steps=2)
    for site in SITES:  # the widget's run is the engine's (same maps, same completeness)
        np.testing.assert_array_equal(res.site(site).scores, ref.site(site).scores)
    _check_site(ex, res, "cross")  # an encoder–decoder opens on the alignment view
    assert streamed == [res.label_tokens]
    layer_msgs = [c[0] for c in wc.customs(ex) if c[0]["type"] == "layer"]
    # the shown site's layers are pushed (the others are kept for when the switch picks them)
    assert {m["site"] for m in layer_msgs} == {"cross"}
    assert all(m["col_tokens"] == res.source_tokens for m in layer_msgs)
    assert [m["index"] for m in layer_msgs] == list(range(len(res.cross.layers)))
    assert ex.meta["site_layers"] == {s: [len(res.site(s).layers)] * 2 for s in SITES}
    assert set().union(*(m.keys() for m in layer_msgs)) <= _ts_interface_keys("LayerMessage")
    assert set(ex.meta) <= _ts_interface_keys("ExplorerMeta"), set(ex.meta) - _ts_interface_keys("ExplorerMeta")


def test_the_site_switch_shows_each_site_and_locks_rectangular_pairs(tok):
    model = make_seq2seq("marian")
    ex = Explorer(model, tok)
    ex.explain(SOURCE, target=ANSWER, steps=2)
    res = ex.wait(120)
    for site in ("encoder", "decoder", "cross", "encoder"):
        ex.site = site  # what the view's switch writes
        _check_site(ex, res, site)
    ex.show_site("cross")
    n_tgt, n_src = len(res.decoder_tokens), len(res.source_tokens)
    ex.locked = [n_tgt - 1, n_src - 1]  # the last answer row × the last source column: outside a square n_tgt map
    np.testing.assert_array_equal(ex.pair["scores"], res.cross.scores[:, :, n_tgt - 1, n_src - 1].astype(np.float32))
    ex.locked = [n_tgt, 0]  # no such row
    assert ex.pair is None
    with pytest.raises(ValueError, match="unknown site 'self'"):
        ex.show_site("self")
    ex.site = "bogus"  # a bad value from a page: ignored, the view keeps its site
    assert ex.site == "cross" and ex.tokens == res.decoder_tokens


def test_switching_site_while_running_shows_that_sites_layers_so_far(tok):
    model = make_seq2seq("bart")
    ex = Explorer(model, tok)
    seen = []
    orig = ex._on_layer

    def on_layer(run_id, r):  # switch to the encoder after its first layer arrived, mid-run
        orig(run_id, r)
        if r.site == "encoder" and r.index == 0:
            ex.site = "encoder"
            seen.append((list(ex.tokens), ex.layers_done, ex.head is not None, ex.meta["predicts"]))

    ex._on_layer = on_layer
    ex.explain(SOURCE, target=ANSWER, steps=2)
    res = ex.wait(120)
    assert seen == [(res.source_tokens, 1, True, [])]
    assert ex.state == "done" and ex.site == "encoder"
    _check_site(ex, res, "encoder")


def test_generate_explains_the_models_own_answer_and_pred_is_refused(tok):
    model = make_seq2seq("t5")
    ex = Explorer(model, tok)
    with pytest.raises(ValueError, match=r"encoder-decoder: give the answer to explain.*generate=16"):
        ex.explain(SOURCE)
    assert ex.state == "empty"
    ex.explain(SOURCE, generate=3, steps=2)
    res = ex.wait(120)
    assert ex.state == "done", ex.error
    assert 1 <= len(res.label_ids) <= 3 and ex.meta["answer"] == res.answer
    wc.command_from_front_end(ex, "_cmd_run", {"text": SOURCE, "target": ANSWER})  # the input bar's answer field
    res2 = ex.wait(120)
    assert res2.answer == ANSWER and [h["answer"] for h in ex.history] == [res.answer, ANSWER]
    assert ex.predict_targets(SOURCE) == {} and ex.targets == {}  # no target list: answers are typed
    with pytest.raises(ValueError, match="contrast is not offered for encoder-decoders"):
        ex.compare("ein hund")
    ex.show_run(ex.history[0]["key"])
    assert ex.attribution is res and ex.site == "cross" and ex.tokens == res.decoder_tokens


def test_from_attribution_tree_and_saved_result(tok, tmp_path):
    from attattr_widgets.engine.results import Seq2SeqAttribution

    res = attribute(make_seq2seq("marian"), tok, SOURCE, target=ANSWER, steps=2)
    path = res.save(tmp_path / "r")
    back = Seq2SeqAttribution.load(path)
    ex = Explorer.from_attribution(back)
    assert ex.state == "done" and not ex.interactive
    _check_site(ex, back, "cross")
    ex.site = "decoder"
    _check_site(ex, back, "decoder")
    assert ex.tree_view(site="decoder").tree["tokens"] == back.decoder_tokens
    with pytest.raises(ValueError, match="unknown site 'self'"):
        ex.tree_view(site="self")
    assert ex.tree_view(site="encoder").tree["tokens"] == back.source_tokens


def test_tree_across_source_and_answer(tok):
    """``tree_view()`` (or site="cross") on an encoder–decoder: the engine's tree across source and answer, sides
    and positions in the trait, the threshold recomputed by the kernel, an edge click opening its site."""
    from attattr_widgets.engine.analysis.tree import seq2seq_tree

    res = attribute(make_seq2seq("bart"), tok, SOURCE, target=ANSWER, steps=2)
    ex = Explorer.from_attribution(res)
    tv = ex.tree_view(threshold=0.1)
    assert tv.tree == seq2seq_tree(res, threshold=0.1).to_dict()
    assert ex.tree_view(site="cross", threshold=0.1).tree == tv.tree
    ns = len(res.source_tokens)
    assert tv.tree["tokens"] == res.source_tokens + res.decoder_tokens
    assert tv.tree["sides"] == ["source"] * ns + ["answer"] * len(res.decoder_tokens)
    assert tv.special[ns] and tv.linked and tv.state == "done"
    # the three sites' head sums travel with the state: the same tree for any threshold without the kernel
    from attattr_widgets.engine.analysis.tree import seq2seq_tree_from_layer_sums
    from attattr_widgets.widgets.embed import inflate_array

    d = tv.layer_sums
    sums = [inflate_array(d[s]) for s in SITES]
    for s, S in zip(SITES, sums):
        assert S.dtype == np.float32
        np.testing.assert_allclose(S, res.site(s).scores.astype(np.float64).sum(1), rtol=1e-5, atol=1e-8)
    for t in (0.0, 0.1, 0.4, 0.9):
        offline = seq2seq_tree_from_layer_sums(
            *sums, source_tokens=res.source_tokens, answer_tokens=res.decoder_tokens,
            encoder_layers=d["encoder_layers"], decoder_layers=d["decoder_layers"],
            encoder_num_layers=d["encoder_num_layers"], num_layers=d["num_layers"], threshold=t,
            exclude_source=d["exclude_source"], exclude_answer=d["exclude_answer"])
        assert offline.to_dict() == seq2seq_tree(res, threshold=t).to_dict()
    assert {k for k in wc.open_state(tv)[1]} >= {("layer_sums", s, "view") for s in SITES}
    tv.threshold = 0.4
    assert tv.tree == seq2seq_tree(res, threshold=0.4).to_dict()
    sides, seen = tv.tree["sides"], []
    for want in ("cross", "encoder", "decoder"):
        kind = {("answer", "source"): "cross", ("source", "source"): "encoder", ("answer", "answer"): "decoder"}
        e = next((e for e in tv.tree["edges"] if kind[sides[e["parent"]], sides[e["child"]]] == want), None)
        if e is None:
            continue
        seen.append(want)
        tv.select_edge(e["parent"], e["child"], e["layer"])  # what the browser's _cmd_edge calls
        q = e["parent"] - (0 if want == "encoder" else ns)
        k = e["child"] - (0 if sides[e["child"]] == "source" else ns)
        layer = e["layer"] - (0 if want == "encoder" else tv.tree["encoder_layers"])
        site = res.site(want)
        li = site.layers.index(layer)
        assert ex.site == want and ex.selected == [li, int(np.argmax(site.scores[li, :, q, k]))]
        assert ex.locked == [q, k]
    assert seen == ["cross", "encoder", "decoder"]  # this BART grows all three kinds of edge at τ = 0.4


def test_hostile_tokens_export_all_three_sites_as_text(tok, tmp_path):
    from hostile import expected_text
    from test_hardening_exports import hostile_seq2seq, widget_states

    res, src, tgt = hostile_seq2seq()
    ex = Explorer.from_attribution(res)
    ex.site = "encoder"
    page = export.to_html(ex, tmp_path / "s2s.html")
    text = page.read_text(encoding="utf-8")
    states = widget_states(text)
    views = re.findall(r'<script type="application/vnd.jupyter.widget-view\+json">(.*?)</script>', text)
    ids = [json.loads(v)["model_id"] for v in views]
    assert len(ids) == 3  # one view per site: the switch needs a kernel
    by_site = {states[i]["site"]: states[i] for i in ids}
    assert set(by_site) == set(SITES)
    assert by_site["encoder"]["tokens"] == [expected_text(t) for t in src]
    assert by_site["decoder"]["tokens"] == [expected_text(t) for t in tgt]
    cross = by_site["cross"]
    assert cross["tokens"] == [expected_text(t) for t in tgt] and cross["col_tokens"] == [expected_text(t) for t in src]
    assert cross["meta"]["answer"] == expected_text(res.answer) and cross["meta"]["sites"] == ["cross"]
    assert all(s["heads_data"]["heads"] for s in by_site.values())  # each site's maps drawn without a kernel
    assert by_site["encoder"]["selected"] == list(ex.selected)  # the shown site keeps the user's head
    # the static snapshot of the alignment view: both token rows as text, nothing executable
    ex.site = "cross"
    snap = snapshot.explorer_html(ex)
    assert "<script" not in snap.lower() and "<img" not in snap and "<b>answer" not in snap
    for t in src + tgt:
        assert snapshot.esc(snapshot.display_token(t)) in snap
    assert "cross-attention (answer rows × source columns)" in snap


def test_hostile_tokens_in_the_tree_across_source_and_answer(tmp_path):
    """The tree across source and answer keeps hostile source and answer strings as text: in its trait, in an
    exported page's widget state and in the static snapshot."""
    from hostile import expected_text
    from test_hardening_exports import hostile_seq2seq, widget_states

    from attattr_widgets.widgets import TreeView

    res, src, tgt = hostile_seq2seq()
    tv = TreeView(res, threshold=0.0)
    assert tv.state == "done" and tv.tree["tokens"] == src + tgt and len(tv.tree["edges"]) > 0
    text = export.to_html(tv, tmp_path / "tree.html").read_text(encoding="utf-8")
    state = next(s for s in widget_states(text).values() if "tree" in s)
    assert state["tree"]["tokens"] == [expected_text(t) for t in src + tgt]
    assert state["tree"]["sides"] == ["source"] * len(src) + ["answer"] * len(tgt)
    snap = snapshot.tree_html(tv)
    assert "<script" not in snap.lower() and "<img" not in snap
    for side, colour in snapshot._SIDE_STROKE.items():  # the static tree outlines each node by its side
        assert snap.count(f'stroke="{colour}"') == sum(nd["side"] == side for nd in tv.tree["nodes"]) > 0
