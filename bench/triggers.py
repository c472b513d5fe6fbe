"""Adversarial triggers on the real demo models (paper §"Adversarial Attack", Tables 1-2).

For each task (SNLI ``nli``, movie-review ``sentiment``):

1. mine one pattern per example from ``--n-mine`` training examples (target = predicted class; the authors mine
   from training data), with Gauss-Legendre IG of ``--steps`` nodes (the authors: left Riemann, m = 64);
2. take the top-3 distinct patterns per predicted class (Table 1); for sentiment, patterns containing an obviously
   polar word are dropped first (the paper removes them with a sentiment lexicon, a manual step; here a short
   hand list, ``POLAR`` below — the unfiltered top-1 per class is evaluated too, for contrast);
3. insert each trigger into ``--n-eval`` held-out test examples at the same relative position and segment and
   report the per-gold-class accuracy before/after (Table 2).

Paper headline to compare with: one pattern drops MNLI-matched entailment accuracy 82.87% -> 0.8% (BERT-base).

    nohup .venv/bin/python bench/triggers.py > /tmp/attattr_bench/triggers.log 2>&1 &

Writes a JSON with every mined pattern and result (``--out``) and prints a Markdown summary.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from attattr_widgets.demo import load_dataset, load_model
from attattr_widgets.engine.model.encode import encode
from attattr_widgets.engine.analysis.triggers import evaluate_triggers, mine_triggers, top_triggers

#: Obviously polar words (hand list standing in for the paper's sentiment lexicon).
_POLAR_WORDS = """
good great best better excellent fine nice wonderful brilliant superb terrific fantastic amazing
beautiful lovely enjoyable fun funny entertaining delightful charming moving touching powerful smart
clever witty engaging compelling fresh perfect masterpiece love loved loves like liked likes
pleasure pleasant gorgeous impressive remarkable solid strong rich sweet warm well worth worthy
winning thoughtful intelligent hilarious heartfelt haunting satisfying refreshing inventive original
stunning bad worst worse awful terrible horrible poor dull boring bored tedious mess messy stupid
dumb silly lame weak flat fails failed failure waste wasted ugly annoying unfunny pointless mediocre
predictable tired bland hate hated disappointing disappointment sloppy painful pretentious shallow
lifeless forgettable unpleasant ridiculous clumsy cheap trite stale
"""
POLAR = frozenset(_POLAR_WORDS.split())


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {msg}", flush=True)


def polar(p) -> bool:
    return any(t.lower().removeprefix("##") in POLAR for t in p.tokens)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def run_task(task: str, args) -> dict:
    t0 = time.time()
    model, tok = load_model(task)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    train = load_dataset(task, "train")
    if task == "sentiment" and args.min_tokens:
        # the authors skip SST-2 examples shorter than 15 tokens; filter up front so n-mine examples are used
        train = [ex for ex in train if len(encode(model, tok, ex["text"], truncation=True)) >= args.min_tokens]
    mine_set = train[: args.n_mine]
    test = load_dataset(task, "test")[: args.n_eval]
    log(f"{task}: mining {len(mine_set)} train examples (steps={args.steps}, batch={args.batch_size})")

    last = [0.0]

    def progress(done, total):
        if time.time() - last[0] > 30 or done == total:
            last[0] = time.time()
            log(f"{task}: mined {done}/{total} ({time.time() - t0:.0f}s)")

    patterns = mine_triggers(model, tok, mine_set, steps=args.steps, batch_size=args.batch_size,
                             min_score=args.min_score, progress=progress)
    t_mine = time.time() - t0
    log(f"{task}: {len(patterns)} patterns kept (score >= {args.min_score}) in {t_mine:.0f}s")
    candidates = [p for p in patterns if not polar(p)] if task == "sentiment" else patterns
    top = top_triggers(candidates, per_class=3)
    chosen = [(name, rank, p, "top") for name, lst in top.items() for rank, p in enumerate(lst, 1)]
    if task == "sentiment":  # contrast: unfiltered best pattern per class
        for name, lst in top_triggers(patterns, per_class=1).items():
            if lst and polar(lst[0]):
                chosen.append((name, 1, lst[0], "unfiltered"))
    t1 = time.time()
    results = evaluate_triggers(model, tok, test, [p for _, _, p, _ in chosen], batch_size=64)
    t_eval = time.time() - t1
    log(f"{task}: evaluated {len(chosen)} triggers on {len(test)} test examples in {t_eval:.0f}s")
    rows = []
    for (name, rank, p, kind), r in zip(chosen, results):
        rows.append({"class": name, "rank": rank, "kind": kind, "result": r.to_dict()})
    return {
        "task": task, "labels": names, "n_mine": len(mine_set), "n_patterns": len(patterns),
        "n_eval": len(test), "mine_seconds": t_mine, "eval_seconds": t_eval,
        "patterns": [p.to_dict() for p in patterns], "rows": rows,
        "pattern_layers": [p.layer for p in patterns], "min_score": args.min_score,
    }


def markdown(res: dict) -> str:
    title = (f"### {res['task']}: mined from {res['n_mine']} train examples ({res['n_patterns']} patterns with "
             f"score >= {res['min_score']}); evaluated on {res['n_eval']} test examples "
             f"(mining {res['mine_seconds']:.0f}s, evaluation {res['eval_seconds']:.0f}s)")
    out = [title, ""]
    labels = res["labels"]
    base = res["rows"][0]["result"]["per_class"] if res["rows"] else []
    out.append("Baseline accuracy per gold class: " + ", ".join(
        f"{c['name']} {pct(c['before'])}% (n={c['n']})" for c in base))
    out.append("")
    out.append("| pred. class | # | trigger (segment) | score | source layer/head | " + " | ".join(
        f"{name} acc. after" for name in labels) + " | largest drop |")
    out.append("|---|---|---|---|---|" + "---|" * len(labels) + "---|")
    for row in res["rows"]:
        r = row["result"]
        p = r["pattern"]
        segs = "" if not any(p["segments"]) and res["task"] != "nli" else " (" + ",".join(
            "P" if s == 0 else "H" for s in p["segments"]) + ")"
        trig = " ".join(p["tokens"]) + segs
        if row["kind"] == "unfiltered":
            trig += " — unfiltered, polar"
        cells = []
        for c in r["per_class"]:
            cells.append(f"{pct(c['after'])} ({100 * -c['drop']:+.1f})")
        drop = max(r["per_class"], key=lambda c: c["drop"])
        out.append(f"| {row['class']} | {row['rank']} | `{trig}` | {p['score']:.3f} | {p['layer']}/{p['head']} | "
                   + " | ".join(cells) + f" | {drop['name']} {pct(drop['before'])} -> {pct(drop['after'])} |")
    layers = res["pattern_layers"]
    if layers:
        hist = {layer: layers.count(layer) for layer in sorted(set(layers))}
        out += ["", f"Layer holding each example's largest attribution (count): {hist}"]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="nli,sentiment")
    ap.add_argument("--n-mine", type=int, default=500)
    ap.add_argument("--n-eval", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2, help="Gauss-Legendre nodes per layer")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--min-score", type=float, default=0.02, help="pattern score threshold (authors: 0.02)")
    ap.add_argument("--min-tokens", type=int, default=15, help="sentiment only (authors' SST-2 filter)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="/tmp/attattr_bench/triggers.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = datetime.now(UTC)
    header = (f"date {started.strftime('%Y-%m-%d %H:%M UTC')}; machine {platform.node()} {platform.machine()}, "
              f"{os.cpu_count()} CPUs (shared), torch {torch.__version__} threads {torch.get_num_threads()}; "
              f"settings: n_mine={args.n_mine}, n_eval={args.n_eval}, IG gauss-legendre steps={args.steps}, "
              f"all layers and heads, batch {args.batch_size}, top_pairs=2, ratio=0.2, min_score={args.min_score}, "
              f"sentiment min_tokens={args.min_tokens}")
    log(header)
    results = []
    for task in args.tasks.split(","):
        results.append(run_task(task.strip(), args))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"header": header, "results": results}, indent=1))
    total = (datetime.now(UTC) - started).total_seconds()
    print("\n## Adversarial triggers (bench/triggers.py)\n")
    print(header + f"; total {total / 60:.1f} min\n")
    for res in results:
        print(markdown(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
