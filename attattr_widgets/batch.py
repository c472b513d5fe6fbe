"""Batch jobs from the command line: ``attattr importance`` and ``attattr triggers``.

Dataset-level work in this process or on a Ray cluster (``--backend ray --address auto``), written as typed result
files (:func:`~attattr_widgets.engine.results.save_result`) that :func:`~attattr_widgets.engine.results.load_result`
and the widgets open::

    attattr importance --model sentiment --data reviews.jsonl --method attattr --backend ray --address auto \\
        --out importance.npz
    attattr triggers --model nli --data mine.jsonl --evaluate dev.jsonl --backend ray --out triggers.npz

``--data``: a JSON-lines file, one ``{"text", "text_pair"?, "label"?}`` object per line, or ``demo:NAME[:SPLIT]``
for a shipped demo set (``demo:sentiment:test``).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

from .engine.backends.ray import RayBackend as _EngineRayBackend


class RayBackend(_EngineRayBackend):
    """:class:`attattr_widgets.engine.backends.ray.RayBackend` whose ``model_loader`` may also be a local path or
    a demo name, built on every worker by :func:`attattr_widgets.demo.load_model` (the path must exist on every
    node). Everything else is the engine's backend (see its docstring)."""

    def __init__(self, *args, model_loader=None, **kwargs):
        super().__init__(*args, model_loader=loader_for(model_loader), **kwargs)

    @property
    def model_loader(self):
        """What each worker builds its replica with (None: the caller's model is shipped)."""
        return self._model_loader

    @model_loader.setter
    def model_loader(self, spec) -> None:
        self._model_loader = loader_for(spec)


def loader_for(spec):
    """A picklable ``model_loader`` for ``spec``: a path or demo name becomes
    ``functools.partial(load_model, spec)``; a callable or None is returned as it is."""
    if isinstance(spec, (str, os.PathLike)):
        from .demo import load_model

        return functools.partial(load_model, os.fspath(spec))
    return spec


def add_commands(sub) -> None:
    """Register the ``importance`` and ``triggers`` sub-commands on an argparse ``sub`` parser."""
    from .engine.analysis.importance import METHODS

    p = sub.add_parser("importance", help="head importance over a data set (optionally on Ray); writes .npz")
    _common(p)
    p.add_argument("--method", default="attattr", choices=METHODS)
    p.add_argument("--target", default="gold", help="gold | pred | a class index")
    p.add_argument("--out", default="importance.npz", help="the HeadImportance file to write")
    p.set_defaults(func=importance)

    p = sub.add_parser("triggers", help="mine adversarial trigger patterns (optionally on Ray); writes .npz")
    _common(p)
    p.add_argument("--top-pairs", type=int, default=2)
    p.add_argument("--ratio", type=float, default=0.2)
    p.add_argument("--min-score", type=float, default=0.02)
    p.add_argument("--min-tokens", type=int, default=None)
    p.add_argument("--blacklist", default="", help="comma-separated tokens; patterns containing one are dropped")
    p.add_argument("--evaluate", default=None, metavar="DATA",
                   help="also evaluate the best --top patterns on these labelled examples")
    p.add_argument("--top", type=int, default=10, help="patterns to evaluate (default 10)")
    p.add_argument("--eval-out", default=None, help="TriggerResult file (default: <out>_results.npz)")
    p.add_argument("--out", default="triggers.npz", help="the TriggerPattern list file to write")
    p.set_defaults(func=triggers)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sentiment", help="sentiment | nli | decoder | a checkpoint dir or hub id")
    p.add_argument("--data", required=True, help="file.jsonl ({'text', 'text_pair'?, 'label'?} per line) or "
                                                 "demo:NAME[:SPLIT]")
    p.add_argument("--limit", type=int, default=None, help="use the first N examples")
    p.add_argument("--rule", default="gauss-legendre")
    p.add_argument("--steps", type=_steps, default=None, help="quadrature nodes (an integer, or auto)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-length", type=int, default=None)
    g = p.add_argument_group("distributed (Ray)")
    g.add_argument("--backend", choices=("local", "ray"), default="local")
    g.add_argument("--address", default=None, help="auto (the running cluster) | ray://host:10001 | none: start "
                                                   "a local Ray")
    g.add_argument("--workers", type=int, default=None, help="model replicas (default: one per GPU, else CPU)")
    g.add_argument("--gpus-per-worker", type=float, default=None)
    g.add_argument("--cpus-per-worker", type=float, default=1)
    g.add_argument("--shard-size", type=int, default=None, help="examples per task")
    g.add_argument("--load-on-workers", action="store_true",
                   help="every worker loads --model itself (big models; the path must exist on every node) "
                        "instead of receiving a copy through the object store")


def _steps(value: str):
    return value if value == "auto" else int(value)


