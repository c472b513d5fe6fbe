"""Hostile strings through every export, checked as text (no browser): the JSON embedded in exported pages is
valid for every string and round-trips; saved notebook widget state too. The same pages are opened in Chromium
by tests/e2e/test_hostile_exports.py."""
from __future__ import annotations

import html
import html.parser
import json

import nbformat
import numpy as np
import pytest

from attattr_widgets import export, plots
from attattr_widgets.engine.results import Attribution, PruningCurve
from attattr_widgets.widgets import Explorer, TreeView

from hostile import BASE, expected_text, hostile_strings

STRINGS = hostile_strings()


def hostile_attribution(tokens=None, *, L: int = 2, H: int = 2, seed: int = 0, nan_layer: int | None = None):
    """An Attribution whose every string field is hostile (tokens, text, pair, model name, labels)."""
    tokens = list(BASE if tokens is None else tokens)
    n = len(tokens)
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(L, H, n, n)).astype(np.float32)
    attn = rng.random(size=(L, H, n, n)).astype(np.float32)
    if nan_layer is not None:
        scores[nan_layer, 0, 1, 1] = np.nan
    return Attribution(
        scores=scores, attention=attn, tokens=tokens, token_type_ids=np.zeros(n, np.int64), target=1,
        target_label="</script><!--label", prob=0.75, layer_zero_probs=np.full(L, 0.25), completeness=np.zeros(L),
        layers=list(range(L)), num_layers=L, rule="gauss-legendre", steps=4,
        text="<!-- text </script> \u2028 \ud800 " + STRINGS[-1][:200], text_pair="pair \"'\\ <b>x</b>",
        model_name="model<!--name\u2029", label_names=["neg</script>", "</script><!--label", "a&b"],
    )


def hostile_seq2seq():
    """A real Seq2SeqAttribution whose tokens, texts and model name are hostile strings."""
    import dataclasses

    from conftest import make_seq2seq, make_seq2seq_tokenizer

    from attattr_widgets.engine.attribution.api import attribute

    strings = STRINGS
    res = attribute(make_seq2seq("marian"), make_seq2seq_tokenizer(), "the cat sat on a mat", target="die katze sitzt",
                    steps=2)
    n_src, n_tgt = len(res.source_tokens), len(res.decoder_tokens)
    src = [strings[i % len(strings)] for i in range(n_src)]
    tgt = [strings[(i + 7) % len(strings)] for i in range(n_tgt)]
    return dataclasses.replace(res, source_tokens=src, decoder_tokens=tgt, label_tokens=tgt[1:] + ["</script>"],
                               text="<!-- source </script> \u2028", answer="</script><b>answer</b>",
                               model_name="model<!--name\u2029"), src, tgt


def hostile_curves():
    fr = np.linspace(0, 1, 5)
    names = ["<!--AttAttr", "</script>Taylor", "a\"b\\c\u2028", "\ud800random", "🙂 RTL \u202eabc"]
    return [PruningCurve(method=m, fractions=fr, accuracy=0.9 - 0.1 * i * fr, pruned=np.zeros((5, 2, 2), bool))
            for i, m in enumerate(names)], names


