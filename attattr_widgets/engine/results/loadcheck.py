"""What a result file must hold, checked before anything is built or allocated.

:func:`check_record` is called by :func:`~.fileformat.load_result` once the JSON record is parsed:

1. each field's type, the required fields and unknown keys — from the kind's schema, derived from its dataclass
   fields (:func:`.schema.schema_of`), never written here again;
2. the ``.npy`` *headers* of its arrays (rank and dtype from the schema; a few hundred bytes each): a file that
   claims a 10¹² × 10¹² array, holds Python objects or is truncated is refused without reading it;
3. cross-field checks, one function per kind below: tokens, maps and layer lists agree, lengths match.

Every problem is one :class:`~attattr_widgets.engine.errors.ResultFileError` naming the file and what is wrong —
never a numpy ``MemoryError`` / ``ValueError`` or a half-built result. Pickles are never loaded (``allow_pickle=False``
and object dtypes are refused from the header).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from ..errors import ResultFileError
from .image import MAX_PIXELS_SIDE
from .schema import KINDS, ArraySpec, SchemaError, schema_of

__all__ = ["MAX_META_BYTES", "check_meta_size", "check_record", "max_array_bytes"]

#: Largest JSON record accepted (the record holds tokens, texts and small result tables, never maps).
MAX_META_BYTES = 256 << 20

_DTYPE_NAMES = {"f": "floating-point", "i": "integer", "u": "unsigned integer", "b": "boolean"}


def max_array_bytes() -> int:
    """Largest array a file may declare: 3/4 of this machine's physical memory (numpy loads .npz arrays whole)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.75)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 << 30


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


class _File:
    """One open ``.npz`` (``data``) at ``path``: array headers, and :meth:`fail` raising the file's error."""

    def __init__(self, path: Path, data):
        self.path, self.data = path, data
        self.limit = max_array_bytes()

    def fail(self, what: str):
        raise ResultFileError(f"{self.path}: {what}")

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

    def array(self, key: str, spec: ArraySpec) -> tuple[int, ...]:
        """Check ``key``'s header against its declared rank and dtype kinds; its shape."""
        shape, dtype = self.header(key)
        if len(shape) != spec.ndim:
            self.fail(f"array {key!r} has shape {list(shape)}, expected {spec.ndim} dimensions")
        if dtype.kind not in spec.kinds:
            self.fail(f"array {key!r} has dtype {dtype}, expected "
                      + " or ".join(_DTYPE_NAMES.get(k, k) for k in spec.kinds))
        return shape

    def shape(self, shapes: dict[str, tuple[int, ...]], key: str, want: tuple, what: str) -> None:
        """``want`` entries are ints (must match) or None (any)."""
        got = shapes[key]
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
            text = "[" + ", ".join("*" if w is None else str(w) for w in want) + "]"
            self.fail(f"array {key!r} ({what}) has shape {list(got)}, expected {text}")


# --------------------------------------------------------------------------------------------------------
# cross-field checks, one per kind (types, required fields and array ranks are already checked)


