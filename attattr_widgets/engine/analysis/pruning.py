"""Head pruning (paper Fig 3), the effectiveness analysis (Fig 2) and cross-task head correlation (Fig 4).

Pruning a head = multiplying its attention probabilities by 0 through the controller's head mask (the
authors' ``attention_probs * att_head_mask``): the head's context vector becomes 0, the output projection's
bias still applies, nothing is re-trained.

* :func:`pruning_curve` / :func:`compare_pruning` — heads ranked **globally** (over all L·H heads) by an
  importance array, the least important pruned first (``order="least-first"``, the paper) or the most
  important first (``"largest-first"``); accuracy on held-out examples at each pruned fraction. The number of
  pruned heads is ``int(round(f·L·H))`` (``rounding="round"``). The authors' scripts use ``int(f·144)``
  (truncation: 0.7 → 100, 0.9 → 129 heads, where rounding gives 101 and 130); ``rounding="floor"``
  reproduces that. Ties in the importance (frequent for ``"accuracy"``) are broken by a seeded random order,
  not by layer index. Every distinct mask of all methods is evaluated once (per-row ``(B, H)`` masks), one
  fraction after the other (:class:`PruningSweep`); the 0 % and 100 % masks are shared.
* :func:`effectiveness` — paper §4.1: per example, heads ranked *within every layer* by that example's
  gold-label attribution max vs its attention max; prune the k smallest (or largest) of every layer and measure
  accuracy vs k; four curves.
* :func:`head_correlation` — Pearson r (and Spearman ρ) of two importance grids, with the scatter data.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..attribution.api import iter_attributions
from .. import validate
from ..errors import ArgumentError, AttAttrError
from ..model.examples import as_examples
from ..intercept.controller import controller_for
from ..errors import check_cancel
from ..backends.dispatch import check_backend, iter_sharded
from .accuracy import sharded_accuracy, sharded_metrics
from ..model.predict import EncodedSet
from ..progress import Progress
from ..model.checks import check_model_and_tokenizer
from ..results import Correlation, Effectiveness, PruningCurve

ORDERS = {
    "least-first": "least-first", "smallest-first": "least-first", "ascending": "least-first",
    "largest-first": "largest-first", "most-first": "largest-first", "descending": "largest-first",
}


def _order(order: str) -> str:
    try:
        return ORDERS[str(order)]
    except KeyError:
        raise AttAttrError(f"unknown pruning order {order!r}: use 'least-first' or 'largest-first'") from None


def _default_fractions() -> np.ndarray:
    return np.round(np.linspace(0.0, 1.0, 11), 10)



# ------------------------------------------------------------------------------------------------------------
# masks


def pruning_order(importance: np.ndarray, order: str = "least-first", seed: int = 0) -> np.ndarray:
    """Flat head indices (layer·H + head) in the order they are pruned; ties broken by a seeded random key."""
    imp = np.asarray(importance, dtype=np.float64)
    if imp.ndim != 2:
        raise AttAttrError(f"importance must be [layers, heads], got shape {imp.shape}")
    if not np.isfinite(imp).all():
        raise AttAttrError("importance contains NaN or inf: recompute it (or replace them) before pruning")
    key = imp.ravel() if _order(order) == "least-first" else -imp.ravel()
    tie = np.random.default_rng(seed).random(key.size)
    return np.lexsort((tie, key))


def pruned_counts(fractions, total: int, rounding: str = "round") -> np.ndarray:
    """Heads pruned at each fraction: ``int(round(f·total))`` or, ``rounding="floor"``, the authors' ``int(f·total)``."""
    f = np.asarray(fractions, dtype=np.float64)
    if ((f < 0) | (f > 1)).any():
        raise AttAttrError(f"fractions must lie in [0, 1], got {f.tolist()}")
    if rounding == "round":
        return np.rint(f * total).astype(int)
    if rounding == "floor":
        return np.array([int(x * total) for x in f], dtype=int)  # exactly the authors' int(rate * 144)
    raise AttAttrError(f"unknown rounding {rounding!r}: use 'round' or 'floor' (the authors' int())")


