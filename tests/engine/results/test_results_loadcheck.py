"""Crafted result files (attattr_widgets/engine/results/loadcheck.py): every field edited to a wrong type, length
or shape, forged array headers, pickles, files that are not result files and oversized records each get one
ResultFileError naming the file and the problem, before anything is allocated or built."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from result_samples import make_attr, results_of_every_kind

from attattr_widgets.engine.results import Attribution, ResultFileError, load_result, save_result


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
    ("attr-layer-panels-unordered", "attribution",
     lambda m, a: _set(_fields(m), "layer_panels", [[[0, 0.5], [0.5, 0.25], [0.25, 1]], None]), "partition"),
    ("attr-layer-panels-pairs", "attribution",
     lambda m, a: _set(_fields(m), "layer_panels", [[[0, 0.5, 1]], None]), "partition"),
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
    from attattr_widgets.engine.results import loadcheck

    path = make_attr().save(tmp_path / "a.npz")
    monkeypatch.setattr(loadcheck, "MAX_META_BYTES", 1024)
    with pytest.raises(ResultFileError, match="__meta__"):
        load_result(path)
