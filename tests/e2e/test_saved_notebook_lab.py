"""A notebook saved with widget state and reopened with the kernel shut down still draws other heads (issue 13).

The notebook is executed by nbclient (which stores the widget state in the notebook metadata, as JupyterLab does
with "save widget state"), opened in the real JupyterLab, its kernel shut down, then three other heads are clicked:
their heatmaps come from the embedded maps (``heads_data``), not from a kernel.
"""
from __future__ import annotations

import nbformat
import pytest

from .e2e_support import TINY_MODEL_SRC, LabNotebook, assert_not_blank, bundle_built, canvas_stats, element_shot, \
    hermetic_context

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

CODE = TINY_MODEL_SRC + """
from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.widgets import Explorer
model, tok = make_tiny(layers=3, heads=4)
attr = attribute(model, tok, "the movie was not very good , but the actors were great", steps=4)
Explorer.from_attribution(attr)
"""
ROOT = "() => window.jupyterapp.shell.currentWidget.content.widgets[0].node.querySelector('.attattr-explorer')"


def test_reopened_notebook_without_kernel_draws_other_heads(browser, lab, artifacts, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True).execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    explorer = next(m for m in state.values() if "heads_data" in m["state"])
    assert sum(1 for b in explorer.get("buffers", []) if b["path"][0] == "heads_data") == 12
    # a notebook the user saved is trusted (JupyterLab signs it); untrusted ones show text/plain, not widgets
    from nbformat.sign import NotebookNotary

    NotebookNotary().sign(nb)
    nbformat.write(nb, lab.root / "saved.ipynb")

    ctx = hermetic_context(browser, lab.is_local, viewport={"width": 1280, "height": 1100})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    lnb = LabNotebook.open(page, lab, "saved.ipynb")
    page.wait_for_function(f"() => {{ const r = ({ROOT})(); return r && r.dataset.state === 'done'"
                           " && r.dataset.headReady !== ''; }", timeout=60_000)
    lnb.shutdown()
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=30_000)
    root = lnb.cell(0).locator(".attattr-explorer")
    first = root.get_attribute("data-selected")
    attn = root.locator("canvas[data-map=attention]")
    fps = {canvas_stats(attn)["fp"]}
    grid = root.locator("canvas.aa-grid-canvas")
    w = grid.evaluate("c => c.clientWidth")
    cell = (w - 36) / 4 - 2
    heads = [hd for hd in ((0, 1), (1, 3), (2, 2), (2, 0)) if f"{hd[0]},{hd[1]}" != first][:3]
    for l, h in heads:
        grid.click(position={"x": 34 + h * (cell + 2) + cell / 2, "y": 18 + l * (cell + 2) + cell / 2})
        page.wait_for_function(f"() => ({ROOT})().dataset.headReady === '{l},{h}'", timeout=15_000)
        assert root.get_attribute("data-head-source") == "embedded"
        stats = canvas_stats(attn)
        assert_not_blank(stats, f"attention map of layer {l} head {h} without a kernel")
        fps.add(stats["fp"])
    assert len(fps) == 4
    element_shot(root, artifacts / "lab-saved-no-kernel.png")
    assert not errors, errors
    assert not ctx.blocked, ctx.blocked
    ctx.close()
