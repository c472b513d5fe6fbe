"""Accuracy under head masks, in process or sharded over a backend, and the ``"accuracy"`` importance method.

:func:`sharded_accuracy` is what every accuracy of the analyses goes through (the ``"accuracy"`` method here,
pruning curves and the effectiveness analysis in :mod:`.pruning`): :func:`~attattr_widgets.engine.model.predict.
predict_masked` on one :class:`~attattr_widgets.engine.model.predict.EncodedSet` in this process, or on shards of
its examples on a :class:`~attattr_widgets.engine.backends.ray.RayBackend`.

``"accuracy"`` — Michel et al.'s accuracy difference: accuracy of the full model minus accuracy with that head
alone masked (L·H + 1 evaluations, batched with per-row head masks). On a few hundred examples many heads tie
(often at 0); :func:`~attattr_widgets.engine.analysis.pruning.pruning_curve` breaks ties with a seeded random
order rather than by layer. A single final step.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..backends.dispatch import run_sharded
from ..model.predict import EncodedSet, predict_masked
from .protocol import ImportanceRequest, ImportanceStep

__all__ = ["accuracy_steps", "sharded_accuracy", "sharded_metrics"]


def _predict_part(model, tokenizer, items, *, offset, progress, cancel, keep, per_example, batch_size, max_length,
                  label, what):
    """Shard function (see :mod:`.backends`): :func:`predict_masked` on ``items`` (an :class:`EncodedSet` in
    process, examples on a worker): ``[K, n]``. Per-example masks are sliced at ``offset``."""
    data = items if isinstance(items, EncodedSet) else EncodedSet(model, tokenizer, items, max_length=max_length)
    data.need_labels(what)
    keep = np.asarray(keep)
    # a writable copy (arrays from Ray's object store are read-only); per-example masks: this shard's rows
    keep = np.array(keep[offset : offset + len(data)] if per_example else keep, dtype=np.float32)
    return predict_masked(data, keep, per_example=per_example, batch_size=batch_size, progress=progress,
                          cancel=cancel, desc=label)


def sharded_metrics(backend, data: EncodedSet, keep, *, per_example: bool = False, batch_size: int = 32,
                    max_length: int | None = None, progress=None, cancel=None, desc: str = "evaluating",
                    what: str = "accuracy") -> tuple[np.ndarray, np.ndarray | None]:
    """``(accuracy [K], answer log-probability [K] or None)`` under each of K head masks (``keep`` [K, L, H], or
    [N, K, L, H] with ``per_example``; :func:`~attattr_widgets.engine.model.predict.predict_masked`) in process
    (``backend=None``) or over shards of ``data``'s examples on a
    :class:`~attattr_widgets.engine.backends.ray.RayBackend` (the predictions are concatenated in example order).
    Accuracy: against the gold labels; for examples with answers, the teacher-forced exact match (every answer
    token the arg-max given the true prefix), with the mean over examples of the mean log-probability per answer
    token (nats) second (:func:`~attattr_widgets.engine.model.predict.answer_metrics`). ``max_length`` must be
    the one ``data`` was encoded with."""
    data.need_labels(what)
    K = int(np.shape(keep)[-3])
    parts = run_sharded(backend, _predict_part, data.model, data.tokenizer, data if backend is None else data.items,
                        progress=progress, cancel=cancel, desc=desc, units=K, keep=keep, per_example=per_example,
                        batch_size=batch_size, max_length=max_length, label=desc, what=what)
    preds = np.concatenate(parts, axis=1)
    if data.answers:
        return preds[..., 0].mean(1), preds[..., 1].mean(1)
    return (preds == data.labels[None, :]).mean(1), None


def sharded_accuracy(backend, data: EncodedSet, keep, **kw) -> np.ndarray:
    """The accuracy of :func:`sharded_metrics` (same arguments): ``[K]``."""
    return sharded_metrics(backend, data, keep, **kw)[0]


def accuracy_steps(req: ImportanceRequest) -> Iterator[ImportanceStep]:
    """The ``"accuracy"`` method: a single final step (L·H + 1 masked evaluations)."""
    L, H, N = req.L, req.H, len(req.items)
    data = EncodedSet(req.model, req.tokenizer, req.items, max_length=req.max_length)
    keep = np.ones((1 + L * H, L, H), dtype=np.float32)
    for k in range(L * H):
        keep[1 + k, k // H, k % H] = 0.0
    acc = sharded_accuracy(req.backend, data, keep, batch_size=req.eval_batch_size, max_length=req.max_length,
                           progress=req.progress, cancel=req.cancel, desc="accuracy importance",
                           what='method="accuracy"')
    yield ImportanceStep(req.method, N, N, (acc[0] - acc[1:]).reshape(L, H).astype(np.float64),
                         *req.empty_scores(), True)
