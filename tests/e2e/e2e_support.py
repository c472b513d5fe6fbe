"""Helpers for the e2e tests (imported by conftest.py and the test modules)."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import urllib.request

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def chromium_path() -> str:
    for p in (os.environ.get("ATTATTR_CHROMIUM"), "/usr/bin/chromium"):
        if p and os.path.exists(p):
            return p
    pytest.fail("the e2e tests need Debian's Chromium at /usr/bin/chromium (`make e2e-deps`, i.e. "
                "`apt-get install -y chromium`) or ATTATTR_CHROMIUM=<path>; playwright's own browser "
                "download is not used", pytrace=False)


class Lab:
    def __init__(self, proc: subprocess.Popen, port: int, root: pathlib.Path, log: pathlib.Path):
        self.proc, self.port, self.root, self.log = proc, port, root, log
        self.base = f"http://127.0.0.1:{port}"

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return r.read()

    def api(self, path: str, method: str = "GET") -> object:
        req = urllib.request.Request(self.base + path, method=method, data=b"" if method != "GET" else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def is_local(self, url: str) -> bool:
        return url.startswith((*LOCAL_SCHEMES, self.base, f"ws://127.0.0.1:{self.port}"))


def hermetic_context(browser, allow, viewport=None):
    """A browser context in which every request not accepted by ``allow(url)`` is aborted and recorded."""
    ctx = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, device_scale_factor=1)
    ctx.blocked = []
    ctx.requests = []

    def route(r):
        url = r.request.url
        if allow(url):
            r.continue_()
        else:
            ctx.blocked.append(url)
            r.abort()

    ctx.route(re.compile(r".*"), route)
    ctx.on("request", lambda req: ctx.requests.append(req.url))
    return ctx


# ------------------------------------------------------------------------------------------------------------
# JupyterLab notebook driver
# ------------------------------------------------------------------------------------------------------------
CELL_JS = "(i) => document.querySelectorAll('.jp-Notebook .jp-Cell')[i]"


class LabNotebook:
    """Drive one notebook in a JupyterLab page through ``window.jupyterapp``."""

    def __init__(self, page, lab: Lab, name: str, cells: list[str] | None, url: str = "/lab/tree/{name}?reset"):
        """``url``: where the notebook opens (``"/notebooks/{name}"`` for Notebook 7)."""
        self.page, self.lab, self.name = page, lab, name
        if cells is not None:
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            nbformat.write(nb, lab.root / name)
        page.goto(lab.base + url.format(name=name))
        page.wait_for_function(
            "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'"
            " && window.jupyterapp.shell.currentWidget.content.widgets.length > 0", timeout=90_000)

    @classmethod
    def open(cls, page, lab: Lab, name: str) -> "LabNotebook":
        """Open a notebook file already in the Lab root (e.g. one saved with widget state)."""
        return cls(page, lab, name, None)

    def run(self, i: int, wait: bool = True, timeout: float = 120) -> None:
        """Run cell ``i``; with ``wait`` until the kernel replied (not merely queued)."""
        js = """async (i) => { const app = window.jupyterapp; const panel = app.shell.currentWidget;
            const before = panel.content.widgets[i].model.executionCount;
            panel.content.activeCellIndex = i;
            const p = app.commands.execute('notebook:run-cell');
            WAIT
            return before; };"""
        before = self.page.evaluate(js.replace("WAIT", "await p;" if wait else ""), i)
        if wait:   # a new execution count and no busy prompt: the kernel has replied for this run
            self.page.wait_for_function(
                "([i, before]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];"
                " return c.model.executionCount !== null && c.model.executionCount !== before &&"
                " c.node.querySelector('.jp-InputPrompt').textContent.indexOf('*') < 0; }",
                arg=[i, before], timeout=timeout * 1000)

    def append_and_run(self, code: str, wait: bool = True, timeout: float = 120) -> int:
        """Add a code cell at the end with ``code``, run it, return its index."""
        i = self.page.evaluate("""(code) => { const nb = window.jupyterapp.shell.currentWidget.content;
            nb.model.sharedModel.insertCell(nb.model.cells.length, {cell_type: 'code', source: code});
            return nb.model.cells.length - 1; }""", code)
        self.page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.widgets.length > i",
                                    arg=i)
        self.run(i, wait=wait, timeout=timeout)
        return i

    def cell(self, i: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(i)

    def output_text(self, i: int) -> str:
        return self.page.evaluate(
            "(i) => Array.from(window.jupyterapp.shell.currentWidget.content.widgets[i].node"
            ".querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText).join('\\n')", i)

    def errors(self, i: int) -> str:
        return self.page.evaluate(
            "(i) => Array.from(window.jupyterapp.shell.currentWidget.content.widgets[i].node"
            ".querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]'))"
            ".map(e => e.innerText).join('\\n')", i)

    def kernel_status(self) -> str:
        return self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status")

    def shutdown(self) -> None:
        self.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")


def lab_session(browser, lab, name: str, cells: list[str], viewport: dict | None = None,
                setup_timeout: float = 120):
    """A module fixture's body: a hermetic page with ``cells`` in notebook ``name``, cell 0 run (it must print
    "ready"); yields the LabNotebook (``page_errors`` collects page errors); afterwards no network was tried and
    the kernel is shut down."""
    ctx = hermetic_context(browser, lab.is_local, viewport=viewport or {"width": 1280, "height": 1700})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    notebook = LabNotebook(page, lab, name, cells)
    notebook.run(0, timeout=setup_timeout)
    assert "ready" in notebook.output_text(0), notebook.output_text(0)
    notebook.page_errors = errors
    yield notebook
    assert not ctx.blocked, f"JupyterLab tried to reach the network: {ctx.blocked}"
    notebook.shutdown()
    ctx.close()


CELL_NODE = "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node"


def wait_in_cell(nb, i: int, sel: str, cond: str, timeout: float = 60, nth: int = 0) -> None:
    """Wait until ``cond`` (JS over ``r`` = the ``nth`` element matching ``sel`` in cell ``i``) holds; on timeout
    fail with its data attributes and the cell's output, and keep a screenshot in ARTIFACTS."""
    from playwright.sync_api import TimeoutError as PWTimeout

    js = f"([i, n]) => {{ const r = ({CELL_NODE})(i).querySelectorAll({sel!r})[n]; return !!r && ({cond}); }}"
    try:
        nb.page.wait_for_function(js, arg=[i, nth], timeout=timeout * 1000)
    except PWTimeout:
        data = nb.page.evaluate(f"([i, n]) => {{ const r = ({CELL_NODE})(i).querySelectorAll({sel!r})[n];"
                                " return r ? {...r.dataset} : null; }", [i, nth])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nb.page.screenshot(path=str(ARTIFACTS / f"failure-{nb.name.replace('.ipynb', '')}-cell{i}.png"), full_page=True)
        pytest.fail(f"cell {i}: waited {timeout}s for `{cond}` on {sel}; data = {data}; "
                    f"output: {nb.output_text(i)[-1500:]!r}", pytrace=False)


