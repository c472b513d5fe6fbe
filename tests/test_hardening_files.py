"""Files: every write is atomic (an interrupted or failed write keeps the previous good file), every loader checks
what it reads before allocating (crafted files get one clear error naming the file), and the CLI turns user
errors into one line and exit code 2, checking output paths before it computes anything."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from attattr_widgets import cli, export, plots
from attattr_widgets.engine import results as R
from attattr_widgets.engine.results import (
    Attribution,
    AttributionTree,
    Correlation,
    Effectiveness,
    HeadImportance,
    PruningCurve,
    ResultFileError,
    TreeEdge,
    TreeNode,
    TriggerPattern,
    TriggerResult,
    load_result,
    save_result,
)
from attattr_widgets.widgets import Explorer, TreeView

L, H, N = 2, 3, 4


def make_attr(prob=0.5, tokens=("[CLS]", "a", "b", "[SEP]")) -> Attribution:
    rng = np.random.default_rng(0)
    return Attribution(scores=rng.normal(size=(L, H, N, N)).astype(np.float32),
                       attention=rng.random(size=(L, H, N, N)).astype(np.float32), tokens=list(tokens),
                       token_type_ids=np.zeros(N, np.int64), target=1, target_label="pos", prob=prob,
                       layer_zero_probs=np.zeros(L), completeness=np.zeros(L), layers=[0, 1], num_layers=L,
                       rule="gauss-legendre", steps=6, label_names=["neg", "pos"])


def make_pattern(score=0.5) -> TriggerPattern:
    return TriggerPattern(tokens=["a", "b"], token_ids=[5, 6], positions=[1, 2], segments=[0, 0],
                          relative=[0.0, 1.0], score=score, layer=0, head=1, pairs=[], pred=0, pred_label="neg",
                          gold=None, prob=0.9, example_index=0, text="a b")


def results_of_every_kind(v: float = 0.5) -> dict:
    fr = np.array([0.0, 0.5, 1.0])
    return {
        "attribution": make_attr(v),
        "head_importance": HeadImportance(np.full((L, H), v), method="attattr", num_examples=3),
        "pruning_curve": PruningCurve("attattr", fr, np.array([0.9, v, 0.3]), np.zeros((3, L, H), bool),
                                      importance=np.ones((L, H))),
        "effectiveness": Effectiveness(np.array([0, 1]), {"attribution": {"smallest-first": np.array([0.9, v])}},
                                       5, 0.9),
        "correlation": Correlation(v, None, None, 2, np.array([0, 1]), np.array([0, 0]), np.array([1.0, 2.0]),
                                   np.array([2.0, 3.0])),
        "attribution_tree": AttributionTree(tokens=list("abcd"), num_layers=L, threshold=v, root=1,
                                            nodes=[TreeNode(1, "b", L), TreeNode(2, "c", 1)],
                                            edges=[TreeEdge(1, 2, 1, 0.9)]),
        "trigger_pattern": make_pattern(v),
        "trigger_result": TriggerResult(make_pattern(v), [{"label": 0, "name": "neg", "n": 3, "before": 1.0,
                                                           "after": v, "drop": 1 - v}], 1.0, v, v, 3),
        "list": [make_pattern(v), make_pattern(v / 2)],
    }


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
        from test_hardening_files import make_attr
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
# crafted files


def _members(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def _write(path, members: dict, meta: dict | str | None = None):
    if meta is not None:
        members = {**members, "__meta__": np.array(meta if isinstance(meta, str) else json.dumps(meta))}
    with open(path, "wb") as fh:
        np.savez(fh, **members)
    return path


def _edit(tmp_path, kind: str, fn, name="crafted.npz"):
    """Save a valid ``kind`` result, let ``fn(meta, arrays)`` change it, write it back."""
    src = save_result(results_of_every_kind()[kind], tmp_path / "valid.npz")
    arrays = _members(src)
    meta = json.loads(str(arrays.pop("__meta__")))
    fn(meta, arrays)
    return _write(tmp_path / name, arrays, meta)


def _fields(meta):
    return meta["fields"]


def _set(d, k, v):
    d[k] = v


CRAFTED = [
    # (id, kind, edit(meta, arrays), words in the message)
    ("attr-tokens-vs-maps", "attribution", lambda m, a: _set(_fields(m), "tokens", ["a", "b"]), "scores"),
    ("attr-layers-vs-maps", "attribution", lambda m, a: _set(_fields(m), "layers", [0]), "layers"),
    ("attr-layer-out-of-range", "attribution", lambda m, a: _set(_fields(m), "layers", [0, 7]), "layers"),
    ("attr-layer-repeated", "attribution", lambda m, a: _set(_fields(m), "layers", [1, 1]), "repeat"),
    ("attr-no-layers", "attribution", lambda m, a: _set(_fields(m), "layers", []), "no layers"),
    ("attr-tokens-not-strings", "attribution", lambda m, a: _set(_fields(m), "tokens", [1, 2, 3, 4]), "tokens"),
    ("attr-target-type", "attribution", lambda m, a: _set(_fields(m), "target", "1"), "target"),
    ("attr-target-class", "attribution", lambda m, a: _set(_fields(m), "target", 5), "target"),
    ("attr-missing-tokens", "attribution", lambda m, a: _fields(m).pop("tokens"), "tokens"),
    ("attr-fields-not-object", "attribution", lambda m, a: _set(m, "fields", [1, 2]), "fields"),
    ("attr-attention-shape", "attribution", lambda m, a: _set(a, "attention", a["attention"][:, :, :2]),
     "attention"),
    ("attr-attention-missing", "attribution", lambda m, a: a.pop("attention"), "attention"),
    ("attr-scores-dtype", "attribution", lambda m, a: _set(a, "scores", a["scores"].astype("U3")), "dtype"),
    ("attr-types-length", "attribution", lambda m, a: _set(a, "token_type_ids", np.zeros(9, np.int64)),
     "token_type_ids"),
    ("attr-completeness-length", "attribution", lambda m, a: _set(a, "completeness", np.zeros(5)),
     "completeness"),
    ("attr-layer-steps-length", "attribution", lambda m, a: _set(_fields(m), "layer_steps", [1, 2, 3]),
     "layer_steps"),
    ("attr-layer-panels-length", "attribution", lambda m, a: _set(_fields(m), "layer_panels", [None]),
     "layer_panels"),
    ("attr-layer-panels-gap", "attribution",
     lambda m, a: _set(_fields(m), "layer_panels", [[[0, 0.5], [0.6, 1]], None]), "partition"),
    ("attr-layer-panels-strings", "attribution",
     lambda m, a: _set(_fields(m), "layer_panels", [None, [["0", 1]]]), "layer_panels"),
    ("importance-3d", "head_importance", lambda m, a: _set(a, "scores", np.ones((2, 2, 2))), "scores"),
    ("importance-meta-field", "head_importance", lambda m, a: _set(m["meta"], "evil", 1), "evil"),
    ("importance-meta-type", "head_importance", lambda m, a: _set(m["meta"], "num_examples", "3"),
     "num_examples"),
    ("curve-lengths", "pruning_curve", lambda m, a: _set(m["data"], "accuracy", [0.1]), "accuracies"),
    ("curve-ragged", "pruning_curve", lambda m, a: _set(m["data"], "pruned", [[[0]], [[0, 1]], [[0]]]), "ragged"),
    ("curve-fraction-range", "pruning_curve", lambda m, a: _set(m["data"], "fractions", [0, 5, 1]), "fractions"),
    ("curve-accuracy-str", "pruning_curve", lambda m, a: _set(m["data"], "accuracy", ["x", 0, 0]), "accuracy"),
    ("curve-importance-shape", "pruning_curve", lambda m, a: _set(m["data"], "importance", [[1.0]]),
     "importance"),
    ("effectiveness-length", "effectiveness",
     lambda m, a: _set(m["data"]["accuracy"]["attribution"], "smallest-first", [1.0]), "accuracy"),
    ("correlation-length", "correlation", lambda m, a: _set(m["data"], "x", [1.0]), "'x'"),
    ("tree-root", "attribution_tree", lambda m, a: _set(m["data"], "root", 99), "root"),
    ("tree-edge", "attribution_tree", lambda m, a: _set(m["data"]["edges"][0], "child", -4), "edge 0"),
    ("tree-node-field", "attribution_tree", lambda m, a: _set(m["data"]["nodes"][0], "x", 1), "node 0"),
    ("pattern-lengths", "trigger_pattern", lambda m, a: _set(m["data"], "token_ids", [1]), "token_ids"),
    ("pattern-unknown-field", "trigger_pattern", lambda m, a: _set(m["data"], "__class__", "os.system"),
     "unknown field"),
    ("result-per-class", "trigger_result", lambda m, a: m["data"]["per_class"][0].pop("drop"), "drop"),
    ("result-pattern", "trigger_result", lambda m, a: _set(m["data"]["pattern"], "tokens", "ab"), "tokens"),
    ("list-items", "list", lambda m, a: _set(m, "items", {"0": 1}), "items"),
    ("list-item-kind", "list", lambda m, a: _set(m, "item_kind", "evil"), "evil"),
    ("kind-unknown", "correlation", lambda m, a: _set(m, "kind", "subprocess"), "subprocess"),
    ("version", "correlation", lambda m, a: _set(m, "format_version", 99), "format"),
]


@pytest.mark.parametrize("case", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_result_files_get_one_clear_error(tmp_path, case):
    _id, kind, edit, words = case
    path = _edit(tmp_path, kind, edit)
    with pytest.raises(ResultFileError) as info:
        load_result(path)
    msg = str(info.value)
    assert str(path) in msg and words in msg, msg


@pytest.mark.parametrize("kind", sorted(results_of_every_kind()))
def test_every_kind_round_trips_and_refuses_another_kind(tmp_path, kind):
    obj = results_of_every_kind()[kind]
    path = save_result(obj, tmp_path / f"{kind}.npz")
    back = load_result(path)
    assert type(back) is type(obj)
    other = Correlation if kind != "correlation" else PruningCurve
    with pytest.raises(ResultFileError, match="holds a"):
        other.load(path)


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_forged_shapes_are_refused_from_the_header_before_allocating(tmp_path):
    import tracemalloc

    good = _members(make_attr().save(tmp_path / "a.npz"))
    meta = json.loads(str(good["__meta__"]))
    meta["fields"]["tokens"] = ["t"] * 100_000
    meta["fields"]["layers"] = list(range(2))

    def npy(a):
        b = io.BytesIO()
        np.save(b, a)
        return b.getvalue()

    members = {f"{k}.npy": npy(v) for k, v in good.items() if k != "__meta__"}
    members["__meta__.npy"] = npy(np.array(json.dumps(meta)))
    members["scores.npy"] = _npy_header((2, 3, 100_000, 100_000)) + b"\0" * 64   # claims 240 GB
    path = _zip(tmp_path / "forged.npz", members)
    tracemalloc.start()
    with pytest.raises(ResultFileError, match="scores") as info:
        load_result(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 << 20 and str(path) in str(info.value)
    # a plausible size but missing bytes: truncated
    members["scores.npy"] = _npy_header((2, 3, 4, 4)) + b"\0" * 10
    meta["fields"]["tokens"] = ["t"] * 4
    members["__meta__.npy"] = npy(np.array(json.dumps(meta)))
    with pytest.raises(ResultFileError, match="truncated"):
        load_result(_zip(tmp_path / "short.npz", members))


def test_pickles_are_refused(tmp_path):
    good = _members(make_attr().save(tmp_path / "a.npz"))
    good["scores"] = np.array([{"__reduce__": "os.system"}], dtype=object)
    path = tmp_path / "pickle.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **good)  # np.savez pickles object arrays
    with pytest.raises(ResultFileError, match="pickle"):
        Attribution.load(path)


@pytest.mark.parametrize("content,words", [
    (b"hello, not a zip", "not an attattr result file"),
    (b"\x93NUMPY" + b"\0" * 64, "not an attattr result file"),   # a bare .npy (np.load would read it at once)
    (b"", "not an attattr result file"),
])
def test_files_that_are_not_result_files(tmp_path, content, words):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ResultFileError, match=words):
        load_result(path)


def test_bad_records(tmp_path):
    arrays = {"x": np.zeros(3)}
    for meta, words in [(None, "no __meta__"), ("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object")]:
        path = _write(tmp_path / "m.npz", arrays, meta)
        with pytest.raises(ResultFileError, match=words):
            load_result(path)
    path = _write(tmp_path / "m2.npz", {"__meta__": np.zeros((2, 2))})
    with pytest.raises(ResultFileError, match="JSON string"):
        load_result(path)
    with pytest.raises(ResultFileError, match="no such file"):
        load_result(tmp_path / "missing.npz")


def test_oversized_record_is_refused_before_reading(tmp_path, monkeypatch):
    from attattr_widgets.engine import loadcheck

    path = make_attr().save(tmp_path / "a.npz")
    monkeypatch.setattr(loadcheck, "MAX_META_BYTES", 1024)
    with pytest.raises(ResultFileError, match="__meta__"):
        load_result(path)


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
