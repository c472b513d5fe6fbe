"""Result kinds are dataclasses and nothing more (attattr_widgets/engine/results/{base,schema}.py): a new kind
declared with only its fields is registered by its ``kind``, saved, loaded back, and type-checked on load from the
same field declarations — the schema is written once."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from attattr_widgets.engine.results import Record, Result, ResultFileError, array, load_result, save_result
from attattr_widgets.engine.results.schema import KINDS, schema_of


@dataclass
class Step(Record, closed=True):
    index: int
    label: str


@pytest.fixture
def kinds():
    """Two new kinds, registered for one test only: ``Sweep`` (arrays in the JSON record) and ``Maps`` (arrays as
    ``.npz`` members)."""

    @dataclass
    class Sweep(Result, kind="test_sweep"):
        name: str
        counts: list[int]
        losses: np.ndarray = array(float, 2)
        steps: list[Step] = field(default_factory=list)
        weights: np.ndarray | None = array(float, 1, default=None)
        note: str | None = None
        tags: dict[str, float] = field(default_factory=dict)
        pair: tuple[str, str] = ("a", "b")

    @dataclass
    class Maps(Result, kind="test_maps", record="fields", arrays="npz"):
        maps: np.ndarray = array(float, 3)
        ids: np.ndarray = array(int, 1)
        title: str = ""

    yield Sweep, Maps
    del KINDS["test_sweep"], KINDS["test_maps"]


def _sweep(Sweep):
    return Sweep("run", [3, 4], np.arange(6.0).reshape(2, 3), [Step(0, "x"), Step(1, "y")],
                 weights=np.array([0.5, 1.5]), tags={"lr": 0.1}, pair=("p", "q"))


def _rewrite(tmp_path, path, edit):
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    edit(meta, arrays)
    out = tmp_path / "edited.npz"
    np.savez(out, __meta__=np.array(json.dumps(meta)), **arrays)
    return out


def test_a_kind_declared_with_only_fields_round_trips(tmp_path, kinds):
    Sweep, Maps = kinds
    s = _sweep(Sweep)
    back = load_result(s.save(tmp_path / "s.npz"))
    assert type(back) is Sweep and back.name == "run" and back.counts == [3, 4] and back.note is None
    assert back.losses.dtype == np.float64 and back.losses.shape == (2, 3)
    np.testing.assert_array_equal(back.losses, s.losses)
    np.testing.assert_array_equal(back.weights, s.weights)
    assert back.steps == [Step(0, "x"), Step(1, "y")] and back.tags == {"lr": 0.1} and back.pair == ("p", "q")
    assert Sweep.load(tmp_path / "s.npz").to_dict() == s.to_dict() == json.loads(json.dumps(s.to_dict()))
    assert Sweep.from_dict(s.to_dict()).to_dict() == s.to_dict()
    m = Maps(np.ones((2, 3, 3), np.float32), np.arange(3), "t")
    path = save_result([m, m], tmp_path / "m.npz")
    with np.load(path) as d:
        assert {"0/maps", "1/ids"} <= set(d.files)  # arrays as .npz members, dtype kept
    got = load_result(path)
    assert [type(x) for x in got] == [Maps, Maps] and got[1].maps.dtype == np.float32 and got[0].title == "t"
    with pytest.raises(ResultFileError, match="holds a 'list'"):
        Sweep.load(path)


EDITS = [
    # (id, edit(record fields, arrays), words in the message)
    ("type of a list item", lambda d, a: d.__setitem__("counts", [1, "2"]),
     "field 'counts' is [1, '2'] (list), expected list[int]"),
    ("missing required", lambda d, a: d.pop("name"), "has no 'name' field"),
    ("optional accepts None only", lambda d, a: d.__setitem__("note", 3), "field 'note' is 3 (int), expected str|None"),
    ("array rank", lambda d, a: d.__setitem__("losses", [1.0, 2.0]), "field 'losses'"),
    ("ragged array", lambda d, a: d.__setitem__("losses", [[1.0], [1.0, 2.0]]), "ragged"),
    ("string in an array", lambda d, a: d.__setitem__("weights", [1.0, "x"]), "field 'weights'"),
    ("nested record closed", lambda d, a: d["steps"][1].__setitem__("evil", 1), "step 1 has unknown field(s) ['evil']"),
    ("nested record type", lambda d, a: d["steps"][0].__setitem__("index", "0"), "step 0: field 'index'"),
    ("mapping values", lambda d, a: d.__setitem__("tags", {"lr": "fast"}), "field 'tags'['lr'] is 'fast'"),
]


@pytest.mark.parametrize("case", EDITS, ids=[c[0] for c in EDITS])
def test_a_kind_declared_with_only_fields_is_type_checked_on_load(tmp_path, kinds, case):
    Sweep, _ = kinds
    _id, edit, words = case
    path = _rewrite(tmp_path, _sweep(Sweep).save(tmp_path / "s.npz"), lambda m, a: edit(m["data"], a))
    with pytest.raises(ResultFileError) as info:
        load_result(path)
    assert str(path) in str(info.value) and words in str(info.value), str(info.value)


@pytest.mark.parametrize("edit,words", [
    (lambda m, a: a.__setitem__("maps", np.ones((3, 3), np.float32)), "array 'maps' has shape [3, 3], expected 3"),
    (lambda m, a: a.__setitem__("ids", np.array(["a", "b"])), "array 'ids' has dtype <U1, expected integer"),
    (lambda m, a: a.pop("maps"), "array 'maps' is missing"),
    (lambda m, a: m["fields"].__setitem__("title", 5), "field 'title' is 5 (int), expected str"),
])
def test_npz_arrays_of_a_new_kind_are_checked_from_their_headers(tmp_path, kinds, edit, words):
    _, Maps = kinds
    path = _rewrite(tmp_path, Maps(np.ones((2, 3, 3)), np.arange(3)).save(tmp_path / "m.npz"), edit)
    with pytest.raises(ResultFileError) as info:
        load_result(path)
    assert str(path) in str(info.value) and words in str(info.value), str(info.value)


def test_schemas_are_derived_from_the_annotations(kinds):
    Sweep, _ = kinds
    s = schema_of(Sweep)
    assert {k: t.text for k, t in s.types.items()} == {
        "name": "str", "counts": "list[int]", "losses": "list", "steps": "list[dict]", "weights": "list[num]|None",
        "note": "str|None", "tags": "dict", "pair": "list[str]"}
    assert s.required == ("name", "counts", "losses") and not s.closed and s.arrays == {}
    assert schema_of(Step).closed and schema_of(Step).required == ("index", "label")


def test_kind_names_are_unique_and_arrays_must_be_declared(kinds):
    with pytest.raises(TypeError, match="already taken"):
        @dataclass
        class Again(Result, kind="test_sweep"):
            x: int

    @dataclass
    class Loose(Record):
        a: np.ndarray

    with pytest.raises(TypeError, match=r"Loose.a: declare an np.ndarray field with array\(dtype, ndim\)"):
        schema_of(Loose)