def pruning_masks(importance, fractions=None, order: str = "least-first", *, rounding: str = "round",
                  seed: int = 0) -> np.ndarray:
    """Pruned-head masks ``[K, L, H]`` bool (True = pruned) for a global ranking of ``importance``."""
    imp = np.asarray(importance, dtype=np.float64)
    fractions = _default_fractions() if fractions is None else np.asarray(fractions, float)
    ranking = pruning_order(imp, order, seed)
    counts = pruned_counts(fractions, imp.size, rounding)
    out = np.zeros((len(counts), imp.size), dtype=bool)
    for k, c in enumerate(counts):
        out[k, ranking[:c]] = True
    return out.reshape(len(counts), *imp.shape)


# ------------------------------------------------------------------------------------------------------------
# pruning curves


@dataclass
class PruningPoint:
    """One step of a pruning sweep: the accuracy of every curve at fraction ``fractions[index]``.

    ``accuracy`` {curve label: float}, ``pruned`` {curve label: [L, H] bool (True = pruned)}, ``done`` / ``total``
    fractions evaluated so far; ``answer_logprob`` {curve label: float} for examples with answers (then
    ``accuracy`` is the teacher-forced exact match; see :class:`~attattr_widgets.engine.results.PruningCurve`), else None.
    """

    index: int
    fraction: float
    accuracy: dict
    pruned: dict
    done: int
    total: int
    answer_logprob: dict | None = None


class PruningSweep:
    """The pruning curves of :func:`compare_pruning`, evaluated one fraction at a time.

    Iterating yields one :class:`PruningPoint` per fraction (all curves' points at that fraction, each distinct
    mask evaluated once, batched over examples and masks); :meth:`curves` returns the
    :class:`PruningCurve` list (NaN where a point has not been evaluated yet, e.g. after a Stop).
    :func:`compare_pruning` is ``list(sweep); sweep.curves()``, so both give the same numbers.
    """

    def __init__(self, model, tokenizer, examples, importances: Mapping[str, np.ndarray], *, fractions=None,
                 order: str | Sequence[str] = "least-first", batch_size: int = 32, rounding: str = "round",
                 seed: int = 0, max_length: int | None = None, progress=None,
                 cancel: threading.Event | None = None, backend=None):
        check_backend(backend)
        if not isinstance(importances, Mapping):
            raise ArgumentError(f"importances must be a dict {{name: [L, H] array}}, got a "
                                f"{type(importances).__name__}: pass {{'attattr': imp}} (or use pruning_curve for "
                                f"one array)")
        if not importances:
            raise AttAttrError("no importances given: pass {'attattr': head_importance(...), ...}")
        orders = [order] if isinstance(order, str) else list(validate.word_list(order, "order"))
        orders = [_order(o) for o in orders]
        fractions = validate.fractions(fractions)
        self.fractions = _default_fractions() if fractions is None else fractions
        batch_size = validate.batch_size(batch_size, allow_none=False)
        seed = validate.integer(seed, "seed", minimum=0)
        validate.progress(progress)
        validate.cancel_event(cancel)
        check_model_and_tokenizer(model, tokenizer)  # wrappers, class names and unsupported heads, at once
        ctrl = controller_for(model)
        L, H = ctrl.num_layers, ctrl.num_heads
        self.specs = []
        for name, imp in importances.items():
            imp = np.asarray(imp, dtype=np.float64)
            if imp.shape != (L, H):
                raise AttAttrError(f"importance {name!r} has shape {imp.shape} but the model has {L} layers × {H} heads")
            for o in orders:
                label = str(name) if len(orders) == 1 else f"{name}, {o}"
                self.specs.append((label, o, imp, pruning_masks(imp, self.fractions, o, rounding=rounding, seed=seed)))
        # distinct masks across all curves
        uniq: dict[bytes, int] = {}
        self.keys = []
        for _, _, _, masks in self.specs:
            self.keys.append([uniq.setdefault(np.packbits(m).tobytes(), len(uniq)) for m in masks])
        self.stack = np.ones((len(uniq), L, H), dtype=np.float32)
        for (_, _, _, masks), ks in zip(self.specs, self.keys):
            for m, k in zip(masks, ks):
                self.stack[k] = (~m).astype(np.float32)
        self.acc = np.full(len(uniq), np.nan)
        self.logprob = np.full(len(uniq), np.nan)
        self.data = EncodedSet(model, tokenizer, examples, max_length=max_length)
        self.data.need_labels("pruning")
        self.rounding, self.batch_size, self.progress, self.cancel = rounding, batch_size, progress, cancel
        self.max_length, self.backend = max_length, backend

    def __iter__(self) -> Iterator[PruningPoint]:
        K, N = len(self.fractions), len(self.data)
        evaluated = np.zeros(len(self.stack), dtype=bool)
        with Progress(self.progress, N * len(self.stack), "pruning") as prog:
            for k in range(K):
                group = sorted({ks[k] for ks in self.keys if not evaluated[ks[k]]})
                if group:
                    base = prog.done
                    self.acc[group], logprob = sharded_metrics(
                        self.backend, self.data, self.stack[group], batch_size=self.batch_size,
                        max_length=self.max_length, cancel=self.cancel, what="pruning",
                        progress=lambda d, t, b=base: prog.update(b + d - prog.done))
                    if logprob is not None:
                        self.logprob[group] = logprob
                    evaluated[group] = True
                labels = [(label, ks[k]) for (label, _, _, _), ks in zip(self.specs, self.keys)]
                yield PruningPoint(
                    index=k, fraction=float(self.fractions[k]),
                    accuracy={label: float(self.acc[j]) for label, j in labels},
                    pruned={label: masks[k] for (label, _, _, masks) in self.specs}, done=k + 1, total=K,
                    answer_logprob={label: float(self.logprob[j]) for label, j in labels} if self.data.answers
                    else None)

    def curves(self) -> list[PruningCurve]:
        return [
            PruningCurve(method=label, fractions=self.fractions.copy(), accuracy=self.acc[ks], pruned=masks,
                         order=o, num_examples=len(self.data), rounding=self.rounding, importance=imp,
                         answer_logprob=self.logprob[ks] if self.data.answers else None)
            for (label, o, imp, masks), ks in zip(self.specs, self.keys)
        ]


