"""Head importance (paper §4.1, Fig 3): how much a fine-tuned model needs each of its L×H attention heads.

``head_importance(model, tokenizer, examples, method=...)`` returns an ``[L, H]`` float64 array, larger =
more important, for one of the registered methods (:data:`METHODS`; :func:`importance_method` registers more: a
method receives an :class:`ImportanceRequest` and yields :class:`ImportanceStep` objects, see :mod:`.protocol`):

* ``"attattr"`` (the paper's I_h = E_x[max_{i,j} Attr_h(A)]) and ``"attention"`` (E_x[max_{i,j} A_h], the
  attention-score baseline) — :mod:`.maxima`;
* ``"taylor"`` (Michel et al.'s E_x |∂L/∂ξ_h|, layer-normalised) and ``"taylor-authors"`` (what the AttAttr
  repository's ``prune_head_with_taylor.py`` computes) — :mod:`.taylor`;
* ``"accuracy"`` (accuracy of the full model minus accuracy with that head alone masked) — :mod:`.accuracy`;
* ``"random"`` — uniform random scores from ``numpy.random.default_rng(seed)`` (the control), here.

Each module's docstring says exactly what its methods compute. Evaluation forwards (everything but ``"attattr"``)
pad per batch after sorting the examples by length and run under ``torch.no_grad()`` except the two Taylor
methods, which need one backward per batch. ``progress=True`` shows a tqdm bar; a callable is called as
``progress(done, total)``. ``cancel`` (a ``threading.Event``) stops the run between batches with
:class:`AttributionCancelled`. The examples are normalised once, here, and passed down as ``list[Example]``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .. import validate
from ..backends.dispatch import check_backend
from ..errors import ArgumentError, AttAttrError, TargetError
from ..intercept.controller import controller_for
from ..model.checks import check_model_and_tokenizer
from ..model.examples import as_examples
from ..reductions import HEAD_REDUCTIONS
from ..results import HeadImportance
from .accuracy import accuracy_steps
from .maxima import attattr_steps, attention_steps
from .protocol import ImportanceRequest, ImportanceStep
from .taylor import taylor_authors_steps, taylor_steps

# ------------------------------------------------------------------------------------------------------------
# the method registry


@dataclass(frozen=True)
class ImportanceMethod:
    """A registered method: its ``name``, its generator ``run(request)`` and whether it needs examples."""

    name: str
    run: Callable[[ImportanceRequest], Iterator[ImportanceStep]]
    examples: bool = True


_REGISTRY: dict[str, ImportanceMethod] = {}


def importance_method(name: str, *, examples: bool = True):
    """Decorator: register ``fn(request: ImportanceRequest) -> Iterator[ImportanceStep]`` as the importance method
    ``name`` of :func:`head_importance` / :func:`iter_head_importance` (and so of the HeadsView and the batch
    jobs). Its last step must have ``final=True`` and an ``[L, H]`` estimate. ``examples=False``: the method may
    be called without examples (as ``"random"``). A name is registered once. ::

        @importance_method("first-layer")
        def first_layer(req):
            est = np.zeros((req.L, req.H)); est[0] = 1
            yield ImportanceStep(req.method, len(req.items), len(req.items), est, *req.empty_scores(), True)
    """
    if not isinstance(name, str) or not name:
        raise ArgumentError(f"an importance method name must be a non-empty string, got {validate.show(name)}")

    def register(fn):
        if not callable(fn):
            raise ArgumentError(f"importance method {name!r} must be a function of one ImportanceRequest, "
                                f"got {validate.show(fn)}")
        if name in _REGISTRY:
            raise ArgumentError(f"importance method {name!r} is already registered: choose another name")
        _REGISTRY[name] = ImportanceMethod(name, fn, bool(examples))
        return fn

    return register


class _Names(Sequence):
    """The registered method names in registration order: a live view (methods registered later appear)."""

    def __getitem__(self, i):
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in _REGISTRY

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


METHODS: Sequence[str] = _Names()


def _lookup(name) -> ImportanceMethod:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise AttAttrError(f"unknown importance method {name!r}: choose one of {', '.join(METHODS)}") from None


# the built-in methods, registered here in the order of METHODS
importance_method("attattr")(attattr_steps)
importance_method("attention")(attention_steps)
importance_method("taylor")(taylor_steps)
importance_method("taylor-authors")(taylor_authors_steps)
importance_method("accuracy")(accuracy_steps)


@importance_method("random", examples=False)
def _random(req: ImportanceRequest) -> Iterator[ImportanceStep]:
    """The ``"random"`` control: uniform scores from ``numpy.random.default_rng(seed)``, one final step."""
    n = len(req.items)
    yield ImportanceStep(req.method, n, n, np.random.default_rng(req.seed).random((req.L, req.H)),
                         *req.empty_scores(), True)


# ------------------------------------------------------------------------------------------------------------
# public API


def _check_target(target) -> None:
    """``"gold"``, ``"pred"``, a class index or (for ``"attattr"``) a class name; never a bool or a float."""
    if isinstance(target, bool) or not isinstance(target, (str, int, np.integer)):
        raise TargetError(f"target must be 'gold', 'pred' or a class index, got {validate.show(target)} "
                          f"({type(target).__name__})")


def iter_head_importance(
    model,
    tokenizer,
    examples,
    *,
    method: str = "attattr",
    target="gold",
    rule: str = "gauss-legendre",
    steps: int = 6,
    batch_size: int | None = None,
    seed: int = 0,
    progress=None,
    cancel: threading.Event | None = None,
    reduce: str = "max",
    max_length: int | None = None,
    normalize: bool = True,
    backend=None,
) -> Iterator[ImportanceStep]:
    """:func:`head_importance` as a stream: one :class:`ImportanceStep` per example (``"attattr"``) or per batch
    (``"attention"``, the Taylor methods), a single final step for ``"accuracy"`` and ``"random"``.
    :func:`head_importance` returns the last step's ``estimate``, so both are equal by construction. Same
    arguments as :func:`head_importance`."""
    m = _lookup(method)
    if reduce not in HEAD_REDUCTIONS:
        raise AttAttrError(f"unknown reduce {reduce!r}: choose 'max', 'absmax' or 'sum'")
    steps = validate.steps(steps)
    batch_size = validate.batch_size(batch_size)
    seed = validate.integer(seed, "seed", minimum=0)
    validate.progress(progress)
    validate.cancel_event(cancel)
    max_length = validate.max_length(max_length)
    _check_target(target)
    check_backend(backend)
    check_model_and_tokenizer(model, tokenizer)  # wrappers, class names and unsupported heads, at once
    ctrl = controller_for(model)
    items = [] if examples is None and not m.examples else as_examples(examples)
    req = ImportanceRequest(
        model=model, tokenizer=tokenizer, items=items, L=ctrl.num_layers, H=ctrl.num_heads, method=method,
        target=target, rule=rule, steps=steps, batch_size=batch_size, seed=seed, progress=progress, cancel=cancel,
        reduce=reduce, max_length=max_length, normalize=normalize, backend=backend,
    )
    for step in m.run(req):
        if np.shape(step.estimate) != (req.L, req.H):
            raise AttAttrError(f"importance method {method!r} gave an estimate of shape {np.shape(step.estimate)}; "
                               f"the model has {req.L} layers × {req.H} heads")
        yield step


def head_importance(
    model,
    tokenizer,
    examples,
    *,
    method: str = "attattr",
    target="gold",
    rule: str = "gauss-legendre",
    steps: int = 6,
    batch_size: int | None = None,
    seed: int = 0,
    progress=None,
    cancel: threading.Event | None = None,
    reduce: str = "max",
    max_length: int | None = None,
    normalize: bool = True,
    backend=None,
) -> np.ndarray:
    """Importance of every attention head, ``[L, H]`` float64 (larger = more important).

    Args:
        examples: dicts ``{"text", "text_pair"?, "label"}`` or a ``datasets.Dataset`` with those columns (the
            paper uses 200 held-out examples).
        method: ``"attattr"`` (paper), ``"attention"``, ``"taylor"``, ``"taylor-authors"``, ``"accuracy"``,
            ``"random"`` — see the module docstring for where each is defined and what it computes — or the name
            of a method registered with :func:`importance_method`.
        target: for ``"attattr"``/``"taylor"``: ``"gold"`` (paper; needs labels), ``"pred"`` or a class index.
        rule, steps: AttAttr quadrature (``"left"``, 20 = the authors' code).
        batch_size: examples per forward (default: the attribution engine's choice for ``"attattr"``, 32
            otherwise).
        seed: for ``"random"``.
        progress: ``True`` (tqdm), or ``callable(done, total)``; ``cancel``: ``threading.Event``.
        reduce: per-example head summary for ``"attattr"``/``"attention"`` (``"max"`` = paper).
        normalize: layer-wise L2 normalisation of the Taylor methods (Michel et al.; default True).
        backend: ``None`` (this process) or a :class:`~attattr_widgets.engine.backends.ray.RayBackend`: shards of
            the examples run on its workers; same result to float tolerance (see :mod:`.backends`).

    The last step of :func:`iter_head_importance` (the running estimate the widgets show).
    """
    step = None
    for step in iter_head_importance(
        model, tokenizer, examples, method=method, target=target, rule=rule, steps=steps, batch_size=batch_size,
        seed=seed, progress=progress, cancel=cancel, reduce=reduce, max_length=max_length, normalize=normalize,
        backend=backend,
    ):
        pass
    if step is None:  # only a registered method of one's own can end without a step (examples are never empty)
        raise AttAttrError(f"importance method {method!r} yielded no ImportanceStep: it must yield at least its "
                           f"final one")
    return HeadImportance(step.estimate, method=method, num_examples=step.done, target=str(target))

__all__ = [
    "METHODS",
    "ImportanceMethod",
    "ImportanceRequest",
    "ImportanceStep",
    "head_importance",
    "importance_method",
    "iter_head_importance",
]