def load_examples(spec: str, limit: int | None = None) -> list[dict]:
    """``file.jsonl`` or ``demo:NAME[:SPLIT]`` → a list of example dicts (first ``limit``). Every problem is an
    :class:`AttAttrError` naming the argument at fault (``--limit``, ``--data``, the file and line)."""
    from .engine.errors import AttAttrError

    if limit is not None and int(limit) < 1:
        raise AttAttrError(f"--limit {limit}: pass a number of examples >= 1 (or leave --limit out for all of them)")
    if spec.startswith("demo:"):
        from .demo import load_dataset

        name, _, split = spec[5:].partition(":")
        try:
            items = list(load_dataset(name, split or "test"))
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if exc.args else exc
            raise AttAttrError(f"--data {spec}: {msg} (write demo:NAME[:SPLIT], e.g. demo:sentiment:test)") from None
    else:
        path = Path(spec)
        if not path.is_file():
            raise AttAttrError(f"--data {spec}: no such file (give a .jsonl file or demo:NAME[:SPLIT])")
        items = []
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of line 1
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise AttAttrError(f"--data {spec}: line {line} is not UTF-8 text (byte {exc.object[exc.start]:#04x}): "
                               f"save the file as UTF-8 JSON lines") from None
        for n, line in enumerate(text.split("\n"), 1):  # only \n ends a JSON line (U+2028 may be in a string)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AttAttrError(f"{spec} line {n} is not JSON ({exc.msg}): one object per line") from None
            if not isinstance(obj, dict) or "text" not in obj:
                raise AttAttrError(f"{spec} line {n}: expected an object with a 'text' field, got {line[:60]!r}")
            items.append(obj)
    if limit is not None:
        items = items[: int(limit)]
    if not items:
        raise AttAttrError(f"--data {spec}: no examples")
    return items


def _backend(args):
    if args.backend == "local":
        return None
    return RayBackend(num_workers=args.workers, num_gpus_per_worker=args.gpus_per_worker, address=args.address,
                      model_loader=args.model if args.load_on_workers else None, shard_size=args.shard_size,
                      num_cpus_per_worker=args.cpus_per_worker)


class _Report:
    """``progress(done, total)`` that prints about every 5 % (and the last)."""

    def __init__(self, what: str):
        self.what, self.t0, self.last = what, time.perf_counter(), -1

    def __call__(self, done: int, total: int) -> None:
        step = max(1, total // 20)
        if done == total or done // step != self.last:
            self.last = done // step
            print(f"  {self.what}: {done}/{total} ({time.perf_counter() - self.t0:.0f} s)", flush=True)


def _engine_kwargs(args) -> dict:
    kw = {"rule": args.rule, "batch_size": args.batch_size, "max_length": args.max_length}
    if args.steps is not None:
        kw["steps"] = args.steps
    return kw


def _run_meta(args, backend, t0: float) -> dict:
    meta = {"model": args.model, "data": args.data, "backend": args.backend, "seconds": time.perf_counter() - t0}
    if backend is not None and backend.last_run:
        meta.update(workers=backend.last_run["workers"], shards=backend.last_run["shards"],
                    retries=backend.last_run["retries"])
    return meta


def importance(args) -> int:
    """``attattr importance``: head importance of ``--method`` over ``--data``, saved as a HeadImportance."""
    from .demo import load_model
    from .engine.analysis.importance import head_importance
    from .engine.results import HeadImportance, save_result
    from .engine.validate import output_path

    out = output_path(args.out, "--out")
    items = load_examples(args.data, args.limit)
    target = int(args.target) if args.target.lstrip("-").isdigit() else args.target
    model, tok = load_model(args.model)
    backend = _backend(args)
    t0 = time.perf_counter()
    try:
        scores = head_importance(model, tok, items, method=args.method, target=target, backend=backend,
                                 progress=_Report(f"{args.method} importance"), **_engine_kwargs(args))
        meta = _run_meta(args, backend, t0)
    finally:
        if backend is not None:
            backend.shutdown()
    imp = HeadImportance(scores, method=args.method, num_examples=len(items), target=str(target), extra=meta)
    save_result(imp, out)
    print(f"wrote {out}: {args.method} importance [{imp.shape[0]} layers × {imp.shape[1]} heads] over "
          f"{len(items)} examples in {meta['seconds']:.0f} s", flush=True)
    return 0


def triggers(args) -> int:
    """``attattr triggers``: mine patterns over ``--data`` (and evaluate the best on ``--evaluate``)."""
    from .demo import load_model
    from .engine.results import save_result
    from .engine.analysis.triggers import evaluate_triggers, mine_triggers
    from .engine.validate import output_path

    out = output_path(args.out, "--out")
    eval_out = None
    if args.evaluate is not None:
        eval_out = output_path(args.eval_out or str(Path(args.out).with_suffix("")) + "_results.npz", "--eval-out")
        eval_items = load_examples(args.evaluate)
    items = load_examples(args.data, args.limit)
    model, tok = load_model(args.model)
    backend = _backend(args)
    blacklist = [w.strip() for w in args.blacklist.split(",") if w.strip()]
    try:
        pats = mine_triggers(model, tok, items, top_pairs=args.top_pairs, ratio=args.ratio, min_score=args.min_score,
                             min_tokens=args.min_tokens, blacklist=blacklist, backend=backend,
                             progress=_Report("mining"), **_engine_kwargs(args))
        save_result(pats, out)
        print(f"wrote {out}: {len(pats)} patterns from {len(items)} examples", flush=True)
        for p in pats[:5]:
            print(f"  {p!r}", flush=True)
        if eval_out is not None and pats:
            results = evaluate_triggers(model, tok, eval_items, pats[: max(1, args.top)], backend=backend,
                                        batch_size=args.batch_size or 32, max_length=args.max_length,
                                        progress=_Report("evaluating"))
            save_result(results, eval_out)
            print(f"wrote {eval_out}: {len(results)} trigger results", flush=True)
            for r in results[:5]:
                print(f"  {r!r}", flush=True)
    finally:
        if backend is not None:
            backend.shutdown()
    return 0
