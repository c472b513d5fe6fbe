"""Benchmark: head importance, pruning curves (paper Fig 3), effectiveness (Fig 2) and cross-task head
correlation (Fig 4) on the real demo models (all-MiniLM-L6-v2, 6 layers × 12 heads, fine-tuned offline for
sentiment and SNLI).

* importance on ``--importance-n`` held-out examples (the paper: 200) from the ``validation`` split, with
  AttAttr (gold label, Gauss–Legendre 6 nodes), Taylor (Michel head-mask gradient), the authors' Taylor
  variant, accuracy difference, attention max and random;
* pruning curves on ``--eval-n`` examples of the ``test`` split (disjoint from the importance examples):
  every method least-important-first, AttAttr also largest-first;
* effectiveness (Fig 2) on ``--eff-n`` test examples;
* Pearson r of sentiment vs NLI head importance, per method.

Run: ``.venv/bin/python bench/pruning.py [--quick] [--json out.json]``; prints a markdown report (paste into
bench/results/pruning.md with the date and the machine).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import numpy as np
import torch

from attattr_widgets.demo import load_dataset, load_model
from attattr_widgets.engine.analysis.importance import head_importance
from attattr_widgets.engine.analysis.pruning import compare_pruning, effectiveness, head_correlation
from attattr_widgets.engine.results import Effectiveness, PruningCurve

METHODS = ("attattr", "taylor", "taylor-authors", "accuracy", "attention", "random")


def _spearman(a, b) -> float:
    ra = np.argsort(np.argsort(np.ravel(a)))
    rb = np.argsort(np.argsort(np.ravel(b)))
    return float(np.corrcoef(ra, rb)[0, 1])


def run_task(task: str, args) -> dict:
    if task in args.delta:  # a candidate delta that is not (yet) the shipped one
        from attattr_widgets.demo.data import label_names
        from attattr_widgets.demo.models import apply_delta, encoder_base

        names = label_names(task)
        model, tok = encoder_base(len(names), names)
        apply_delta(model, args.delta[task])
        model.float().eval()
    else:
        model, tok = load_model(task)
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    imp_set = load_dataset(task, "validation")[: args.importance_n]
    eval_set = load_dataset(task, "test")[: args.eval_n]
    eff_set = load_dataset(task, "test")[args.eval_n : args.eval_n + args.eff_n]
    if len(eff_set) < args.eff_n:
        eff_set = eval_set[: args.eff_n]
    out = {"task": task, "L": L, "H": H, "n_importance": len(imp_set), "n_eval": len(eval_set),
           "n_eff": len(eff_set), "timing_s": {}, "importance": {}, "rule": args.rule, "steps": args.steps,
           "model": str(args.delta.get(task, f"demo {task}"))}
    for m in METHODS:
        t0 = time.perf_counter()
        out["importance"][m] = head_importance(model, tok, imp_set, method=m, steps=args.steps, rule=args.rule,
                                               progress=args.progress)
        out["timing_s"][f"importance {m}"] = time.perf_counter() - t0
        print(f"# [{task}] importance {m}: {out['timing_s'][f'importance {m}']:.1f} s", flush=True)
    t0 = time.perf_counter()
    curves = compare_pruning(model, tok, eval_set, out["importance"], order="least-first", progress=args.progress)
    curves += compare_pruning(model, tok, eval_set, {"attattr": out["importance"]["attattr"]},
                              order="largest-first", progress=args.progress)
    curves[-1].method = "attattr, largest-first"
    out["timing_s"]["pruning curves"] = time.perf_counter() - t0
    out["curves"] = curves
    print(f"# [{task}] curves: {out['timing_s']['pruning curves']:.1f} s", flush=True)
    t0 = time.perf_counter()
    out["effectiveness"] = effectiveness(model, tok, eff_set, steps=args.steps, rule=args.rule,
                                         heads_per_layer=range(0, H + 1), progress=args.progress)
    out["timing_s"]["effectiveness"] = time.perf_counter() - t0
    print(f"# [{task}] effectiveness: {out['timing_s']['effectiveness']:.1f} s", flush=True)
    return out


def report(results: list[dict], args, wall: float) -> str:
    lines = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"## Head importance and pruning on the demo models ({now})\n")
    lines.append(f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} CPUs (shared), torch {torch.__version__}, {torch.get_num_threads()} threads. "
                 f"Compute time {wall / 60:.1f} min (summed over tasks; they may run as parallel processes).\n")
    rule, steps = results[0].get("rule", args.rule), results[0].get("steps", args.steps)
    lines.append(f"Settings: AttAttr target = gold label, rule = {rule}, steps = {steps}; pruning fractions "
                 "0, 0.1, …, 1 of all heads, pruned count = round(f·L·H), global ranking, ties broken by a seeded "
                 "random order; pruned head = attention probabilities × 0.\n")
    for r in results:
        L, H = r["L"], r["H"]
        lines.append(f"### {r['task']} ({L} layers × {H} heads; model: {r.get('model', 'demo ' + r['task'])})\n")
        lines.append(f"Importance from {r['n_importance']} validation examples; curves on {r['n_eval']} test "
                     f"examples; effectiveness on {r['n_eff']} other test examples.\n")
        curves = r["curves"]
        lines.append("| pruned | " + " | ".join(c.method for c in curves) + " |")
        lines.append("|---" * (len(curves) + 1) + "|")
        counts = curves[0].counts
        for k, f in enumerate(curves[0].fractions):
            lines.append(f"| {f:.0%} ({counts[k]}) | " + " | ".join(f"{c.accuracy[k]:.3f}" for c in curves) + " |")
        lines.append("| **area** | " + " | ".join(f"**{c.area():.3f}**" for c in curves) + " |")
        lines.append("")
        imp = r["importance"]
        names = list(imp)
        lines.append("Spearman rank correlation between importance methods:\n")
        lines.append("| | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for a in names:
            lines.append(f"| {a} | " + " | ".join(f"{_spearman(imp[a], imp[b]):.2f}" for b in names) + " |")
        lines.append("")
        top = np.argsort(-imp["attattr"].ravel())[:5]
        lines.append("Top-5 AttAttr heads (layer, head): " + ", ".join(f"L{t // H}H{t % H}" for t in top) + "\n")
        e = r["effectiveness"]
        lines.append(f"Effectiveness (Fig 2; full accuracy {e.full_accuracy:.3f} on {e.num_examples} examples):\n")
        cols = [(c, o) for c in ("attribution", "attention") for o in ("smallest-first", "largest-first")]
        lines.append("| heads pruned / layer | " + " | ".join(f"{c} {o}" for c, o in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for k, h in enumerate(e.heads):
            lines.append(f"| {h} | " + " | ".join(f"{e.accuracy[c][o][k]:.3f}" for c, o in cols) + " |")
        lines.append("")
        lines.append("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["timing_s"].items()) + "\n")
    if len(results) == 2:
        a, b = results
        lines.append(f"### Cross-task head correlation ({a['task']} vs {b['task']}, {a['L'] * a['H']} heads)\n")
        lines.append("| method | Pearson r | p-value | Spearman ρ |")
        lines.append("|---|---|---|---|")
        for m in METHODS:
            if m == "random":  # the same seed on both tasks: identical by construction, r = 1 means nothing
                continue
            c = head_correlation(a["importance"][m], b["importance"][m], labels=(a["task"], b["task"]))
            p = "n/a" if c.p_value is None else f"{c.p_value:.2g}"
            s = "n/a" if c.spearman is None else f"{c.spearman:.3f}"
            lines.append(f"| {m} | {c.r:.3f} | {p} | {s} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["sentiment", "nli"])
    ap.add_argument("--importance-n", type=int, default=200)
    ap.add_argument("--eval-n", type=int, default=500)
    ap.add_argument("--eff-n", type=int, default=100)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rule", default="gauss-legendre")
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core box (measured)")
    ap.add_argument("--quick", action="store_true", help="20 / 50 / 10 examples, 3 steps: a smoke run")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--json", help="also write the raw numbers here")
    ap.add_argument("--delta", nargs="*", default=[], metavar="TASK=PATH",
                    help="evaluate a candidate demo delta file for TASK instead of the shipped one")
    ap.add_argument("--combine", nargs="+", help="report from per-task --json files instead of running")
    args = ap.parse_args()
    args.delta = dict(d.split("=", 1) for d in args.delta)
    if args.quick:
        args.importance_n, args.eval_n, args.eff_n, args.steps = 20, 50, 10, 3
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.combine:
        results = [_load(p) for p in args.combine]
        wall = sum(sum(r["timing_s"].values()) for r in results)
    else:
        results = [run_task(t, args) for t in args.tasks]
        wall = time.perf_counter() - t0
    print(report(results, args, wall))
    if args.json:
        def enc(o):
            if isinstance(o, np.ndarray):
                return o.tolist()
            if hasattr(o, "to_dict"):
                return o.to_dict()
            raise TypeError(type(o))

        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, default=enc)


def _load(path: str) -> dict:
    """One task's raw numbers written by ``--json`` (tasks can run as separate processes, then ``--combine``)."""
    with open(path) as fh:
        d = json.load(fh)
    r = d["results"][0]
    r["importance"] = {k: np.asarray(v) for k, v in r["importance"].items()}
    r["curves"] = [PruningCurve.from_dict(c) for c in r["curves"]]
    r["effectiveness"] = Effectiveness.from_dict(r["effectiveness"])
    return r


if __name__ == "__main__":
    main()
