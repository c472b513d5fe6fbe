"""Zero is painted in the widget's background colour on the FIRST render in JupyterLab, light and dark theme.

JupyterLab renders an output before attaching it to the page; a theme read at that moment sees no resolved colours
and fell back to the page body's grey shell colour (issue 13). The probe reads pixels of an explorer whose data
has exact zeros (``ZERO_ATTR_SRC``) and compares them with the root's computed background.
"""
from __future__ import annotations

import pytest

from .e2e_support import ZERO_ATTR_SRC, ZERO_PROBE_JS, LabNotebook, assert_zero_is_background, bundle_built, \
    element_shot, hermetic_context

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

SETUP = ZERO_ATTR_SRC + "\nfrom attattr_widgets.widgets import Explorer\nprint('ready')\n"
SHOW = "Explorer.from_attribution(zero_attr(), selected=[0, 0], query=1)"
ROOT = "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node.querySelector('.attattr-explorer')"


def _probe(nb, i):
    nb.page.wait_for_function(f"(i) => {{ const r = ({ROOT})(i); return r && r.dataset.state === 'done'"
                              " && r.dataset.headReady === '0,0' && r.dataset.heatBox; }", arg=i, timeout=60_000)
    handle = nb.page.evaluate_handle(ROOT, i)
    return handle.evaluate(ZERO_PROBE_JS)


def _set_theme(page, name, light):
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name)
    page.wait_for_function("(l) => document.body.dataset.jpThemeLight === String(l)", arg=light, timeout=30_000)


def test_zero_is_widget_background_on_first_paint_light_and_dark(browser, lab, artifacts):
    ctx = hermetic_context(browser, lab.is_local, viewport={"width": 1280, "height": 1200})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    nb = LabNotebook(page, lab, "theme.ipynb", [SETUP, SHOW, SHOW])
    try:
        nb.run(0)
        assert "ready" in nb.output_text(0), nb.output_text(0)
        nb.run(1)
        light = _probe(nb, 1)
        assert_zero_is_background(light, "JupyterLab light")
        assert sum(light["bg"]) > 600, light          # a light background
        element_shot(nb.cell(1).locator(".attattr-explorer"), artifacts / "lab-zero-light.png")
        _set_theme(page, "JupyterLab Dark", False)
        nb.run(2)                                        # a new view whose first paint is in the dark theme
        dark = _probe(nb, 2)
        assert_zero_is_background(dark, "JupyterLab dark")
        assert sum(dark["bg"]) < 200, dark
        element_shot(nb.cell(2).locator(".attattr-explorer"), artifacts / "lab-zero-dark.png")
        assert_zero_is_background(_probe(nb, 1), "JupyterLab light view after the switch to dark")
    finally:
        _set_theme(page, "JupyterLab Light", True)
        nb.shutdown()
        ctx.close()
    assert not errors, errors
    assert not ctx.blocked, ctx.blocked