def _attribution(f: _File, m: dict, shapes: dict, where: str) -> None:
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
    for i, panels in enumerate(m.get("layer_panels") or []):  # each a partition of [0, 1], left to right
        if panels is not None and (not panels or any(len(p) != 2 for p in panels) or panels[0][0] != 0
                                   or panels[-1][1] != 1 or any(not p[0] < p[1] for p in panels)
                                   or any(p[1] != q[0] for p, q in zip(panels, panels[1:]))):
            f.fail(f"{where}: layer_panels[{i}] is not a partition of [0, 1] into [lo, hi] panels")
    H = shapes["scores"][1]
    f.shape(shapes, "scores", (L, None, n, n), f"[layers, heads, tokens, tokens] for {L} layers and {n} tokens")
    f.shape(shapes, "attention", (L, H, n, n), "same shape as scores")
    f.shape(shapes, "token_type_ids", (n,), f"one segment id per token ({n})")
    for k in ("layer_zero_probs", "completeness"):
        f.shape(shapes, k, (L,), "one value per layer")
    image = m.get("image")
    if image is not None:
        rows, cols = (image["grid"] + [0, 0])[:2]
        first, pix = image["first_patch"], np.shape(image["pixels"])
        if len(image["grid"]) != 2 or rows < 1 or cols < 1 or image["patch_size"] < 1:
            f.fail(f"{where}: image.grid {image['grid']} is not (rows, cols) of a patch grid")
        if first < 0 or first + rows * cols > n:
            f.fail(f"{where}: image has {first} token(s) before a {rows} × {cols} patch grid, which needs "
                   f"{first + rows * cols} tokens, but there are {n}")
        if len(pix) != 3 or pix[-1] != 3 or not all(0 < x <= MAX_PIXELS_SIDE for x in pix[:2]):
            f.fail(f"{where}: image.pixels is {list(pix)}, expected [h, w, 3] with sides ≤ {MAX_PIXELS_SIDE}")
        if np.size(image["pixels"]) and not 0 <= np.min(image["pixels"]) <= np.max(image["pixels"]) <= 255:
            f.fail(f"{where}: image.pixels must be 0..255 (uint8 RGB)")
    start, token = m.get("answer_start"), m.get("answer_token")
    if start is not None and not 1 <= start < n:
        f.fail(f"{where}: answer_start {start} is not the index of an answer token after the prompt (1..{n - 1})")
    if token is not None and (start is None or not 0 <= token < n - start):
        f.fail(f"{where}: answer_token {token} is not one of the {n - (start or n)} answer tokens")
    for i, item in enumerate(m.get("per_token") or []):
        it = item["fields"]
        if (len(it["tokens"]) != n or it["layers"] != layers or it.get("answer_start") != start
                or it.get("answer_token") != i):
            f.fail(f"{where}: per_token[{i}] is not answer token {i} of these {n} tokens and layers {layers}")
    names = m.get("label_names")
    if m.get("target_kind", "class") == "class" and names and not 0 <= m["target"] < len(names):
        f.fail(f"{where}: target {m['target']} is not one of the {len(names)} classes {names}")


def _pruning_curve(f: _File, d: dict, shapes: dict, where: str) -> None:
    K = len(d["fractions"])
    if len(d["accuracy"]) != K:
        f.fail(f"{where}: {len(d['accuracy'])} accuracies for {K} fractions")
    if d.get("answer_logprob") is not None and len(d["answer_logprob"]) != K:
        f.fail(f"{where}: {len(d['answer_logprob'])} answer log-probabilities for {K} fractions")
    if any(not 0 <= x <= 1 for x in d["fractions"]):
        f.fail(f"{where}: fractions must lie in [0, 1]")
    shape = np.shape(d["pruned"])  # rectangular: checked with its type
    if shape[0] != K:
        f.fail(f"{where}: 'pruned' has {shape[0]} masks for {K} fractions")
    if d.get("importance") is not None:
        imp = np.shape(d["importance"])
        if K and imp != shape[1:]:
            f.fail(f"{where}: 'importance' is {list(imp)} but the masks are {list(shape[1:])}")


def _effectiveness(f: _File, d: dict, shapes: dict, where: str) -> None:
    K = len(d["heads"])
    for c, orders in d["accuracy"].items():
        for o, v in orders.items():
            if len(v) != K:
                f.fail(f"{where}: accuracy[{c!r}][{o!r}] must be {K} numbers (one per head count)")


def _correlation(f: _File, d: dict, shapes: dict, where: str) -> None:
    for k in ("layer", "head", "x", "y"):
        if len(d[k]) != d["n"]:
            f.fail(f"{where}: {k!r} has {len(d[k])} entries but n = {d['n']}")
    if "labels" in d and len(d["labels"]) != 2:
        f.fail(f"{where}: 'labels' must name the two tasks")


def _attribution_tree(f: _File, d: dict, shapes: dict, where: str) -> None:
    n = len(d["tokens"])
    if not 0 <= d["root"] < max(n, 1):
        f.fail(f"{where}: root {d['root']} is not a token index (0..{n - 1})")
    for i, node in enumerate(d["nodes"]):
        if not 0 <= node["index"] < n:
            f.fail(f"{where}: node {i} has index {node['index']}, not a token index (0..{n - 1})")
    for i, e in enumerate(d["edges"]):
        if not (0 <= e["parent"] < n and 0 <= e["child"] < n):
            f.fail(f"{where}: edge {i} ({e['parent']} → {e['child']}) is outside the {n} tokens")
    sides = d.get("sides") or []
    if sides and (len(sides) != n or not set(sides) <= {"source", "answer"}):
        f.fail(f"{where}: 'sides' must give 'source' or 'answer' for each of the {n} tokens")
    for i, node in enumerate(d["nodes"]):
        if sides and node.get("side") != sides[node["index"]]:
            f.fail(f"{where}: node {i} has side {node.get('side')!r} but token {node['index']} is on the "
                   f"{sides[node['index']]!r} side")


