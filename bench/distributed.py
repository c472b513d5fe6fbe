"""Benchmark (not a test): head importance in process vs on a local Ray with 2 workers (issue 11).

AttAttr head importance (the paper's I_h, gold label, the engine's default quadrature) of the shipped sentiment
demo model (all-MiniLM-L6-v2 fine-tuned, 6 layers × 12 heads) over ``--n`` (200) held-out reviews:

* in process, torch on all cores (what ``backend=None`` does);
* ``RayBackend(num_workers=2)`` on a local Ray, one CPU and one torch thread per worker: start-up (Ray + 2
  workers), a first short call (the model goes through the object store and each worker unpickles it) and the
  run over all examples on the warm workers; per shard the worker's compute time and the driver's submit→result latency, hence the overhead per
  task; the results are compared with the in-process ones.

It ends with a projection for N workers (GPUs) from the measured per-example cost and per-task overhead.
Run: ``.venv/bin/python bench/distributed.py [--n 200] [--json out.json]``; prints a markdown report (pasted
into bench/RESULTS.md with the date and the machine load it prints).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from attattr_widgets.demo import load_dataset, load_model
    from attattr_widgets.engine.backends.ray import RayBackend
    from attattr_widgets.engine.analysis.importance import head_importance

    model, tok = load_model("sentiment")
    items = load_dataset("sentiment", "validation")[: args.n]
    n = len(items)
    load0 = os.getloadavg()
    res: dict = {"n": n, "workers": args.workers, "cores": os.cpu_count(), "load_before": load0,
                 "torch_threads_in_process": torch.get_num_threads(), "date": datetime.datetime.utcnow().isoformat()}

    t = time.perf_counter()
    ref = head_importance(model, tok, items)
    res["in_process_s"] = time.perf_counter() - t

    b = RayBackend(num_workers=args.workers)
    t = time.perf_counter()
    b.worker_pids(timeout=600)
    res["ray_startup_s"] = time.perf_counter() - t
    runs = []
    # first a short run (2 examples per worker): ships the model, each worker unpickles it; then all n, warm
    for part in (items[: 2 * args.workers], items):
        t = time.perf_counter()
        got = head_importance(model, tok, part, backend=b)
        ref_part = ref if len(part) == n else head_importance(model, tok, part)
        wall = time.perf_counter() - t
        lr = b.last_run
        st = [s for s in lr["shard_stats"] if s]
        runs.append({
            "wall_s": wall, "shards": lr["shards"], "retries": lr["retries"],
            "compute_s": lr["compute_s"], "load_s": lr["load_s"],
            "per_task_overhead_s": float(np.mean([s["latency_s"] - s["compute_s"] - s["load_s"] for s in st])),
            "max_abs_diff": float(np.max(np.abs(np.asarray(got) - np.asarray(ref_part)))), "examples": len(part),
        })
    b.shutdown()
    res["ray_runs"] = runs
    res["load_after"] = os.getloadavg()

    cold, warm = runs
    c1 = warm["compute_s"] / n  # per example, one worker (1 CPU, 1 torch thread)
    c_in = res["in_process_s"] / n  # per example, in process (all cores)
    o = warm["per_task_overhead_s"]
    s = math.ceil(n / warm["shards"])
    res.update(per_example_worker_s=c1, per_example_in_process_s=c_in, shard_size=s)
    print(report(res, c1, c_in, o, s))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


def report(res: dict, c1: float, c_in: float, o: float, s: int) -> str:
    cold, warm = res["ray_runs"]
    n, w = res["n"], res["workers"]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {res['cores']} cores, load average before "
        f"{res['load_before'][0]:.1f} / after {res['load_after'][0]:.1f} (1 min; the machine is shared).",
        "",
        f"| {n} examples, AttAttr importance | wall | per example | vs in process |",
        "|---|---|---|---|",
        f"| in process ({res['torch_threads_in_process']} torch threads) | {res['in_process_s']:.1f} s | "
        f"{1000 * c_in:.0f} ms | 1.00× |",
        f"| Ray start-up (local Ray + {w} workers) | {res['ray_startup_s']:.1f} s | | |",
        f"| Ray, first call ({cold['examples']} examples: model shipped, unpickled on each worker) | "
        f"{cold['wall_s']:.1f} s | | |",
        f"| Ray, {w} workers, warm run | {warm['wall_s']:.1f} s | {1000 * warm['wall_s'] / n:.0f} ms | "
        f"{res['in_process_s'] / warm['wall_s']:.2f}× |",
        "",
        f"Warm run: {warm['shards']} tasks of {s} examples; worker compute {warm['compute_s']:.1f} s in all "
        f"({1000 * c1:.0f} ms per example on one worker = one core, one torch thread); overhead per task "
        f"(driver latency − worker compute) {1000 * o:.1f} ms = {100 * o / (s * c1):.2f} % of a task; model load "
        f"on the workers {cold['load_s']:.1f} s (first run). Results: max |Δ| vs in process "
        f"{max(cold['max_abs_diff'], warm['max_abs_diff']):.1e}; retries {cold['retries'] + warm['retries']}.",
        "",
        "Projection, without the one-off start-up and model load (T ≈ ⌈tasks / N⌉ · (s · c + o), default "
        "s = ⌈examples / 4N⌉ per task, c and o as measured here):",
        "",
        f"| workers N | {n} examples | 3,000 examples (MNLI-scale mining) |",
        "|---|---|---|",
    ]
    for N in (1, 2, 4, 8, 16, 64):
        cells = []
        for total in (n, 3000):
            size = max(1, math.ceil(total / (4 * N)))
            tasks = math.ceil(total / size)
            cells.append(f"{math.ceil(tasks / N) * (size * c1 + o):.0f} s")
        lines.append(f"| {N} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
