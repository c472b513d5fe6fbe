"""Reach (issue 24): a wheel that carries its front end, and static views where no widget can run.

* ``python -m build`` from a clean clone of this checkout builds an sdist (TypeScript sources, npm lock, built
  bundles) and a wheel with the four bundles; a fresh venv WITHOUT node on PATH installs the package from the sdist
  and the Explorer it renders draws in Chromium from the installed bundle (the dependencies come from this venv
  through a ``.pth`` line, so nothing heavy is downloaded; the build backend itself comes from the package index).
* A notebook executed by ``jupyter nbconvert --execute --to html`` without widget state shows every view
  statically (the text/html of its mimebundle), the streamed ones as they ended, hostile strings as text.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile

import nbformat
import pytest

from .e2e_support import (
    REPO,
    LabNotebook,
    TINY_MODEL_SRC,
    ZERO_ATTR_SRC,
    assert_not_blank,
    canvas_stats,
    hermetic_context,
    local_only,
)

pytestmark = pytest.mark.e2e

BUNDLES = ("explorer.js", "heads.js", "tree.js", "triggers.js")


def _run(cmd, *, cwd, env=None, timeout=600) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """sdist + wheel built by ``python -m build`` in a fresh clone of the committed checkout."""
    pytest.importorskip("build", reason="`build` (test extra) is not installed: make install")
    if shutil.which("git") is None or shutil.which("npm") is None:
        pytest.fail("the packaging test needs git and npm on PATH (Node >= 20, as `make` does)", pytrace=False)
    tmp = tmp_path_factory.mktemp("reach-build")
    clone = tmp / "clone"
    _run(["git", "clone", "-q", "--no-local", str(REPO), str(clone)], cwd=tmp)
    env = dict(os.environ)
    env.pop("ATTATTR_WIDGETS_STATIC", None)
    _run([sys.executable, "-m", "build", "-o", str(tmp / "dist"), "."], cwd=clone, env=env, timeout=900)
    sdist = next((tmp / "dist").glob("*.tar.gz"))
    wheel = next((tmp / "dist").glob("*.whl"))
    return sdist, wheel


def test_sdist_and_wheel_carry_the_front_end(dists):
    sdist, wheel = dists
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for need in ("package.json", "package-lock.json", "tsconfig.json", "js/build.mjs", "js/explorer/index.ts",
                 "js/shared/color.ts", "attattr_widgets/palette.json",
                 *(f"attattr_widgets/static/{b}" for b in BUNDLES)):
        assert need in names, f"{need} missing from the sdist"
    with zipfile.ZipFile(wheel) as z:
        wn = set(z.namelist())
    for b in (*BUNDLES, "vendor/anywidget.js", "vendor/embed-amd.js", "vendor/require.min.js"):
        assert f"attattr_widgets/static/{b}" in wn, f"{b} missing from the wheel"
    assert "attattr_widgets/palette.json" in wn
    assert not any(n.startswith(("js/", "tests/", "node_modules/")) for n in wn)


RENDER_SRC = ZERO_ATTR_SRC + textwrap.dedent('''
import pathlib, shutil, sys
import attattr_widgets
from attattr_widgets.widgets import Explorer
from attattr_widgets.widgets._base import bundle_built
assert shutil.which("node") is None, shutil.which("node")
assert pathlib.Path(attattr_widgets.__file__).resolve().is_relative_to(pathlib.Path(sys.prefix).resolve()), \\
    attattr_widgets.__file__
assert all(bundle_built(b) for b in %r)
ex = Explorer.from_attribution(zero_attr())
data, metadata = ex._repr_mimebundle_()
assert "attattr-static-explorer" in data["text/html"]
ex.to_html(sys.argv[1])
print("rendered from", attattr_widgets.__file__)
''' % (BUNDLES,))


def test_installed_without_node_renders_in_chromium(dists, tmp_path, browser, artifacts):
    sdist, _ = dists
    venv = tmp_path / "fresh"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip()
    # the dependencies (torch, transformers, anywidget, ...) from this environment: one path line, no .pth of it runs
    (pathlib.Path(purelib) / "attattr_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    bare = tmp_path / "bin"  # PATH: the fresh venv and git only; no node, no npm
    bare.mkdir()
    env = _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{bare}", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("ATTATTR_WIDGETS_STATIC", None)
    # the wheel pip builds from the sdist needs no node: the sdist holds the bundles
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(sdist)], cwd=tmp_path, env=env, timeout=600)
    page_path = tmp_path / "explorer.html"
    out = _run([str(py), "-c", RENDER_SRC, str(page_path)], cwd=tmp_path, env=env)
    assert str(venv) in out
    ctx = hermetic_context(browser, local_only, viewport={"width": 1200, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(page_path.as_uri())
        page.wait_for_function("() => document.querySelector('.attattr-explorer')?.dataset.state === 'done'",
                               timeout=60_000)
        assert page.locator(".attattr-missing").count() == 0
        root = page.locator(".attattr-explorer")
        assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "grid drawn from the installed wheel")
        root.screenshot(path=str(artifacts / "reach-wheel-explorer.png"))
        assert ctx.blocked == []
    finally:
        ctx.close()


# ---------------------------------------------------------------------------------------------- nbconvert
HOSTILE_SRC = textwrap.dedent('''
import numpy as np
from attattr_widgets.engine.results import Attribution

def hostile_attr(tokens):
    rng = np.random.default_rng(1)
    L, H, n = 2, 2, len(tokens)
    s = (rng.random((L, H, n, n)) - 0.4).astype(np.float32)
    a = rng.random((L, H, n, n)).astype(np.float32); a /= a.sum(-1, keepdims=True)
    return Attribution(scores=s, attention=a, tokens=tokens, token_type_ids=np.zeros(n, dtype=np.int64), target=0,
                       target_label=tokens[1], prob=0.5, layer_zero_probs=np.full(L, 0.5), completeness=np.zeros(L),
                       layers=[0, 1], num_layers=L, rule="gauss-legendre", steps=2, text=tokens[2],
                       model_name=tokens[3])
''')

HOSTILE_TOKENS = ["[CLS]", "<script>window.__pwned=1</script>", "<img src=x onerror=\"window.__pwned=1\">",
                  "</div><b>bold</b>", "&amp; &lt;", "\"'`", "<svg onload=window.__pwned=1>", "[SEP]"]


SLOW_TEXT = " ".join(["the movie was not very good , but the actors were great and i love this film ."] * 2)


def _notebook() -> nbformat.NotebookNode:
    cells = [
        TINY_MODEL_SRC + "\nimport attattr_widgets as aw\nmodel, tok = make_tiny()\n" + HOSTILE_SRC,
        # displayed while the run streams (about 3 s): the static fallback is refreshed when it ends (next cell
        # waits); "tracked 1" says the display happened while running
        ("slow_model, slow_tok = make_tiny(layers=12, heads=4, hidden=64, seed=1)\n"
         f"ex = aw.Explorer(slow_model, slow_tok)\nex.explain({SLOW_TEXT!r}, steps=64)\n"
         "display(ex)\nprint('tracked', len(ex._displays))"),
        "ex.wait();",
        "ex.tree_view(threshold=0.1)",
        ('examples = [{"text": t, "label": y} for t, y in [("a great fun movie", 1), ("boring awful plot", 0),'
         ' ("the best film ever", 1), ("the worst story", 0)]]\n'
         'hv = aw.HeadsView(model, tok, examples, methods=("attattr", "random"), fractions=[0, 0.5, 1], steps=2)\n'
         "hv.run()\ndisplay(hv)\nprint('tracked', len(hv._displays))"),
        "hv.wait();",
        ("tv = aw.TriggersView(model, tok, examples, examples, evaluate=1, sample=2, steps=2, min_score=0.0)\n"
         "tv.run()\ntv.wait()\ntv"),
        f"aw.Explorer.from_attribution(hostile_attr({HOSTILE_TOKENS!r}))",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_nbconvert_without_widget_state_shows_static_views(tmp_path, browser, artifacts):
    nb_path = tmp_path / "reach.ipynb"
    nbformat.write(_notebook(), nb_path)
    # the kernel spec's "python" is looked up on PATH: this environment's first
    path = os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = _clean_env(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PATH=path,
                     JUPYTER_PLATFORM_DIRS="1", IPYTHONDIR=str(tmp_path / "ipython"))
    _run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
          "--ExecutePreprocessor.store_widget_state=False", "--ExecutePreprocessor.timeout=300",
          "--output", "reach.html", str(nb_path)], cwd=tmp_path, env=env, timeout=600)
    html_path = tmp_path / "reach.html"
    text = html_path.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" not in text
    assert "object at 0x" not in text
    assert text.count("tracked 1") == 2, "the Explorer / HeadsView were not displayed while running"
    ctx = hermetic_context(browser, local_only, viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(html_path.as_uri())
        page.wait_for_selector(".attattr-static-explorer")
        counts = page.evaluate("""() => Object.fromEntries(['explorer', 'tree', 'heads', 'triggers'].map(
            (k) => [k, document.querySelectorAll('.attattr-static-' + k).length]))""")
        assert counts == {"explorer": 2, "tree": 1, "heads": 1, "triggers": 1}, counts
        first = page.locator(".attattr-static-explorer").first
        ftext = first.inner_text()
        assert "Running" not in ftext and "p = " in ftext, ftext[:400]  # refreshed when the streamed run ended
        assert first.locator("svg image").count() >= 2  # attention and attribution maps
        heads = page.locator(".attattr-static-heads").inner_text()
        assert "Running" not in heads and "Importance · attattr" in heads and "Accuracy vs." in heads
        assert page.locator(".attattr-static-triggers tr").count() >= 2
        hostile = page.locator(".attattr-static-explorer").nth(1)
        htext = hostile.inner_text()
        for t in HOSTILE_TOKENS[1:]:
            assert t in htext, t
        assert page.evaluate("() => window.__pwned") is None
        assert hostile.locator("script, img, [onerror], [onload]").count() == 0
        assert hostile.locator("b", has_text="bold").count() == 0
        page.screenshot(path=str(artifacts / "reach-nbconvert-static.png"), full_page=True)
    finally:
        ctx.close()


# ------------------------------------------------------------------------------------------ live JupyterLab
def test_live_lab_view_gets_the_finished_snapshot_and_stays_one_view(browser, lab):
    """Displayed while streaming in JupyterLab: when the run ends the output's text/html (what a notebook saved
    without widget state shows) becomes the finished snapshot, and JupyterLab still shows exactly one view (it
    redraws the view for the update)."""
    setup = (TINY_MODEL_SRC + "\nfrom attattr_widgets.widgets import Explorer\n"
             "model, tok = make_tiny(layers=12, heads=4, hidden=64, seed=1)\nprint('ready')")
    show = (f"ex = Explorer(model, tok)\nex.explain({SLOW_TEXT!r}, steps=64)\n"
            "display(ex)\nprint('tracked', len(ex._displays))")
    ctx = hermetic_context(browser, lab.is_local, viewport={"width": 1280, "height": 1400})
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        nb = LabNotebook(page, lab, "reach-live.ipynb", [setup, show, "ex.wait();"])
        nb.run(0)
        assert "ready" in nb.output_text(0)
        nb.run(1)
        assert "tracked 1" in nb.output_text(1), nb.output_text(1)  # displayed while running
        nb.run(2, timeout=120)
        out = "() => window.jupyterapp.shell.currentWidget.content.widgets[1].model.outputs.get(0).data"
        page.wait_for_function(f"() => !({out})()['text/html'].includes('Running')", timeout=30_000)
        data = page.evaluate(out)
        assert "application/vnd.jupyter.widget-view+json" in data
        assert "attattr-static-explorer" in data["text/html"] and "p = " in data["text/html"]
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.content.widgets[1].node"
            ".querySelector('.attattr-explorer')?.dataset.state === 'done'", timeout=60_000)
        assert nb.cell(1).locator(".attattr-explorer").count() == 1
        assert not errors, errors
        nb.shutdown()
    finally:
        ctx.close()
