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


_CONTINUATION_SCORES = ("logprob", "prob", "logit")


def continuation_score(logits: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, score: str,
                       acc_dtype) -> torch.Tensor:
    """F of each row for a teacher-forced continuation: [R].

    ``logits`` [R, A, V]: the logits that predict the A answer tokens (position t holds the logits read before
    answer token t, i.e. the model's output at the position of the token preceding it); ``ids`` [R, A] long: the
    answer tokens y_t; ``weights`` [R, A] float: w_t (all ones for the whole answer, one-hot for token t's own F,
    zeros for padding beyond a row's answer). ``score``:

    - ``"logprob"``: Σ_t w_t log p(y_t | prompt, y_<t) (nats);
    - ``"prob"``: exp of that — the answer's joint probability (with one-hot weights, p(y_t) of that token);
    - ``"logit"``: Σ_t w_t logit(y_t).

    Computed in ``acc_dtype``; a continuation accepts only these three scores (a registered score is a function
    of one prediction, not of a sequence).
    """
    if score not in _CONTINUATION_SCORES:
        raise AttAttrError(f"score {score!r} does not apply to a continuation target: choose one of "
                           f"{', '.join(_CONTINUATION_SCORES)}")
    if logits.dim() != 3 or ids.shape != logits.shape[:2] or weights.shape != logits.shape[:2]:
        raise AttAttrError(f"continuation_score takes logits [R, A, V], ids [R, A] and weights [R, A], got "
                           f"{tuple(logits.shape)}, {tuple(ids.shape)}, {tuple(weights.shape)}")
    logits = logits.to(acc_dtype)
    ids = ids.to(device=logits.device, dtype=torch.long)
    weights = weights.to(device=logits.device, dtype=acc_dtype)
    if score == "logit":
        values = _gather(logits, ids)
    else:
        values = _gather(torch.log_softmax(logits, -1), ids)
    total = torch.where(weights != 0, values * weights, torch.zeros_like(values)).sum(-1)  # 0·(-inf) = 0
    return total.exp() if score == "prob" else total
