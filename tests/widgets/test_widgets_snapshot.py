"""The static fallback every view puts in its mimebundle (widgets/snapshot.py, widgets/_base.py): script-free,
escaped, drawn with the live views' colour scales, refreshed in displayed outputs when a run ends, and the
metadata Colab and VS Code read."""
from __future__ import annotations

import html.parser
import json
import subprocess
import sys
import types

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_model
from hostile import expected_text, hostile_strings

from attattr_widgets.engine.attribution import attribute
from attattr_widgets.engine.results import Attribution
from attattr_widgets.export import WIDGET_VIEW_MIME
from attattr_widgets.widgets import Explorer, TreeView
from attattr_widgets import snapshot as snap
from attattr_widgets.widgets.heads import HeadsView
from attattr_widgets.widgets.triggers import TriggersView

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]

# what a snapshot may contain: no script, no event handler, no link, no external resource
ALLOWED_TAGS = {"div", "span", "b", "code", "svg", "rect", "text", "image", "title", "line", "polyline", "circle",
                "table", "thead", "tbody", "tr", "th", "td"}


class Checker(html.parser.HTMLParser):
    """Collects text and fails on any tag or attribute a static snapshot must not have."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.titles: list[str] = []
        self._in_title = 0

    def handle_starttag(self, tag, attrs):
        assert tag in ALLOWED_TAGS, f"unexpected element <{tag}>"
        for k, v in attrs:
            assert not k.startswith("on"), f"event handler {k}={v!r} on <{tag}>"
            if k in ("href", "src", "xlink:href"):
                assert v.startswith("data:image/png;base64,"), f"{k}={v[:60]!r} on <{tag}>"
            assert "javascript:" not in (v or "").lower()
        if tag == "title":
            self._in_title += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title -= 1

    def handle_data(self, data):
        (self.titles if self._in_title else self.text).append(data)


def check(html_text: str) -> Checker:
    c = Checker()
    c.feed(html_text)
    c.close()
    return c


@pytest.fixture(autouse=True)
def _comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def bert():
    from conftest import make_tokenizer

    return make_model("bert"), make_tokenizer()


@pytest.fixture(scope="module")
def attr(bert):
    model, tok = bert
    return attribute(model, tok, "the movie was great but the plot is bad", steps=2)


def hostile_attr(tokens: list[str], label: str = "<b>pos</b>", name: str = "</div><script>x</script>") -> Attribution:
    rng = np.random.default_rng(0)
    L, H, n = 2, 3, len(tokens)
    scores = (rng.random((L, H, n, n)) - 0.4).astype(np.float32)
    attn = rng.random((L, H, n, n)).astype(np.float32)
    attn /= attn.sum(-1, keepdims=True)
    return Attribution(scores=scores, attention=attn, tokens=tokens, token_type_ids=np.zeros(n, dtype=np.int64),
                       target=1, target_label=label, prob=0.75, layer_zero_probs=np.full(L, 0.5),
                       completeness=np.zeros(L), layers=[0, 1], num_layers=L, rule="gauss-legendre", steps=4,
                       text=" ".join(tokens[:3]), model_name=name)


# ---------------------------------------------------------------------------------------------------- bundle
def test_every_view_puts_a_static_html_beside_the_widget_view(attr, bert):
    model, tok = bert
    ex = Explorer.from_attribution(attr)
    views = [ex, TreeView(attr, threshold=0.1),
             HeadsView(model, tok, [{"text": "a good movie", "label": 1}, {"text": "bad plot", "label": 0}]),
             TriggersView(model, tok, [{"text": "a good movie", "label": 1}], [{"text": "bad plot", "label": 0}])]
    for w in views:
        data, metadata = w._repr_mimebundle_()
        assert data[WIDGET_VIEW_MIME]["model_id"] == w.model_id
        assert data["text/plain"]
        assert isinstance(metadata, dict)
        c = check(data["text/html"])
        assert "Static snapshot" in "".join(c.text), type(w).__name__
        assert "<script" not in data["text/html"].lower()


def test_explorer_snapshot_shows_header_grid_maps_and_sentence(attr):
    ex = Explorer.from_attribution(attr)
    out = snap.explorer_html(ex)
    c = check(out)
    text = "".join(c.text)
    assert f"p = {snap.fmt(attr.prob)}" in text
    assert attr.target_label in text or str(attr.target) in text
    li, h = ex.selected
    assert f"Attention · layer {attr.layers[li]} head {h}" in text
    assert f"Attribution · layer {attr.layers[li]} head {h}" in text
    L, H = np.asarray(ex.head_scores).shape
    assert sum(t.startswith("layer ") for t in c.titles) >= L * H  # one grid cell per head
    for t in attr.tokens:
        assert snap.display_token(t) in text
    # the sentence chips carry the query row of the selected head's attribution, coloured by the shared scale
    row = np.asarray(attr.scores)[li, h, ex.query]
    m = np.abs(row).max()
    for i in (int(np.argmax(row)), int(np.argmin(row))):
        assert snap._css(snap.diverging(row[i] / m)) in out


def test_selection_and_query_change_the_snapshot(attr):
    ex = Explorer.from_attribution(attr)
    before = snap.explorer_html(ex)
    ex.select(0, 1, query=2)
    after = snap.explorer_html(ex)
    assert "layer 0 head 1" in after and before != after
    assert f"(#{2})" in after


def test_hostile_strings_are_text_everywhere():
    strings = hostile_strings(n_random=10, long=300)
    ex = Explorer.from_attribution(hostile_attr(strings[:40], label=strings[5], name=strings[6]))
    out = snap.explorer_html(ex)
    c = check(out)  # no element or attribute from a token survives as markup
    text = "".join(c.text)
    for t in strings[:40]:
        assert snap.display_token(expected_text(t)) in text or snap._short(expected_text(t)) in text
    tree = TreeView(hostile_attr(strings[40:52]), threshold=0.0)
    check(snap.tree_html(tree))


def test_tree_snapshot_has_every_node_and_edge(attr):
    tv = TreeView(attr, threshold=0.1)
    out = snap.tree_html(tv)
    c = check(out)
    nodes, edges = tv.tree["nodes"], tv.tree["edges"]
    assert out.count("<rect") == len(nodes)
    assert out.count("<line") == len(edges)
    assert f"{len(nodes)} nodes · {len(edges)} edges" in "".join(c.text)


def test_heads_and_triggers_snapshots_show_their_results(bert):
    model, tok = bert
    hv = HeadsView(model, tok, [{"text": "a good movie", "label": 1}])
    hv.importance = {"attattr": np.arange(12, dtype=np.float32).reshape(3, 4)}
    hv.curves = [{"method": "attattr", "fractions": [0.0, 0.5, 1.0], "accuracy": np.array([0.9, 0.7, 0.5])}]
    hv.effectiveness = {"heads": [0, 1, 2], "accuracy": {"attribution": {"smallest-first": [0.9, 0.9, 0.8],
                                                                          "largest-first": [0.9, 0.6, None]}},
                        "num_examples": 4, "full_accuracy": 0.9, "target": "gold"}
    out = snap.heads_html(hv)
    text = "".join(check(out).text)
    assert "Importance · attattr" in text and "Accuracy vs. fraction of heads pruned" in text
    assert "attribution, largest-first" in text and "heads pruned in every layer" in text
    assert out.count("<circle") == 3 + 3 + 2  # pruning points, effectiveness points (None not drawn)
    tv = TriggersView(model, tok, [{"text": "a good movie", "label": 1}], [{"text": "bad plot", "label": 0}])
    tv.patterns = [{"id": 0, "tokens": ["<b>", "movie"], "relative": [1.0, -0.5], "score": 0.8, "layer": 1,
                    "head": 2, "pred_label": "</td>pos", "evaluated": True, "overall_before": 0.9,
                    "overall_after": 0.4, "flip_rate": 0.5}]
    text = "".join(check(snap.triggers_html(tv)).text)
    for s in ("<b>", "</td>pos", "0.9 → 0.4", "L1 H2"):
        assert s in text


def test_png_encoder_round_trips():
    rgb = (np.arange(4 * 5 * 3) * 7 % 256).astype(np.uint8).reshape(4, 5, 3)
    png = snap.png_bytes(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import zlib

    idat = png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(4, 1 + 5 * 3)
    assert (raw[:, 0] == 0).all() and (raw[:, 1:].reshape(4, 5, 3) == rgb).all()


# ------------------------------------------------------------------------------------------- shared colours
def test_colours_equal_the_live_views_scales():
    """color.ts (what the live views paint) and snapshot.py evaluate the same scales from palette.json."""
    ts = np.linspace(-1, 1, 41)
    script = (
        "import { diverging, sequential, LIGHT } from './js/shared/color.ts';\n"
        f"const ts = {json.dumps(ts.tolist())};\n"
        "console.log(JSON.stringify({d: ts.map((t) => diverging(t, LIGHT)),"
        " s: ts.map((t) => sequential((t + 1) / 2, LIGHT))}));\n")
    esbuild = REPO / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.skip("node_modules not installed (npm ci)")
    bundled = subprocess.run([str(esbuild), "--bundle", "--format=esm", "--platform=node", "--log-level=error"],
                             input=script, capture_output=True, text=True, cwd=REPO, check=True).stdout
    out = subprocess.run(["node", "--input-type=module"], input=bundled, capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    got = json.loads(out)
    np.testing.assert_allclose(np.asarray(got["d"]), snap.diverging(ts), atol=1e-9)
    np.testing.assert_allclose(np.asarray(got["s"]), snap.sequential((ts + 1) / 2), atol=1e-9)


# --------------------------------------------------------------------------------------- display handles
class FakeHandle:
    def __init__(self):
        self.updates: list[tuple[dict, dict]] = []

    def update(self, data, metadata=None, raw=False):
        assert raw
        self.updates.append((data, metadata))


@pytest.fixture
def displays(monkeypatch):
    """IPython.display.display recorded: (data, metadata, display_id) per call, a FakeHandle returned."""
    import IPython.display

    calls: list[tuple[dict, dict, FakeHandle]] = []

    def fake_display(data, metadata=None, raw=False, display_id=None):
        assert raw
        h = FakeHandle()
        calls.append((data, metadata, h))
        return h if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    return calls


def test_view_displayed_while_running_gets_its_snapshot_refreshed_when_done(bert, displays):
    model, tok = bert
    ex = Explorer(model, tok)
    ex.explain("the movie was great", steps=2)
    ex._ipython_display_()
    ex.wait()
    data, _, handle = displays[0]
    assert data[WIDGET_VIEW_MIME]["model_id"] == ex.model_id
    assert len(handle.updates) == 1
    new, _ = handle.updates[0]
    assert new[WIDGET_VIEW_MIME]["model_id"] == ex.model_id
    assert "Running" not in new["text/html"] and "p = " in new["text/html"]
    assert new["text/html"] == ex._repr_mimebundle_()[0]["text/html"]
    assert ex._displays == []


def test_finished_view_is_displayed_without_a_pending_refresh(attr, displays):
    ex = Explorer.from_attribution(attr)
    ex._ipython_display_()
    assert ex._displays == []  # nothing to refresh later
    ex.select(0, 1)
    assert displays[-1][2].updates == []


# ------------------------------------------------------------------------------------------ Colab, VS Code
def test_colab_custom_widget_manager_metadata_reaches_the_display(attr, displays, monkeypatch):
    """anywidget's Colab support: it enables Colab's custom widget manager and puts its url in the output's
    metadata; our bundle (with the static html added) must keep that metadata."""
    enabled = []
    colab_output = types.ModuleType("google.colab.output")
    colab_output.enable_custom_widget_manager = lambda: enabled.append(True)
    colab_output._widgets = types.SimpleNamespace(_installed_url="https://colab.example/manager.js")
    monkeypatch.setitem(sys.modules, "google.colab.output", colab_output)
    import anywidget._util as au

    au.enable_custom_widget_manager_once.cache_clear()
    ex = Explorer.from_attribution(attr)
    ex._ipython_display_()
    data, metadata, _ = displays[-1]
    assert enabled == [True]
    assert metadata[WIDGET_VIEW_MIME]["colab"]["custom_widget_manager"]["url"] == "https://colab.example/manager.js"
    assert "text/html" in data


def test_vscode_local_widget_script_is_in_the_environment():
    """VS Code with a local kernel loads a widget's front end from <prefix>/share/jupyter/nbextensions when it
    cannot reach a CDN; anywidget's wheel installs its AMD module there (our bundles travel in the widget state)."""
    import anywidget

    p = __import__("pathlib").Path(sys.prefix) / "share" / "jupyter" / "nbextensions" / "anywidget" / "index.js"
    if not p.exists():
        pytest.skip(f"anywidget's nbextension is not installed in {sys.prefix}")
    src = p.read_text(encoding="utf-8")
    assert 'define(["@jupyter-widgets/base"]' in src  # the AMD module VS Code's widget loader requires
    assert anywidget.__version__ in src


def test_long_maps_are_pooled_keeping_the_strongest_link():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, (600, 600))
    a[301, 17] = -5.0
    pooled, k = snap.pool_max_abs(a)
    assert k == 3 and pooled.shape == (200, 200)
    assert pooled[100, 5] == -5.0 and pooled.min() == -5.0
    np.testing.assert_array_equal(snap.pool_max_abs(a[:40, :40])[0], a[:40, :40])
    out = snap.heatmap_svg(a, "diverging", [f"t{i}" for i in range(600)], "Attribution")
    check(out)
    assert "3×3 blocks" in out and "t17" not in out  # no axis labels for 600 tokens
    assert len(out) < 400_000


def test_explorer_snapshot_while_running_before_the_first_layer(bert):
    model, tok = bert
    ex = Explorer(model, tok)
    ex.state, ex.layers_total = "running", 3
    text = "".join(check(snap.explorer_html(ex)).text)
    assert "Running (0/3)" in text and "Nothing explained yet" not in text
