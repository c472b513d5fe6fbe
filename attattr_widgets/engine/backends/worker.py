"""The Ray worker: a plain class (so this module imports without Ray) that Ray turns into an actor; it holds one
model replica, runs shard functions and reports progress and cancellation."""
from __future__ import annotations

import os
import threading
import time
import types

from ..errors import AttAttrError


class _Pieces(list):
    """What a worker returns for a generator shard function: the pieces it yielded, in order."""

class _ShardCancel:
    """The worker's cancel flag handed to the engine (``is_set()`` like a ``threading.Event``)."""

    def __init__(self):
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()


class _Worker:
    """One model replica. ``run`` computes one shard (one at a time); ``progress`` / ``cancel`` / ``info`` run
    concurrently with it (threaded actor)."""

    def __init__(self, num_threads: int):
        import torch

        torch.set_num_threads(max(1, int(num_threads)))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._key = None
        self._model = None
        self._lock = threading.Lock()
        self._token = None
        self._done = 0
        self._cancel = _ShardCancel()
        self._cancelled: set = set()

    def info(self) -> dict:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def progress(self):
        return self._token, self._done

    def cancel(self, token) -> None:
        with self._lock:
            self._cancelled.add(token)
            if token == self._token:
                self._cancel._event.set()

    def _tick(self, done, total=None) -> None:
        self._done = int(done)

    def _load(self, key, box):
        if key == self._key:
            return self._model, 0.0
        import ray
        import torch
        from ray import cloudpickle

        t0 = time.perf_counter()
        self._model = None  # free the previous replica first
        kind = box[0]
        if kind == "pickle":
            model, tok = cloudpickle.loads(ray.get(box[1]))
        else:
            loader, tok = box[1], (cloudpickle.loads(ray.get(box[2])) if box[2] is not None else None)
            built = loader()
            if isinstance(built, tuple):
                model, tok = built[0], built[1]
            else:
                model = built
            if tok is None:
                raise AttAttrError("model_loader returned a model without a tokenizer: return (model, tokenizer)")
        if ray.get_gpu_ids() and torch.cuda.is_available():
            model = model.to("cuda")
        model.eval()
        self._model, self._key = (model, tok), key
        return self._model, time.perf_counter() - t0

    def run(self, token, key, box, fn, items, offset, kwargs):
        from ray import cloudpickle

        with self._lock:
            self._token, self._done = token, 0
            self._cancel = _ShardCancel()
            if token in self._cancelled:
                self._cancel._event.set()
        (model, tok), load_s = self._load(key, box)
        t0 = time.perf_counter()
        try:
            out = fn(model, tok, items, offset=offset, progress=self._tick, cancel=self._cancel, **kwargs)
            if isinstance(out, types.GeneratorType):
                out = _Pieces(out)
            # pickled here, so the driver gets ordinary (writable) arrays that do not pin the object store
            out = cloudpickle.dumps(out, protocol=5)
        finally:
            with self._lock:
                self._token = None
                self._cancelled.discard(token)
        return out, {"pid": os.getpid(), "compute_s": time.perf_counter() - t0, "load_s": load_s}
