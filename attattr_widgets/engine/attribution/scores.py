"""The score F that is attributed: a registry of functions of the prediction logits and the targets.

A score function maps ``(logits [..., C], targets [...])`` (logits already in the accumulation dtype) to the
targets' values ``[...]``; the adapter decides where the logits are read (:mod:`..model.adapters`).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import AttAttrError

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _gather(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return values.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


_SCORES: dict[str, ScoreFn] = {
    "prob": lambda logits, targets: _gather(torch.softmax(logits, -1), targets),
    "logprob": lambda logits, targets: _gather(torch.log_softmax(logits, -1), targets),
    "logit": _gather,
}


def register_score(name: str, fn: ScoreFn) -> None:
    """Make ``score=name`` attribute ``fn(logits, targets)`` (replacing a score of that name)."""
    if not isinstance(name, str) or not name or not callable(fn):
        raise AttAttrError(f"register_score takes a name and a function fn(logits, targets), got {name!r}, {fn!r}")
    _SCORES[name] = fn


def unregister_score(name: str) -> None:
    """Remove a registered score (no error when there is none of that name)."""
    _SCORES.pop(name, None)


def score_names() -> tuple[str, ...]:
    """The registered scores, in registration order (``"prob"``, ``"logprob"``, ``"logit"``, then yours)."""
    return tuple(_SCORES)


def check_score(score) -> str:
    """A registered score name; anything else raises with the choices."""
    if not isinstance(score, str) or score not in _SCORES:
        raise AttAttrError(f"unknown score {score!r}: choose one of {', '.join(_SCORES)}")
    return score


def target_score(logits: torch.Tensor, targets: torch.Tensor, score: str, acc_dtype) -> torch.Tensor:
    """F of each row: the registered ``score`` of ``targets`` [R] in the prediction ``logits`` [R, C]: [R]."""
    return _SCORES[check_score(score)](logits.to(acc_dtype), targets.view(logits.shape[:-1]))
