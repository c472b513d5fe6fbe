"""Head-level results: :class:`HeadImportance` (an [L, H] float64 ndarray with metadata), :class:`PruningCurve`,
:class:`Effectiveness` and :class:`Correlation` (paper Figs 2–4). numpy only, no torch."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..errors import AttAttrError
from .base import Result
from .schema import ArraySpec, Record, Schema, array, schema_of

__all__ = ["Correlation", "Effectiveness", "HeadImportance", "HeadImportanceMeta", "PruningCurve"]


@dataclass
class HeadImportanceMeta(Record, closed=True):
    """Metadata that travels with a :class:`HeadImportance`."""

    method: str = ""
    num_examples: int = 0
    target: str = "gold"
    extra: dict = field(default_factory=dict)


class HeadImportance(np.ndarray, Result, kind="head_importance", record="meta"):
    """Head importance ``[L, H]`` (float64): an ``ndarray`` (so every numpy operation works) that also carries
    ``method`` ("attattr", "taylor", …), ``num_examples`` (examples averaged) and ``target`` ("gold" | "pred").

    Arithmetic results are plain arrays again (the metadata describes this exact estimate only). In a file: the
    metadata as the record's ``"meta"`` and the array as the ``.npz`` member ``"scores"``.
    """

    _SCORES = ArraySpec(float, 2, kinds="fiu")  # any numeric [L, H] array in a file, read as float64

    def __new__(cls, scores, method: str = "", num_examples: int = 0, target: str = "gold",
                extra: dict | None = None) -> "HeadImportance":
        obj = np.asarray(scores, dtype=np.float64).view(cls)
        if obj.ndim != 2:
            raise AttAttrError(f"head importance must be a [layers, heads] array, got shape {obj.shape}")
        obj.meta = HeadImportanceMeta(str(method), int(num_examples), str(target), dict(extra or {}))
        return obj

    def __array_finalize__(self, obj):
        self.meta = getattr(obj, "meta", None) or HeadImportanceMeta()

    def __array_wrap__(self, out_arr, context=None, return_scalar=False):
        out = np.asarray(out_arr)
        return out[()] if return_scalar else out

    @property
    def method(self) -> str:
        return self.meta.method

    @property
    def num_examples(self) -> int:
        return self.meta.num_examples

    @property
    def scores(self) -> np.ndarray:
        """The plain ``[L, H]`` float64 array."""
        return np.asarray(self)

    def __reduce__(self):  # pickles (Ray object store, multiprocessing) keep the metadata
        return (_rebuild_importance, (np.asarray(self), asdict(self.meta)))

    def __repr__(self) -> str:
        return (f"HeadImportance(method={self.method!r}, examples={self.num_examples}, "
                f"shape={tuple(self.shape)})\n{np.asarray(self)!r}")

    def to_dict(self) -> dict:
        """``{"scores": [L lists of H floats], "method", "num_examples", "target", "extra"}``."""
        return {"scores": np.asarray(self).tolist(), **self.meta.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping) -> "HeadImportance":
        return cls(d["scores"], **asdict(HeadImportanceMeta.from_dict(d)))

    @classmethod
    def record_schema(cls) -> Schema:
        return replace(schema_of(HeadImportanceMeta), arrays={"scores": cls._SCORES})

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {self.record_key: self.meta.to_dict()}, {"scores": np.asarray(self)}

    @classmethod
    def from_record(cls, record: dict, arrays: dict[str, np.ndarray]) -> "HeadImportance":
        return cls(arrays["scores"], **asdict(HeadImportanceMeta.from_dict(record[cls.record_key])))


def _rebuild_importance(scores, meta):
    return HeadImportance(scores, **meta)


@dataclass
class PruningCurve(Result, kind="pruning_curve"):
    """Accuracy vs fraction of heads pruned, for one importance method and one order.

    ``fractions`` [K]; ``accuracy`` [K]; ``pruned`` [K, L, H] bool (True = masked); ``order``
    ("least-first" | "largest-first"); ``num_examples`` evaluated; ``rounding`` ("round" | "floor").
    For examples with answers (``{"text": prompt, "target": answer}`` on a causal LM), ``accuracy`` is the
    **teacher-forced exact match** (the fraction of examples whose every answer token is the arg-max given the
    prompt and the true preceding answer tokens) and ``answer_logprob`` [K] the mean over examples of the **mean
    log-probability per answer token**, (1/A) Σ_t log p(y_t | prompt, y_<t), in nats; None otherwise.
    """

    method: str
    fractions: np.ndarray = array(float, 1)
    accuracy: np.ndarray = array(float, 1)
    pruned: np.ndarray = array(bool, 3)
    order: str = "least-first"
    num_examples: int = 0
    rounding: str = "round"
    importance: np.ndarray | None = array(float, 2, default=None)
    extra: dict = field(default_factory=dict)
    answer_logprob: np.ndarray | None = array(float, 1, default=None)

    @property
    def counts(self) -> np.ndarray:
        """Number of pruned heads at each fraction: [K]."""
        return self.pruned.reshape(len(self.pruned), -1).sum(1)

    def area(self) -> float:
        """Area under the curve over fractions (trapezoid, points taken in increasing fraction): one number to
        compare methods; higher = better."""
        x = np.asarray(self.fractions, dtype=float)
        order = np.argsort(x, kind="stable")
        x, y = x[order], np.asarray(self.accuracy, dtype=float)[order]
        if len(x) < 2:
            return float(y.mean()) if len(y) else float("nan")
        return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0] or 1.0))

    def __repr__(self) -> str:
        pts = ", ".join(f"{f:.0%}:{a:.3f}" for f, a in zip(self.fractions, self.accuracy))
        return f"PruningCurve({self.method!r}, {self.order}, n={self.num_examples}, [{pts}])"


@dataclass
class Effectiveness(Result, kind="effectiveness"):
    """Paper Fig 2. ``heads`` [K] heads pruned in every layer; ``accuracy[criterion][order]`` [K] with
    criterion "attribution" | "attention" and order "smallest-first" | "largest-first"; ``full_accuracy``."""

    heads: np.ndarray = array(int, 1)
    accuracy: dict[str, dict[str, np.ndarray]] = array(float, 1)
    num_examples: int
    full_accuracy: float
    target: str = "gold"
    extra: dict = field(default_factory=dict)



@dataclass
class Correlation(Result, kind="correlation"):
    """Cross-task head correlation (paper Fig 4): ``r`` Pearson, ``p_value`` (None without scipy), ``spearman``,
    and the scatter data ``layer``, ``head``, ``x`` (task A), ``y`` (task B), one entry per head."""

    r: float
    p_value: float | None
    spearman: float | None
    n: int
    layer: np.ndarray = array(int, 1)
    head: np.ndarray = array(int, 1)
    x: np.ndarray = array(float, 1)
    y: np.ndarray = array(float, 1)
    labels: tuple[str, str] = ("A", "B")
