"""Quadrature rules for the integrated-gradients integral over α ∈ [0, 1].

`Attr = A ⊙ ∫_0^1 ∂F(αA)/∂A dα ≈ A ⊙ Σ_k w_k ∂F(α_k A)/∂(α_k A)`.

Fixed rules (:func:`quadrature`):

* ``"left"``  α_k = k/m, k = 0..m-1 (what the authors' code runs; first order)
* ``"right"`` α_k = k/m, k = 1..m   (the paper's formula; first order)
* ``"midpoint"`` α_k = (k + ½)/m    (second order)
* ``"gauss-legendre"`` Legendre nodes mapped to [0, 1] (exact for polynomials of degree 2m-1).

``steps="auto"`` uses :class:`AdaptiveSimpson`: an adaptive composite rule on dyadic panels whose nodes are
nested, so refining a panel keeps every gradient already evaluated and the final weights use them all.
"""
from __future__ import annotations

import numpy as np

from .errors import AttAttrError

RULES = ("left", "right", "midpoint", "gauss-legendre")
#: The rule name results carry for ``steps="auto"``.
AUTO_RULE = "adaptive-simpson"


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(alphas, weights)``, both float64 arrays of shape [steps]; the weights sum to 1."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise AttAttrError(f"steps must be a positive integer, got {steps!r}")
    m = int(steps)
    if rule == "left":
        return np.arange(m) / m, np.full(m, 1.0 / m)
    if rule == "right":
        return np.arange(1, m + 1) / m, np.full(m, 1.0 / m)
    if rule == "midpoint":
        return (np.arange(m) + 0.5) / m, np.full(m, 1.0 / m)
    if rule == "gauss-legendre":
        x, w = np.polynomial.legendre.leggauss(m)
        return (x + 1.0) / 2.0, w / 2.0
    raise AttAttrError(f"unknown quadrature rule {rule!r}: choose one of {', '.join(RULES)}")


_SIMPSON = np.array([1.0, 4.0, 1.0]) / 6.0  # × panel width; nodes lo, mid, hi
_BOOLE = np.array([7.0, 32.0, 12.0, 32.0, 7.0]) / 90.0  # × width of two sibling panels; nodes at their quarters


