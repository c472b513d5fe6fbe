"""Notebook runner: executes with this env's kernel, sets ATTATTR_SMALL, reports the failing cell."""
from __future__ import annotations

import sys

import nbformat
import pytest

from attattr_widgets import notebooks


def _nb(path, *sources, md=True):
    cells = [nbformat.v4.new_markdown_cell("# title")] if md else []
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def nbdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("nbs")
    (d / "data.txt").write_text("hello")
    _nb(d / "a_ok.ipynb",
        "import os, sys\nsmall = os.environ.get('ATTATTR_SMALL')\nexe = sys.executable",
        "print(small, exe, open('data.txt').read())",          # cwd = the notebook's directory
        "import attattr_widgets; print(attattr_widgets.__file__)")
    return d


def test_runs_with_small_env_and_current_python(nbdir, tmp_path):
    res = notebooks.run_notebooks([nbdir / "a_ok.ipynb"], small=True, timeout=120, save_to=tmp_path, log=None)
    assert len(res) == 1 and res[0].ok and res[0].cells == 3
    out = nbformat.read(res[0].saved_to, as_version=4)
    text = out.cells[2].outputs[0]["text"]
    assert text.split()[0] == "1"
    assert text.split()[1] == sys.executable
    assert text.split()[2] == "hello"


def test_failure_names_the_cell(tmp_path, nbdir):
    bad = _nb(tmp_path / "b_bad.ipynb", "x = 1", "def f():\n    return 1 / 0\nf()", "print('never')")
    ok = nbdir / "a_ok.ipynb"
    with pytest.raises(notebooks.NotebooksFailed) as ei:
        notebooks.run_notebooks([bad, ok], small=False, timeout=120, log=None)
    msg = str(ei.value)
    assert "1 of 2 notebook(s) failed" in msg
    assert "b_bad.ipynb failed in cell 2 (code cell #2): ZeroDivisionError" in msg
    assert "| def f():" in msg and "return 1 / 0" in msg
    assert "\x1b[" not in msg
    r_bad, r_ok = ei.value.results
    assert r_bad.error.cell_index == 2 and r_bad.error.exec_count == 2 and r_ok.ok


def test_small_false_unsets_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTATTR_SMALL", "1")
    p = _nb(tmp_path / "c.ipynb", "import os\nassert os.environ.get('ATTATTR_SMALL') is None", md=False)
    assert notebooks.run_notebooks(p, small=False, log=None)[0].ok


def test_cell_timeout_is_reported_and_kernels_are_shut_down(tmp_path):
    import os

    p = _nb(tmp_path / "slow.ipynb", "import os\nopen('pid', 'w').write(str(os.getpid()))",
            "import time\ntime.sleep(30)", md=False)
    r = notebooks.run_notebook(p, timeout=2)
    assert not r.ok and r.error.exec_count == 2 and "Timeout" in r.error.ename
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                                  # the kernel is gone (and reaped)


def test_directory_expansion_and_cli(tmp_path, capsys):
    d = tmp_path / "nbs"
    (d / ".ipynb_checkpoints").mkdir(parents=True)
    _nb(d / "one.ipynb", "1 + 1", md=False)
    _nb(d / ".ipynb_checkpoints" / "one-checkpoint.ipynb", "raise SystemExit", md=False)
    assert notebooks.find_notebooks(d) == [d / "one.ipynb"]
    assert notebooks.main([str(d), "--timeout", "60"]) == 0
    _nb(d / "two.ipynb", "raise ValueError('boom')", md=False)
    assert notebooks.main([str(d), "--full"]) == 1
    assert "ValueError: boom" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        notebooks.find_notebooks(tmp_path / "missing")
