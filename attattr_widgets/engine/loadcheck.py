"""What a result file must hold, checked before anything is built or allocated.

:func:`check_record` is called by :func:`~attattr_widgets.engine.results.load_result` once the JSON record is
parsed. It reads only the ``.npy`` *headers* of the arrays (shape and dtype, a few hundred bytes each), so a file
that claims a 10¹² × 10¹² array, holds Python objects, is truncated, or whose tokens, maps and layer lists disagree
is refused with one :class:`~attattr_widgets.engine.results.ResultFileError` naming the file and what is wrong —
never a numpy ``MemoryError`` / ``ValueError`` or a half-built result. Pickles are never loaded
(``allow_pickle=False`` and object dtypes are refused from the header).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_META_BYTES", "check_meta_size", "check_record", "max_array_bytes"]

#: Largest JSON record accepted (the record holds tokens, texts and small result tables, never maps).
MAX_META_BYTES = 256 << 20


def max_array_bytes() -> int:
    """Largest array a file may declare: 3/4 of this machine's physical memory (numpy loads .npz arrays whole)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.75)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 << 30


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


class _File:
    def __init__(self, path: Path, data):
        from .results import ResultFileError

        self.path, self.data, self.Error = path, data, ResultFileError
        self.limit = max_array_bytes()

    def fail(self, what: str):
        raise self.Error(f"{self.path}: {what}")

    # -- arrays: headers only -----------------------------------------------------------------------------
    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        if key not in self.data.files:
            self.fail(f"array {key!r} is missing")
        name = key + ".npy"
        try:
            info = self.data.zip.getinfo(name)
            with self.data.zip.open(name) as fh:
                version = np.lib.format.read_magic(fh)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, _fortran, dtype = reader(fh)
                offset = fh.tell()
        except Exception as exc:  # noqa: BLE001 - every unreadable header gets the same clear error
            self.fail(f"array {key!r} is unreadable ({type(exc).__name__}: {exc})")
        if dtype.hasobject:
            self.fail(f"array {key!r} holds Python objects (a pickle), which are never loaded")
        if any(int(s) < 0 for s in shape):
            self.fail(f"array {key!r} declares a negative shape {shape}")
        nbytes = math.prod(int(s) for s in shape) * dtype.itemsize
        if nbytes > self.limit:
            self.fail(f"array {key!r} declares shape {tuple(shape)} ({_gib(nbytes)}), more than this machine can "
                      f"load ({_gib(self.limit)})")
        if nbytes > info.file_size - offset:
            self.fail(f"array {key!r} declares shape {tuple(shape)} ({nbytes} bytes) but the file holds "
                      f"{info.file_size - offset}: the file is truncated or was edited")
        return tuple(int(s) for s in shape), dtype

    def array(self, key: str, shape: tuple, kinds: str, what: str) -> tuple[int, ...]:
        """Check ``key``'s header: ``shape`` entries are ints (must match) or None (any); dtype kind in ``kinds``."""
        got, dtype = self.header(key)
        if len(got) != len(shape) or any(w is not None and w != g for w, g in zip(shape, got)):
            want = "[" + ", ".join("*" if w is None else str(w) for w in shape) + "]"
            self.fail(f"array {key!r} ({what}) has shape {list(got)}, expected {want}")
        if dtype.kind not in kinds:
            names = {"f": "floating-point", "i": "integer", "u": "unsigned integer", "b": "boolean"}
            self.fail(f"array {key!r} ({what}) has dtype {dtype}, expected "
                      + " or ".join(names.get(k, k) for k in kinds))
        return got

    # -- JSON fields ----------------------------------------------------------------------------------------
    def fields(self, d: Any, where: str, spec: Mapping[str, str], required: tuple[str, ...] = (),
               closed: bool = False) -> dict:
        if not isinstance(d, dict):
            self.fail(f"{where} is a {type(d).__name__}, expected a JSON object")
        for k in required:
            if k not in d:
                self.fail(f"{where} has no {k!r} field")
        if closed:
            extra = sorted(set(d) - set(spec))
            if extra:
                self.fail(f"{where} has unknown field(s) {extra}")
        for k, kind in spec.items():
            if k in d and not _is(d[k], kind):
                self.fail(f"{where}: field {k!r} is {_short(d[k])}, expected {kind}")
        return d


