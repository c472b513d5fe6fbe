"""Benchmark (not a test): how the cost of a gradient pass grows with its number of α rows. One layer (``--layer``,
default the middle one) of ``--model`` (the demo decoder SmolLM2-135M, the trained demo sentiment MiniLM, or the
bert-base-sized classifier of bench/attribution.py; input: bench/auto.py's prompt 0 cut to ``--tokens``)
attributed with a fixed Gauss–Legendre rule of k nodes (one gradient pass of k rows, plus the clean pass and the
prefix every run shares), for each k of ``--rows``, all in one process: seconds and × one forward per k, and the
marginal cost of one more row (least-squares slope of seconds over k, × one forward). It decides whether batching
several panels of the adaptive rule into one pass could save time (it can only if extra rows are nearly free).

Run: ``.venv/bin/python bench/passcost.py --tokens 32 128`` or ``--model sentiment --tokens 10 32`` (one intra-op
thread, ``ATTATTR_BENCH_THREADS`` as in bench/attribution.py). Results: bench/RESULTS.md (issue 25).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from attribution import THREADS, _load, _median_time, _text, forward_seconds, header  # noqa: E402
from auto import PROMPTS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--rows", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--model", default="decoder", choices=("decoder", "sentiment", "bert-base"))
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(THREADS)
    import attattr_widgets as aw

    if args.model == "sentiment":
        from attattr_widgets.demo import load_model

        model, tok = load_model("sentiment")
    else:
        model, tok = _load(args.model)
    layer = model.config.num_hidden_layers // 2 if args.layer is None else args.layer
    for tokens in args.tokens:
        text = _text(tok, tokens, PROMPTS[0])
        enc = tok(text, return_tensors="pt")
        fwd = forward_seconds(model, enc)
        header("passcost.py", f"{args.model}, prompt 0, {enc['input_ids'].shape[1]} tokens, layer {layer}", fwd)
        secs = []
        for k in args.rows:
            s = _median_time(lambda: aw.attribute(model, tok, text, layers=[layer], steps=k, store="memory"),
                             args.repeat)
            secs.append(s)
            print(f"GL-{k:<3d} {s:7.3f} s = {s / fwd:6.1f}× fwd (load {os.getloadavg()[0]:.1f})", flush=True)
        slope, icpt = np.polyfit(np.array(args.rows, float), np.array(secs), 1)
        print(f"   one more α row: {slope / fwd:.2f}× fwd; fixed part (clean pass, prefix, k = 0 extrapolated): "
              f"{icpt / fwd:.1f}× fwd; GL-{args.rows[-1]} / GL-{args.rows[0]} = {secs[-1] / secs[0]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
