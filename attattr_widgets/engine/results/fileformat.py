"""One file format for every result: a ``.npz`` archive holding a JSON record ``__meta__`` and the numeric arrays.

``__meta__`` is ``{"kind", "format_version", <record_key>: {fields}}`` (``record_key`` is ``"data"``,
``"fields"`` for :class:`~.attribution.Attribution`, ``"meta"`` for :class:`~.heads.HeadImportance`); a list of
results of one kind is ``{"kind": "list", "item_kind", "format_version", "items": [records]}`` with item ``i``'s
arrays stored as ``"{i}/{name}"``. Pickles are never written or read. Writes are atomic (:mod:`.atomic`).

:func:`load_result` checks, in order and before building anything: the file is a zip archive, the record's size
from its header, the JSON, :data:`FORMAT_VERSION`, the kind, then :func:`.loadcheck.check_record` (types derived
from the kind's dataclass fields, array headers, cross-field sizes). Every problem — not a path, a folder, a damaged member read
lazily (``BadZipFile``, zlib, EOF) — is one :class:`~attattr_widgets.engine.errors.ResultFileError` naming the file.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AttAttrError, ResultFileError
from .atomic import atomic_write_bytes
from .loadcheck import check_meta_size, check_record
from .schema import KINDS

__all__ = ["FORMAT_VERSION", "load_result", "save_result"]

FORMAT_VERSION = 2


def _kind_of(obj: Any) -> str:
    for name, cls in KINDS.items():
        if isinstance(obj, cls):
            return name
    raise AttAttrError(f"{type(obj).__name__} is not an attattr result: save one of {', '.join(KINDS)}")


def save_result(obj: Any, path: str | os.PathLike) -> Path:
    """Write any result (or a list of results of one kind, e.g. :class:`TriggerPattern` s) to one ``.npz``."""
    if isinstance(obj, (list, tuple)):
        items = list(obj)
        kinds = {_kind_of(o) for o in items}
        if len(kinds) > 1:
            raise AttAttrError(f"save_result takes a list of one kind of result, got {sorted(kinds)}")
        records = [o.to_record() for o in items]
        meta = {"kind": "list", "item_kind": kinds.pop() if kinds else "trigger_pattern",
                "format_version": FORMAT_VERSION, "items": [r for r, _ in records]}
        arrays = {f"{i}/{k}": v for i, (_, a) in enumerate(records) for k, v in a.items()}
    else:
        kind = _kind_of(obj)
        record, arrays = obj.to_record()
        meta = {"kind": kind, "format_version": FORMAT_VERSION, **record}
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_result(path: str | os.PathLike, kind: type | str | None = None) -> Any:
    """Read a file written by :func:`save_result` (or any ``.save``), checking kind and version.

    ``kind`` (a class or its kind name) makes the loader refuse files of another kind. Every problem — not a
    path, a folder, a missing, foreign or damaged file — is a :class:`ResultFileError` naming the file.
    """
    path = _result_path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # np.load would read a bare .npy (of any declared size) at once
        raise ResultFileError(f"{path}: not an attattr result file (a .npz archive written by .save()); "
                              f"it starts with {magic!r}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear error
        raise ResultFileError(f"{path}: not an attattr result file (.npz): {exc}") from exc
    try:
        with data:
            return _load_open(path, data, kind)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # a damaged member, read lazily
        raise ResultFileError(f"{path}: damaged result file, a member cannot be read ({type(exc).__name__}: "
                              f"{exc}); save the result again") from exc


def _result_path(path: Any) -> Path:
    """``path`` as an existing file's :class:`Path`, or a :class:`ResultFileError` saying what it is instead."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ResultFileError(f"the path of a result file must be a str or pathlib.Path, got {path!r}: pass the "
                              f".npz file that .save() wrote")
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.npz"))[:5]
        hint = f" ({', '.join(found)} are there)" if found else ""
        raise ResultFileError(f"{path}: is a folder, not a result file: pass the .npz file that .save() wrote"
                              f"{hint}")
    if not path.is_file():
        raise ResultFileError(f"{path}: no such file")
    return path


def _load_open(path: Path, data, kind) -> Any:
    """The checks and the build of :func:`load_result` on the opened archive ``data``."""
    if "__meta__" not in data.files:
        raise ResultFileError(f"{path}: not an attattr result file (no __meta__ record)")
    check_meta_size(path, data)
    try:
        meta = json.loads(str(data["__meta__"]))
    except (ValueError, TypeError) as exc:
        raise ResultFileError(f"{path}: the __meta__ record is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ResultFileError(f"{path}: the __meta__ record is not a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ResultFileError(f"{path}: unknown result file format {version!r} (this version reads {FORMAT_VERSION})")
    want = kind if isinstance(kind, str) or kind is None else _kind_name(kind)
    got = meta.get("kind")
    if want is not None and got != want:
        raise ResultFileError(f"{path}: holds a {got!r} result, not a {want!r}")
    check_record(path, meta, data)  # fields, types, lengths, shapes and sizes, from the array headers only
    try:
        if got == "list":
            cls = KINDS[meta["item_kind"]]
            return [_build(cls, item, data, f"{i}/") for i, item in enumerate(meta["items"])]
        return _build(KINDS[got], meta, data, "")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ResultFileError(f"{path}: inconsistent {got!r} result file ({type(exc).__name__}: {exc})") from exc


def _kind_name(cls: type) -> str:
    for name, c in KINDS.items():
        if c is cls:
            return name
    raise AttAttrError(f"{cls!r} is not an attattr result class")


def _build(cls: type, record: dict, data, prefix: str) -> Any:
    """One result from its record and its members (those named ``prefix`` + a name, nested parts' included)."""
    arrays = {k[len(prefix):]: np.asarray(data[k]) for k in data.files if k != "__meta__" and k.startswith(prefix)}
    return cls.from_record(record, arrays)
