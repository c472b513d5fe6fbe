"""The Ray backend: workers (one model replica each) fed shards by the driver, progress, cancel and retries."""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time

from ..errors import AttAttrError, AttributionCancelled
from collections import deque
from typing import Any, Callable, Iterator

from .worker import _Worker

INSTALL_HINT = "pip install 'attattr-widgets[distributed]'"


def _ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - exercised by test_backends with ray hidden
        raise AttAttrError(
            f"backend=RayBackend(...) needs Ray, which is not installed: {INSTALL_HINT} (or pip install 'ray[default]')"
        ) from exc
    return ray


def _none():
    return None


def _new_lock(reentrant: bool):
    return threading.RLock() if reentrant else threading.Lock()


def _dumps(obj) -> bytes:
    """cloudpickle ``obj`` (model, tokenizer), dropping the engine's controllers (rebuilt on the worker), fresh
    locks for locks, and tensors moved to the CPU (the worker puts the model on its own device)."""
    import io

    import torch
    from ray import cloudpickle

    from ..intercept.controller import AttnController

    lock_t, rlock_t = type(threading.Lock()), type(threading.RLock())

    class _Pickler(cloudpickle.CloudPickler):
        def reducer_override(self, o):
            if isinstance(o, AttnController):
                return _none, ()
            if isinstance(o, (lock_t, rlock_t)):
                return _new_lock, (isinstance(o, rlock_t),)
            if isinstance(o, threading.local):
                return threading.local, ()
            if isinstance(o, torch.Tensor) and o.device.type not in ("cpu", "meta"):
                if isinstance(o, torch.nn.Parameter):
                    return torch.nn.Parameter, (o.detach().cpu(), o.requires_grad)
                return torch.Tensor.clone, (o.detach().cpu(),)
            return super().reducer_override(o)

    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()