class _Scripts(html.parser.HTMLParser):
    """Collects every <script>'s type and text, and the page title."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[str, str]] = []
        self._in: str | None = None
        self._buf: list[str] = []
        self.title = ""
        self._title = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in, self._buf = dict(attrs).get("type", ""), []
        elif tag == "title":
            self._title = True

    def handle_endtag(self, tag):
        if tag == "script" and self._in is not None:
            self.scripts.append((self._in, "".join(self._buf)))
            self._in = None
        elif tag == "title":
            self._title = False

    def handle_data(self, data):
        if self._in is not None:
            self._buf.append(data)
        elif self._title:
            self.title += data


def page_scripts(text: str) -> _Scripts:
    p = _Scripts()
    p.feed(text)
    p.close()
    return p


def widget_states(text: str) -> dict:
    """model_id -> state of the widget-state script (must be valid JSON)."""
    scripts = [s for t, s in page_scripts(text).scripts if t == export.WIDGET_STATE_MIME]
    assert len(scripts) == 1, "one widget-state script"
    data = json.loads(scripts[0])  # raises on "Bad escaped character" etc.
    return {k: v["state"] for k, v in data["state"].items()}


@pytest.mark.parametrize("s", STRINGS, ids=lambda s: repr(s)[:30])
def test_json_for_script_is_valid_json_and_cannot_close_the_script(s):
    txt = export.json_for_script({"s": s, "list": [s, s]})
    assert json.loads(txt) == {"s": s, "list": [s, s]}
    low = txt.lower()
    assert "</script" not in low and "<!--" not in low and "<script" not in low
    assert "\u2028" not in txt and "\u2029" not in txt and "<" not in txt and ">" not in txt


def test_explorer_and_tree_exports_round_trip_every_string(tmp_path):
    attr = hostile_attribution(STRINGS)
    ex = Explorer.from_attribution(attr)
    tv = TreeView(attr, threshold=0.3, title="tree <!-- title </script>")
    title, heading = "<!--title</script>\u2028", "</script><h1>heading"
    page = export.to_html([ex, tv], tmp_path / "e.html", title=title, heading=heading, description="<!-- d \ud800")
    text = page.read_text(encoding="utf-8")
    assert page_scripts(text).title == expected_text(title)
    states = widget_states(text)
    ex_state = states[ex.model_id]
    assert ex_state["tokens"] == [expected_text(t) for t in STRINGS]
    assert ex_state["meta"]["model_name"] == expected_text(attr.model_name)
    assert ex_state["meta"]["text"] == expected_text(attr.text)
    assert ex_state["meta"]["label_names"] == attr.label_names
    tree_state = states[tv.model_id]
    assert tree_state["tree"]["tokens"] == [expected_text(t) for t in STRINGS]
    assert tree_state["title"] == tv.title


def test_explained_answer_exports_round_trip_every_string(tmp_path):
    """An explained answer made of hostile tokens: the exported state round-trips (tokens, answer text, where the
    answer starts) and the static snapshot shows every answer token as text, with the answer marked."""
    from attattr_widgets import snapshot

    attr = hostile_attribution(STRINGS)
    start = len(STRINGS) // 2
    attr.target_kind, attr.answer_start, attr.score = "continuation", start, "logprob"
    attr.target_label = "".join(STRINGS[start:start + 4])
    ex = Explorer.from_attribution(attr)
    text = export.to_html(ex, tmp_path / "answer.html").read_text(encoding="utf-8")
    state = widget_states(text)[ex.model_id]
    assert state["tokens"] == [expected_text(t) for t in STRINGS]
    assert state["meta"]["answer_start"] == start and state["meta"]["answer"] == expected_text(attr.target_label)
    snap = snapshot.explorer_html(ex)
    assert "<script" not in snap.lower() and "<img" not in snap and "<svg onload" not in snap
    for t in STRINGS[start:]:
        assert snapshot.esc(snapshot.display_token(t)) in snap
    assert snap.count("box-shadow:inset 0 -2px 0") == len(STRINGS) - start  # every answer chip underlined


def test_plots_export_round_trips_every_string(tmp_path):
    curves, names = hostile_curves()
    fig = plots.pruning_plot(curves, title="<!--title</script>")
    plots.save_html(fig, tmp_path / "p.html")
    text = (tmp_path / "p.html").read_text(encoding="utf-8")
    docs = [json.loads(s) for t, s in page_scripts(text).scripts if t == "application/json"]
    assert docs, "Bokeh embeds its document as JSON (valid for every string)"
    found: set[str] = set()

    def walk(o):  # BokehJS unescapes the HTML entities Bokeh puts into its JSON strings
        if isinstance(o, str):
            found.add(expected_text(html.unescape(o)))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(docs)
    for name in names:
        assert "curve:" + expected_text(name) in found and expected_text(name) in found


def test_demo_page_round_trips_every_string(tmp_path):
    from attattr_widgets.cli import demo_page

    attr = hostile_attribution(STRINGS[:60])
    curves, _ = hostile_curves()
    out = demo_page(attr, curves, np.arange(4.0).reshape(2, 2), tmp_path / "demo.html")
    states = widget_states(out.read_text(encoding="utf-8"))
    assert any(s.get("tokens") == [expected_text(t) for t in STRINGS[:60]] for s in states.values())


def test_demo_page_holds_the_image_explanation(tmp_path):
    """`make demo`'s page with the digits ViT's attribution (here a tiny ViT's): one more Explorer, over patches."""
    import torch
    import transformers as T

    import attattr_widgets as aw
    from attattr_widgets.cli import demo_page

    torch.manual_seed(0)
    vit = T.ViTForImageClassification(T.ViTConfig(image_size=8, patch_size=2, hidden_size=16, num_hidden_layers=1,
                                                  num_attention_heads=2, intermediate_size=16, num_labels=10)).eval()
    processor = T.ViTImageProcessorPil(size={"height": 8, "width": 8})
    image_attr = aw.attribute(vit, processor, np.zeros((8, 8, 3), np.uint8), steps=2)
    curves, _ = hostile_curves()
    out = demo_page(hostile_attribution(STRINGS[:5]), curves, np.arange(4.0).reshape(2, 2), tmp_path / "demo.html",
                    image_attr)
    states = widget_states(out.read_text(encoding="utf-8"))
    patches = ["[CLS]"] + [f"({r},{c})" for r in range(4) for c in range(4)]
    assert any(s.get("tokens") == patches for s in states.values())
    assert "handwritten digit (4 × 4 patches)" in out.read_text(encoding="utf-8")


def test_saved_notebook_widget_state_round_trips(tmp_path):
    """What JupyterLab / nbclient store in a saved notebook: the ipywidgets embed state in the metadata."""
    from ipywidgets.embed import embed_data, escape_script

    attr = hostile_attribution(STRINGS)
    ex = Explorer.from_attribution(attr)
    data = embed_data(views=[ex])
    state = data["manager_state"]
    json.loads(escape_script(json.dumps(state)))  # what ipywidgets.embed writes into <script>
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)  # UTF-8: would fail on an unpaired surrogate
    back = nbformat.read(path, as_version=4).metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert back["state"][ex.model_id]["state"]["tokens"] == [expected_text(t) for t in STRINGS]


