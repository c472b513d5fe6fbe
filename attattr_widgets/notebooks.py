"""Execute notebooks headlessly (docs / CI) and fail loudly with the cell that broke.

``run_notebooks(paths, small=True)`` runs every notebook with nbclient on a ``python3`` kernel of *this*
Python environment (``sys.executable``, whatever kernelspecs the user has installed), with
``ATTATTR_SMALL=1`` in the kernel's environment when ``small`` (notebooks then pick tiny models / few
examples) and ``HF_HUB_OFFLINE=1``. Each notebook runs in its own directory. On failure a
:class:`NotebookError` names the notebook, the cell number, the cell source and the error.

CLI: ``python -m attattr_widgets.notebooks [--full] [--timeout S] [--save-to DIR] PATH...`` (the project CLI
forwards ``run-notebooks`` here via :func:`main`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["NotebookError", "NotebookResult", "find_notebooks", "main", "run_notebook", "run_notebooks"]

_PKG_PARENT = str(pathlib.Path(__file__).resolve().parent.parent)


@dataclass
class NotebookResult:
    path: pathlib.Path
    seconds: float
    cells: int
    error: NotebookError | None = None
    saved_to: pathlib.Path | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class NotebookError(Exception):
    """A notebook failed: which one, which cell, what it said."""

    path: pathlib.Path
    cell_index: int | None          # index among all cells (0-based); None: kernel/timeout/setup failure
    exec_count: int | None          # number among code cells (1-based), as shown "In [n]"
    source: str
    ename: str
    evalue: str
    traceback: str = field(default="", repr=False)

    def __str__(self) -> str:
        where = (f"cell {self.cell_index} (code cell #{self.exec_count})" if self.cell_index is not None
                 else "kernel")
        src = "\n".join("    | " + line for line in self.source.splitlines()[:25])
        if self.source.count("\n") >= 25:
            src += "\n    | …"
        parts = [f"notebook {self.path} failed in {where}: {self.ename}: {self.evalue}"]
        if src:
            parts.append("  cell source:\n" + src)
        if self.traceback:
            parts.append("  traceback:\n" + _indent(self.traceback, "    "))
        return "\n".join(parts)


class NotebooksFailed(RuntimeError):
    def __init__(self, results: list[NotebookResult]):
        self.results = results
        failed = [r for r in results if r.error is not None]
        msg = [f"{len(failed)} of {len(results)} notebook(s) failed:"]
        for r in failed:
            msg.append("")
            msg.append(str(r.error))
        super().__init__("\n".join(msg))


def _indent(s: str, pre: str) -> str:
    return "\n".join(pre + line for line in s.splitlines())


def _strip_ansi(s: str) -> str:
    import re
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s)


def find_notebooks(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[pathlib.Path]:
    """Expand files and directories (recursively, sorted) into ``.ipynb`` paths; skips checkpoints."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[pathlib.Path] = []
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"run_notebooks: {p} does not exist")
    return out


