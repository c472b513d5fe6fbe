"""The one base of every result kind: registered by its ``kind``, saved and loaded through one file format.

A kind is a dataclass deriving :class:`Result` with a ``kind`` name; everything about its file is derived from its
fields (:mod:`.schema`)::

    @dataclass
    class Curve(Result, kind="curve"):
        method: str
        accuracy: np.ndarray = array(float, 1)

    Curve("m", np.array([0.9, 0.5])).save("c.npz")      # {"kind": "curve", "format_version": 2, "data": {...}}
    load_result("c.npz")                                   # checked against the derived schema, then built

Class keywords: ``kind`` (the name in files; unique), ``record`` (the key of the fields in the file's JSON record:
``"data"``; ``Attribution`` uses ``"fields"``), ``arrays`` (``"json"``: arrays inside the record as nested lists;
``"npz"``: each array field a ``.npz`` member of its own, for large maps), ``closed`` (refuse unknown keys).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from .schema import KINDS, Record, Schema, schema_of

__all__ = ["Result"]


class Result(Record):
    """A saveable result: ``save(path)`` / ``Cls.load(path)`` (= ``save_result`` / ``load_result(path, kind=Cls)``)."""

    kind: ClassVar[str]
    record_key: ClassVar[str] = "data"

    def __init_subclass__(cls, *, kind: str | None = None, record: str = "data", arrays: str = "json", **kw):
        super().__init_subclass__(**kw)
        if kind is None:
            return
        if kind in KINDS or kind == "list":
            raise TypeError(f"result kind {kind!r} is already taken (by {KINDS.get(kind, list).__name__})")
        if arrays not in ("json", "npz"):
            raise TypeError(f"arrays={arrays!r}: use 'json' or 'npz'")
        cls.kind, cls.record_key, cls._npz_arrays = kind, record, arrays == "npz"
        KINDS[kind] = cls

    @classmethod
    def record_schema(cls) -> Schema:
        """What this kind's record in a file holds (checked by :mod:`.loadcheck` before :meth:`from_record`)."""
        return schema_of(cls)

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``({record_key: fields as JSON}, {name: array})``: this result's part of a file. A :func:`~.schema.parts`
        field is a list of the items' records (or None), their arrays named ``"{field}/{i}/{name}"``."""
        s = self.record_schema()
        fields = s.dump(self)
        arrays = {k: np.asarray(getattr(self, k)) for k in s.arrays}
        for name in s.parts:
            items = getattr(self, name)
            fields[name] = None if items is None else []
            for i, item in enumerate(items or []):
                rec, arr = item.to_record()
                fields[name].append(rec)
                arrays.update({f"{name}/{i}/{k}": v for k, v in arr.items()})
        return {self.record_key: fields}, arrays

    @classmethod
    def from_record(cls, record: dict, arrays: dict[str, np.ndarray]):
        """The inverse of :meth:`to_record`, for a record and arrays :mod:`.loadcheck` has checked (``arrays``:
        this result's members, names relative to it, its parts' included)."""
        s = cls.record_schema()
        fields = record[cls.record_key]
        obj = s.load(fields, {k: arrays[k] for k in s.arrays})
        for name in s.parts:
            items = fields.get(name)
            if items is not None:
                setattr(obj, name, [cls.from_record(item, {k[len(p):]: v for k, v in arrays.items()
                                                           if k.startswith(p := f"{name}/{i}/")})
                                    for i, item in enumerate(items)])
        return obj

    def save(self, path: str | os.PathLike) -> Path:
        """Write this result to ``path`` (``.npz``, atomically); ``Cls.load(path)`` reads it back."""
        from .fileformat import save_result

        return save_result(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a result of this kind saved by :meth:`save` (a file of another kind is refused)."""
        from .fileformat import load_result

        return load_result(path, kind=cls)
