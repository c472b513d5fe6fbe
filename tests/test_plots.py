"""Bokeh figures: structure, tooltips, duck-typed inputs (no browser)."""
from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import numpy as np
import pytest

bokeh = pytest.importorskip("bokeh")
from bokeh.models import HoverTool, SaveTool

from attattr_widgets import plots


@dataclass
class FakeCurve:                 # duck type of engine.analysis.pruning.PruningCurve
    method: str
    fractions: np.ndarray
    accuracy: np.ndarray
    pruned: list = field(default_factory=list)


def _curves():
    L, H = 2, 3
    fr = np.linspace(0, 1, 4)
    masks = []
    for k in range(4):
        m = np.zeros((L, H), bool)
        m.flat[: round(fr[k] * L * H)] = True
        masks.append(m)
    return [
        FakeCurve("attattr", fr, np.array([0.9, 0.85, 0.7, 0.5]), masks),
        FakeCurve("taylor", fr, np.array([0.9, 0.8, 0.6, 0.5]), [[(0, 0)] * i for i in range(4)]),
        {"method": "<b>random</b>", "fractions": fr, "accuracy": [0.9, 0.6, 0.55, 0.5]},
    ]


def _sources(p):
    return [r.data_source for r in p.renderers if hasattr(r, "data_source")]


def test_pruning_plot_one_line_per_method_with_tools():
    p = plots.pruning_plot(_curves())
    lines = [r for r in p.renderers if type(r.glyph).__name__ == "Line"]
    assert len(lines) == 3
    assert p.legend[0].click_policy == "hide"
    assert [it.label["value"] for it in p.legend[0].items] == ["attattr", "taylor", "<b>random</b>"]
    assert any(isinstance(t, SaveTool) for t in p.tools)
    hover = [t for t in p.tools if isinstance(t, HoverTool)]
    assert hover and any(name == "accuracy" for name, _ in hover[0].tooltips)
    src = lines[0].data_source.data
    assert list(src["n_pruned"]) == ["0", "2", "4", "6"]
    assert src["heads"][1] == "L0H0, L0H1"
    # list-of-pairs form and missing pruned
    assert list(lines[1].data_source.data["n_pruned"]) == ["0", "1", "2", "3"]
    assert list(lines[2].data_source.data["n_pruned"]) == ["?"] * 4
    # method names stay raw in tooltip data: Bokeh draws (label, "@field") tooltips as text, so escaping them
    # here showed "&lt;b&gt;" in the browser (tests/e2e/test_hostile_exports.py checks the tooltip text)
    assert lines[2].data_source.data["method"][0] == "<b>random</b>"


def test_pruning_plot_accepts_mapping_and_single_curve():
    c = _curves()
    p = plots.pruning_plot({"a": {"fractions": [0, 1], "accuracy": [1, 0]}, "b": c[0]})
    assert [it.label["value"] for it in p.legend[0].items] == ["a", "attattr"]
    p1 = plots.pruning_plot(c[1], baseline=0.9, percent=True)
    line = next(r for r in p1.renderers if type(r.glyph).__name__ == "Line")
    assert line.data_source.data["y"][0] == pytest.approx(90.0)


def test_pruning_plot_rejects_bad_input():
    with pytest.raises(TypeError, match="pruning curve"):
        plots.pruning_plot([{"method": "x"}])
    with pytest.raises(ValueError, match="must match"):
        plots.pruning_plot({"method": "x", "fractions": [0, 1], "accuracy": [1]})
    with pytest.raises(ValueError, match="no curves"):
        plots.pruning_plot([])


def test_correlation_plot_r_in_title_and_hover():
    rng = np.random.default_rng(0)
    a = rng.random((3, 4))
    b = 2 * a + 0.01 * rng.random((3, 4))
    p = plots.correlation_plot(a, b, ("MNLI", "RTE"))
    r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert f"r = {r:.3f}" in p.title.text and "MNLI" in p.title.text
    assert p.tags[0]["pearson_r"] == pytest.approx(r)
    sc = next(r_ for r_ in p.renderers if getattr(r_, "name", None) == "heads")
    d = sc.data_source.data
    assert list(d["layer"][:5]) == [0, 0, 0, 0, 1] and list(d["head"][:5]) == [0, 1, 2, 3, 0]
    tips = dict(next(t for t in p.tools if isinstance(t, HoverTool)).tooltips)
    assert "layer @layer" in tips["head"]
    assert p.xaxis[0].axis_label == "importance (MNLI)"


