"""A result's saved schema, derived once from its dataclass fields.

Every field annotation becomes a JSON type that checks a value read from a file, turns it into the field's Python
value, and turns the Python value back into JSON (the names in brackets are how error messages spell the type):

* ``str`` / ``int`` / ``float`` / ``bool`` / ``dict`` [``str`` / ``int`` / ``num`` / ``bool`` / ``dict``]
  (``float`` accepts JSON integers; ``bool`` is never an ``int``);
* ``X | None``, ``int | str`` [``X|None``, ``int|str``]: the alternative that matches;
* ``list[X]`` and ``tuple[X, X]`` [``list[X]``]: a list, or a tuple after loading;
* ``dict[str, X]`` [``dict``]: an object whose values are X;
* a dataclass deriving :class:`Record`, a ``TypedDict`` [``dict``]: a nested object with its own fields;
* ``np.ndarray`` declared with :func:`array` [``list[num]``, ``list[int]`` for 1-D, else ``list``]: rectangular
  nested lists of numbers (bools saved as 0/1), loaded as an array of the declared dtype.

A field is *required* in a file when it has no default and its type does not admit None. A record is *closed*
(unknown keys refused) when its class says ``closed=True``; otherwise unknown keys are ignored.

``np.ndarray`` fields must be declared with :func:`array` (dtype and number of dimensions); in kinds that keep their
arrays as ``.npz`` members (``Attribution``) the same declaration gives the dtype kinds and rank checked from the
array headers. Numbers of dimensions are checked here; sizes that depend on other fields (tokens × tokens maps, one
value per layer) are cross-field checks in :mod:`.loadcheck`.

:data:`KINDS` maps each result kind's name (``"attribution"``, …) to its class; :class:`~.base.Result` subclasses
register themselves by their ``kind``.
"""
from __future__ import annotations

import copy
import dataclasses
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any

import numpy as np

__all__ = ["KINDS", "ArraySpec", "Record", "Schema", "SchemaError", "array", "schema_of"]

#: result kind name -> class (filled by ``Result.__init_subclass__``; ``results/__init__`` imports every kind)
KINDS: dict[str, type] = {}


class SchemaError(Exception):
    """A JSON value does not match its derived type. The message says where and what (loadcheck adds the file)."""


def _short(v: Any) -> str:
    """A value as shown in error messages: its repr, cut at 50 characters, and its type."""
    r = repr(v)
    return (r if len(r) <= 50 else r[:49] + "…") + f" ({type(v).__name__})"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------------------------------
# arrays


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """An ``np.ndarray`` field: ``dtype`` of the loaded array (float, int or bool; JSON-stored arrays are converted
    to it), ``ndim`` its number of dimensions, ``kinds`` the numpy dtype kinds a ``.npz`` member may have."""

    dtype: type
    ndim: int
    kinds: str

    @property
    def text(self) -> str:
        if self.ndim == 1:
            return "list[int]" if self.dtype is int else "list[num]"
        return "list"


def array(dtype: type, ndim: int, *, kinds: str | None = None, default: Any = MISSING) -> Any:
    """A dataclass ``field`` for an ``np.ndarray``: ``array(float, 2)`` is a 2-D float array (saved as nested JSON
    lists, or as an ``.npz`` member in kinds that store arrays there, then of any floating dtype: ``kinds``
    overrides which numpy dtype kinds are accepted: ``"f"`` for float, ``"iub"`` for int, ``"b"`` for bool)."""
    if dtype not in (float, int, bool):
        raise TypeError(f"array dtype must be float, int or bool, got {dtype!r}")
    spec = ArraySpec(dtype, int(ndim), kinds or {float: "f", int: "iub", bool: "b"}[dtype])
    return dataclasses.field(default=default, metadata={"array": spec})


# ------------------------------------------------------------------------------------------------------------
# JSON types


