"""Files: every write is atomic (an interrupted or failed write keeps the previous good file, whichever floor
wrote it), and the CLI turns user errors into one line and exit code 2, checking output paths before it computes
anything. What a loader does with crafted result files: tests/engine/results/test_results_loadcheck.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from result_samples import L, H, make_attr, results_of_every_kind

from attattr_widgets import cli, export, plots
from attattr_widgets.engine.results import Attribution, load_result, save_result
from attattr_widgets.widgets import Explorer, TreeView

# ------------------------------------------------------------------------------------------------------------
# atomic writes


def _writers():
    """name -> write(path, version): every file the library writes, at two different contents."""
    out = {f"save_result:{k}": (lambda k: lambda p, v: save_result(results_of_every_kind(v)[k], p))(k)
           for k in results_of_every_kind()}
    out["Attribution.save"] = lambda p, v: make_attr(v).save(p)
    out["Explorer.to_html"] = lambda p, v: Explorer.from_attribution(make_attr(v)).to_html(p)
    out["TreeView.to_html"] = lambda p, v: TreeView(make_attr(v), threshold=v).to_html(p)
    out["export.to_html"] = lambda p, v: export.to_html([Explorer.from_attribution(make_attr(v))], p, title=str(v))
    out["plots.save_html"] = lambda p, v: plots.save_html(
        plots.pruning_plot([{"method": "m", "fractions": [0, 1], "accuracy": [0.9, v]}]), p)
    out["cli.demo_page"] = lambda p, v: cli.demo_page(make_attr(v), [results_of_every_kind(v)["pruning_curve"]],
                                                      np.ones((L, H)), p)
    return out


WRITERS = _writers()


class _HalfWriter:
    """A file object that writes half of the first chunk, then fails (disk full / killed mid-write)."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("fault", ["write-midway", "fsync", "replace"])
def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch, name, fault):
    write = WRITERS[name]
    path = tmp_path / ("out.html" if "html" in name or "page" in name else "out.npz")
    write(path, 0.25)
    good = path.read_bytes()
    mode = os.stat(path).st_mode
    real_fdopen = os.fdopen
    if fault == "write-midway":
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _HalfWriter(real_fdopen(fd, *a, **k)))
    elif fault == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    else:
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(18, "cross-device")))
    with pytest.raises(OSError):
        write(path, 0.75)
    monkeypatch.undo()
    assert path.read_bytes() == good, "the previous good file was damaged"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "a temporary file was left behind"
    assert os.stat(path).st_mode == mode
    if path.suffix == ".npz":
        load_result(path)  # still loads


def test_a_process_killed_mid_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "a.npz"
    make_attr(0.25).save(path)
    good = path.read_bytes()
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from result_samples import make_attr
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)   # dies after the bytes, before the rename
        make_attr(0.75).save({str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert path.read_bytes() == good
    assert Attribution.load(path).prob == 0.25


def test_new_files_get_the_usual_mode(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    p = make_attr().save(tmp_path / "a.npz")
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask


# ------------------------------------------------------------------------------------------------------------
# CLI


def _no_model(*a, **k):
    raise AssertionError("the model was loaded before the output path was checked")


@pytest.mark.parametrize("argv,words", [
    (["explain", "a movie", "--save", "{tmp}"], "--save"),
    (["explain", "a movie", "--html", "{tmp}/file.txt/x.html"], "--html"),
    (["demo", "--out", "{tmp}"], "--out"),
])
def test_cli_checks_output_paths_before_computing(tmp_path, monkeypatch, capsys, argv, words):
    import attattr_widgets.demo as demo

    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setattr(demo, "load_model", _no_model)
    rc = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_user_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import attattr_widgets.demo as demo
    from conftest import make_model, make_tokenizer

    monkeypatch.setattr(demo, "load_model", lambda name: (make_model("bert", layers=1, heads=2), make_tokenizer()))
    for argv, words in [(["explain", "   "], "empty"), (["explain", "a movie", "--target", "9"], "target"),
                        (["explain", "a movie", "--steps", "0"], "steps"),
                        (["explain", "a movie", "--rule", "simpson"], "simpson")]:
        rc = cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2, (argv, err)
        assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_cli_writes_its_outputs(tmp_path, monkeypatch, capsys):
    import attattr_widgets.demo as demo
    from conftest import make_model, make_tokenizer

    monkeypatch.setattr(demo, "load_model", lambda name: (make_model("bert", layers=1, heads=2), make_tokenizer()))
    out = tmp_path / "new" / "a.npz"
    assert cli.main(["explain", "the movie", "--steps", "2", "--save", str(out)]) == 0
    assert Attribution.load(out).tokens[1] == "the"


def test_demo_cache_entry_that_is_unreadable_is_recomputed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATTATTR_CACHE", str(tmp_path))
    key = {"what": "t", "v": 1}
    value, hit = cli._cached(key, lambda: {"x": 1})
    assert (value, hit) == ({"x": 1}, False)
    entry = next((tmp_path / "results").iterdir())
    entry.write_text('{"x": ')  # truncated by a crash of an older version
    assert cli._cached(key, lambda: {"x": 2}) == ({"x": 2}, False)
    assert cli._cached(key, lambda: {"x": 3}) == ({"x": 2}, True)


@pytest.mark.parametrize("name", ["Attribution.save", "export.to_html", "plots.save_html", "save_result:list"])
def test_writing_onto_a_folder_or_through_a_file_names_the_path(tmp_path, name):
    from attattr_widgets.engine.errors import OutputPathError

    (tmp_path / "file.txt").write_text("x")
    for target, words in [(tmp_path, "is a folder"), (tmp_path / "file.txt" / "out.npz", "is a file")]:
        with pytest.raises(OutputPathError, match=words) as info:
            WRITERS[name](target, 0.5)
        assert str(target if words == "is a folder" else tmp_path / "file.txt") in str(info.value)
    assert (tmp_path / "file.txt").read_text() == "x"
