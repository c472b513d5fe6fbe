"""Benchmark: our AttAttr engine vs the paper's algorithm, measured in one run.

* speed — a bert-base-sized model (12 layers × 12 heads, hidden 768, random weights: speed does not depend on
  the weights) at 32 / 64 / 128 tokens: the paper's algorithm (every α row recomputes the whole network,
  left Riemann sum, m = 20) against ours (prefix caching, Gauss–Legendre, 6 nodes), each also as a multiple
  of one forward pass of the same model at batch 1 measured in the same process;
* accuracy — the IG completeness error |Σ Attr − (F(A) − F(0))| / |F(A) − F(0)| of both on a *trained*
  model (the demo sentiment classifier, all-MiniLM-L6-v2 fine-tuned; random models are misleadingly easy),
  in float64, median over layers and sentences.

Run: ``make bench`` or ``.venv/bin/python bench/attribution.py [--lengths 32 64 128] [--quick]``.
Prints a markdown report; paste it into bench/RESULTS.md with the date and the machine.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import numpy as np
import torch

import attattr_widgets as aw
from attattr_widgets.engine.hooks import controller_for

PAPER = dict(rule="left", steps=20, method="naive")
OURS = dict(rule="gauss-legendre", steps=6, method="prefix")
SENTENCES = [
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but boilerplate cliches from start to finish.",
    "it's not a bad film, just a forgettable one.",
    "an utterly charming and hilarious film that reminded me why i love going to the movies.",
]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(lengths, repeats: int, tokenizer) -> list[dict]:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, num_labels=2)
    model = BertForSequenceClassification(cfg).eval()
    controller_for(model)
    words = ("the film is a quiet, patient study of grief and memory, and it earns every minute " * 40).split()
    rows = []
    for n in lengths:
        text = " ".join(words)
        enc = tokenizer(text, truncation=True, max_length=n, return_tensors="pt")
        assert enc["input_ids"].shape[1] == n
        text = tokenizer.decode(enc["input_ids"][0, 1:-1])
        with torch.no_grad():
            fwd = _median_time(lambda: model(**enc), 5)
        ours = _median_time(lambda: aw.attribute(model, tokenizer, text, max_length=n, truncation=True, **OURS), repeats)
        paper = _median_time(lambda: aw.attribute(model, tokenizer, text, max_length=n, truncation=True, **PAPER), 1)
        rows.append(dict(tokens=n, forward=fwd, paper=paper, ours=ours))
        print(f"  T={n}: forward {fwd:.3f}s  paper {paper:.1f}s  ours {ours:.1f}s  ratio {paper / ours:.2f}x", flush=True)
    return rows


def accuracy(sentences) -> dict:
    from attattr_widgets.demo import load_model

    model, tok = load_model("sentiment")
    model = model.double()
    out = {}
    for name, kw in (("paper", PAPER), ("ours", OURS)):
        errs = []
        for s in sentences:
            attr = aw.attribute(model, tok, s, **kw)
            errs.extend(attr.completeness.tolist())
        out[name] = float(np.median(errs))
        print(f"  completeness {name}: median {out[name]:.2e} over {len(errs)} layer-sentences", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats of our method (median)")
    ap.add_argument("--quick", action="store_true", help="lengths 16 and 32 only, 2 sentences (smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.quick:
        args.lengths, sentences = [16, 32], SENTENCES[:2]
    else:
        sentences = SENTENCES
    from transformers import AutoTokenizer

    from attattr_widgets.demo.assets import encoder_dir

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir())  # the demo encoder's uncased WordPiece vocabulary
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# AttAttr benchmark — {datetime.date.today()} — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, 1-min load at start {load:.1f}")
    print("speed (bert-base-sized, 12x12, hidden 768, fp32, CPU):", flush=True)
    rows = speed(args.lengths, args.repeats, tokenizer)
    print("accuracy (demo sentiment model, float64):", flush=True)
    acc = accuracy(sentences)
    print()
    print("| tokens | forward (s) | paper: naive, left-20 (× fwd) | ours: prefix, GL-6 (× fwd) | speed-up |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tokens']} | {r['forward']:.3f} | {r['paper']:.1f} s ({r['paper'] / r['forward']:.0f}×) | "
              f"{r['ours']:.1f} s ({r['ours'] / r['forward']:.0f}×) | **{r['paper'] / r['ours']:.1f}×** |")
    print()
    print("| method | median completeness error (trained model, fp64) |")
    print("|---|---|")
    print(f"| paper (left Riemann, m=20) | {acc['paper']:.2e} |")
    print(f"| ours (Gauss–Legendre, 6 nodes) | {acc['ours']:.2e} |")
    print(f"\ncompleteness error ratio paper/ours: **{acc['paper'] / acc['ours']:.0f}×**; minimum speed-up "
          f"**{min(r['paper'] / r['ours'] for r in rows):.1f}×** (target: ≥ 4× faster at ≥ 100× lower error)")


if __name__ == "__main__":
    main()