def test_correlation_plot_flat_and_errors():
    p = plots.correlation_plot(np.arange(6.0), np.arange(6.0)[::-1], ("a", "b"), num_heads=3)
    assert "r = -1.000" in p.title.text
    with pytest.raises(ValueError, match="shapes differ"):
        plots.correlation_plot(np.zeros((2, 3)), np.zeros((3, 2)))
    p = plots.correlation_plot(np.ones((2, 2)), np.arange(4.0).reshape(2, 2))
    assert "n/a" in p.title.text


def test_pearson_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x, y = rng.random(50), rng.random(50)
    assert plots.pearson_r(x, y) == pytest.approx(scipy_stats.pearsonr(x, y)[0])


@pytest.mark.parametrize("form", ["nested", "tuple", "records", "object"])
def test_effectiveness_plot_styles(form):
    acc = {("attribution", "smallest-first"): [0.9, 0.88, 0.8], ("attribution", "largest-first"): [0.9, 0.4, 0.3],
           ("attention", "ascending"): [0.9, 0.85, 0.7], ("attention", "descending"): [0.9, 0.7, 0.5]}
    heads = [0, 2, 4]
    if form == "nested":
        res = {}
        for (c, o), v in acc.items():
            res.setdefault(c, {})[o] = v
        p = plots.effectiveness_plot(res, heads=heads)
    elif form == "tuple":
        p = plots.effectiveness_plot(acc, heads)
    elif form == "records":
        p = plots.effectiveness_plot([{"criterion": c, "order": o, "accuracy": v, "heads": heads}
                                      for (c, o), v in acc.items()])
    else:
        @dataclass
        class Eff:
            heads: list
            accuracy: dict
        p = plots.effectiveness_plot(Eff(heads, acc))
    lines = {r.name: r for r in p.renderers if type(r.glyph).__name__ == "Line"}
    assert set(lines) == {"attribution:smallest-first", "attribution:largest-first",
                          "attention:smallest-first", "attention:largest-first"}
    assert lines["attribution:smallest-first"].glyph.line_color == plots.ATTRIBUTION_COLOR
    assert lines["attention:largest-first"].glyph.line_color == plots.ATTENTION_COLOR
    assert lines["attribution:smallest-first"].glyph.line_dash == []          # solid
    assert lines["attribution:largest-first"].glyph.line_dash == [6]          # "dashed"
    assert list(lines["attention:smallest-first"].data_source.data["x"]) == heads
    assert p.legend[0].click_policy == "hide"


def test_effectiveness_bad_order():
    with pytest.raises(ValueError, match="pruning order"):
        plots.effectiveness_plot({"attribution": {"sideways": [1, 2]}})


def test_save_html_is_self_contained(tmp_path):
    p = plots.pruning_plot(_curves())
    out = plots.save_html(p, tmp_path / "sub" / "p.html", title="t")
    text = pathlib.Path(out).read_text(encoding="utf-8")
    assert "<script src=" not in text.replace("<script src=\"data:", "")
    assert "cdn.bokeh.org" not in text
    assert "Bokeh" in text and len(text) > 500_000


def test_palette_matches_bokeh():
    from bokeh.palettes import Category10
    assert plots._PALETTE == list(Category10[10])