class JSONType:
    """One annotation's JSON form: ``text`` (as in error messages), ``ok`` (a JSON value matches), ``check``
    (raise :class:`SchemaError` naming ``where`` and the field), ``load`` (JSON -> Python), ``dump`` (Python -> JSON)
    and ``holds`` (a Python value is of this type: picks the alternative of a union when dumping)."""

    text = "?"

    def ok(self, v: Any) -> bool:
        raise NotImplementedError

    def check(self, v: Any, name: str, where: str) -> None:
        if not self.ok(v):
            raise SchemaError(f"{where}: field {name} is {_short(v)}, expected {self.text}")

    def load(self, v: Any) -> Any:
        return v

    def dump(self, v: Any) -> Any:
        return v

    def holds(self, v: Any) -> bool:
        return self.ok(v)


class Atom(JSONType):
    def __init__(self, text: str, ok, holds, convert):
        self.text, self._ok, self._holds, self._convert = text, ok, holds, convert

    def ok(self, v):
        return self._ok(v)

    def holds(self, v):
        return self._holds(v)

    def load(self, v):
        return self._convert(v)

    def dump(self, v):
        return self._convert(v)


_ATOMS = {
    str: Atom("str", lambda v: isinstance(v, str), lambda v: isinstance(v, str), str),
    int: Atom("int", _is_int, lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)), int),
    float: Atom("num", _is_num, lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)), float),
    bool: Atom("bool", lambda v: isinstance(v, bool), lambda v: isinstance(v, (bool, np.bool_)), bool),
    dict: Atom("dict", lambda v: isinstance(v, dict), lambda v: isinstance(v, Mapping), copy.deepcopy),
    type(None): Atom("None", lambda v: v is None, lambda v: v is None, lambda v: None),
}


class Union(JSONType):
    def __init__(self, alts: list[JSONType]):
        self.alts = alts
        self.text = "|".join(a.text for a in alts)

    def ok(self, v):
        return any(a.ok(v) for a in self.alts)

    def check(self, v, name, where):
        not_none = [a for a in self.alts if a is not _ATOMS[type(None)]]
        if v is not None and len(not_none) == 1 and isinstance(not_none[0], (ArrayJSON, MapOf, RecordType)):
            not_none[0].check(v, name, where)  # a structured X | None: X's own, more precise message
        else:
            super().check(v, name, where)

    def load(self, v):
        return next(a for a in self.alts if a.ok(v)).load(v)

    def dump(self, v):
        for a in self.alts:
            if a.holds(v):
                return a.dump(v)
        raise TypeError(f"{_short(v)} is not {self.text}")

    def holds(self, v):
        return any(a.holds(v) for a in self.alts)


class ListOf(JSONType):
    def __init__(self, item: JSONType, as_tuple: bool = False):
        self.item, self.as_tuple = item, as_tuple
        self.text = f"list[{item.text}]"

    def ok(self, v):
        return isinstance(v, list) and all(self.item.ok(x) for x in v)

    def check(self, v, name, where):
        if isinstance(self.item, RecordType) and isinstance(v, list):  # each record names its own problem
            label = name.strip("'")
            label = label[:-1] if label.endswith("s") and not label.endswith("ss") else label  # nodes -> node
            for i, x in enumerate(v):
                self.item.schema.check(x, f"{where} {label} {i}")
        else:
            super().check(v, name, where)

    def load(self, v):
        out = [self.item.load(x) for x in v]
        return tuple(out) if self.as_tuple else out

    def dump(self, v):
        return [self.item.dump(x) for x in v]

    def holds(self, v):
        return isinstance(v, (list, tuple))


class MapOf(JSONType):
    text = "dict"

    def __init__(self, value: JSONType):
        self.value = value

    def ok(self, v):
        return isinstance(v, dict) and all(self.value.ok(x) for x in v.values())

    def check(self, v, name, where):
        if not isinstance(v, dict):
            super().check(v, name, where)
        for k, x in v.items():
            self.value.check(x, f"{name}[{k!r}]", where)

    def load(self, v):
        return {k: self.value.load(x) for k, x in v.items()}

    def dump(self, v):
        return {str(k): self.value.dump(x) for k, x in v.items()}

    def holds(self, v):
        return isinstance(v, Mapping)


