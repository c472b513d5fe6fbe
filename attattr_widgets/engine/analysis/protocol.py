"""The head-importance method protocol: what a method receives (:class:`ImportanceRequest`) and yields
(:class:`ImportanceStep`).

A method is a generator function ``fn(request: ImportanceRequest) -> Iterator[ImportanceStep]`` registered under
its name with :func:`~attattr_widgets.engine.analysis.importance.importance_method`;
:func:`~attattr_widgets.engine.analysis.importance.iter_head_importance` validates the common arguments once,
normalises the examples once and hands the method an :class:`ImportanceRequest`;
:func:`~attattr_widgets.engine.analysis.importance.head_importance` returns the estimate of its last step.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.examples import Example

__all__ = ["ImportanceRequest", "ImportanceStep"]


@dataclass
class ImportanceStep:
    """One update of a running head-importance estimate (what :func:`iter_head_importance` yields).

    ``estimate`` [L, H] float64 is the importance over the first ``done`` examples, computed exactly as the final
    one (same reduction and normalisation), so the last step's ``estimate`` *is* :func:`head_importance`'s
    result. ``example_index`` [b] (positions in ``examples``) and ``example_scores`` [b, L, H] are the examples
    this step added and their per-example head scores (``"attattr"``/``"attention"``: the reduced map;
    ``"taylor"``: |∂L/∂ξ|; ``"taylor-authors"``: the per-example sum before normalisation; empty for
    ``"accuracy"``/``"random"``). ``final`` marks the last step.
    """

    method: str
    done: int
    total: int
    estimate: np.ndarray
    example_index: np.ndarray
    example_scores: np.ndarray
    final: bool = False


@dataclass(frozen=True)
class ImportanceRequest:
    """The validated arguments of one head-importance run, as a method receives them.

    ``items``: the examples, normalised once (``[]`` only for a method registered with ``examples=False``
    and called without examples); ``L``, ``H``: the model's layers and heads per layer; ``batch_size`` None =
    the method's own default. The other fields are :func:`head_importance`'s keywords, already checked.
    """

    model: Any
    tokenizer: Any
    items: list[Example]
    L: int
    H: int
    method: str
    target: Any
    rule: str
    steps: int
    batch_size: int | None
    seed: int
    progress: Any
    cancel: threading.Event | None
    reduce: str
    max_length: int | None
    normalize: bool
    backend: Any

    @property
    def eval_batch_size(self) -> int:
        """Examples per evaluation forward: ``batch_size``, or 32 when it is None."""
        return 32 if self.batch_size is None else int(self.batch_size)

    def empty_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(example_index [0], example_scores [0, L, H])`` for a step that adds no per-example scores."""
        return np.zeros(0, dtype=np.int64), np.zeros((0, self.L, self.H))