# pixels ------------------------------------------------------------------------------------------------------
CANVAS_STATS_JS = """(c) => {
  const w = c.width, h = c.height;
  if (!w || !h) return {w, h, nonbg: 0, distinct: 0, fp: ''};
  const d = c.getContext('2d').getImageData(0, 0, w, h).data;
  const bg = [d[0], d[1], d[2], d[3]];
  let nonbg = 0; const colors = new Set(); let hash = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - bg[0]) + Math.abs(d[i+1] - bg[1]) + Math.abs(d[i+2] - bg[2]) + Math.abs(d[i+3] - bg[3]) > 24) nonbg++;
    colors.add(((d[i] >> 3) << 15) | ((d[i+1] >> 3) << 10) | ((d[i+2] >> 3) << 5) | (d[i+3] >> 3));
    hash = (hash * 31 + d[i] + 7 * d[i+1] + 13 * d[i+2] + 17 * d[i+3]) | 0;
  }
  return {w, h, nonbg, distinct: colors.size, fp: String(hash)};
}"""


def canvas_stats(locator) -> dict:
    """Size, non-background pixel count, distinct colours and a fingerprint of a canvas' pixels."""
    return locator.evaluate(CANVAS_STATS_JS)


def assert_not_blank(stats: dict, what: str, min_colors: int = 3, min_frac: float = 0.05) -> None:
    assert stats["w"] > 0 and stats["h"] > 0, f"{what}: canvas has no size ({stats})"
    frac = stats["nonbg"] / (stats["w"] * stats["h"])
    assert stats["distinct"] >= min_colors and frac >= min_frac, f"{what}: canvas looks blank ({stats})"


# tiny offline model ------------------------------------------------------------------------------------------
# Source text so the same code runs in the test process and in a notebook cell of the Lab kernel.
TINY_MODEL_SRC = r'''
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
torch.set_num_threads(1)

_WORDS = ("the a movie film was is great good bad awful boring fun plot actors story not very really and but "
          "i you it this that of to in on with love hate best worst ever time people . , !").split()

def make_tiny(layers=3, heads=4, hidden=32, seed=0, max_pos=256):
    torch.manual_seed(seed)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(specials + _WORDS)}, do_lower_case=True)
    cfg = BertConfig(vocab_size=len(specials) + len(_WORDS), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=max_pos,
                     num_labels=2)
    return BertForSequenceClassification(cfg).eval(), tok
'''