class ArrayJSON(JSONType):
    """An ``np.ndarray`` saved as rectangular nested JSON lists of numbers (bools saved as 0/1)."""

    def __init__(self, spec: ArraySpec):
        self.spec = spec
        self.text = spec.text
        self._leaf = _is_int if spec.dtype is int else _is_num

    def ok(self, v):
        try:
            self._shape(v, "", "", self.spec.ndim)
        except SchemaError:
            return False
        return True

    def check(self, v, name, where):
        if self.spec.ndim == 1:
            return super().check(v, name, where)
        self._shape(v, name, where, self.spec.ndim)

    def _shape(self, v, name, where, depth) -> tuple[int, ...]:
        """Shape of a rectangular nested list of ``depth`` levels (no ragged rows, no strings)."""
        if depth == 0:
            if not self._leaf(v):
                raise SchemaError(f"{where}: field {name} holds {_short(v)}, expected a number")
            return ()
        if not isinstance(v, list):
            raise SchemaError(f"{where}: field {name} is {_short(v)}, expected {self.text}")
        inner = [self._shape(x, name, where, depth - 1) for x in v]
        if inner and any(s != inner[0] for s in inner):
            raise SchemaError(f"{where}: field {name} is ragged (rows of different lengths)")
        return (len(v), *(inner[0] if inner else (0,) * (depth - 1)))

    def load(self, v):
        return np.asarray(v, self.spec.dtype)

    def dump(self, v):
        a = np.asarray(v, self.spec.dtype)
        return (a.astype(int) if self.spec.dtype is bool else a).tolist()

    def holds(self, v):
        return isinstance(v, (np.ndarray, list, tuple))


class RecordType(JSONType):
    """A nested record (a :class:`Record` dataclass or a ``TypedDict``) with its own :class:`Schema`."""

    text = "dict"

    def __init__(self, schema: "Schema"):
        self.schema = schema

    def ok(self, v):
        try:
            self.schema.check(v, "")
        except SchemaError:
            return False
        return True

    def check(self, v, name, where):
        self.schema.check(v, f"{where} {name}")

    def load(self, v):
        return self.schema.load(v)

    def dump(self, v):
        return self.schema.dump(v)

    def holds(self, v):
        return isinstance(v, Mapping) if self.schema.cls is None else isinstance(v, self.schema.cls)


# ------------------------------------------------------------------------------------------------------------
# schemas


@dataclasses.dataclass
class Schema:
    """The saved form of a record: JSON ``types`` and ``required`` fields, ``closed`` (refuse unknown keys),
    ``arrays`` (fields kept as ``.npz`` members, by name), ``cls`` (built by :meth:`load`; None: a plain dict) and
    ``parts`` (fields holding lists of results of ``cls``'s kind, :func:`parts`; saved by :class:`~.base.Result`)."""

    types: dict[str, JSONType]
    required: tuple[str, ...]
    closed: bool
    arrays: dict[str, ArraySpec]
    cls: type | None
    parts: tuple[str, ...] = ()

    def check(self, d: Any, where: str) -> None:
        """Raise :class:`SchemaError` unless ``d`` is a JSON object with the required fields of the right types."""
        if not isinstance(d, dict):
            raise SchemaError(f"{where} is a {type(d).__name__}, expected a JSON object")
        for k in self.required:
            if k not in d:
                raise SchemaError(f"{where} has no {k!r} field")
        if self.closed:
            extra = sorted(set(d) - set(self.types) - set(self.parts))
            if extra:
                raise SchemaError(f"{where} has unknown field(s) {extra}")
        for k, t in self.types.items():
            if k in d:
                t.check(d[k], repr(k), where)

    def load(self, d: Mapping, arrays: Mapping[str, np.ndarray] | None = None) -> Any:
        """Build the record from a checked JSON object (and its ``.npz`` ``arrays``); absent fields take defaults."""
        kw = {k: t.load(d[k]) for k, t in self.types.items() if k in d}
        kw.update(arrays or {})
        return {**d, **kw} if self.cls is None else self.cls(**kw)  # a TypedDict keeps its other keys

    def dump(self, obj: Any) -> dict:
        """The JSON object of ``obj`` (its ``.npz`` arrays left out)."""
        if isinstance(obj, Mapping):  # a TypedDict: its other keys are kept as they are
            return {**copy.deepcopy(dict(obj)), **{k: t.dump(obj[k]) for k, t in self.types.items() if k in obj}}
        return {k: t.dump(getattr(obj, k)) for k, t in self.types.items()}


