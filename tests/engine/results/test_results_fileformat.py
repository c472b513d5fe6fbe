"""The result file format (attattr_widgets/engine/results/fileformat.py): every kind round-trips and is refused
where another kind is asked for, and files written by format version 2 before the results package (the fixtures
in data/, written at 1af22cc) still load to the same results — and are exactly what the package writes today."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from result_samples import make_attr, results_of_every_kind

from attattr_widgets.engine.results import (
    FORMAT_VERSION,
    Attribution,
    Correlation,
    HeadImportance,
    PruningCurve,
    ResultFileError,
    TriggerResult,
    load_result,
    save_result,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("kind", sorted(results_of_every_kind()))
def test_every_kind_round_trips_and_refuses_another_kind(tmp_path, kind):
    obj = results_of_every_kind()[kind]
    path = save_result(obj, tmp_path / f"{kind}.npz")
    back = load_result(path)
    assert type(back) is type(obj)
    other = Correlation if kind != "correlation" else PruningCurve
    with pytest.raises(ResultFileError, match="holds a"):
        other.load(path)


def _fp16_attr() -> Attribution:
    a = make_attr(0.25)
    a.scores, a.attention, a.store = a.scores.astype(np.float16), a.attention.astype(np.float16), "fp16"
    return a


def _legacy_objects() -> dict:
    """What each fixture in data/ was written from (tests/engine/results/data/v2_<name>.npz)."""
    objs = results_of_every_kind(0.5)
    objs["attribution_fp16"] = _fp16_attr()
    objs["list_trigger_result"] = [objs["trigger_result"], objs["trigger_result"]]
    objs["list_pruning_curve"] = [objs["pruning_curve"],
                                  PruningCurve("taylor", np.array([0.0, 1.0]), np.array([0.8, 0.2]),
                                               np.ones((2, 2, 3), bool))]
    return objs


def _members(path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    return json.loads(str(arrays.pop("__meta__"))), arrays


def _same(a, b) -> None:
    """Two results (or lists of them) hold the same values, arrays with the same dtype."""
    assert type(a) is type(b)
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, HeadImportance):
        np.testing.assert_array_equal(a, b)
        assert a.meta == b.meta
    elif isinstance(a, Attribution):
        for k in ("scores", "attention", "token_type_ids", "layer_zero_probs", "completeness"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
            assert getattr(a, k).dtype == getattr(b, k).dtype, k
        rest = {k for k in vars(a) if k not in ("scores", "attention", "token_type_ids", "layer_zero_probs",
                                                 "completeness")}
        assert {k: getattr(a, k) for k in rest} == {k: getattr(b, k) for k in rest}
    else:
        assert a.to_dict() == b.to_dict()


#: record fields added to format 2 after the fixtures were written (issue 20: unresolved, issue 25: layer_panels,
#: issue 23: image, issue 21: answer_start, answer_token, per_token), name -> the default an old file loads to, given
#: its saved fields
_ADDED_SINCE = {"attribution": {"unresolved": lambda fields: [],
                                "layer_panels": lambda fields: [None] * len(fields["layers"]),
                                "image": lambda fields: None,
                                "answer_start": lambda fields: None, "answer_token": lambda fields: None,
                                "per_token": lambda fields: None},
                "pruning_curve": {"answer_logprob": lambda fields: None}}


@pytest.mark.parametrize("name", sorted(_legacy_objects()))
def test_files_written_by_format_2_before_the_package_load_to_the_same_results(tmp_path, name):
    path = DATA / f"v2_{name}.npz"
    want = _legacy_objects()[name]
    _same(load_result(path), want)
    # and what the package writes today is that same record and those same arrays
    old_meta, old_arrays = _members(path)
    new_meta, new_arrays = _members(save_result(want, tmp_path / "new.npz"))
    assert old_meta["format_version"] == FORMAT_VERSION == 2
    kind = new_meta.get("item_kind", new_meta["kind"])
    records = list(zip(new_meta["items"], old_meta["items"])) if new_meta["kind"] == "list" else [(new_meta,
                                                                                                  old_meta)]
    for new, old in records:
        key = "fields" if "fields" in new else "data"
        for name_, default in _ADDED_SINCE.get(kind, {}).items():  # fields added with a default since
            assert name_ not in old[key]
            assert new[key].pop(name_) == default(old[key]), name_
    assert new_meta == old_meta
    assert sorted(new_arrays) == sorted(old_arrays)
    for k, v in old_arrays.items():
        np.testing.assert_array_equal(new_arrays[k], v)
        assert new_arrays[k].dtype == v.dtype, k


def test_fp16_store_round_trips_in_float16_and_a_folder_store_saves_the_maps(tmp_path):
    back = Attribution.load(DATA / "v2_attribution_fp16.npz")
    assert back.store == "fp16" and back.scores.dtype == back.attention.dtype == np.float16
    a = make_attr()
    a.store = str(tmp_path / "maps")  # a folder of memory maps: the file holds the maps, the store is "memory"
    meta, arrays = _members(a.save(tmp_path / "a.npz"))
    assert meta["fields"]["store"] == "memory" and arrays["scores"].shape == a.scores.shape


def test_a_list_of_results_is_one_file_with_numbered_arrays(tmp_path):
    attrs = [make_attr(0.25), make_attr(0.75)]
    meta, arrays = _members(save_result(attrs, tmp_path / "list.npz"))
    assert meta["kind"] == "list" and meta["item_kind"] == "attribution" and len(meta["items"]) == 2
    assert {"0/scores", "1/scores"} <= set(arrays)
    assert [a.prob for a in load_result(tmp_path / "list.npz")] == [0.25, 0.75]
    with pytest.raises(ValueError, match="one kind"):
        save_result([make_attr(), results_of_every_kind()["correlation"]], tmp_path / "mixed.npz")
    with pytest.raises(ValueError, match="not an attattr result"):
        save_result({"a": 1}, tmp_path / "dict.npz")
    assert isinstance(load_result(DATA / "v2_list_trigger_result.npz")[1], TriggerResult)
