"""Harness self-test: a trivial anywidget in a real JupyterLab (render, pixels, click -> Python -> JS)."""
from __future__ import annotations

import pytest

from .e2e_support import LabNotebook, assert_not_blank, canvas_stats

pytestmark = pytest.mark.e2e

TRIVIAL = r'''
import anywidget, traitlets
class Probe(anywidget.AnyWidget):
    _esm = """
    export default { render({ model, el }) {
      const root = document.createElement('div'); root.className = 'probe-root';
      const c = document.createElement('canvas'); c.width = 96; c.height = 64; c.className = 'probe-canvas';
      const echo = document.createElement('div'); echo.className = 'probe-echo';
      root.append(c, echo); el.appendChild(root);
      const draw = () => { const g = c.getContext('2d'); const n = model.get('n');
        for (let i = 0; i < 96; i++) { g.fillStyle = `hsl(${(i * 360 / 96 + n * 40) % 360},80%,50%)`; g.fillRect(i, 0, 1, 64); }
        echo.textContent = model.get('echo'); root.dataset.n = String(n); root.dataset.state = 'done'; };
      c.addEventListener('click', (e) => { model.set('clicked', [Math.round(e.offsetX), Math.round(e.offsetY)]); model.save_changes(); });
      model.on('change:n', draw); model.on('change:echo', draw); draw();
    } }"""
    n = traitlets.Int(0).tag(sync=True)
    clicked = traitlets.List([]).tag(sync=True)
    echo = traitlets.Unicode('').tag(sync=True)
    @traitlets.observe('clicked')
    def _on_click(self, ch):
        self.echo = f'py got click {ch.new}'
        self.n += 1
p = Probe(); p
'''


def test_trivial_anywidget_roundtrip(lab, lab_context, artifacts):
    page = lab_context.new_page()
    nb = LabNotebook(page, lab, "harness.ipynb", [TRIVIAL])
    nb.run(0)
    page.wait_for_function("() => document.querySelector('.probe-root')?.dataset.state === 'done'")
    canvas = page.locator(".probe-canvas")
    before = canvas_stats(canvas)
    assert_not_blank(before, "probe canvas", min_colors=20, min_frac=0.5)
    canvas.click(position={"x": 10, "y": 20})
    page.wait_for_function("() => document.querySelector('.probe-echo')?.textContent === 'py got click [10, 20]'")
    page.wait_for_function("() => document.querySelector('.probe-root')?.dataset.n === '1'")
    assert canvas_stats(canvas)["fp"] != before["fp"]
    i = nb.append_and_run("print(p.n, p.clicked)")
    assert nb.output_text(i).strip() == "1 [10, 20]"
    page.locator(".probe-root").screenshot(path=str(artifacts / "harness-probe.png"))
    assert not lab_context.blocked, f"JupyterLab tried to reach the network: {lab_context.blocked}"
    nb.shutdown()


BOKEH = '''
from attattr_widgets import plots
fig = plots.pruning_plot([{"method": "AttAttr", "fractions": [0, .5, 1], "accuracy": [.9, .8, .5]},
                          {"method": "Taylor", "fractions": [0, .5, 1], "accuracy": [.9, .6, .5]}])
print("shown")
plots.show(fig)
'''


def test_bokeh_show_in_lab(lab, lab_context, artifacts):
    """plots.show(): jupyter_bokeh's BokehModel with inline BokehJS renders in JupyterLab, offline."""
    page = lab_context.new_page()
    nb = LabNotebook(page, lab, "bokeh.ipynb", [BOKEH])
    nb.run(0)
    assert "shown" in nb.output_text(0)
    out = nb.cell(0).locator(".jp-OutputArea")
    canvas = out.locator(".bk-Canvas canvas.bk-layer").first
    canvas.wait_for(state="attached", timeout=60_000)
    page.wait_for_function("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                           " const s = new Set(); for (let i = 0; i < d.length; i += 16) s.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);"
                           " return s.size > 10; }", arg=canvas.element_handle())
    # a cell ENDING in plots.show(fig) shows the plot once (issue 13: it used to also return the widget)
    assert out.locator(".bk-Canvas").count() == 1, out.locator(".bk-Canvas").count()
    mimes = out.evaluate("o => Array.from(o.querySelectorAll('.jp-OutputArea-output')).map(e => e.dataset.mimeType || e.className)")
    assert sum(m.startswith("lm-Widget") for m in mimes) == 1, mimes    # one widget output: the plot
    out.screenshot(path=str(artifacts / "lab-bokeh-show.png"))
    assert not lab_context.blocked, f"network requests: {lab_context.blocked}"
    nb.shutdown()