def _short(v: Any) -> str:
    r = repr(v)
    return (r if len(r) <= 50 else r[:49] + "…") + f" ({type(v).__name__})"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_ATOMS = {"str": lambda v: isinstance(v, str), "int": _is_int, "num": _is_num, "bool": lambda v: isinstance(v, bool),
          "dict": lambda v: isinstance(v, dict), "None": lambda v: v is None}


def _is(v: Any, kind: str) -> bool:
    """Tiny type language: ``"int"``, ``"str|None"``, ``"list[int]"``, ``"list[dict]"``, ``"int|str"`` …"""
    for alt in kind.split("|"):
        if alt.startswith("list[") and isinstance(v, list):
            inner = _ATOMS[alt[5:-1]]
            if all(inner(x) for x in v):
                return True
        elif alt == "list" and isinstance(v, list):
            return True
        elif alt in _ATOMS and _ATOMS[alt](v):
            return True
    return False


def _nested_shape(f: _File, v: Any, where: str, depth: int) -> tuple[int, ...]:
    """Shape of a rectangular nested list of numbers of ``depth`` levels (no ragged rows, no strings)."""
    if depth == 0:
        if not _is_num(v):
            f.fail(f"{where} holds {_short(v)}, expected a number")
        return ()
    if not isinstance(v, list):
        f.fail(f"{where} is {_short(v)}, expected a list")
    inner = [_nested_shape(f, x, where, depth - 1) for x in v]
    if inner and any(s != inner[0] for s in inner):
        f.fail(f"{where} is ragged (rows of different lengths)")
    return (len(v), *(inner[0] if inner else (0,) * (depth - 1)))


# --------------------------------------------------------------------------------------------------------
# one checker per kind


def _attribution(f: _File, meta: dict, prefix: str, where: str) -> None:
    m = f.fields(meta.get("fields"), f"{where} 'fields'", {
        "tokens": "list[str]", "target": "int", "target_label": "str", "prob": "num", "layers": "list[int]",
        "num_layers": "int", "rule": "str", "steps": "int|str", "score": "str", "text": "str|None",
        "text_pair": "str|None", "model_name": "str", "target_kind": "str", "label_names": "list[str]|None",
        "truncated": "bool", "gold": "int|None", "extra": "dict", "layer_steps": "list[int]",
        "converged": "list[bool]", "tol": "num|None", "store": "str", "nonfinite": "list[int]",
        "layer_panels": "list",
    }, required=("tokens", "target", "layers", "num_layers"))
    n, layers, L_model = len(m["tokens"]), m["layers"], m["num_layers"]
    L = len(layers)
    if L == 0:
        f.fail(f"{where} lists no layers")
    if L_model < 1 or any(not 0 <= x < L_model for x in layers):
        f.fail(f"{where}: layers {layers} are not indices of a {L_model}-layer model")
    if len(set(layers)) != L:
        f.fail(f"{where}: layers {layers} repeat a layer")
    for k in ("layer_steps", "converged", "layer_panels"):
        if m.get(k) and len(m[k]) != L:
            f.fail(f"{where}: {k} has {len(m[k])} entries for {L} layers")
    for i, panels in enumerate(m.get("layer_panels") or []):
        if panels is None:
            continue
        rows, cols = _nested_shape(f, panels, f"{where}: layer_panels[{i}]", 2)
        if rows == 0 or cols != 2 or panels[0][0] != 0 or panels[-1][1] != 1 or any(
                p[1] != q[0] or not p[0] < p[1] for p, q in zip(panels, panels[1:] + [[1, 2]])):
            f.fail(f"{where}: layer_panels[{i}] is not a partition of [0, 1] into [lo, hi] panels")
    shape = f.array(prefix + "scores", (L, None, n, n), "f", f"[layers, heads, tokens, tokens] for {L} layers and "
                    f"{n} tokens")
    f.array(prefix + "attention", shape, "f", "same shape as scores")
    f.array(prefix + "token_type_ids", (n,), "iub", f"one segment id per token ({n})")
    f.array(prefix + "layer_zero_probs", (L,), "f", "one value per layer")
    f.array(prefix + "completeness", (L,), "f", "one value per layer")
    names = m.get("label_names")
    if m.get("target_kind", "class") == "class" and names and not 0 <= m["target"] < len(names):
        f.fail(f"{where}: target {m['target']} is not one of the {len(names)} classes {names}")


