"""The explorer in Notebook 7 and in a marimo app (``marimo run``), with the checks of the JupyterLab suite:
renders, streams, click, Stop, and zero = widget background by pixel on first paint (issue 13)."""
from __future__ import annotations

import pytest

from .e2e_support import TINY_MODEL_SRC, ZERO_ATTR_SRC, LabNotebook, bundle_built, hermetic_context
from .host_checks import HostExplorer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

LONG = " ".join(["the movie was not very good , but the actors were great and i love this film ."] * 6)
SETUP = TINY_MODEL_SRC + ZERO_ATTR_SRC + """
from attattr_widgets.widgets import Explorer
slow_model, slow_tok = make_tiny(layers=24, heads=4, hidden=64, seed=1)
print("ready")
"""
ZERO = "Explorer.from_attribution(zero_attr(), selected=[0, 0], query=1)"
SLOW = f"ex = Explorer(slow_model, slow_tok)\ndisplay(ex)\nex.explain({LONG!r}, steps=256)"
NB_ROOT = "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node.querySelector('.attattr-explorer')"


def test_notebook7(browser, notebook7, artifacts):
    ctx = hermetic_context(browser, notebook7.is_local, viewport={"width": 1280, "height": 1300})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    nb = LabNotebook(page, notebook7, "hosts.ipynb", [SETUP, ZERO, SLOW], url="/notebooks/{name}")
    # Notebook 7.6 itself throws "Cannot read properties of undefined (reading 'schema')" while loading a
    # plugin's settings, with any notebook (also an empty one): errors count from here, once it is open
    errors.clear()
    try:
        nb.run(0, timeout=120)
        assert "ready" in nb.output_text(0), nb.output_text(0)
        ex = HostExplorer(page, NB_ROOT, "notebook7")
        nb.run(1)
        ex.zero_is_background(1)
        nb.run(2, wait=False)
        ex.streams_click_and_stop(2, 4, shot=artifacts / "nb7-explorer.png")
        nb.cell(1).locator(".attattr-explorer").screenshot(path=str(artifacts / "nb7-zero.png"))
    finally:
        nb.shutdown()
        ctx.close()
    assert not errors, errors
    assert not ctx.blocked, f"Notebook 7 tried to reach the network: {ctx.blocked}"


# marimo renders outputs inside (open) shadow roots: find the explorers through them, in page order
DEEP_ROOT = """(i) => { const all = []; const walk = (n) => { n.querySelectorAll('.attattr-explorer').forEach((e) => all.push(e));
  n.querySelectorAll('*').forEach((e) => e.shadowRoot && walk(e.shadowRoot)); }; walk(document); return all[i]; }"""


def test_marimo_run(browser, marimo_server, artifacts):
    ctx = hermetic_context(browser, marimo_server.is_local, viewport={"width": 1280, "height": 1300})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    try:
        page.goto(marimo_server.base + "/")
        ex = HostExplorer(page, DEEP_ROOT, "marimo")
        ex.wait(0, "true", timeout=180)
        ex.zero_is_background(0)
        page.evaluate_handle(f"({DEEP_ROOT})(0)").as_element().screenshot(path=str(artifacts / "marimo-zero.png"))
        ex.streams_click_and_stop(1, 4, shot=artifacts / "marimo-explorer.png")
    finally:
        ctx.close()
    assert not errors, errors
    assert not ctx.blocked, f"marimo tried to reach the network: {ctx.blocked}"