def compare_pruning(
    model,
    tokenizer,
    examples,
    importances: Mapping[str, np.ndarray],
    *,
    fractions=None,
    order: str | Sequence[str] = "least-first",
    batch_size: int = 32,
    rounding: str = "round",
    seed: int = 0,
    max_length: int | None = None,
    progress=None,
    cancel: threading.Event | None = None,
    backend=None,
) -> list[PruningCurve]:
    """One :class:`PruningCurve` per (method, order): what the pruning plot shows.

    ``importances``: ``{name: [L, H] array}`` (e.g. from :func:`head_importance`). ``order``: one order or a
    list (e.g. ``("least-first", "largest-first")``); with several orders the curves are named
    ``"name, order"``. Every distinct mask is evaluated once, batched over examples, one fraction after the
    other (:class:`PruningSweep`, which the widgets iterate to draw the curves point by point).
    ``backend``: ``None`` (this process) or a :class:`~attattr_widgets.engine.backends.ray.RayBackend` (each
    fraction's masks are evaluated on shards of the examples, on its workers).
    """
    sweep = PruningSweep(model, tokenizer, examples, importances, fractions=fractions, order=order,
                         batch_size=batch_size, rounding=rounding, seed=seed, max_length=max_length,
                         progress=progress, cancel=cancel, backend=backend)
    for _ in sweep:
        pass
    return sweep.curves()


