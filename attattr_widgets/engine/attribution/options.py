"""The settings of an attribution run, validated once: :class:`AttributionOptions` behind :func:`~.api.attribute`,
:func:`~.api.iter_attributions` and the backend call (shipped to the workers as one object)."""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import torch

from .. import validate
from ..errors import AttAttrError
from ..quadrature import RULES
from .budget import PRECISIONS
from .scores import check_score

METHODS = ("prefix", "naive")


@dataclass(frozen=True)
class Quadrature:
    """The quadrature request: a fixed (rule, steps), or ``auto`` (:class:`~..quadrature.AdaptiveSimpson`, at most
    ``max_steps`` nodes per layer) with a tolerance."""

    rule: str
    steps: int | str
    tol: float
    max_steps: int

    @property
    def auto(self) -> bool:
        return self.steps == "auto"


@dataclass(frozen=True)
class AttributionOptions:
    """Every keyword setting of a run (see :func:`~.api.attribute` for their meaning), each already checked.

    ``layers`` is the selection as given (an int or a tuple of them, or None): it is checked against the
    model's layer count by :meth:`layer_list`; ``device`` a ``torch.device`` or None, checked against where the
    model is when a run starts; ``batch_size`` None means the function's default.
    """

    target: Any = "pred"
    layers: Any = None
    quad: Quadrature = Quadrature("gauss-legendre", "auto", 1e-3, 32)
    device: torch.device | None = None
    max_length: int | None = None
    truncation: bool = False
    score: str | None = None  # None: "prob" for a class or next token, "logprob" for an answer
    method: str = "prefix"
    precision: str = "auto"
    memory_budget: int | None = None
    store: Any = "auto"
    batch_size: int | None = None

    #: the public keywords :meth:`from_kwargs` takes
    KEYWORDS = ("target", "layers", "rule", "steps", "tol", "max_steps", "device", "max_length", "truncation",
                "score", "method", "precision", "memory_budget", "store", "batch_size")

    @classmethod
    def from_kwargs(cls, *, target="pred", layers=None, rule: str = "gauss-legendre", steps: int | str = "auto",
                    tol: float = 1e-3, max_steps: int = 32, device=None, max_length: int | None = None,
                    truncation: bool = False, score: str | None = None, method: str = "prefix", precision: str = "auto",
                    memory_budget: int | None = None, store="auto", batch_size: int | None = None,
                    ) -> "AttributionOptions":
        """Check every keyword (raising :class:`~..errors.ArgumentError` / :class:`~..errors.AttAttrError` naming
        the fix) and return the options."""
        steps = validate.steps(steps)
        tol = validate.number(tol, "tol", minimum=0.0, fix="a relative completeness error such as 1e-3")
        max_steps = validate.integer(max_steps, "max_steps", minimum=1, maximum=validate.MAX_STEPS,
                                     fix="the node cap for steps='auto', e.g. 32")
        device = validate.device(device)
        precision = validate.choice(precision, "precision", PRECISIONS)
        memory_budget = validate.memory_budget(memory_budget)
        if score is not None:
            check_score(score)
        if method not in METHODS:
            raise AttAttrError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        if rule not in RULES:
            raise AttAttrError(f"unknown quadrature rule {rule!r}: choose one of {', '.join(RULES)}")
        if steps == "auto" and rule != "gauss-legendre":
            raise AttAttrError(f"steps='auto' is its own adaptive rule; rule={rule!r} needs a fixed steps=")
        if steps == "auto" and max_steps < 3:
            raise AttAttrError(f"steps='auto' starts with 3 nodes (α = 0, ½, 1): max_steps={max_steps} is too few; "
                               f"pass max_steps >= 3, or a fixed steps={max_steps}")
        return cls(
            target=target, layers=_frozen_layers(layers),
            quad=Quadrature(rule=rule, steps=steps, tol=float(tol), max_steps=int(max_steps)), device=device,
            max_length=validate.max_length(max_length), truncation=validate.flag(truncation, "truncation"),
            score=score, method=method, precision=precision, memory_budget=memory_budget, store=store,
            batch_size=validate.batch_size(batch_size),
        )

    @classmethod
    def from_arguments(cls, arguments: dict) -> "AttributionOptions":
        """:meth:`from_kwargs` of the option keywords among a public function's ``arguments`` (its ``locals()``
        on entry), so each entry point names its keywords once, in its signature."""
        return cls.from_kwargs(**{k: arguments[k] for k in cls.KEYWORDS if k in arguments})

    def replace(self, **changes) -> "AttributionOptions":
        """A copy with some fields changed (fields, not keywords: e.g. ``target``, ``store``)."""
        return dataclasses.replace(self, **changes)

    def layer_list(self, num_layers: int) -> list[int]:
        """The selected layer indices of a model with ``num_layers`` layers (all when ``layers`` is None)."""
        layers = list(self.layers) if isinstance(self.layers, tuple) else self.layers
        return validate.layer_list(layers, num_layers)


def _frozen_layers(layers):
    """A layer selection that can live in a frozen, picklable object: iterables become tuples (checked later)."""
    if layers is None or isinstance(layers, (str, bytes, bool, numbers.Number)):
        return layers
    try:
        return tuple(layers)
    except TypeError:
        return layers
