"""Attribution (attattr_widgets/engine/results/attribution.py): its one layer sum is the attribution tree's input,
and its head scores come from the one reduction table."""
from __future__ import annotations

import numpy as np
import pytest
from result_samples import make_attr

from attattr_widgets.engine.errors import AttAttrError
from attattr_widgets.engine.reductions import reduce_heads
from attattr_widgets.engine.results import sum_heads
from attattr_widgets.engine.analysis.tree import layer_sums


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_layer_sum_is_the_trees_float32_head_sum_for_every_store(dtype):
    a = make_attr()
    a.scores = a.scores.astype(dtype)
    got = a.layer_sum()
    assert got.dtype == np.float32 and got.shape == (2, 4, 4)
    np.testing.assert_array_equal(got, layer_sums(a))
    ref = a.scores.astype(np.float64).sum(1)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_layer_sum_refuses_maps_that_are_not_square():
    with pytest.raises(AttAttrError, match=r"\[layers, heads, n, n\]"):
        sum_heads(np.zeros((2, 3, 4, 5)))


def test_head_scores_use_the_reduction_table():
    a = make_attr()
    for name in ("max", "absmax", "sum"):
        assert np.array_equal(a.head_scores(name), reduce_heads(a.scores, name))
    assert a.head_scores().shape == (2, 3)
    with pytest.raises(AttAttrError, match="unknown reduce"):
        a.head_scores("mean")