class AdaptiveSimpson:
    """Adaptive composite Simpson–Boole rule on dyadic panels of [0, 1] for B integrands sharing their nodes,
    with nested nodes: **no node is ever discarded**, every value recorded keeps a weight in :meth:`rule`.

    Every panel [lo, hi] (a dyadic interval) holds nodes at lo, its midpoint and hi; splitting a panel adds only
    its two quarter points (its three nodes become the halves' ends and shared middle). Rule: two sibling panels
    (the halves of one split panel, neither split further) form one Boole panel — Simpson's rule on the halves
    Richardson-extrapolated, 5 equispaced nodes, exact for quintics; any other panel uses Simpson's rule (exact
    for cubics).

    Error estimate (what :meth:`split` uses): for two sibling panels, |S_halves − S_parent| / 15 (the
    Richardson estimate of the composite Simpson error, conservative for the Boole value), shared between the
    halves in proportion to their second differences |f(lo) − 2 f(mid) + f(hi)|·width; a panel keeps its share
    when its sibling is split; [0, 1] before any split has none (∞). :meth:`split` halves the panel with the
    largest estimate relative to ``scale`` (worst of the B integrands) — for a decoder's attention-sink layer,
    whose integrand lives near α = 0, that is the panel at 0, again and again.

    Use: evaluate :meth:`missing` nodes and :meth:`record` their values [k, B]; :meth:`integral` and
    :meth:`rule` give the estimate [B] and ``(alphas, weights)`` over every recorded node (recording order);
    :meth:`split` returns the nodes to evaluate next.
    """

    def __init__(self) -> None:
        self.alphas: list[float] = []  # recorded nodes, in recording order
        self._f: dict[float, np.ndarray] = {}  # node -> values [B]
        self.panels: list[tuple[float, float]] = [(0.0, 1.0)]  # the partition of [0, 1], left to right
        self._kept: dict[tuple[float, float], np.ndarray] = {}  # estimate of a panel whose sibling was split

    @staticmethod
    def _nodes(lo: float, hi: float) -> tuple[float, float, float]:
        return lo, 0.5 * (lo + hi), hi

    def _paired(self, i: int) -> bool:
        """Panels i and i+1 are the two halves of one dyadic panel (a panel [lo, lo + w] is a left half iff lo is
        a multiple of 2w)."""
        if i + 1 >= len(self.panels):
            return False
        (lo, hi), (lo2, hi2) = self.panels[i], self.panels[i + 1]
        return hi2 - lo2 == hi - lo and lo % (2 * (hi - lo)) == 0

    def _units(self) -> list[tuple[str, int]]:
        """The rule's units, left to right: ``("pair", i)`` (panels i, i+1 are siblings) or ``("single", i)``."""
        i, out = 0, []
        while i < len(self.panels):
            kind = "pair" if self._paired(i) else "single"
            out.append((kind, i))
            i += 2 if kind == "pair" else 1
        return out

    def missing(self) -> list[float]:
        """Nodes of the current panels not recorded yet (sorted)."""
        need = {a for lo, hi in self.panels for a in self._nodes(lo, hi)}
        return sorted(a for a in need if a not in self._f)

    def record(self, alphas, values) -> None:
        """Values of the B integrands at ``alphas``: ``values`` [k, B]."""
        for a, v in zip(alphas, np.asarray(values, np.float64).reshape(len(alphas), -1)):
            a = float(a)
            if a in self._f:
                raise AttAttrError(f"node {a} recorded twice")
            self._f[a] = v
            self.alphas.append(a)

    def rule(self) -> tuple[np.ndarray, np.ndarray]:
        """``(alphas, weights)`` over every recorded node (recording order); the weights sum to 1 and none is
        zero: every node evaluated counts."""
        missing = self.missing()
        if missing:
            raise AttAttrError(f"nodes {missing} are not recorded yet")
        w = dict.fromkeys(self.alphas, 0.0)
        for kind, i in self._units():
            if kind == "pair":
                lo, hi = self.panels[i][0], self.panels[i + 1][1]
                nodes, coef = np.linspace(lo, hi, 5), _BOOLE
            else:
                (lo, hi), coef = self.panels[i], _SIMPSON
                nodes = self._nodes(lo, hi)
            for a, c in zip(nodes, coef):
                w[float(a)] += c * (hi - lo)
        return np.asarray(self.alphas, np.float64), np.asarray([w[a] for a in self.alphas], np.float64)

    def integral(self) -> np.ndarray:
        """Σ_k w_k f(α_k) for each of the B integrands: [B]."""
        alphas, weights = self.rule()
        return weights @ np.stack([self._f[a] for a in alphas])

    def _simpson(self, lo: float, hi: float) -> np.ndarray:
        a, m, b = (self._f[x] for x in self._nodes(lo, hi))
        return (hi - lo) * (a + 4 * m + b) / 6.0

    def _curvature(self, lo: float, hi: float) -> np.ndarray:
        a, m, b = (self._f[x] for x in self._nodes(lo, hi))
        return np.abs(a - 2 * m + b) * (hi - lo)

    def errors(self) -> list[np.ndarray]:
        """Estimated |error| of each panel's share of the integral: [B] per panel (∞ for [0, 1] unsplit)."""
        out: list[np.ndarray] = [np.full(len(self._f[0.0]), np.inf)] * len(self.panels)
        for kind, i in self._units():
            if kind == "pair":
                (lo, mid), (_, hi) = self.panels[i], self.panels[i + 1]
                e = np.abs(self._simpson(lo, mid) + self._simpson(mid, hi) - self._simpson(lo, hi)) / 15.0
                cl, cr = self._curvature(lo, mid), self._curvature(mid, hi)
                share = np.divide(cl, cl + cr, out=np.full_like(e, 0.5), where=cl + cr > 0)
                out[i], out[i + 1] = e * share, e * (1.0 - share)
            elif self.panels[i] in self._kept:
                out[i] = self._kept[self.panels[i]]
        return out

    def split(self, scale) -> list[float]:
        """Halve the panel with the largest estimate / ``scale`` ([B], the allowed error per integrand; ties:
        the wider panel); returns the two new nodes to evaluate (then :meth:`record` them)."""
        errors = self.errors()
        scale = np.maximum(np.asarray(scale, np.float64), 1e-300)
        worst = max(range(len(self.panels)),
                    key=lambda j: (float(np.max(errors[j] / scale)), self.panels[j][1] - self.panels[j][0]))
        for i in (worst - 1, worst):  # its sibling, if still a leaf, keeps its current share
            if i >= 0 and self._paired(i):
                other = i + 1 if i == worst else i
                self._kept[self.panels[other]] = errors[other]
        lo, hi = self.panels[worst]
        mid = 0.5 * (lo + hi)
        self.panels[worst : worst + 1] = [(lo, mid), (mid, hi)]
        return self.missing()
