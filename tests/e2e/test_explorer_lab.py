"""The Explorer in a real JupyterLab: streaming, pixels, head selection round trip, Stop button."""
from __future__ import annotations

import pytest

from .e2e_support import (
    TINY_MODEL_SRC,
    assert_not_blank,
    bundle_built,
    canvas_stats,
    element_shot,
    lab_session,
    wait_in_cell,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

SHORT = "the movie was not very good , but the actors were great"
LONG = " ".join(["the movie was not very good , but the actors were great and i love this film ."] * 6)

SETUP = TINY_MODEL_SRC + """
from attattr_widgets.widgets import Explorer
model, tok = make_tiny(layers=3, heads=4, hidden=32)
slow_model, slow_tok = make_tiny(layers=24, heads=4, hidden=64, seed=1)
print("ready")
"""
FAST = f"ex = Explorer(model, tok)\ndisplay(ex)\nex.explain({SHORT!r}, steps=4);"
SLOW = f"ex2 = Explorer(slow_model, slow_tok)\ndisplay(ex2)\nex2.explain({LONG!r}, steps=256);"



def _wait_root(nb, i, cond, timeout=60):
    """Wait until ``cond`` (JS expression over ``r`` = the explorer root of cell ``i``) holds."""
    wait_in_cell(nb, i, ".attattr-explorer", cond, timeout)


@pytest.fixture(scope="module")
def nb(browser, lab):
    yield from lab_session(browser, lab, "explorer.ipynb", [SETUP, FAST, SLOW], {"width": 1280, "height": 1700},
                           setup_timeout=120)


def test_streams_all_layers_and_paints(nb, artifacts):
    nb.run(1)
    _wait_root(nb, 1, "r.dataset.state === 'done' && r.dataset.layersDone === '3' && r.dataset.layersTotal === '3'"
                      " && r.dataset.headReady !== '' && r.dataset.headReady === r.dataset.selected")
    root = nb.cell(1).locator(".attattr-explorer")
    assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "head grid")
    for which in ("attention", "attribution"):
        assert_not_blank(canvas_stats(root.locator(f"canvas[data-map={which}]")), f"{which} heatmap")
    assert root.locator(".aa-tok").count() >= 12                # sentence tokens
    element_shot(root, artifacts / "lab-explorer.png")
    assert not nb.page_errors, nb.page_errors


def test_click_head_changes_heatmap(nb, artifacts):
    root = nb.cell(1).locator(".attattr-explorer")
    _wait_root(nb, 1, "r.dataset.state === 'done' && r.dataset.headReady !== ''")
    sel = root.get_attribute("data-selected")
    layer, head = map(int, sel.split(","))
    grid = root.locator("canvas.aa-grid-canvas")
    attn = root.locator("canvas[data-map=attention]")
    before = canvas_stats(attn)
    # grid geometry (js/shared/layout.ts): labels 34 px left / 18 px top, cells of `step` px incl. a 2 px gap
    box = grid.evaluate("c => ({w: c.clientWidth, h: c.clientHeight})")
    L, H = 3, 4
    step_x, step_y = (box["w"] - 36) / H, (box["h"] - 20) / L
    assert abs(step_x - step_y) < 1.5, (box, step_x, step_y)
    target = ((layer + 1) % L, (head + 2) % H)
    grid.click(position={"x": 34 + target[1] * step_x + step_x / 2 - 1, "y": 18 + target[0] * step_y + step_y / 2 - 1})
    want = f"{target[0]},{target[1]}"
    _wait_root(nb, 1, f"r.dataset.selected === '{want}' && r.dataset.headReady === '{want}'", timeout=30)
    nb.page.wait_for_function("([c, fp]) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                              " let h = 0; for (let i = 0; i < d.length; i += 4)"
                              " h = (h * 31 + d[i] + 7 * d[i+1] + 13 * d[i+2] + 17 * d[i+3]) | 0;"
                              " return String(h) !== fp; }", arg=[attn.element_handle(), before["fp"]])
    assert_not_blank(canvas_stats(attn), "attention heatmap after click")
    i = nb.append_and_run("print(ex.selected, ex.head['layer'], ex.head['head'])")
    assert nb.output_text(i).split() == [f"[{target[0]},", f"{target[1]}]", str(target[0]), str(target[1])]
    element_shot(root, artifacts / "lab-explorer-selected.png")


def test_layers_stream_into_the_grid_while_running(nb, artifacts):
    """Streamed layers (custom messages) must show up in the grid before the run ends.

    Regression test: anywidget 0.11 hands ``initialize`` and ``render`` *different* model proxy objects, so a
    stream cache keyed by the model object was filled in ``initialize`` but read empty in ``render``
    (data-layers-done stuck at 0 while the header said "layer k / N"); fixed in 0527eff.
    """
    nb.run(2)
    root = nb.cell(2).locator(".attattr-explorer")
    try:
        # 25 s failed twice at a 1-min load of 14 (2 cores): the run has 24 layers, so waiting longer is safe
        _wait_root(nb, 2, "r.dataset.state === 'running' && Number(r.dataset.layersDone) >= 2", timeout=90)
        assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "grid while streaming",
                         min_frac=0.01)
        element_shot(root, artifacts / "lab-explorer-streaming.png")
    finally:
        nb.append_and_run("ex2.stop(wait=True)", timeout=60)
    _wait_root(nb, 2, "r.dataset.state === 'cancelled'", timeout=30)


def test_stop_button_cancels_and_kernel_responds(nb, artifacts):
    nb.run(2)                                             # a fresh explorer + slow run
    _wait_root(nb, 2, "r.dataset.state === 'running' && "
                      "Number(r.querySelector('.aa-progress')?.getAttribute('aria-valuenow')) >= 1", timeout=60)
    root = nb.cell(2).locator(".attattr-explorer")
    stop = root.locator(".attattr-stop")
    assert stop.is_enabled()
    stop.click()
    _wait_root(nb, 2, "r.dataset.state === 'cancelled'", timeout=30)
    done, total = int(root.get_attribute("data-layers-done")), int(root.get_attribute("data-layers-total"))
    j = nb.append_and_run("print(ex2.state, ex2.layers_done, ex2.layers_total, ex2.run_id, "
                          "None if ex2.head_scores is None else ex2.head_scores.shape)")
    assert 1 <= done < total == 24, (done, total, nb.output_text(j))
    assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "grid of a cancelled run",
                     min_frac=0.01)
    element_shot(root, artifacts / "lab-explorer-cancelled.png")
    i = nb.append_and_run("ex2.wait(30)\nprint(ex2.state, ex2.running, ex2.layers_done < 24, 6 * 7)", timeout=60)
    assert nb.output_text(i).split() == ["cancelled", "False", "True", "42"], nb.output_text(i)
    assert nb.kernel_status() == "idle"
    assert not nb.page_errors, nb.page_errors
