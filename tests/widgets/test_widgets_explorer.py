"""Explorer widget: traits and messages through a recording comm (no kernel, no browser)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_model

import attattr_widgets.widgets.explorer as explorer_mod
from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.errors import AttributionCancelled
from attattr_widgets.engine.model.tokens import special_mask
from attattr_widgets.widgets import BUNDLE_MISSING_MESSAGE, Explorer
from attattr_widgets.widgets.serialize import head_summary, thumbnails

TEXT = "the movie was not bad"
PAIR = "i love this film"


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def model():
    return make_model("bert", "cls", layers=3, heads=4)


@pytest.fixture(scope="module")
def attr(model, tokenizer):
    return attribute(model, tokenizer, TEXT, PAIR, steps=2)


def fake_attr(L=3, H=2, tokens=("[CLS]", "<script>alert(1)</script>", "a&b", "[SEP]"), seed=0):
    rng = np.random.default_rng(seed)
    n = len(tokens)
    scores = rng.normal(size=(L, H, n, n)).astype(np.float32)
    attn = rng.random(size=(L, H, n, n)).astype(np.float32)
    attn /= attn.sum(-1, keepdims=True)
    return SimpleNamespace(
        scores=scores, attention=attn, tokens=list(tokens), token_type_ids=np.zeros(n, int), target=1,
        target_label="pos", prob=0.75, layer_zero_probs=np.full(L, 0.5), completeness=np.full(L, 0.99),
        layers=list(range(L)), num_layers=L, rule="gauss-legendre", steps=6, text="t", text_pair=None,
        model_name="fake", target_kind="class", label_names=["neg", "pos"],
        head_scores=lambda reduce="max": scores.reshape(L, H, -1).max(-1))


def layer_result(a, i):
    return SimpleNamespace(layer=a.layers[i], index=i, total=len(a.layers), tokens=a.tokens, scores=a.scores[i],
                           attention=a.attention[i], zero_prob=0.5, completeness=0.99, target=a.target, prob=a.prob)


class FakeEngine:
    """Stands in for engine.attribute: emits layers, optionally blocks between them (controlled by the test)."""

    def __init__(self, a, block_after: int | None = None, error: BaseException | None = None):
        self.a, self.block_after, self.error = a, block_after, error
        self.reached = threading.Event()
        self.release = threading.Event()
        self.calls = []

    def __call__(self, model, tokenizer, text, text_pair=None, *, progress=None, cancel=None, **kw):
        self.calls.append(dict(text=text, text_pair=text_pair, **kw))
        for i in range(len(self.a.layers)):
            if cancel is not None and cancel.is_set():
                raise AttributionCancelled("cancelled")
            progress(layer_result(self.a, i))
            if self.block_after is not None and i == self.block_after:
                self.reached.set()
                while not self.release.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        raise AttributionCancelled("cancelled")
            if self.error is not None:
                raise self.error
        return self.a


# ------------------------------------------------------------------------------------------------ initial state
def test_initial_state_is_empty_and_small():
    w = Explorer()
    state, bufs = wc.open_state(w)
    assert state["state"] == "empty" and state["tokens"] == [] and state["head_scores"] is None
    assert state["_model_name"] == "AnyModel" and state["_esm"]
    assert not bufs
    with pytest.raises(ValueError, match="no model"):
        w.explain("x")


def test_unknown_keyword_is_an_error():
    with pytest.raises(TypeError, match="normalise"):
        Explorer(normalise="layer")


def test_from_attribution_opens_with_binary_state(attr):
    w = Explorer.from_attribution(attr)
    state, bufs = wc.open_state(w)
    L, H, n, _ = attr.scores.shape
    assert state["state"] == "done" and state["tokens"] == attr.tokens
    assert state["layers_done"] == state["layers_total"] == L
    assert state["head_scores"]["dtype"] == "float32" and state["head_scores"]["shape"] == [L, H]
    np.testing.assert_allclose(wc.decode(state["head_scores"], bufs[("head_scores", "view")]), attr.head_scores())
    assert state["thumbs"]["dtype"] == "float16" and state["thumbs"]["shape"][:2] == [L, H]
    np.testing.assert_array_equal(wc.decode(state["thumbs"], bufs[("thumbs", "view")]), thumbnails(attr.scores))
    li, h = np.unravel_index(np.argmax(attr.head_scores()), (L, H))
    assert state["selected"] == [li, h]
    head = state["head"]
    assert (head["layer"], head["head"]) == (li, h)
    np.testing.assert_array_equal(wc.decode(head["attribution"], bufs[("head", "attribution", "view")]),
                                  attr.scores[li, h])
    np.testing.assert_array_equal(wc.decode(head["attention"], bufs[("head", "attention", "view")]),
                                  attr.attention[li, h])
    # never the whole [L, H, n, n] tensor
    assert max(len(b) for b in bufs.values()) < attr.scores.nbytes
    assert state["meta"]["target_label"] == attr.target_label and state["meta"]["layers"] == attr.layers
    json.dumps({k: v for k, v in state.items()})  # the rest is plain JSON


def test_selection_from_front_end_sends_only_that_head_full_res(attr):
    w = Explorer.from_attribution(attr)
    n = len(attr.tokens)
    w.comm.log.clear()
    wc.from_front_end(w, {"selected": [2, 3]})
    ups = wc.updates(w)
    assert len(ups) == 1
    st, bufs = ups[0]
    assert set(st) == {"head"} and (st["head"]["layer"], st["head"]["head"]) == (2, 3)
    assert st["head"]["attribution"]["shape"] == [n, n]
    np.testing.assert_array_equal(wc.decode(st["head"]["attribution"], bufs[("head", "attribution", "view")]),
                                  attr.scores[2, 3])
    assert sum(len(b) for b in bufs.values()) == 2 * n * n * 4
    # an out-of-range selection clears the head instead of failing
    wc.from_front_end(w, {"selected": [99, 0]})
    assert wc.updates(w)[-1][0] == {"head": None}


def test_locking_a_pair_sends_every_heads_attribution_of_it(attr):
    w = Explorer.from_attribution(attr)
    L, H = attr.scores.shape[:2]
    w.comm.log.clear()
    wc.from_front_end(w, {"locked": [3, 1], "query": 3})
    st, bufs = [u for u in wc.updates(w) if "pair" in u[0]][-1]
    assert (st["pair"]["query"], st["pair"]["key"]) == (3, 1)
    assert {k: st["pair"]["scores"][k] for k in ("dtype", "shape")} == {"dtype": "float32", "shape": [L, H]}
    np.testing.assert_array_equal(wc.decode(st["pair"]["scores"], bufs[("pair", "scores", "view")]),
                                  attr.scores[:, :, 3, 1])
    wc.from_front_end(w, {"locked": []})
    assert w.pair is None
    wc.from_front_end(w, {"locked": [99, 0]})  # out of range: nothing, no error
    assert w.pair is None


def test_front_end_owned_traits_round_trip(attr):
    w = Explorer.from_attribution(attr)
    wc.from_front_end(w, {"query": 3, "locked": [3, 1], "normalize": "layer", "grid_mode": "pair"})
    assert (w.query, w.locked, w.normalize, w.grid_mode) == (3, [3, 1], "layer", "pair")


# ---------------------------------------------------------------------------------------------------- streaming
def test_auto_runs_send_each_layers_panels(model, tokenizer):
    w = Explorer(model, tokenizer)
    w.explain(TEXT, PAIR)  # steps="auto"
    result = w.wait(60)
    layers = [c[0] for c in wc.customs(w) if c[0]["type"] == "layer"]
    assert [c["panels"] for c in layers] == result.layer_panels
    assert all(p[0][0] == 0.0 and p[-1][1] == 1.0 for p in result.layer_panels)
    assert [c["steps"] for c in layers] == result.layer_steps
    meta = wc.merged_state(w)["meta"]
    assert meta["layer_panels"] == result.layer_panels and meta["rule"] == "adaptive-simpson"


def test_explain_streams_one_message_per_layer_in_order_with_real_model(model, tokenizer, attr):
    w = Explorer(model, tokenizer)
    assert w.explain(TEXT, PAIR, steps=2) is None  # returns at once, no second view
    result = w.wait(60)
    assert w.state == "done" and result is w.attribution
    assert w.special == special_mask(result.tokens) and len(w.special) == len(w.tokens)
    L, H, n, _ = result.scores.shape
    layers = [c for c in wc.customs(w) if c[0]["type"] == "layer"]
    assert [c[0]["index"] for c in layers] == list(range(L))
    assert {c[0]["run_id"] for c in layers} == {w.run_id} == {1}
    for content, bufs in layers:
        i = content["index"]
        assert content["total"] == L and content["heads"] == H and content["tokens"] == result.tokens
        assert content["special"] == special_mask(result.tokens) and content["special"][0] is True  # [CLS]
        assert (content["steps"], content["converged"]) == (result.layer_steps[i], result.converged[i]) == (2, True)
        assert content["panels"] is None  # a fixed rule has no panels
        assert content["scores"] == {"dtype": "float32", "shape": [H]}
        np.testing.assert_allclose(wc.decode(content["scores"], bufs[0]), head_summary(result.scores[i]))
        assert content["thumbs"]["dtype"] == "float16"
        np.testing.assert_array_equal(wc.decode(content["thumbs"], bufs[1]), thumbnails(result.scores[i]))
        assert sum(len(b) for b in bufs) < result.scores[i].nbytes  # summaries, not the layer's maps
    np.testing.assert_allclose(result.scores, attr.scores, rtol=1e-5, atol=1e-8)
    # the final state lands in ONE update (hold_sync) carrying everything a reload/export needs
    final = [st for st, _ in wc.updates(w) if st.get("state") == "done"]
    assert len(final) == 1
    assert {"head_scores", "thumbs", "meta", "state"} <= set(final[0])  # unchanged traits are not resent
    state = wc.merged_state(w)
    assert state["state"] == "done" and state["layers_done"] == L
    assert state["meta"]["layer_steps"] == [2] * L and state["meta"]["converged"] == [True] * L
    assert state["meta"]["layer_panels"] == [None] * L
    np.testing.assert_allclose(wc.decode(state["head_scores"], state["head_scores"]["view"]), result.head_scores())
    sel = state["selected"]
    np.testing.assert_array_equal(wc.decode(state["head"]["attribution"], state["head"]["attribution"]["view"]),
                                  result.scores[sel[0], sel[1]])


def test_each_layer_is_summarised_once_per_run(model, tokenizer, monkeypatch):
    """Head summaries and thumbnails: one computation per layer while streaming; the final state (and its embedded
    heads' order) reuses them, as a resend does (test_resend_replays_layers_of_the_current_run). Counted in layer
    maps [H, n, n] reduced, wherever the reduction runs."""
    import attattr_widgets.engine.results.attribution as results_attr
    import attattr_widgets.widgets.serialize as serialize_mod

    counts = {"summary": 0, "thumbs": 0}

    def counting(name, fn):
        def wrapped(maps, *args, **kwargs):
            shape = np.shape(maps)
            counts[name] += int(np.prod(shape[:-3])) if len(shape) > 3 else 1
            return fn(maps, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(serialize_mod, "reduce_heads", counting("summary", serialize_mod.reduce_heads))
    monkeypatch.setattr(results_attr, "reduce_heads", counting("summary", results_attr.reduce_heads))
    monkeypatch.setattr(serialize_mod, "_pool_maxabs", counting("thumbs", serialize_mod._pool_maxabs))
    w = Explorer(model, tokenizer)
    w.explain(TEXT, PAIR, steps=2)
    result = w.wait(60)
    L = result.scores.shape[0]
    assert w.state == "done" and L == 3
    assert counts == {"summary": L, "thumbs": L}
    state = wc.merged_state(w)
    np.testing.assert_allclose(wc.decode(state["head_scores"], state["head_scores"]["view"]), result.head_scores())
    np.testing.assert_array_equal(wc.decode(state["thumbs"], state["thumbs"]["view"]), thumbnails(result.scores))


def test_explain_returns_immediately_and_clicks_work_while_running(monkeypatch):
    a = fake_attr(L=3)
    eng = FakeEngine(a, block_after=0)
    monkeypatch.setattr(explorer_mod, "_attribute", eng)
    w = Explorer(model=object(), tokenizer=object())
    w.explain("hello", target=1)
    assert eng.reached.wait(10)
    assert w.state == "running" and w.running and w.layers_done == 1 and w.layers_total == 3
    assert eng.calls[0]["target"] == 1
    # the first layer auto-selects its best head and ships it at full resolution
    assert w.selected == [0, int(np.argmax(head_summary(a.scores[0])))]
    assert w.head["layer"] == 0
    # a click on a layer that is not computed yet: no data, no error
    wc.from_front_end(w, {"selected": [2, 1]})
    assert w.head is None
    eng.release.set()
    w.wait(10)
    assert w.state == "done"
    assert w.selected == [2, 1]  # the user's choice survives the end of the run
    np.testing.assert_array_equal(w.head["attribution"], a.scores[2, 1])
    # a new run auto-selects again (the previous click does not stick to a new input)
    eng2 = FakeEngine(a, block_after=0)
    monkeypatch.setattr(explorer_mod, "_attribute", eng2)
    w.explain("again")
    assert eng2.reached.wait(10)
    assert w.selected == [0, int(np.argmax(head_summary(a.scores[0])))] and w.head is not None
    w.stop(wait=True)
    assert w.state == "cancelled" and w.selected[0] == 0


def test_stop_from_front_end_cancels_cleanly(monkeypatch):
    a = fake_attr(L=4)
    eng = FakeEngine(a, block_after=1)
    monkeypatch.setattr(explorer_mod, "_attribute", eng)
    w = Explorer(model=object(), tokenizer=object())
    w.explain("hello")
    assert eng.reached.wait(10)
    assert wc.command_from_front_end(w, "_cmd_cancel", {"run_id": w.run_id})[0] == {"ok": True}
    assert w.wait(10) is None
    assert w.state == "cancelled" and w.error == "" and w.layers_done == 2 and not w.running
    hs = w.head_scores
    assert hs.shape == (4, 2) and np.isfinite(hs[:2]).all() and np.isnan(hs[2:]).all()
    last = wc.updates(w)[-1][0]
    assert last["state"] == "cancelled" and "head_scores" in last  # one final update
    # a cancel for another run is ignored
    wc.command_from_front_end(w, "_cmd_cancel", {"run_id": 12345})


def test_cancel_with_real_engine(model, tokenizer):
    w = Explorer(model, tokenizer)
    orig = explorer_mod._attribute

    def stop_after_first(*args, progress=None, **kw):
        def cb(r):
            progress(r)
            w.stop()
        return orig(*args, progress=cb, **kw)

    explorer_mod._attribute, saved = stop_after_first, orig
    try:
        w.explain(TEXT, steps=2)
        w.wait(60)
    finally:
        explorer_mod._attribute = saved
    assert w.state == "cancelled" and w.layers_done == 1


def test_engine_errors_are_shown_in_the_widget(monkeypatch):
    eng = FakeEngine(fake_attr(L=3), error=ValueError("text is empty: pass a non-empty string"))
    monkeypatch.setattr(explorer_mod, "_attribute", eng)
    w = Explorer(model=object(), tokenizer=object())
    w.explain("")
    with pytest.raises(ValueError, match="text is empty"):
        w.wait(10)
    assert w.state == "error"
    assert w.error == "ValueError: text is empty: pass a non-empty string"
    assert "Traceback" in w.meta["error_detail"]


def test_real_engine_error_reaches_the_view(model, tokenizer):
    w = Explorer(model, tokenizer)
    w.explain(TEXT, target=99, steps=2)  # out of range target
    with pytest.raises(Exception):
        w.wait(60)
    assert w.state == "error" and w.error


def test_new_run_supersedes_old_and_late_chunks_are_not_sent(monkeypatch):
    a = fake_attr(L=3)
    first = FakeEngine(a, block_after=0)
    monkeypatch.setattr(explorer_mod, "_attribute", first)
    w = Explorer(model=object(), tokenizer=object())
    w.explain("one")
    assert first.reached.wait(10)
    second = FakeEngine(fake_attr(L=3, seed=1))
    monkeypatch.setattr(explorer_mod, "_attribute", second)
    w.explain("two")  # cancels the first run, waits for it, starts run 2
    w.wait(10)
    assert w.run_id == 2 and w.state == "done"
    runs = [c[0]["run_id"] for c in wc.customs(w) if c[0]["type"] == "layer"]
    assert runs == [1, 2, 2, 2]
    np.testing.assert_array_equal(w.attribution.scores, second.a.scores)


def test_resend_replays_layers_of_the_current_run(monkeypatch):
    eng = FakeEngine(fake_attr(L=3), block_after=1)
    monkeypatch.setattr(explorer_mod, "_attribute", eng)
    w = Explorer(model=object(), tokenizer=object())
    w.explain("x")
    assert eng.reached.wait(10)
    response, bufs = wc.command_from_front_end(w, "_cmd_resend", {"run_id": w.run_id})
    replay = [(h, bufs[2 * k:2 * k + 2]) for k, h in enumerate(response["layers"])]
    assert [c[0]["index"] for c in replay] == [0, 1] and all(c[0]["resend"] for c in replay)
    assert response["ok"] and response["run_id"] == w.run_id and len(bufs) == 4
    pushed = [c for c in wc.customs(w) if c[0].get("type") == "layer"]
    for (head, (b_scores, b_thumbs)), (orig, (o_scores, o_thumbs)) in zip(replay, pushed):
        assert {**head, "resend": False} == orig and (b_scores, b_thumbs) == (o_scores, o_thumbs)
    eng.release.set()
    w.wait(10)


def test_explain_rejects_managed_kwargs(monkeypatch):
    w = Explorer(model=object(), tokenizer=object())
    with pytest.raises(TypeError):
        w.explain("x", cancel=threading.Event())


# ----------------------------------------------------------------------------------------------------- escaping
def test_python_never_builds_html_from_tokens(monkeypatch):
    a = fake_attr()
    w = Explorer.from_attribution(a)
    state = w.get_state()
    hostile = [t for t in a.tokens if "<" in t or "&" in t]

    def strings(v, path=()):
        if isinstance(v, str):
            yield path, v
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from strings(x, path + (k,))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                yield from strings(x, path + (i,))

    for path, s in strings({k: v for k, v in state.items() if k not in ("_esm", "_css")}):
        if path[0] == "tokens":
            assert s in a.tokens  # raw token strings, verbatim, as data
            continue
        assert not any(t in s for t in hostile), path
        assert "<span" not in s and "<div" not in s, path


def test_widget_python_sources_contain_no_html_templates():
    import attattr_widgets.widgets as pkg

    root = os.path.dirname(pkg.__file__)
    for name in os.listdir(root):
        if name.endswith(".py") and name != "_base.py":  # _base holds the constant fallback module only
            src = open(os.path.join(root, name), encoding="utf-8").read()
            assert "innerHTML" not in src and "<span" not in src and "<div" not in src, name


# ---------------------------------------------------------------------------------------------- missing bundle
def test_missing_bundle_fallback_imports_and_explains(tmp_path):
    code = (
        "from attattr_widgets.widgets import Explorer, TreeView, bundle_built\n"
        "w = Explorer()\n"
        "assert not bundle_built('explorer.js')\n"
        "assert isinstance(w._esm, str) and 'npm ci && npm run build' in w._esm, w._esm[:80]\n"
        "assert 'innerHTML' not in w._esm\n"
        "print('ok')\n"
    )
    env = {**os.environ, "ATTATTR_WIDGETS_STATIC": str(tmp_path / "nothing")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "npm ci && npm run build" in BUNDLE_MISSING_MESSAGE


def test_from_saved_attribution_file(tmp_path, attr):
    from attattr_widgets.engine.results import Attribution

    path = attr.save(tmp_path / "a.npz")
    w = Explorer.from_attribution(Attribution.load(path), normalize="layer")
    state, bufs = wc.open_state(w)
    assert state["state"] == "done" and state["normalize"] == "layer" and state["tokens"] == attr.tokens
    np.testing.assert_allclose(wc.decode(state["head_scores"], bufs[("head_scores", "view")]), attr.head_scores())
    tv = w.tree_view(0.3)
    assert tv.linked and tv.state == "done"


def _ts_interface_keys(name: str) -> set[str]:
    """Field names of a TypeScript interface in js/ (its own lines only: ``key?: type;``)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "js"
    for p in root.rglob("*.ts"):
        m = re.search(r"export interface " + name + r" \{\n(.*?)\n\}", p.read_text(), re.S)
        if m:
            return set(re.findall(r"^\s+([a-z_]+)\??:", m.group(1), re.M))
    raise AssertionError(f"no interface {name} in js/")


def test_layer_messages_and_meta_carry_only_what_the_browser_declares(model, tokenizer):
    """Kernel ↔ browser: every key of a streamed ``layer`` message is a field of ``LayerMessage``
    (js/explorer/stream.ts) and every key of the finished ``meta`` a field of ``ExplorerMeta``
    (js/shared/protocol.ts) — a field the kernel adds without telling the browser fails here."""
    w = Explorer(model, tokenizer)
    w.explain(TEXT, steps=2)
    w.wait(60)
    msg_keys = set().union(*(c[0].keys() for c in wc.customs(w) if c[0]["type"] == "layer"))
    assert msg_keys <= _ts_interface_keys("LayerMessage"), msg_keys - _ts_interface_keys("LayerMessage")
    assert set(w.meta) <= _ts_interface_keys("ExplorerMeta"), set(w.meta) - _ts_interface_keys("ExplorerMeta")


def test_an_encoder_decoder_site_as_attribution_shows_as_a_square_result():
    from conftest import make_seq2seq, make_seq2seq_tokenizer

    model, tok = make_seq2seq("marian"), make_seq2seq_tokenizer()
    res = attribute(model, tok, "the cat sat on a mat", target="die katze sitzt", steps=2)
    ex = Explorer.from_attribution(res.as_attribution("decoder"))
    assert ex.tokens == res.decoder_tokens and ex.state == "done" and ex.meta["target_kind"] == "answer"
    assert ex.site == "" and ex.col_tokens == []  # one square site: no switch (the whole result: test_..._seq2seq)