def _head_importance(f: _File, meta: dict, prefix: str, where: str) -> None:
    f.fields(meta.get("meta"), f"{where} 'meta'", {"method": "str", "num_examples": "int", "target": "str",
                                                   "extra": "dict"}, closed=True)
    f.array(prefix + "scores", (None, None), "fiu", "[layers, heads]")


def _pruning_curve(f: _File, d: Any, where: str) -> None:
    d = f.fields(d, where, {"method": "str", "order": "str", "num_examples": "int", "rounding": "str",
                            "fractions": "list[num]", "accuracy": "list[num]", "pruned": "list",
                            "importance": "list|None", "extra": "dict"},
                 required=("method", "fractions", "accuracy", "pruned"))
    K = len(d["fractions"])
    if len(d["accuracy"]) != K:
        f.fail(f"{where}: {len(d['accuracy'])} accuracies for {K} fractions")
    if any(not 0 <= x <= 1 for x in d["fractions"]):
        f.fail(f"{where}: fractions must lie in [0, 1]")
    shape = _nested_shape(f, d["pruned"], f"{where} 'pruned'", 3)
    if shape[0] != K:
        f.fail(f"{where}: 'pruned' has {shape[0]} masks for {K} fractions")
    if d.get("importance") is not None:
        imp = _nested_shape(f, d["importance"], f"{where} 'importance'", 2)
        if K and imp != shape[1:]:
            f.fail(f"{where}: 'importance' is {list(imp)} but the masks are {list(shape[1:])}")


def _effectiveness(f: _File, d: Any, where: str) -> None:
    d = f.fields(d, where, {"heads": "list[int]", "accuracy": "dict", "num_examples": "int",
                            "full_accuracy": "num", "target": "str", "extra": "dict"},
                 required=("heads", "accuracy", "num_examples", "full_accuracy"))
    K = len(d["heads"])
    for c, orders in d["accuracy"].items():
        if not isinstance(orders, dict):
            f.fail(f"{where}: accuracy[{c!r}] is not a JSON object")
        for o, v in orders.items():
            if not _is(v, "list[num]") or len(v) != K:
                f.fail(f"{where}: accuracy[{c!r}][{o!r}] must be {K} numbers (one per head count)")


def _correlation(f: _File, d: Any, where: str) -> None:
    d = f.fields(d, where, {"r": "num", "p_value": "num|None", "spearman": "num|None", "n": "int",
                            "layer": "list[int]", "head": "list[int]", "x": "list[num]", "y": "list[num]",
                            "labels": "list[str]"}, required=("r", "n", "layer", "head", "x", "y"))
    for k in ("layer", "head", "x", "y"):
        if len(d[k]) != d["n"]:
            f.fail(f"{where}: {k!r} has {len(d[k])} entries but n = {d['n']}")
    if "labels" in d and len(d["labels"]) != 2:
        f.fail(f"{where}: 'labels' must name the two tasks")


def _attribution_tree(f: _File, d: Any, where: str) -> None:
    d = f.fields(d, where, {"tokens": "list[str]", "num_layers": "int", "threshold": "num", "root": "int",
                            "nodes": "list[dict]", "edges": "list[dict]"},
                 required=("tokens", "num_layers", "threshold", "root", "nodes", "edges"))
    n = len(d["tokens"])
    if not 0 <= d["root"] < max(n, 1):
        f.fail(f"{where}: root {d['root']} is not a token index (0..{n - 1})")
    for i, node in enumerate(d["nodes"]):
        f.fields(node, f"{where} node {i}", {"index": "int", "token": "str", "layer": "int"},
                 required=("index", "token", "layer"), closed=True)
        if not 0 <= node["index"] < n:
            f.fail(f"{where}: node {i} has index {node['index']}, not a token index (0..{n - 1})")
    for i, e in enumerate(d["edges"]):
        f.fields(e, f"{where} edge {i}", {"parent": "int", "child": "int", "layer": "int", "score": "num"},
                 required=("parent", "child", "layer", "score"), closed=True)
        if not (0 <= e["parent"] < n and 0 <= e["child"] < n):
            f.fail(f"{where}: edge {i} ({e['parent']} → {e['child']}) is outside the {n} tokens")