def _trigger_pattern(f: _File, d: dict, shapes: dict, where: str) -> None:
    n = len(d["tokens"])
    for k in ("token_ids", "positions", "segments", "relative"):
        if len(d[k]) != n:
            f.fail(f"{where}: {k!r} has {len(d[k])} entries for {n} trigger tokens")


def _trigger_result(f: _File, d: dict, shapes: dict, where: str) -> None:
    _trigger_pattern(f, d["pattern"], shapes, f"{where} 'pattern'")


#: kind -> cross-field check(file, record fields, {array name: shape}, where); kinds without one need none
def _seq2seq_attribution(f: _File, m: dict, shapes: dict, where: str) -> None:
    n_src, n_tgt = len(m["source_tokens"]), len(m["decoder_tokens"])
    for k in ("label_tokens", "label_ids"):
        if len(m[k]) != n_tgt:
            f.fail(f"{where}: {k} has {len(m[k])} entries for {n_tgt} decoder tokens")
    for site, rows, cols in (("encoder", n_src, n_src), ("decoder", n_tgt, n_tgt), ("cross", n_tgt, n_src)):
        meta = m[f"{site}_meta"]
        L, L_model = len(meta["layers"]), meta["num_layers"]
        if any(not 0 <= x < L_model for x in meta["layers"]) or len(set(meta["layers"])) != L:
            f.fail(f"{where}: {site} layers {meta['layers']} are not distinct indices of {L_model} layers")
        for k in ("zero_probs", "completeness", "steps", "converged", "unresolved", "nonfinite"):
            if meta.get(k) and len(meta[k]) != L:
                f.fail(f"{where}: {site}_meta.{k} has {len(meta[k])} entries for {L} layers")
        H = shapes[f"{site}_scores"][1]
        f.shape(shapes, f"{site}_scores", (L, None, rows, cols), f"[layers, heads, {rows}, {cols}] for {L} layers")
        f.shape(shapes, f"{site}_attention", (L, H, rows, cols), f"same shape as {site}_scores")


CROSS_CHECKS = {"attribution": _attribution, "seq2seq_attribution": _seq2seq_attribution, "pruning_curve": _pruning_curve, "effectiveness": _effectiveness,
                "correlation": _correlation, "attribution_tree": _attribution_tree,
                "trigger_pattern": _trigger_pattern, "trigger_result": _trigger_result}


def _one(f: _File, kind: str, meta: Any, prefix: str, where: str) -> None:
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        f.fail(f"unknown result kind {kind!r} (this version reads {', '.join(KINDS)})")
    if not isinstance(meta, dict):
        f.fail(f"{where} is a {type(meta).__name__}, expected a JSON object")
    if cls.record_key not in meta:
        f.fail(f"{where} has no {cls.record_key!r} field")
    schema = cls.record_schema()
    fields_where = f"{where} {cls.record_key!r}"
    try:
        schema.check(meta[cls.record_key], fields_where)
    except SchemaError as exc:
        f.fail(str(exc))
    shapes = {k: f.array(prefix + k, spec) for k, spec in schema.arrays.items()}
    for name in schema.parts:  # lists of results of this kind saved with it (Attribution.per_token)
        items = meta[cls.record_key].get(name)
        if items is not None and not isinstance(items, list):
            f.fail(f"{fields_where} {name!r} is a {type(items).__name__}, expected a list of records or null")
        for i, item in enumerate(items or []):
            _one(f, kind, item, f"{prefix}{name}/{i}/", f"{where} {name}[{i}]")
    check = CROSS_CHECKS.get(kind)
    if check is not None:
        check(f, meta[cls.record_key], shapes, fields_where)


class _ListRecord(TypedDict):
    """The record of a list of results (its other keys: ``kind``, ``format_version``)."""

    item_kind: str
    items: list[dict]


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
        try:
            schema_of(_ListRecord).check(meta, "the record")
        except SchemaError as exc:
            f.fail(str(exc))
        item_kind, items = meta["item_kind"], meta["items"]
        for i, item in enumerate(items):
            _one(f, item_kind, item, f"{i}/", f"item {i}")
    else:
        _one(f, kind, meta, "", "the record")
