"""The adaptive nested rule of ``steps="auto"`` (engine/quadrature.py) on scalar integrands with known integrals:
exactness, convergence where the integrand lives near α = 0, and nestedness (no node evaluated twice, every
node weighted)."""
from __future__ import annotations

import numpy as np
import pytest

from attattr_widgets.engine.errors import AttAttrError
from attattr_widgets.engine.quadrature import AdaptiveSimpson


def _adapt(fns, exact, tol=1e-6, cap=200):
    """Run the rule on B functions until every |integral − exact| ≤ tol·|exact| (the engine's loop)."""
    rule, calls = AdaptiveSimpson(), []
    scale = tol * np.abs(exact)
    new = rule.missing()
    while True:
        calls.append(list(new))
        rule.record(new, [[f(a) for f in fns] for a in new])
        if (np.abs(rule.integral() - exact) <= scale).all() or len(rule.alphas) + 2 > cap:
            return rule, calls
        new = rule.split(scale)


def test_exact_for_cubics_from_three_nodes_and_quintics_on_sibling_pairs():
    rule = AdaptiveSimpson()
    assert rule.missing() == [0.0, 0.5, 1.0]
    cubic = lambda a: 4 * a**3 - 3 * a**2 + 2 * a - 1  # ∫_0^1 = 1 - 1 + 1 - 1 = 0  # noqa: E731
    quintic = lambda a: 6 * a**5  # ∫ = 1  # noqa: E731
    rule.record(rule.missing(), [[cubic(a), quintic(a)] for a in rule.missing()])
    assert abs(rule.integral()[0]) < 1e-14 and abs(rule.integral()[1] - 1) > 1e-3  # Simpson: cubics only
    new = rule.split([1.0, 1.0])
    assert new == [0.25, 0.75]
    rule.record(new, [[cubic(a), quintic(a)] for a in new])
    np.testing.assert_allclose(rule.integral(), [0.0, 1.0], atol=1e-14)  # Boole on [0, 1]


def test_refines_near_zero_for_a_sink_like_integrand_and_never_repeats_a_node():
    # f concentrated near α = 0, like a decoder's attention-sink layer: e^{-α/c}/c + 0.3, c = 0.02
    c = 0.02
    f = lambda a: np.exp(-a / c) / c + 0.3  # noqa: E731
    exact = np.array([1 - np.exp(-1 / c) + 0.3])
    rule, calls = _adapt([f], exact, tol=1e-4)
    assert abs(rule.integral()[0] - exact[0]) <= 1e-4 * exact[0]
    alphas, weights = rule.rule()
    # nested: each split evaluated exactly two new nodes; nothing evaluated twice; every node has a weight
    assert calls[0] == [0.0, 0.5, 1.0] and all(len(c) == 2 for c in calls[1:])
    assert len(set(alphas)) == len(alphas) == 3 + 2 * (len(calls) - 1)
    assert np.all(weights != 0) and abs(weights.sum() - 1) < 1e-14
    # the narrow panels are at 0: the first panel is far narrower than the last
    widths = [hi - lo for lo, hi in rule.panels]
    assert rule.panels[0][0] == 0.0 and widths[0] <= 1 / 64 and widths[-1] >= 1 / 4
    assert len(alphas) <= 40
    with pytest.raises(AttAttrError, match="twice"):
        rule.record([0.5], [[1.0]])


def test_b_integrands_share_nodes_and_the_worst_one_decides():
    smooth = lambda a: np.cos(a)  # noqa: E731
    sharp = lambda a: 1 / (a + 0.01)  # noqa: E731
    exact = np.array([np.sin(1.0), np.log(1.01 / 0.01)])
    rule, _ = _adapt([smooth, sharp], exact, tol=1e-6)
    np.testing.assert_allclose(rule.integral(), exact, rtol=1e-6)
    alone, _ = _adapt([smooth], exact[:1], tol=1e-6)
    assert len(alone.alphas) < len(rule.alphas)


def test_rule_refuses_before_all_nodes_are_recorded():
    rule = AdaptiveSimpson()
    rule.record([0.0, 1.0], [[1.0], [1.0]])
    with pytest.raises(AttAttrError, match="not recorded"):
        rule.rule()
