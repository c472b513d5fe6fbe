"""Exported HTML (export.to_html, plots.save_html) renders in Chromium with every network request blocked."""
from __future__ import annotations

import anywidget
import numpy as np
import pytest
import traitlets

from attattr_widgets import export, plots

from .e2e_support import (
    assert_not_blank,
    bundle_built,
    canvas_stats,
    hermetic_context,
    local_only,
    tiny_model,
)

pytestmark = pytest.mark.e2e


class Swatch(export.HTMLExportMixin, anywidget.AnyWidget):
    _esm = """export default { render({ model, el }) {
      const c = document.createElement('canvas'); c.width = 120; c.height = 40; c.className = 'swatch';
      const g = c.getContext('2d'); const v = model.get('values');
      v.forEach((x, i) => { g.fillStyle = `hsl(${x * 300},70%,50%)`; g.fillRect(i * 120 / v.length, 0, 120 / v.length, 40); });
      el.appendChild(c); el.dataset.state = 'done'; el.classList.add('swatch-root'); } }"""
    values = traitlets.List([0.0, 0.25, 0.5, 0.75, 1.0]).tag(sync=True)


@pytest.fixture
def offline(browser):
    ctx = hermetic_context(browser, local_only, viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield ctx, page
    ctx.close()


def _move_tree_slider(page, thr: float) -> None:
    """Move the (only) TreeView's threshold slider to ``thr`` as a user would, and wait until it has redrawn."""
    page.evaluate("(v) => { const s = document.querySelector('.attattr-tree .aa-slider'); s.value = String(v);"
                  " s.dispatchEvent(new Event('input')); }", thr)
    page.wait_for_function(f"() => document.querySelector('.attattr-tree').dataset.threshold === '{thr}'")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _network(ctx) -> list[str]:
    return [u for u in ctx.requests if not local_only(u)] + ctx.blocked


def _curves():
    fr = np.linspace(0, 1, 11)
    return [{"method": m, "fractions": fr, "accuracy": 0.5 + 0.4 * (1 - fr ** p)}
            for m, p in (("AttAttr", 3), ("Taylor", 2), ("accuracy difference", 1))]


def test_exported_widgets_and_bokeh_render_offline(tmp_path, offline, artifacts):
    ctx, page = offline
    fig = plots.pruning_plot(_curves())
    path = export.to_html([Swatch(), fig], tmp_path / "export.html", title="offline")
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.swatch-root')?.dataset.state === 'done'")
    assert_not_blank(canvas_stats(page.locator("canvas.swatch")), "exported anywidget", min_frac=0.5)
    bk = page.locator(".bk-Canvas canvas").first       # Bokeh renders in (open) shadow roots
    bk.wait_for(state="attached")
    page.wait_for_function("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                           " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n > 500; }",
                           arg=bk.element_handle())
    page.screenshot(path=str(artifacts / "export-offline.png"), full_page=True)
    assert _network(ctx) == [], f"network requests from an offline export: {_network(ctx)}"
    assert not page.console_errors, page.console_errors


@pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)")
def test_exported_explorer_renders_offline(tmp_path, offline, artifacts):
    from attattr_widgets.engine.attribution.api import attribute
    from attattr_widgets.widgets import Explorer, TreeView

    model, tok = tiny_model(layers=3, heads=4)
    attr = attribute(model, tok, "the movie was not very good , but the actors were great", steps=4)
    ex = Explorer.from_attribution(attr)
    tree = TreeView(attr, threshold=0.3)
    path = export.to_html([ex, tree], tmp_path / "explorer.html", title="Explorer")
    ctx, page = offline
    page.goto(path.as_uri())
    page.wait_for_function("() => { const r = document.querySelector('.attattr-explorer');"
                           " return r && r.dataset.state === 'done' && r.dataset.headReady !== ''; }")
    page.wait_for_function("() => document.querySelector('.attattr-tree')?.dataset.state === 'done'")
    tree_root = page.locator(".attattr-tree")
    assert int(tree_root.get_attribute("data-nodes")) >= 1
    assert tree_root.locator("svg").count() >= 1
    tree_root.screenshot(path=str(artifacts / "export-tree.png"))
    root = page.locator(".attattr-explorer")
    assert root.get_attribute("data-layers-done") == "3"
    assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "exported grid")
    for which in ("attention", "attribution"):
        assert_not_blank(canvas_stats(root.locator(f"canvas[data-map={which}]")), f"exported {which} map")
    root.screenshot(path=str(artifacts / "export-explorer.png"))
    assert _network(ctx) == [], f"network requests from an offline export: {_network(ctx)}"
    assert not page.console_errors, page.console_errors