def test_engine_result_types():
    """The engine's own dataclasses (PruningCurve, Effectiveness, Correlation) plot directly."""
    pr = pytest.importorskip("attattr_widgets.engine.analysis.pruning")
    fr = np.linspace(0, 1, 3)
    pruned = np.zeros((3, 2, 2), bool)
    pruned[1, 0, :] = True
    pruned[2] = True
    curves = [pr.PruningCurve("attattr", fr, np.array([0.9, 0.8, 0.5]), pruned, order="least-first"),
              pr.PruningCurve("attattr", fr, np.array([0.9, 0.6, 0.5]), pruned, order="largest-first"),
              pr.PruningCurve("taylor", fr, np.array([0.9, 0.7, 0.5]), pruned)]
    p = plots.pruning_plot(curves)
    lines = [r for r in p.renderers if type(r.glyph).__name__ == "Line"]
    labels = [it.label["value"] for it in p.legend[0].items]
    assert labels == ["attattr (least-first)", "attattr (largest-first)", "taylor"]
    assert lines[0].glyph.line_color == lines[1].glyph.line_color != lines[2].glyph.line_color
    assert lines[1].glyph.line_dash == [6] and lines[0].glyph.line_dash == []
    assert list(lines[0].data_source.data["n_pruned"]) == ["0", "2", "4"]

    eff = pr.Effectiveness(heads=np.arange(3), num_examples=4, full_accuracy=0.9, accuracy={
        c: {o: np.array([0.9, 0.7, 0.5]) for o in ("smallest-first", "largest-first")}
        for c in ("attribution", "attention")})
    pe = plots.effectiveness_plot(eff)
    assert len([r for r in pe.renderers if type(r.glyph).__name__ == "Line"]) == 4
    assert any(type(c).__name__ == "Span" and c.location == 0.9 for c in pe.center)

    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3)), rng.random((2, 3))
    corr = pr.head_correlation(a, b, labels=("SST-2", "MNLI"))
    pc = plots.correlation_plot(corr)
    assert pc.tags[0]["pearson_r"] == pytest.approx(corr.r)
    assert "SST-2" in pc.title.text and pc.xaxis[0].axis_label == "importance (SST-2)"


def test_show_uses_bokehmodel_or_falls_back(monkeypatch):
    import sys

    import bokeh.io

    fig = plots.pruning_plot({"method": "m", "fractions": [0, 1], "accuracy": [1, 0]})
    monkeypatch.setattr(plots, "_NOTEBOOK_READY", True)           # skip output_notebook's JS publish
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    import importlib.util

    if importlib.util.find_spec("jupyter_bokeh") is not None:
        assert plots.show(fig) is None            # nothing returned: a cell ending in show() displays once
        assert len(shown) == 1 and type(shown[0]).__name__ == "BokehModel"
        assert type(plots.bokeh_widget(fig)).__name__ == "BokehModel" and len(shown) == 1   # not displayed
    monkeypatch.setitem(sys.modules, "jupyter_bokeh", None)          # not installed -> bokeh.io.show
    calls = []
    monkeypatch.setattr(bokeh.io, "show", lambda obj: calls.append(obj))
    assert plots.show(fig) is None and calls == [fig]
    assert plots.bokeh_widget(fig) is None


def test_alignment_plot_draws_the_cross_site_attention_and_attribution_side_by_side(tmp_path):
    from result_samples import make_seq2seq_attr

    res = make_seq2seq_attr()
    res.source_tokens = ["<b>x</b>", "</s>"]  # hostile strings stay text in the tooltips
    lay = plots.alignment_plot(res)
    attn_fig, attr_fig = lay.children
    assert attn_fig.tags[0]["what"] == "attention" and attr_fig.tags[0]["what"] == "attribution"
    np.testing.assert_allclose(attr_fig.tags[0]["values"], res.cross_scores.sum((0, 1)), rtol=1e-6)
    np.testing.assert_allclose(attn_fig.tags[0]["values"], res.cross_attention.sum((0, 1)), rtol=1e-6)
    assert attn_fig.xaxis[0].major_label_overrides == {0: "<b>x</b>", 1: "</s>"}
    assert attn_fig.yaxis[0].major_label_overrides == {0: "x", 1: "y", 2: "</s>"}
    one = plots.alignment_plot(res, layer=1, head=2).children[1].tags[0]["values"]
    np.testing.assert_allclose(one, res.cross_scores[1, 2], rtol=1e-6)
    html = plots.to_html_string(lay)
    assert "<b>x</b>" not in html  # the token travels escaped inside Bokeh's JSON, never as markup
    with pytest.raises(ValueError, match="was not attributed"):
        plots.alignment_plot(res, layer=5)
    with pytest.raises(TypeError, match="encoder-decoder"):
        plots.alignment_plot(object())