def pruning_curve(
    model,
    tokenizer,
    examples,
    importance: np.ndarray,
    *,
    fractions=None,
    order: str = "least-first",
    method_name: str | None = None,
    batch_size: int = 32,
    rounding: str = "round",
    seed: int = 0,
    max_length: int | None = None,
    progress=None,
    cancel: threading.Event | None = None,
    backend=None,
) -> PruningCurve:
    """Accuracy on ``examples`` as the heads are pruned in the global order of ``importance`` ``[L, H]``.

    ``fractions`` default ``np.linspace(0, 1, 11)``, taken in increasing order (sorted); pruned count = ``int(round(f·L·H))`` (``rounding="floor"``
    for the authors' ``int()``); ``order`` "least-first" (paper) or "largest-first". See :func:`compare_pruning`.
    """
    return compare_pruning(
        model, tokenizer, examples, {method_name or "importance": importance}, fractions=fractions, order=order,
        batch_size=batch_size, rounding=rounding, seed=seed, max_length=max_length, progress=progress,
        cancel=cancel, backend=backend,
    )[0]


# ------------------------------------------------------------------------------------------------------------
# effectiveness (Fig 2)


def per_layer_masks(scores: np.ndarray, heads_per_layer, order: str, seed: int = 0) -> np.ndarray:
    """Keep masks ``[K, L, H]`` float: in every layer, the k lowest- (``"smallest-first"``) or highest-scoring
    (``"largest-first"``) heads of ``scores`` [L, H] set to 0, for each k in ``heads_per_layer``."""
    s = np.asarray(scores, dtype=np.float64)
    L, H = s.shape
    tie = np.random.default_rng(seed).random(H)
    key = s if _order(order) == "least-first" else -s
    rank = np.stack([np.lexsort((tie, key[l])) for l in range(L)])  # [L, H] head indices, pruned first → last
    ks = list(heads_per_layer)
    out = np.ones((len(ks), L, H), dtype=np.float32)
    rows = np.arange(L)[:, None]
    for i, k in enumerate(ks):
        if not 0 <= k <= H:
            raise AttAttrError(f"cannot prune {k} heads per layer: the model has {H} heads per layer")
        out[i, rows, rank[:, :k]] = 0.0
    return out


def _effectiveness_pieces(model, tokenizer, items, *, offset, progress, cancel, target, rule, steps, batch_size,
                          max_length):
    """Shard function (see :mod:`.backends`): yields ``(index, (attribution max [L, H], attention max [L, H]))``
    per example: the two per-example head rankings of :func:`effectiveness`."""
    with Progress(progress, len(items), "effectiveness: attribution") as prog:
        for n, attr in enumerate(
            iter_attributions(model, tokenizer, items, target=target, rule=rule, steps=steps,
                              batch_size=batch_size, cancel=cancel, max_length=max_length)
        ):
            L, H = attr.scores.shape[:2]
            head_max = (attr.head_scores("max"), attr.attention.reshape(L, H, -1).max(-1))
            prog.update(1)
            check_cancel(cancel)
            yield offset + n, head_max