def test_nan_results_export_as_valid_json_and_are_flagged(tmp_path):
    attr = hostile_attribution(["[CLS]", "a", "b", "[SEP]"], L=3, nan_layer=1)
    attr.completeness[2] = np.inf
    ex = Explorer.from_attribution(attr)
    assert ex.meta["nonfinite"] == [1, 2]
    assert ex.meta["completeness"][2] is None
    states = widget_states(export.to_html(ex))
    assert states[ex.model_id]["meta"]["nonfinite"] == [1, 2]


def test_live_explorer_flags_a_nonfinite_layer_while_streaming(monkeypatch):
    """A NaN layer streamed by the engine is flagged in meta (the header shows the warning) and the messages and
    state sent over the comm are valid JSON (no NaN, no unpaired surrogate)."""
    import widget_comm as wc

    from attattr_widgets.engine.results import LayerResult
    from attattr_widgets.widgets import explorer as explorer_mod

    wc.install(monkeypatch)
    attr = hostile_attribution(["[CLS]", "x\udfffy", "b", "[SEP]"], L=3, nan_layer=2)

    def fake_attribute(model, tokenizer, text, text_pair=None, *, progress=None, cancel=None, **kw):
        for i in range(3):
            progress(LayerResult(layer=i, index=i, total=3, tokens=attr.tokens, scores=attr.scores[i],
                                 attention=attr.attention[i], zero_prob=0.1, completeness=0.0, target=1, prob=0.7))
        return attr

    monkeypatch.setattr(explorer_mod, "_attribute", fake_attribute)
    w = Explorer(model=object(), tokenizer=object())
    w.explain("the movie")
    w.wait(30)
    assert w.state == "done" and w.meta["nonfinite"] == [2]
    for kind, data, _bufs in w.comm.log:
        json.dumps(data, allow_nan=False).encode("utf-8")  # what jupyter_client's packer needs
    assert w.get_state()["tokens"][1] == "x\ufffdy"


def test_real_engine_nan_run_is_flagged_in_the_live_explorer():
    """A degenerate model (an inf weight: what a bf16 overflow produces) gives NaN maps from the real engine;
    the Explorer ends flagged, its state stays valid JSON."""
    import torch
    from conftest import make_model, make_tokenizer

    model, tok = make_model("bert", layers=2, heads=2), make_tokenizer()
    with torch.no_grad():
        model.bert.encoder.layer[1].attention.self.query.weight[0, 0] = float("inf")
    w = Explorer(model, tok)
    w.explain("the movie was great", steps=2)
    attr = w.wait(120)
    assert w.state == "done" and w.meta["nonfinite"] == [0, 1] and not np.isfinite(attr.scores).all()
    json.dumps({k: v for k, v in w.get_state().items() if k in ("meta", "tokens")}, allow_nan=False)