def _kernel_manager(kernel_dir: pathlib.Path):
    """A KernelManager whose ``python3`` is this interpreter (not a user-installed kernelspec)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = kernel_dir / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (attattr-widgets)", "language": "python",
        "metadata": {"debugger": False},
    }))
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm)


def _kernel_env(small: bool, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ATTATTR_SMALL", None)
    if small:
        env["ATTATTR_SMALL"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    pp = env.get("PYTHONPATH", "")
    if _PKG_PARENT not in pp.split(os.pathsep):      # the kernel imports the same attattr_widgets as we do
        env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + pp if pp else "")
    env.update(extra or {})
    return env


def run_notebook(path: str | os.PathLike, *, small: bool = True, timeout: float | None = 600,
                 save_to: str | os.PathLike | None = None, env: dict[str, str] | None = None,
                 startup_timeout: float = 120) -> NotebookResult:
    """Execute one notebook in its own directory; never raises for cell errors (see ``result.error``).

    ``timeout``: seconds per cell (None = unlimited). ``save_to``: directory where the executed notebook
    (outputs and widget state included) is written, also when it failed.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = pathlib.Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    t0 = time.perf_counter()
    err: NotebookError | None = None
    with tempfile.TemporaryDirectory(prefix="attattr-kernels-") as kd:
        km = _kernel_manager(pathlib.Path(kd))
        client = NotebookClient(
            nb, km=km, timeout=timeout, startup_timeout=startup_timeout,
            kernel_name="python3", allow_errors=False, record_timing=True, store_widget_state=True,
            shutdown_kernel="immediate",
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            # cleanup_kc: shut the kernel down at the end (nbclient keeps kernels of a km it did not create)
            client.execute(env=_kernel_env(small, env), cleanup_kc=True)
        except CellExecutionError as e:
            err = _cell_error(path, nb, code_cells, e)
        except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as e:
            idx = _current_cell(nb)
            err = NotebookError(path, idx, code_cells.index(idx) + 1 if idx in code_cells else None,
                                nb.cells[idx].source if idx is not None else "", type(e).__name__,
                                _strip_ansi(str(e)).strip().splitlines()[0] if str(e) else "")
        finally:
            if km.has_kernel:                      # e.g. after a timeout: never leave a kernel behind
                from jupyter_core.utils import run_sync

                with contextlib.suppress(Exception):   # best effort; the result already says what failed
                    run_sync(km.shutdown_kernel)(now=True)
    saved = None
    if save_to is not None:
        from .engine.results import atomic_write_text

        saved = pathlib.Path(save_to) / path.name
        text = nbformat.writes(nb)
        atomic_write_text(saved, text if text.endswith("\n") else text + "\n")  # as nbformat.write, atomically
    return NotebookResult(path, time.perf_counter() - t0, len(code_cells), err, saved)


def _current_cell(nb) -> int | None:
    """The last code cell that started executing (per nbclient's timing metadata)."""
    last = None
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and c.get("metadata", {}).get("execution", {}).get(
                "iopub.execute_input"):
            last = i
    return last


def _cell_error(path, nb, code_cells, e) -> NotebookError:
    idx = None
    for i in code_cells:      # the failing cell is the one with an error output
        if any(o.get("output_type") == "error" for o in nb.cells[i].get("outputs", [])):
            idx = i
    if idx is None:
        idx = _current_cell(nb)
    tb = ""
    if idx is not None:
        for o in nb.cells[idx].get("outputs", []):
            if o.get("output_type") == "error":
                tb = _strip_ansi("\n".join(o.get("traceback", [])))
    return NotebookError(path, idx, code_cells.index(idx) + 1 if idx in code_cells else None,
                         nb.cells[idx].source if idx is not None else "",
                         getattr(e, "ename", type(e).__name__), getattr(e, "evalue", str(e)), tb)


def run_notebooks(paths: str | os.PathLike | Sequence[str | os.PathLike], small: bool = True,
                  timeout: float | None = 600, *, save_to: str | os.PathLike | None = None,
                  fail_fast: bool = False, env: dict[str, str] | None = None,
                  log=print) -> list[NotebookResult]:
    """Execute notebooks (files or directories) and raise if any failed.

    Every notebook runs even after a failure (unless ``fail_fast``); then :class:`NotebooksFailed` (a
    RuntimeError) is raised whose message shows, for each failed notebook, the cell number, its source and
    the traceback. ``timeout`` is per cell, in seconds. Returns the results when all passed.
    """
    nbs = find_notebooks(paths)
    if not nbs:
        raise FileNotFoundError(f"run_notebooks: no .ipynb under {paths}")
    results = []
    for p in nbs:
        if log:
            log(f"[run-notebooks] {p} ({'small' if small else 'full'}) …", flush=True)
        r = run_notebook(p, small=small, timeout=timeout, save_to=save_to, env=env)
        results.append(r)
        if log:
            log(f"[run-notebooks] {p}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f}s", flush=True)
        if not r.ok and fail_fast:
            break
    if any(not r.ok for r in results):
        raise NotebooksFailed(results)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("paths", nargs="+", help="notebooks or directories of notebooks")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--small", dest="small", action="store_true", default=True,
                   help="tiny models / few examples (ATTATTR_SMALL=1, the default)")
    g.add_argument("--full", dest="small", action="store_false", help="full-size runs")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--save-to", default=None, help="write executed notebooks to this directory")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing notebook")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="run-notebooks", description=__doc__.split("\n")[0]))
    return run_from_args(parser.parse_args(argv))


def run_from_args(a: argparse.Namespace) -> int:
    """Run the notebooks named by arguments parsed with :func:`add_arguments`; 1 if any failed."""
    try:
        run_notebooks(a.paths, small=a.small, timeout=a.timeout, save_to=a.save_to, fail_fast=a.fail_fast)
    except NotebooksFailed as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
