"""Trigger results (paper §4.3): a mined :class:`TriggerPattern` and the :class:`TriggerResult` of inserting it
(per-class :class:`ClassAccuracy` before / after). Built by :mod:`attattr_widgets.engine.analysis.triggers`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from .base import Result

__all__ = ["ClassAccuracy", "TriggerPattern", "TriggerResult"]


class ClassAccuracy(TypedDict):
    """One gold class of a :class:`TriggerResult`: ``label`` (class index), ``name``, ``n`` examples, accuracy
    ``before`` / ``after`` the trigger (in [0, 1]) and the ``drop`` (before − after)."""

    label: int
    name: str
    n: int
    before: float
    after: float
    drop: float


@dataclass
class TriggerPattern(Result, kind="trigger_pattern", closed=True):
    """One mined pattern.

    ``tokens`` / ``token_ids`` / ``positions`` / ``segments`` / ``relative``: the trigger WordPieces in source
    order, their position in the source input, their segment (0 = first text, 1 = text pair) and relative position
    inside that segment (0 = first content token, 1 = last).  ``score`` = v1 + v2 (+ …) of the top pairs;
    ``pairs``: the top pairs ``{"query", "key", "query_token", "key_token", "value", "used"}`` of the
    (``layer``, ``head``) matrix holding the example's largest attribution.  ``pred`` / ``pred_label``: the
    predicted (attributed) class; ``gold``: the example label (None if unlabelled).
    """

    tokens: list[str]
    token_ids: list[int]
    positions: list[int]
    segments: list[int]
    relative: list[float]
    score: float
    layer: int
    head: int
    pairs: list[dict]
    pred: int
    pred_label: str
    gold: int | None
    prob: float
    example_index: int
    text: str
    text_pair: str | None = None
    source_tokens: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        """Identity of the trigger for de-duplication: (segment, token id) pairs in source order."""
        return tuple(zip(self.segments, self.token_ids))

    def __repr__(self) -> str:
        segs = "" if not any(self.segments) else f", segments={self.segments}"
        return (f"TriggerPattern({' '.join(self.tokens)!r}{segs}, score={self.score:.4f}, "
                f"pred={self.pred_label!r}, layer={self.layer}, head={self.head}, example={self.example_index})")


@dataclass
class TriggerResult(Result, kind="trigger_result", closed=True):
    """Per-gold-class accuracy without (``before``) and with (``after``) the trigger inserted.

    ``per_class``: one dict per gold class present, ``{"label", "name", "n", "before", "after", "drop"}``
    (accuracies in [0, 1]); ``overall_before`` / ``overall_after``; ``flip_rate``: share of examples whose
    prediction changed; ``truncated``: examples that had to be shortened to fit the trigger.
    """

    pattern: TriggerPattern
    per_class: list[ClassAccuracy]
    overall_before: float
    overall_after: float
    flip_rate: float
    n: int
    truncated: int = 0

    def accuracy(self, label) -> tuple[float, float]:
        """(before, after) for a gold class given by index or name."""
        for c in self.per_class:
            if c["label"] == label or c["name"] == label:
                return c["before"], c["after"]
        raise KeyError(f"no gold class {label!r} among {[c['name'] for c in self.per_class]}")

    @property
    def largest_drop(self) -> dict:
        """The per-class record with the largest accuracy drop."""
        return max(self.per_class, key=lambda c: c["drop"])

    def __repr__(self) -> str:
        cells = ", ".join(f"{c['name']}: {100 * c['before']:.1f}% -> {100 * c['after']:.1f}%" for c in self.per_class)
        return f"TriggerResult({' '.join(self.pattern.tokens)!r}: {cells})"
