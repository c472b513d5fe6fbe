"""Binary serialization of arrays for the widget front ends (no JSON lists, {dtype, shape} headers)."""
from __future__ import annotations

import numpy as np
import pytest

from attattr_widgets.widgets.serialize import (decode_array, encode_array, head_summary, jsonable, pack,
                                               thumbnails)


@pytest.mark.parametrize("dtype,want", [("float32", "float32"), ("float64", "float32"), ("float16", "float16"),
                                        ("int64", "int32"), ("bool", "uint8"), ("uint8", "uint8")])
def test_encode_round_trip_and_downcast(dtype, want):
    a = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    enc = encode_array(a)
    assert enc["dtype"] == want and enc["shape"] == [2, 3, 4]
    assert isinstance(enc["view"], memoryview) and enc["view"].nbytes == a.size * np.dtype(want).itemsize
    np.testing.assert_array_equal(decode_array(enc), a.astype(want))


def test_big_endian_input_is_sent_little_endian():
    a = np.arange(6, dtype=">f4").reshape(2, 3)
    header, buf = pack(a)
    assert header == {"dtype": "float32", "shape": [2, 3]}
    np.testing.assert_array_equal(np.frombuffer(bytes(buf), "<f4").reshape(2, 3), a)


def test_non_contiguous_and_forced_dtype():
    a = np.arange(16, dtype=np.float32).reshape(4, 4).T
    header, buf = pack(a, "float16")
    assert header["dtype"] == "float16"
    np.testing.assert_array_equal(np.frombuffer(bytes(buf), "<f2").reshape(4, 4), a.astype(np.float16))
    with pytest.raises(ValueError):
        pack(a, "float64")
    with pytest.raises(TypeError):
        encode_array(np.array(["a", "b"]))


def test_jsonable_walks_nested_values():
    v = jsonable({"layer": np.int64(3), "m": [np.ones((2, 2), np.float32)], "x": "s"})
    assert v["layer"] == 3 and type(v["layer"]) is int
    assert v["m"][0]["shape"] == [2, 2] and isinstance(v["m"][0]["view"], memoryview)
    assert jsonable(None) is None


def test_thumbnails_keep_sign_of_largest_magnitude_and_scale_per_map():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 64, 64)).astype(np.float32)
    s[1, 10, 20] = -50.0  # dominant negative value in block (10//2, 20//2) of a 32x32 pooling
    t = thumbnails(s, 32)
    assert t.shape == (3, 32, 32) and t.dtype == np.float16
    assert np.abs(t).max() <= 1.0
    assert t[1, 5, 10] == -1.0
    small = thumbnails(np.array([[[0.0, 2.0], [-4.0, 1.0]]], np.float32), 32)
    np.testing.assert_allclose(small[0].astype(np.float32), [[0, 0.5], [-1, 0.25]])
    assert np.all(thumbnails(np.zeros((1, 4, 4), np.float32)) == 0)


def test_head_summary_is_max_over_pairs():
    s = np.zeros((2, 3, 3), np.float32)
    s[0, 1, 2] = 0.5
    s[1] = -1
    s[1, 0, 0] = -0.25
    np.testing.assert_array_equal(head_summary(s), [0.5, -0.25])