def _json_type(tp: Any, spec: ArraySpec | None, where: str) -> JSONType:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is np.ndarray:
        if spec is None:
            raise TypeError(f"{where}: declare an np.ndarray field with array(dtype, ndim)")
        return ArrayJSON(spec)
    if tp in _ATOMS:
        return _ATOMS[tp]
    if origin in (typing.Union, types.UnionType):
        return Union([_json_type(a, spec, where) for a in args])
    if origin is list:
        return ListOf(_json_type(args[0], spec, where))
    if origin is tuple:
        if len(set(args) - {Ellipsis}) != 1:
            raise TypeError(f"{where}: only tuples of one item type are supported, got {tp}")
        return ListOf(_json_type(args[0], spec, where), as_tuple=True)
    if origin is dict:
        return MapOf(_json_type(args[1], spec, where))
    if isinstance(tp, type) and (typing.is_typeddict(tp) or issubclass(tp, Record)):
        return RecordType(schema_of(tp))
    raise TypeError(f"{where}: no saved form for the annotation {tp!r}")


_SCHEMAS: dict[type, Schema] = {}


def schema_of(cls: type) -> Schema:
    """The :class:`Schema` of a :class:`Record` dataclass or a ``TypedDict``, derived from its annotations once."""
    if cls in _SCHEMAS:
        return _SCHEMAS[cls]
    hints = typing.get_type_hints(cls)
    if typing.is_typeddict(cls):
        schema = Schema({k: _json_type(t, None, f"{cls.__name__}.{k}") for k, t in hints.items()},
                        tuple(k for k in hints if k in cls.__required_keys__), False, {}, None)
    else:
        npz = getattr(cls, "_npz_arrays", False)
        types_, required, arrays, part_fields = {}, [], {}, []
        for f in dataclasses.fields(cls):
            if f.metadata.get("parts"):
                part_fields.append(f.name)
                continue
            spec = f.metadata.get("array")
            if npz and spec is not None:
                arrays[f.name] = spec
                continue
            t = types_[f.name] = _json_type(hints[f.name], spec, f"{cls.__name__}.{f.name}")
            if f.default is MISSING and f.default_factory is MISSING and not t.ok(None):
                required.append(f.name)
        schema = Schema(types_, tuple(required), bool(getattr(cls, "_closed", False)), arrays, cls,
                        tuple(part_fields))
    _SCHEMAS[cls] = schema
    return schema


def parts(default: Any = None) -> Any:
    """A dataclass ``field`` holding a list of results of the field's own kind, or None (``Attribution.per_token``):
    left out of the record's :class:`Schema` (its ``parts``); :class:`~.base.Result` saves each item in the same
    file, its record in a list under the field's name and its arrays as ``"{field}/{i}/{name}"`` members, and
    :mod:`.loadcheck` checks each item like a result of that kind."""
    return dataclasses.field(default=default, metadata={"parts": True})


class Record:
    """A dataclass whose JSON form is derived from its fields: ``to_dict()`` / ``Cls.from_dict(d)``.

    ``class X(Record, closed=True)`` refuses unknown keys when a file is checked (otherwise they are ignored)."""

    _closed: typing.ClassVar[bool] = False
    _npz_arrays: typing.ClassVar[bool] = False

    def __init_subclass__(cls, *, closed: bool | None = None, **kw):
        super().__init_subclass__(**kw)
        if closed is not None:
            cls._closed = closed

    def to_dict(self) -> dict:
        """Plain JSON types (numbers, strings, lists, dicts), one key per field."""
        s = schema_of(type(self))
        return s.dump(self) if not s.arrays else {**s.dump(self), **{k: ArrayJSON(spec).dump(getattr(self, k))
                                                                      for k, spec in s.arrays.items()}}

    @classmethod
    def from_dict(cls, d: Mapping):
        """The inverse of :meth:`to_dict` (fields absent from ``d`` take their defaults)."""
        s = schema_of(cls)
        return s.load(d, {k: ArrayJSON(spec).load(d[k]) for k, spec in s.arrays.items() if k in d})
