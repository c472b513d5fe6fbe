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


@pytest.mark.parametrize("seed", range(5))
def test_any_refinement_keeps_every_node_and_stays_exact_on_cubics(seed):
    """Whatever panels get split (here: scales drawn at random, so any panel can be the worst), each split adds
    exactly two new nodes, every node ever recorded keeps a nonzero weight, the weights sum to 1, and the rule
    stays exact for cubics (Simpson on every panel; quintics wherever siblings pair into Boole panels)."""
    rng = np.random.default_rng(seed)
    cubic = lambda a: 3 * a**3 - a**2 + 0.5  # ∫_0^1 = 3/4 − 1/3 + 1/2  # noqa: E731
    f = lambda a: [cubic(a), np.sin(7 * a)]  # noqa: E731
    rule = AdaptiveSimpson()
    rule.record(rule.missing(), [f(a) for a in rule.missing()])
    seen = list(rule.alphas)
    for _ in range(12):
        new = rule.split(rng.uniform(0.1, 10, size=2))
        assert len(new) == 2 and not set(new) & set(seen)
        rule.record(new, [f(a) for a in new])
        seen += new
        alphas, weights = rule.rule()
        assert sorted(alphas) == sorted(seen) and np.all(weights > 0) and abs(weights.sum() - 1) < 1e-14
        assert abs(rule.integral()[0] - (0.75 - 1 / 3 + 0.5)) < 1e-14
    assert abs(rule.integral()[1] - (1 - np.cos(7)) / 7) < 1e-3  # and it integrates a non-polynomial


def test_rule_recorded_out_of_order_equals_recorded_in_order():
    """α = 1 recorded first (the engine takes it from the clean pass) gives the same rule as 0, ½, 1 in order."""
    f = lambda a: np.exp(-3 * a)  # noqa: E731
    a, b = AdaptiveSimpson(), AdaptiveSimpson()
    a.record([0.0, 0.5, 1.0], [[f(0.0)], [f(0.5)], [f(1.0)]])
    b.record([1.0], [[f(1.0)]])
    assert b.missing() == [0.0, 0.5]
    b.record([0.0, 0.5], [[f(0.0)], [f(0.5)]])
    for r in (a, b):
        new = r.split([1.0])
        r.record(new, [[f(x)] for x in new])
    np.testing.assert_allclose(a.integral(), b.integral(), rtol=0, atol=1e-15)
    assert sorted(zip(*a.rule())) == sorted(zip(*b.rule()))
