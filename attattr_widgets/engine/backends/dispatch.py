"""Where dataset-level work runs: in this process (``backend=None``) or on a Ray cluster (:class:`RayBackend`).

Every dataset-level entry point (``head_importance``, ``compare_pruning`` / ``pruning_curve``, ``effectiveness``,
``iter_attributions``, ``mine_triggers``, ``evaluate_trigger(s)``) is written as

    parts = run_sharded(backend, shard_fn, model, tokenizer, items, progress=..., cancel=..., **kwargs)
    result = reduce(parts)            # deterministic, in example order

with one *shard function* per computation, of the form

    shard_fn(model, tokenizer, items: list[Example], *, offset: int, progress, cancel, **kwargs) -> part

(``offset``: the global index of ``items[0]``; ``progress(done, total)`` counts the shard's own units;
``cancel`` is an Event-like object with ``is_set()``). In process the shard function runs **once, on all the
examples** (one shard, with the caller's ``progress``, exactly the loop of the single-machine code); on Ray it
runs on consecutive slices of the examples, one model replica per worker, and the driver (the notebook
kernel) receives the parts **in shard order**, whatever order the workers finish in. The reductions only
concatenate per-example parts or add per-shard partial sums in that order, so the results equal the in-process
ones to float tolerance (bit for bit where the part is per example and the batches are the same).

Ray backend, in brief (details in :class:`RayBackend`):

* workers are Ray actors (one model replica each, GPU when ``num_gpus_per_worker``), fed shards one at a time
  by the driver (so a fast worker takes more shards);
* the model goes to the workers once through the object store (re-sent only when its weights change), or each
  worker builds its own from ``model_loader``;
* progress: the driver polls each busy worker's counter and calls the caller's ``progress(done, total)`` in the
  same units as in process; cancel: when the caller's ``cancel`` Event is set, the driver sets the running
  workers' own events (the engine checks them between integration chunks and batches), waits for them to stop
  and raises :class:`~attattr_widgets.engine.errors.AttributionCancelled`;
* a worker that dies (process killed, node lost) has its shard re-queued on another worker (``max_retries``
  attempts per shard); an error raised *by the computation* (bad input, out of memory) is raised on the driver
  as the original exception, not retried.
"""
from __future__ import annotations

import types
from typing import Any, Callable, Iterator, Sequence

from ..errors import AttAttrError
from .ray import RayBackend
from .worker import _Pieces

def check_backend(backend) -> None:
    """``None`` (in process) or a :class:`RayBackend`; anything else raises with the fix."""
    if backend is not None and not isinstance(backend, RayBackend):
        raise AttAttrError(
            f"backend must be None (run in this process) or attattr_widgets.RayBackend(...), not {backend!r}"
        )

def iter_sharded(backend, fn: Callable, model, tokenizer, items: Sequence, *, progress=None, cancel=None,
                 desc: str = "", units: int = 1, multiple: int = 1, **kwargs) -> Iterator[Any]:
    """Run ``fn`` over ``items`` and yield its parts in order: one part in process, one per shard on Ray; when
    ``fn`` is a generator function, its pieces instead (in process as it yields them, streaming; on Ray a
    shard's pieces arrive when the shard is done).

    ``units``: progress units per example (the in-process total is ``len(items) * units``); ``multiple``: Ray
    shards hold a multiple of this many examples (the batch size, so batches are the same as in process).
    """
    check_backend(backend)
    if backend is None:
        out = fn(model, tokenizer, items, offset=0, progress=progress, cancel=cancel, **kwargs)
        if isinstance(out, types.GeneratorType):
            yield from out
        else:
            yield out
        return
    for part in backend.map(fn, model, tokenizer, list(items), progress=progress, cancel=cancel, desc=desc,
                            units=units, multiple=multiple, kwargs=kwargs):
        if isinstance(part, _Pieces):
            yield from part
        else:
            yield part

def run_sharded(backend, fn: Callable, model, tokenizer, items: Sequence, **kw) -> list:
    """:func:`iter_sharded` collected into a list of parts, in order."""
    return list(iter_sharded(backend, fn, model, tokenizer, items, **kw))
