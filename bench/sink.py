"""Benchmark (not a test): what converging the demo decoder's attention-sink layers costs. ``steps="auto"`` with a
raised per-layer cap (``--max-steps``) on layers 0–1 of the demo decoder (SmolLM2-135M, bench/auto.py's PROMPTS cut
to ``--tokens``), against the default cap (32) in the same process: nodes per layer, converged or not,
completeness, seconds and × one forward, and the maps' distance to the converged ones.

Run: ``.venv/bin/python bench/sink.py --tokens 32 --max-steps 512`` (one intra-op thread, ``ATTATTR_BENCH_THREADS``
as in bench/attribution.py). Results: bench/RESULTS.md (issue 25, the attention-sink layers).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from attribution import THREADS, _load, _text, forward_seconds, header  # noqa: E402
from auto import PROMPTS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompts", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--max-steps", type=int, default=512)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(THREADS)
    import attattr_widgets as aw

    model, tok = _load("decoder")
    for p in args.prompts:
        text = _text(tok, args.tokens, PROMPTS[p])
        enc = tok(text, return_tensors="pt")
        fwd = forward_seconds(model, enc)
        header("sink.py", f"prompt {p}, {enc['input_ids'].shape[1]} tokens, layers {args.layers}", fwd)
        runs = {}
        for cap in (32, args.max_steps):
            t0 = time.perf_counter()
            a = aw.attribute(model, tok, text, layers=args.layers, max_steps=cap, store="memory")
            s = time.perf_counter() - t0
            runs[cap] = a
            print(f"max_steps {cap:4d}: nodes {list(a.layer_steps)} converged {list(a.converged)} completeness "
                  + " ".join(f"{c:.1e}" for c in a.completeness)
                  + f"  {s:.1f} s = {s / fwd:.0f}× fwd (load {os.getloadavg()[0]:.1f})", flush=True)
        ref = runs[args.max_steps]
        for j, layer in enumerate(args.layers):
            r = ref.scores[j]
            err = float(np.abs(runs[32].scores[j] - r).max() / np.abs(r).max())
            panels = ref.layer_panels[j]
            print(f"   layer {layer}: cap-32 map vs converged, max |Δ| / max |ref| {err:.1e}; converged run used "
                  f"{len(panels)} panels, narrowest {min(hi - lo for lo, hi in panels):.2e}", flush=True)


if __name__ == "__main__":
    main()