def tiny_model(**kw):
    ns: dict = {}
    exec(TINY_MODEL_SRC, ns)  # noqa: S102 - our own constant source
    return ns["make_tiny"](**kw)


def local_only(url: str) -> bool:
    return url.startswith(LOCAL_SCHEMES)


def bundle_built(name: str = "explorer.js") -> bool:
    return (REPO / "attattr_widgets" / "static" / name).exists()


#: JS: the DOM node of notebook cell i in JupyterLab's current notebook


def wait_explorer(nb, i: int, cond: str, timeout: float = 90) -> None:
    """:func:`wait_in_cell` on the Explorer root of cell ``i``."""
    wait_in_cell(nb, i, ".attattr-explorer", cond, timeout)


def element_shot(locator, path) -> None:
    """Screenshot of one element inside JupyterLab's scrolling notebook (scrolled to the top first)."""
    locator.evaluate("e => e.scrollIntoView({block: 'start', inline: 'nearest'})")
    locator.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    locator.screenshot(path=str(path))


# zero colour = widget background (issue 13) ------------------------------------------------------------------
# An Attribution whose key columns 3..5 are exactly 0 (attention and attribution) and whose head (1, 2) is all 0,
# so the grid cell of that head, the heatmap cells (row 1, col 4) and the sentence chips 3..5 (query 1) must be
# painted in the widget's own background colour.
ZERO_ATTR_SRC = r'''
import numpy as np
from attattr_widgets.engine.results import Attribution

def zero_attr():
    rng = np.random.default_rng(0)
    L, H, n = 2, 3, 6
    scores = (rng.random((L, H, n, n)) - 0.3).astype(np.float32)
    attn = rng.random((L, H, n, n)).astype(np.float32)
    scores[..., 3:] = 0
    attn[..., 3:] = 0
    attn /= attn.sum(-1, keepdims=True)
    scores[1, 2] = 0
    return Attribution(scores=scores, attention=attn, tokens=["[CLS]", "a", "b", "c", "d", "[SEP]"],
                       token_type_ids=np.zeros(n, dtype=np.int64), target=1, target_label="positive", prob=0.9,
                       layer_zero_probs=np.full(L, 0.5), completeness=np.zeros(L), layers=[0, 1], num_layers=L,
                       rule="gauss-legendre", steps=4, text="a b c d", model_name="zero-probe")
'''

ZERO_PROBE_JS = """(r) => {
  r.getAnimations({subtree: true}).forEach((a) => a.finish());   // chip colours fade in (CSS transition)
  const px = (c, x, y) => { const k = c.width / c.clientWidth;
    return Array.from(c.getContext('2d').getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data).slice(0, 3); };
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
  const bg = rgb(getComputedStyle(r).backgroundColor);
  const grid = r.querySelector('canvas.aa-grid-canvas');
  const H = 3, cell = (grid.clientWidth - 36) / H - 2;
  const gridZero = px(grid, 34 + 2 * (cell + 2) + cell / 2, 18 + 1 * (cell + 2) + cell / 2);
  const [x0, y0, side] = r.dataset.heatBox.split(',').map(Number);
  const win = r.dataset.window.split(',').map(Number), cs = side / win[2];
  const at = (m) => px(r.querySelector(`canvas[data-map=${m}]`), x0 + (4 - win[1] + 0.5) * cs, y0 + (1 - win[0] + 0.5) * cs);
  const chips = [3, 4, 5].map((i) => rgb(getComputedStyle(r.querySelector(`.aa-tok[data-i="${i}"]`)).backgroundColor));
  const live = [0, 1, 2].map((i) => rgb(getComputedStyle(r.querySelector(`.aa-tok[data-i="${i}"]`)).backgroundColor));
  return {bg, gridZero, attention: at('attention'), attribution: at('attribution'), chips, live,
          page: rgb(getComputedStyle(document.body).backgroundColor)};
}"""


def assert_zero_is_background(probe: dict, where: str) -> None:
    """Every zero-valued pixel / chip of ZERO_ATTR_SRC's explorer equals the widget background (±tolerance)."""
    bg = probe["bg"]
    assert len(bg) == 3, (where, probe)

    def close(c, tol):
        return len(c) == 3 and max(abs(a - b) for a, b in zip(c, bg)) <= tol

    bad = {k: probe[k] for k, tol in (("gridZero", 2), ("attention", 2), ("attribution", 3)) if not close(probe[k], tol)}
    bad.update({f"chip{i}": c for i, c in zip((3, 4, 5), probe["chips"]) if not close(c, 2)})
    assert not bad, f"{where}: zero is not painted in the widget background {bg}: {bad} (page body {probe['page']})"
    assert not all(close(c, 8) for c in probe["live"]), f"{where}: no chip is coloured at all: {probe}"