def model_key(model, tokenizer) -> str:
    """Identity of a model's current weights and config (metadata only, no hashing of the weights): changes
    when a parameter is replaced or updated in place (torch's version counter), or the config changes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__module__}.{type(model).__qualname__}|{id(tokenizer)}|{len(tokenizer)}".encode())
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(f"{name}|{t.data_ptr()}|{t._version}|{tuple(t.shape)}|{t.dtype}|{t.device}".encode())
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_dict"):
        h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _loader_key(loader) -> str:
    if isinstance(loader, (str, os.PathLike)):
        return f"path:{os.fspath(loader)}"
    from ray import cloudpickle

    try:
        return "callable:" + hashlib.blake2b(cloudpickle.dumps(loader), digest_size=16).hexdigest()
    except Exception as exc:  # noqa: BLE001
        raise AttAttrError(
            f"model_loader {loader!r} cannot be pickled ({exc}): pass a module-level function (or a "
            f"functools.partial of one) that returns (model, tokenizer)"
        ) from exc


class _Slot:
    """Driver-side record of one worker actor."""

    def __init__(self, actor, index: int):
        self.actor = actor
        self.index = index
        self.pid: int | None = None
        self.failures = 0
        self.shard: int | None = None  # running shard id


class RayBackend:
    """Run dataset-level work on Ray: ``backend=aw.RayBackend(...)`` on any dataset-level entry point.

    Args:
        num_workers: model replicas (Ray actors). Default: one per GPU of the cluster when it has GPUs (with
            ``num_gpus_per_worker``), else one per CPU (``num_cpus_per_worker`` each).
        num_gpus_per_worker: GPUs per replica (default 1 when the cluster has GPUs, else 0); fractions share a GPU.
        address: ``None`` → connect to the cluster Ray already knows (``ray.init`` called before, or
            ``RAY_ADDRESS``) or start a local one; ``"auto"`` → the running cluster this machine belongs to;
            ``"ray://host:10001"`` → a remote cluster through Ray Client.
        model_loader: ``None`` → the caller's model and tokenizer are pickled once into the object store and every
            worker loads that copy (re-sent when the weights change); a picklable callable returning
            ``(model, tokenizer)`` (or a model; the caller's tokenizer is then shipped), run on every worker
            instead (big models: each worker reads its own weights). ``attattr_widgets.RayBackend`` also takes
            a local path or demo name here (resolved in :mod:`attattr_widgets.batch`).
        shard_size: examples per task (default ``ceil(N / (4 · workers))``, rounded up to a multiple of the
            batch size): smaller gives finer progress, faster cancel and cheaper retries, larger less overhead.
        num_cpus_per_worker: CPUs reserved per replica (and torch threads in it); default 1.
        max_retries: attempts per shard on other workers when a worker dies (default 3).
        runtime_env: passed to ``ray.init`` when this backend connects (e.g. ``{"pip": [...]}``, ``working_dir``).

    The backend starts lazily on first use and keeps its workers (and their model replicas) for later calls;
    :meth:`shutdown` (or ``with RayBackend(...) as b:``) stops them, and stops Ray if this backend started it.
    ``last_run`` describes the most recent call: shards, retries, per-shard worker pid, compute and wall time.
    """

    def __init__(self, num_workers: int | None = None, num_gpus_per_worker: float | None = None,
                 address: str | None = None, model_loader=None, *, shard_size: int | None = None,
                 num_cpus_per_worker: float = 1, max_retries: int = 3, runtime_env: dict | None = None):
        _ray()  # fail now, with the install hint, rather than on first use
        if num_workers is not None and (isinstance(num_workers, bool) or int(num_workers) != num_workers
                                        or num_workers < 1):
            raise AttAttrError(f"num_workers must be a positive integer or None, got {num_workers!r}")
        if num_gpus_per_worker is not None and not num_gpus_per_worker >= 0:
            raise AttAttrError(f"num_gpus_per_worker must be >= 0 or None, got {num_gpus_per_worker!r}")
        if shard_size is not None and (isinstance(shard_size, bool) or int(shard_size) != shard_size or shard_size < 1):
            raise AttAttrError(f"shard_size must be a positive integer or None, got {shard_size!r}")
        if not num_cpus_per_worker > 0:
            raise AttAttrError(f"num_cpus_per_worker must be > 0, got {num_cpus_per_worker!r}")
        if isinstance(model_loader, (str, os.PathLike)):
            raise AttAttrError(
                f"model_loader={model_loader!r} is a path or name: use attattr_widgets.RayBackend, which resolves "
                f"it with attattr_widgets.demo.load_model, or pass functools.partial(load_model, {model_loader!r})")
        if model_loader is not None and not callable(model_loader):
            raise AttAttrError(
                f"model_loader must be a callable returning (model, tokenizer), a local path or a load_model name, "
                f"not {model_loader!r}"
            )
        self.num_workers = None if num_workers is None else int(num_workers)
        self.num_gpus_per_worker = num_gpus_per_worker
        self.address = address
        self.model_loader = model_loader
        self.shard_size = None if shard_size is None else int(shard_size)
        self.num_cpus_per_worker = num_cpus_per_worker
        self.max_retries = int(max_retries)
        self.runtime_env = runtime_env
        self.start_timeout = 300.0  # seconds to wait for a first worker before giving up with the reason
        self._gpus_per_worker = 0.0
        self.last_run: dict = {}
        self._slots: list[_Slot] = []
        self._started_ray = False
        self._payloads: dict[str, Any] = {}
        self._runs = 0
        self._lock = threading.Lock()  # one map at a time per backend

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"RayBackend(num_workers={self.num_workers}, num_gpus_per_worker={self.num_gpus_per_worker}, "
                f"address={self.address!r}, model_loader={self.model_loader!r}, started={bool(self._slots)})")

    def start(self) -> "RayBackend":
        """Connect to (or start) Ray and start the workers; called by the first run."""
        if self._slots:
            return self
        ray = _ray()
        if not ray.is_initialized():
            kw: dict = {"runtime_env": self.runtime_env} if self.runtime_env else {}
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                want = (self.num_workers or 0) * self.num_cpus_per_worker
                kw.update(num_cpus=max(os.cpu_count() or 1, math.ceil(want)), include_dashboard=False)
            try:
                ray.init(address=self.address, **kw)
            except Exception:  # noqa: BLE001 - a local start on a loaded machine can miss Ray's 30 s window
                if self.address is not None or "num_cpus" not in kw:
                    raise
                ray.shutdown()
                ray.init(**kw)
            self._started_ray = True
        res = ray.cluster_resources()
        gpus = float(res.get("GPU", 0))
        gpw = self.num_gpus_per_worker if self.num_gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
        n = self.num_workers
        if n is None:
            n = int(gpus // gpw) if gpw else int(float(res.get("CPU", 1)) // self.num_cpus_per_worker)
            n = max(1, n)
        if gpw and n * gpw > gpus:
            raise AttAttrError(f"{n} workers × {gpw} GPUs need {n * gpw:g} GPUs but the cluster has {gpus:g}: "
                               f"lower num_workers or num_gpus_per_worker")
        self._gpus_per_worker = float(gpw)
        actor_cls = ray.remote(_Worker)
        opts = dict(num_cpus=self.num_cpus_per_worker, num_gpus=gpw, max_concurrency=4, max_restarts=2,
                    max_task_retries=0)
        threads = max(1, int(self.num_cpus_per_worker))
        self._slots = [_Slot(actor_cls.options(**opts).remote(threads), i) for i in range(n)]
        self.num_workers_started = n
        return self

    def shutdown(self) -> None:
        """Stop the workers (and Ray, if this backend started it). A later run starts them again."""
        try:
            ray = _ray()
        except AttAttrError:  # pragma: no cover
            return
        for s in self._slots:
            try:
                ray.kill(s.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._slots = []
        self._payloads.clear()
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def worker_pids(self, timeout: float = 120.0) -> list[int]:
        """Process ids of the live workers (starts them if needed; for tests and monitoring)."""
        ray = _ray()
        self.start()
        infos = ray.get([s.actor.info.remote() for s in self._slots], timeout=timeout)
        for s, i in zip(self._slots, infos):
            s.pid = i["pid"]
        return [i["pid"] for i in infos]

    def status(self) -> list[dict]:
        """Driver-side view of the workers during a run: ``{"index", "pid", "shard", "failures"}`` each."""
        return [{"index": s.index, "pid": s.pid, "shard": s.shard, "failures": s.failures} for s in self._slots]

    # -- model shipping -------------------------------------------------------------------------------------------
    def _payload(self, model, tokenizer):
        ray = _ray()
        if self.model_loader is not None:
            key = _loader_key(self.model_loader)
            if key not in self._payloads:
                tok_ref = ray.put(_dumps(tokenizer)) if tokenizer is not None else None
                self._payloads = {key: ("loader", self.model_loader, tok_ref)}
            return key, self._payloads[key]
        key = model_key(model, tokenizer)
        if key not in self._payloads:
            self._payloads = {}  # one model at a time in the object store
            self._payloads[key] = ("pickle", ray.put(_dumps((model, tokenizer))))
        return key, self._payloads[key]

    # -- sharding ---------------------------------------------------------------------------------------------------
    def shards(self, n: int, multiple: int = 1) -> list[tuple[int, int]]:
        """``[(start, stop)]`` slices of ``n`` examples (see ``shard_size``)."""
        workers = max(1, len(self._slots) or self.num_workers or 1)
        size = self.shard_size or max(1, math.ceil(n / (4 * workers)))
        m = max(1, int(multiple))
        size = m * math.ceil(size / m)
        return [(a, min(n, a + size)) for a in range(0, n, size)]

    # -- the run loop -------------------------------------------------------------------------------------------------
    def map(self, fn: Callable, model, tokenizer, items: list, *, progress=None, cancel=None, desc: str = "",
            units: int = 1, multiple: int = 1, kwargs: dict | None = None) -> Iterator[Any]:
        """Yield ``fn``'s part for each shard of ``items``, in shard order (see the module docstring)."""
        if not self._lock.acquire(blocking=False):
            raise AttAttrError("this RayBackend is already running a computation: wait for it, or use a second "
                               "RayBackend (both can share one cluster)")
        try:
            yield from self._map(fn, model, tokenizer, items, progress, cancel, desc, units, multiple, kwargs or {})
        finally:
            self._lock.release()

    def _map(self, fn, model, tokenizer, items, progress, cancel, desc, units, multiple, kwargs):
        ray = _ray()
        from ray import cloudpickle
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        from ..progress import Progress

        died = (RayActorError, WorkerCrashedError)
        t_start = time.perf_counter()
        self.start()
        key, box = self._payload(model, tokenizer)
        shards = self.shards(len(items), multiple)
        kw_ref = ray.put(kwargs)
        self._runs += 1
        run = self._runs
        attempts = [0] * len(shards)
        done_units = [0] * len(shards)
        results: dict[int, Any] = {}
        stats: list[dict | None] = [None] * len(shards)
        pending = deque(range(len(shards)))
        running: dict = {}  # ref -> (shard, slot, token, t_submit)
        probing: dict = {}  # ref -> slot (info() call: worker starting or restarting)
        for s in self._slots:
            s.shard = None
            probing[s.actor.info.remote()] = s
        idle: list[_Slot] = []
        retries, cancelled_tasks = 0, 0
        next_out = 0
        last_poll = 0.0
        t_first_ready = None
        prog = Progress(progress, len(items) * units, desc)

        def submit(slot: _Slot, sid: int):
            a, b = shards[sid]
            attempts[sid] += 1
            token = (run, sid, attempts[sid])
            ref = slot.actor.run.remote(token, key, box, fn, items[a:b], a, kw_ref)
            slot.shard = sid
            running[ref] = (sid, slot, token, time.perf_counter())

        def stop_running(wait_s: float = 30.0) -> int:
            """Cancel the running shards on their workers; wait for them to stop. Returns how many stopped
            with AttributionCancelled (i.e. the cancel reached a running computation)."""
            for ref, (_sid, slot, token, _t) in running.items():
                try:
                    slot.actor.cancel.remote(token)
                except Exception:  # noqa: BLE001 - the worker is gone
                    pass
            n = 0
            refs = list(running)
            if refs:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
                for ref in ready:
                    try:
                        ray.get(ref)
                    except RayTaskError as exc:
                        n += isinstance(getattr(exc, "cause", None), AttributionCancelled)
                    except Exception:  # noqa: BLE001
                        pass
            for _sid, slot, _t, _ts in running.values():
                slot.shard = None
            running.clear()
            return n

        finished = False
        try:
            while next_out < len(shards):
                if cancel is not None and cancel.is_set():
                    cancelled_tasks = stop_running()
                    raise AttributionCancelled("cancelled")
                while pending and idle:
                    submit(idle.pop(0), pending.popleft())
                if not running and not idle and probing and time.perf_counter() - t_start > self.start_timeout:
                    res = ray.cluster_resources()
                    raise AttAttrError(
                        f"no Ray worker started within {self.start_timeout:.0f} s: each needs "
                        f"{self.num_cpus_per_worker:g} CPU(s) and {self._gpus_per_worker:g} GPU(s), the cluster has "
                        f"{res.get('CPU', 0):g} CPUs and {res.get('GPU', 0):g} GPUs (other jobs may hold them): "
                        f"lower num_workers / num_cpus_per_worker / num_gpus_per_worker, or see `ray status`"
                    )
                if not running and not probing:
                    raise AttAttrError(
                        f"no Ray workers are left ({sum(s.failures for s in self._slots)} worker failures): "
                        f"{len(pending)} of {len(shards)} shards did not run; check the cluster (ray status)"
                    )
                ready, _ = ray.wait(list(running) + list(probing), num_returns=1, timeout=0.1)
                for ref in ready:
                    if ref in probing:
                        slot = probing.pop(ref)
                        try:
                            slot.pid = ray.get(ref)["pid"]
                            idle.append(slot)
                            t_first_ready = t_first_ready or time.perf_counter()
                        except died:
                            slot.failures += 1  # dead for good: leave it out
                        continue
                    sid, slot, token, t_sub = running.pop(ref)
                    slot.shard = None
                    try:
                        blob, st = ray.get(ref)
                        part = cloudpickle.loads(blob)
                    except died:
                        slot.failures += 1
                        retries += 1
                        if attempts[sid] > self.max_retries:
                            raise AttAttrError(
                                f"examples {shards[sid][0]}..{shards[sid][1] - 1} failed on {attempts[sid]} workers "
                                f"(each worker died: out of memory? see `ray logs`); giving up"
                            ) from None
                        pending.appendleft(sid)
                        probing[slot.actor.info.remote()] = slot  # back in the pool once it answers (restarted)
                        continue
                    except RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, BaseException):
                            raise cause from None
                        raise
                    results[sid] = part
                    st.update(shard=sid, attempts=attempts[sid], latency_s=time.perf_counter() - t_sub)
                    stats[sid] = st
                    done_units[sid] = (shards[sid][1] - shards[sid][0]) * units
                    idle.append(slot)
                now = time.perf_counter()
                if running and now - last_poll > 0.2:
                    last_poll = now
                    self._poll(ray, running, done_units, shards, units)
                total_done = sum(done_units)
                if total_done > prog.done:
                    prog.update(total_done - prog.done)
                while next_out in results:
                    part = results.pop(next_out)
                    next_out += 1
                    yield part
            finished = True
        finally:
            if not finished and running:
                cancelled_tasks += stop_running()
            prog.close()
            done = [s for s in stats if s is not None]
            self.last_run = {
                "shards": len(shards), "examples": len(items), "workers": len(self._slots),
                "retries": retries, "cancelled_tasks": cancelled_tasks, "completed": finished,
                "wall_s": time.perf_counter() - t_start,
                "startup_s": None if t_first_ready is None else t_first_ready - t_start,
                "compute_s": sum(s["compute_s"] for s in done), "load_s": sum(s["load_s"] for s in done),
                "shard_stats": stats,
            }

    def _poll(self, ray, running, done_units, shards, units) -> None:
        refs = {slot.actor.progress.remote(): (sid, token) for sid, slot, token, _t in running.values()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.5)
        for ref in ready:
            sid, token = refs[ref]
            try:
                tok, done = ray.get(ref)
            except Exception:  # noqa: BLE001 - a dying worker: its run ref will say so
                continue
            if tok == token:
                cap = (shards[sid][1] - shards[sid][0]) * units
                done_units[sid] = max(done_units[sid], min(int(done), cap))