def effectiveness(
    model,
    tokenizer,
    examples,
    *,
    heads_per_layer=None,
    target="gold",
    rule: str = "gauss-legendre",
    steps: int = 6,
    batch_size: int = 32,
    attribution_batch_size: int | None = None,
    seed: int = 0,
    max_length: int | None = None,
    progress=None,
    cancel: threading.Event | None = None,
    backend=None,
) -> Effectiveness:
    """Paper Fig 2: are large-attribution heads more decisive than large-attention heads?

    For every example: attribute its ``target`` (default the gold label, as the authors) with AttAttr; score
    each head by the max attribution over its real token pairs, and separately by the max attention
    probability; in every layer prune the k smallest-scoring (or largest-scoring) heads and check whether the
    prediction still equals the gold label. The ranking differs per example. Returns accuracy vs k for the
    four (criterion, order) pairs; ``heads_per_layer`` defaults to 0..H. ``backend``: ``None`` or a
    :class:`~attattr_widgets.engine.backends.ray.RayBackend` (attribution and the masked evaluation run on shards).
    """
    check_backend(backend)
    steps = validate.steps(steps)
    batch_size = validate.batch_size(batch_size, allow_none=False)
    attribution_batch_size = validate.batch_size(attribution_batch_size, "attribution_batch_size")
    seed = validate.integer(seed, "seed", minimum=0)
    validate.progress(progress)
    validate.cancel_event(cancel)
    items = as_examples(examples)
    data = EncodedSet(model, tokenizer, items, max_length=max_length)
    data.need_labels("effectiveness")
    L, H = data.L, data.H
    if heads_per_layer is None:
        ks = list(range(H + 1))
    else:
        if isinstance(heads_per_layer, (str, bytes)) or not hasattr(heads_per_layer, "__iter__"):
            raise ArgumentError(f"heads_per_layer must be a list of head counts such as [0, 1, 2], got "
                                f"{validate.show(heads_per_layer)}")
        ks = [validate.integer(k, "heads_per_layer entry", minimum=0, maximum=H,
                               fix=f"the model has {H} heads per layer") for k in heads_per_layer]
        if not ks:
            raise ArgumentError(f"heads_per_layer is empty: pass counts such as [0, 1, …, {H}], or None")
    crits = ("attribution", "attention")
    orders = ("smallest-first", "largest-first")
    N = len(items)
    keep = np.ones((N, len(crits) * len(orders) * len(ks), L, H), dtype=np.float32)
    for n, head_max in iter_sharded(backend, _effectiveness_pieces, model, tokenizer, items, progress=progress,
                                    cancel=cancel, desc="effectiveness: attribution",
                                    multiple=attribution_batch_size or 1, target=target, rule=rule, steps=steps,
                                    batch_size=attribution_batch_size, max_length=max_length):
        scores = dict(zip(crits, head_max))
        j = 0
        for c in crits:
            for o in orders:
                keep[n, j : j + len(ks)] = per_layer_masks(scores[c], ks, o, seed=seed + n)
                j += len(ks)
    acc_all = sharded_accuracy(backend, data, keep, per_example=True, batch_size=batch_size, max_length=max_length,
                               progress=progress, cancel=cancel, desc="effectiveness: pruning",
                               what="effectiveness")
    acc: dict = {}
    j = 0
    for c in crits:
        acc[c] = {}
        for o in orders:
            acc[c][o] = acc_all[j : j + len(ks)]
            j += len(ks)
    full = float(sharded_accuracy(backend, data, np.ones((1, L, H), np.float32), batch_size=batch_size,
                                  max_length=max_length, cancel=cancel, what="effectiveness")[0])
    return Effectiveness(heads=np.asarray(ks), accuracy=acc, num_examples=N, full_accuracy=full,
                         target=str(target), extra={"rule": rule, "steps": steps})


# ------------------------------------------------------------------------------------------------------------
# correlation (Fig 4)


def head_correlation(imp_a, imp_b, *, labels: tuple[str, str] = ("A", "B")) -> Correlation:
    """Pearson r between two per-head importance grids ``[L, H]`` (one point per head), p-value and Spearman ρ
    when scipy is installed, and the scatter data."""
    a = np.asarray(imp_a, dtype=np.float64)
    b = np.asarray(imp_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise AttAttrError(f"importances must be two [layers, heads] arrays of one shape, got {a.shape} and {b.shape}")
    x, y = a.ravel(), b.ravel()
    xm, ym = x - x.mean(), y - y.mean()
    den = np.sqrt((xm * xm).sum() * (ym * ym).sum())
    r = float((xm * ym).sum() / den) if den > 0 else float("nan")
    p = rho = None
    try:
        from scipy import stats

        if den > 0 and x.size > 2:
            p = float(stats.pearsonr(x, y).pvalue)
            rho = float(stats.spearmanr(x, y).statistic)
    except ImportError:  # pragma: no cover - scipy is optional
        pass
    L, H = a.shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    return Correlation(r=r, p_value=p, spearman=rho, n=int(x.size), layer=layer.ravel(), head=head.ravel(),
                       x=x, y=y, labels=(str(labels[0]), str(labels[1])))


__all__ = [
    "Correlation",
    "Effectiveness",
    "PruningCurve",
    "PruningPoint",
    "PruningSweep",
    "compare_pruning",
    "effectiveness",
    "head_correlation",
    "per_layer_masks",
    "pruned_counts",
    "pruning_curve",
    "pruning_masks",
    "pruning_order",
]