_PATTERN = {"tokens": "list[str]", "token_ids": "list[int]", "positions": "list[int]", "segments": "list[int]",
            "relative": "list[num]", "score": "num", "layer": "int", "head": "int", "pairs": "list[dict]",
            "pred": "int", "pred_label": "str", "gold": "int|None", "prob": "num", "example_index": "int",
            "text": "str", "text_pair": "str|None", "source_tokens": "list[str]"}


def _trigger_pattern(f: _File, d: Any, where: str) -> None:
    d = f.fields(d, where, _PATTERN, required=tuple(k for k in _PATTERN if k not in ("text_pair", "source_tokens")),
                 closed=True)
    n = len(d["tokens"])
    for k in ("token_ids", "positions", "segments", "relative"):
        if len(d[k]) != n:
            f.fail(f"{where}: {k!r} has {len(d[k])} entries for {n} trigger tokens")


def _trigger_result(f: _File, d: Any, where: str) -> None:
    d = f.fields(d, where, {"pattern": "dict", "per_class": "list[dict]", "overall_before": "num",
                            "overall_after": "num", "flip_rate": "num", "n": "int", "truncated": "int"},
                 required=("pattern", "per_class", "overall_before", "overall_after", "flip_rate", "n"),
                 closed=True)
    _trigger_pattern(f, d["pattern"], f"{where} 'pattern'")
    for i, c in enumerate(d["per_class"]):
        f.fields(c, f"{where} per_class {i}", {"label": "int", "name": "str", "n": "int", "before": "num",
                                                "after": "num", "drop": "num"},
                 required=("label", "name", "n", "before", "after", "drop"))


_ARRAY_KINDS = {"attribution": _attribution, "head_importance": _head_importance}
_JSON_KINDS = {"pruning_curve": _pruning_curve, "effectiveness": _effectiveness, "correlation": _correlation,
               "attribution_tree": _attribution_tree, "trigger_pattern": _trigger_pattern,
               "trigger_result": _trigger_result}


def _one(f: _File, kind: str, meta: Any, prefix: str, where: str) -> None:
    if kind in _ARRAY_KINDS:
        f.fields(meta, where, {})
        _ARRAY_KINDS[kind](f, meta, prefix, where)
    elif kind in _JSON_KINDS:
        f.fields(meta, where, {}, required=("data",))
        _JSON_KINDS[kind](f, meta["data"], f"{where} 'data'")
    else:
        f.fail(f"unknown result kind {kind!r} (this version reads {', '.join([*_ARRAY_KINDS, *_JSON_KINDS])})")


def check_meta_size(path: Path, data) -> None:
    """Refuse a ``__meta__`` record larger than :data:`MAX_META_BYTES` from its header, before reading it."""
    f = _File(path, data)
    shape, dtype = f.header("__meta__")
    if dtype.kind != "U" or shape != ():
        f.fail(f"the __meta__ record is a {dtype} array of shape {list(shape)}, expected one JSON string")
    if dtype.itemsize > MAX_META_BYTES:
        f.fail(f"the __meta__ record is {_gib(dtype.itemsize)}, more than the {_gib(MAX_META_BYTES)} a result "
               f"record can be")


def check_record(path: Path, meta: dict, data) -> None:
    """Check the parsed record ``meta`` (kind, fields, types, lengths) and the headers of the arrays it needs."""
    f = _File(path, data)
    kind = meta.get("kind")
    if kind == "list":
        f.fields(meta, "the record", {"item_kind": "str", "items": "list[dict]"}, required=("item_kind", "items"))
        for i, item in enumerate(meta["items"]):
            _one(f, meta["item_kind"], item, f"{i}/", f"item {i}")
    else:
        _one(f, kind, meta, "", "the record")