def test_bokeh_plots_html_offline(tmp_path, offline, artifacts):
    from bokeh.layouts import column

    ctx, page = offline
    rng = np.random.default_rng(0)
    a = rng.random((4, 6))
    layout = column(plots.pruning_plot(_curves(), baseline=0.9),
                    plots.correlation_plot(a, a + 0.2 * rng.random((4, 6)), ("MNLI", "RTE")),
                    plots.effectiveness_plot({"attribution": {"smallest-first": [0.9, 0.88, 0.85, 0.6],
                                                              "largest-first": [0.9, 0.5, 0.4, 0.35]},
                                              "attention": {"smallest-first": [0.9, 0.8, 0.7, 0.55],
                                                            "largest-first": [0.9, 0.75, 0.6, 0.45]}},
                                             heads=[0, 1, 2, 3]))
    path = plots.save_html(layout, tmp_path / "plots.html")
    page.goto(pathlib_uri(path))
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length === 1")
    figs = page.locator(".bk-Canvas")
    figs.nth(2).wait_for(state="attached")
    for i in range(3):
        canvas = figs.nth(i).locator("canvas.bk-layer").first
        page.wait_for_function("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                               " const s = new Set(); for (let i = 0; i < d.length; i += 16) s.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);"
                               " return s.size > 10; }", arg=canvas.element_handle())
    page.screenshot(path=str(artifacts / "bokeh-plots.png"), full_page=True)
    assert _network(ctx) == [], f"network requests from Bokeh HTML: {_network(ctx)}"
    assert not page.console_errors, page.console_errors


def test_screenshot_helper(tmp_path, artifacts):
    path = export.to_html(Swatch(), tmp_path / "s.html")
    png = export.screenshot(path, artifacts / "screenshot-helper.png", selector=".swatch-root",
                            wait_for="() => document.querySelector('.swatch-root')?.dataset.state === 'done'")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 200


def pathlib_uri(p) -> str:
    import pathlib
    return pathlib.Path(p).resolve().as_uri()


def test_to_png_from_the_mixin(artifacts):
    png = Swatch(values=[0.1, 0.9]).to_png(artifacts / "swatch-to-png.png",
                                          wait_for="() => document.querySelector('.swatch-root')")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_pruning_plot_hover_and_legend_toggle_offline(tmp_path, offline, artifacts):
    ctx, page = offline
    fig = plots.pruning_plot([{"method": "AttAttr", "fractions": [0, 0.5, 1], "accuracy": [0.9, 0.7, 0.5]},
                              {"method": "Taylor", "fractions": [0, 0.5, 1], "accuracy": [0.9, 0.6, 0.5]}])
    page.goto(pathlib_uri(plots.save_html(fig, tmp_path / "p.html")))
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length === 1 && Object.keys(Bokeh.index).length > 0")
    # hover the AttAttr point at (50 %, 0.7): data -> screen through the figure's own scales
    x, y = page.evaluate("""() => { const v = Object.values(Bokeh.index)[0], r = v.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(0.5), r.top + v.frame.y_scale.compute(0.7)]; }""")
    page.mouse.move(x, y)
    page.wait_for_function("""() => [...document.querySelectorAll('*')].some(e => e.shadowRoot &&
        [...e.shadowRoot.querySelectorAll('.bk-Tooltip')].some(t => t.shadowRoot &&
          /AttAttr[\\s\\S]*50\\.0%[\\s\\S]*0\\.700/.test(t.shadowRoot.textContent)))
        || [...document.querySelectorAll('.bk-Tooltip')].some(t => t.shadowRoot &&
          /AttAttr[\\s\\S]*50\\.0%[\\s\\S]*0\\.700/.test(t.shadowRoot.textContent))""", timeout=10_000)
    page.screenshot(path=str(artifacts / "bokeh-hover.png"))
    # legend click hides that curve (click_policy = "hide")
    page.get_by_text("Taylor", exact=True).first.click()
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('curve:Taylor').visible === false")
    assert page.evaluate("() => Bokeh.documents[0].get_model_by_name('curve:AttAttr').visible") is True
    assert _network(ctx) == []


GRID_CELL_JS = """([r, l, h, H]) => { const c = r.querySelector('canvas.aa-grid-canvas'); const box = c.getBoundingClientRect();
  const cell = (c.clientWidth - 36) / H - 2; return {x: box.left + 34 + h * (cell + 2) + cell / 2,
  y: box.top + 18 + l * (cell + 2) + cell / 2}; }"""


def _click_head(page, root, l, h, H):
    pos = page.evaluate(GRID_CELL_JS, [root.element_handle(), l, h, H])
    page.mouse.click(pos["x"], pos["y"])


@pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)")
def test_exported_page_draws_other_heads_and_recomputes_the_tree(tmp_path, offline, artifacts):
    """Issue 13: a file:// page with no kernel — three other heads draw their heatmaps (embedded maps) and the
    tree follows the threshold slider (computed in the browser; the same trees as the kernel's)."""
    from attattr_widgets.engine.attribution.api import attribute
    from attattr_widgets.engine.analysis.tree import attribution_tree
    from attattr_widgets.widgets import Explorer, TreeView

    model, tok = tiny_model(layers=3, heads=4)
    attr = attribute(model, tok, "the movie was not very good , but the actors were great", steps=4)
    ex = Explorer.from_attribution(attr)
    tree = TreeView(attr, threshold=0.3)
    path = export.to_html([ex, tree], tmp_path / "heads.html", title="Explorer")
    ctx, page = offline
    page.goto(path.as_uri())
    page.wait_for_function("() => { const r = document.querySelector('.attattr-explorer');"
                           " return r && r.dataset.state === 'done' && r.dataset.headReady !== ''; }")
    root = page.locator(".attattr-explorer")
    assert root.get_attribute("data-embedded") == "12"
    first = root.get_attribute("data-selected")
    attn = root.locator("canvas[data-map=attention]")
    fps = {canvas_stats(attn)["fp"]}
    others = [hd for hd in ((0, 1), (1, 3), (2, 2), (0, 0), (2, 0)) if f"{hd[0]},{hd[1]}" != first][:3]
    for l, h in others:
        _click_head(page, root, l, h, 4)
        page.wait_for_function(f"() => document.querySelector('.attattr-explorer').dataset.headReady === '{l},{h}'",
                               timeout=10_000)
        assert root.get_attribute("data-head-source") == "embedded"
        stats = canvas_stats(attn)
        assert_not_blank(stats, f"attention map of layer {l} head {h}")
        assert_not_blank(canvas_stats(root.locator("canvas[data-map=attribution]")), f"attribution L{l} H{h}")
        fps.add(stats["fp"])
    assert len(fps) == 4, "each head must draw its own heatmap"
    assert "embedded float16" in root.locator(".aa-heat-panel .aa-panel-title").inner_text()
    root.screenshot(path=str(artifacts / "export-other-head.png"))

    t = page.locator(".attattr-tree")
    page.wait_for_function("() => document.querySelector('.attattr-tree').dataset.treeSource === 'browser'")
    seen = {}
    for thr in (0.3, 0.05, 0.6, 0.95):
        _move_tree_slider(page, thr)
        ref = attribution_tree(attr, threshold=thr)
        seen[thr] = (int(t.get_attribute("data-nodes")), int(t.get_attribute("data-edges")))
        assert seen[thr] == (len(ref.nodes), len(ref.edges)), (thr, seen[thr], ref)
        edges = sorted(t.locator("g[data-edge]").evaluate_all("gs => gs.map(g => g.dataset.edge)"))
        assert edges == sorted(f"{e.parent},{e.child},{e.layer}" for e in ref.edges), thr
        if thr == 0.05:
            t.screenshot(path=str(artifacts / "export-tree-slider.png"))
    assert len(set(seen.values())) >= 2, f"the tree did not change with the slider: {seen}"
    assert _network(ctx) == [], f"network requests from an offline export: {_network(ctx)}"
    assert not page.console_errors, page.console_errors


def test_exported_tree_across_source_and_answer(tmp_path, offline, artifacts):
    """An encoder–decoder's tree across source and answer in an offline page: every node drawn on its side
    (source / answer), the kernel's edges, hostile source and answer strings as text."""
    from test_hardening_exports import hostile_seq2seq

    from attattr_widgets.widgets import TreeView

    res, src, tgt = hostile_seq2seq()
    tv = TreeView(res, threshold=0.0)
    path = export.to_html(tv, tmp_path / "s2s-tree.html", title="tree")
    ctx, page = offline
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.attattr-tree')?.dataset.state === 'done'")
    t = page.locator(".attattr-tree")
    assert int(t.get_attribute("data-edges")) == len(tv.tree["edges"]) > 0
    sides = t.locator("g[data-node]").evaluate_all("gs => gs.map(g => [Number(g.dataset.node), g.dataset.side])")
    assert sorted(sides) == sorted([n["index"], n["side"]] for n in tv.tree["nodes"])
    assert {s for _, s in sides} == {"source", "answer"}
    assert t.locator(".aa-side-label").evaluate_all("ts => ts.map(t => t.textContent)") == ["source", "answer"]
    assert page.evaluate("() => window.__pwned") is None
    t.screenshot(path=str(artifacts / "export-tree-seq2seq.png"))
    # no kernel: the slider recomputes the tree across source and answer in the browser, the kernel's trees
    from attattr_widgets.engine.analysis.tree import seq2seq_tree

    page.wait_for_function("() => document.querySelector('.attattr-tree').dataset.treeSource === 'browser'")
    seen = set()
    for thr in (0.2, 0.5, 0.05, 0.9):
        _move_tree_slider(page, thr)
        ref = seq2seq_tree(res, threshold=thr)
        edges = sorted(t.locator("g[data-edge]").evaluate_all("gs => gs.map(g => g.dataset.edge)"))
        assert edges == sorted(f"{e.parent},{e.child},{e.layer}" for e in ref.edges), thr
        seen.add(len(edges))
    assert len(seen) >= 2, f"the tree did not change with the slider: {seen}"
    assert "need the kernel" not in t.locator(".aa-stats").inner_text()
    assert _network(ctx) == [], f"network requests from an offline export: {_network(ctx)}"
    assert not page.console_errors, page.console_errors


@pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)")
def test_exported_answer_switches_answer_tokens_without_a_kernel(tmp_path, offline, artifacts):
    """An explained answer exported with its per-token maps: in a file:// page with no kernel, picking an answer
    token shows that token's own grid and maps (embedded), and the whole answer again."""
    from conftest import make_model, make_tokenizer

    from attattr_widgets.engine.attribution.api import attribute
    from attattr_widgets.widgets import Explorer

    lm, tok = make_model("gpt2", "lm", layers=2, heads=2), make_tokenizer()
    a = attribute(lm, tok, "the cat sat on", target="the mat was", steps=2, per_token=True)
    path = Explorer.from_attribution(a).to_html(tmp_path / "answer.html")
    ctx, page = offline
    page.goto(path.as_uri())
    ready = ("() => { const r = document.querySelector('.attattr-explorer'); return r && r.dataset.state === 'done'"
             " && r.dataset.answerToken === '{t}' && r.dataset.headReady !== '' && r.dataset.headReady === r.dataset.selected; }")
    page.wait_for_function(ready.replace("{t}", "-1"))
    root = page.locator(".attattr-explorer")
    header = root.locator(".aa-header").inner_text()
    grid = root.locator("canvas.aa-grid-canvas")
    prints = {"whole": (canvas_stats(grid)["fp"], canvas_stats(root.locator("canvas[data-map=attribution]"))["fp"])}
    picks = root.locator(".aa-answer-bar button")
    assert picks.count() == 1 + len(a.per_token)
    picks.nth(2).click()  # answer token 1
    page.wait_for_function(ready.replace("{t}", "1"))
    assert root.get_attribute("data-head-source") == "embedded"
    assert root.locator(".aa-ans-wait").count() == 0 and "running kernel" not in root.inner_text()
    assert root.locator(".aa-header").inner_text() != header  # F_1's log p, not the whole answer's
    prints["token 1"] = (canvas_stats(grid)["fp"], canvas_stats(root.locator("canvas[data-map=attribution]"))["fp"])
    assert prints["token 1"][0] != prints["whole"][0] and prints["token 1"][1] != prints["whole"][1]
    root.screenshot(path=str(artifacts / "export-answer-token.png"))
    picks.nth(0).click()
    page.wait_for_function(ready.replace("{t}", "-1"))
    assert canvas_stats(grid)["fp"] == prints["whole"][0] and root.locator(".aa-header").inner_text() == header
    assert _network(ctx) == [], f"network requests from an offline export: {_network(ctx)}"
    assert not page.console_errors, page.console_errors


@pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)")
def test_exported_page_says_which_heads_were_not_embedded(tmp_path, offline):
    from attattr_widgets.engine.attribution.api import attribute
    from attattr_widgets.widgets import Explorer

    model, tok = tiny_model(layers=3, heads=4)
    attr = attribute(model, tok, "the movie was not very good", steps=4)
    ex = Explorer.from_attribution(attr)
    kept = ex.embed_heads("top-2")["heads"]
    path = ex.to_html(tmp_path / "top2.html", heads="top-2")
    ctx, page = offline
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.attattr-explorer')?.dataset.headReady !== ''"
                           " && document.querySelector('.attattr-explorer')?.dataset.state === 'done'")
    root = page.locator(".attattr-explorer")
    assert root.get_attribute("data-embedded") == "2"
    assert "2 of 12 heads" in root.locator(".aa-embed-note").inner_text()
    l, h = next((a, b) for a in range(3) for b in range(4) if [a, b] not in kept)
    _click_head(page, root, l, h, 4)
    page.wait_for_function(f"() => document.querySelector('.attattr-explorer').dataset.selected === '{l},{h}'")
    msg = root.locator(".aa-heat-panel .aa-placeholder").inner_text()
    assert "not embedded" in msg and "to_html" in msg, msg
    assert root.get_attribute("data-head-ready") == ""
    assert not page.console_errors, page.console_errors
