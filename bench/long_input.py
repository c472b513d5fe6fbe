"""Long input, all layers: a 2,048-token prompt on the demo decoder (SmolLM2-135M, 30 layers × 9 heads),
attributed end to end on this CPU, maps kept in float16 (``store="fp16"``), saved for the Explorer.

Run: ``.venv/bin/python bench/long_input.py [--tokens 2048] [--steps 2] [--out long.npz]``; prints time per
layer, peak memory and completeness, and the multiple of one forward pass.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attribution import _text  # noqa: E402  (the exact-length prompt builder of the main benchmark)

import attattr_widgets as aw  # noqa: E402
from attattr_widgets.demo import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--steps", default="2", help="Gauss–Legendre nodes per layer, or 'auto'")
    ap.add_argument("--store", default="fp16")
    ap.add_argument("--out", type=Path, default=Path("long.npz"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model, tok = load_model("decoder")
    text = _text(tok, args.tokens)
    enc = tok(text, return_tensors="pt")
    n = enc["input_ids"].shape[1]
    with torch.no_grad():
        t0 = time.perf_counter()
        model(**enc)
        fwd = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = args.steps if args.steps == "auto" else int(args.steps)
    t_start = time.perf_counter()
    last = [t_start]

    def progress(r):
        now = time.perf_counter()
        print(f"layer {r.layer:2d}: {now - last[0]:6.1f} s, nodes {r.steps}, completeness {r.completeness:.2e}",
              flush=True)
        last[0] = now

    attr = aw.attribute(model, tok, text, steps=steps, store=args.store, progress=progress, max_length=n)
    wall = time.perf_counter() - t_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    attr.save(args.out)
    print(f"{n} tokens, {len(attr.layers)} layers x {attr.num_heads} heads: {wall:.0f} s = {wall / fwd:.0f}x one "
          f"forward ({fwd:.1f} s); peak memory +{peak:.0f} MiB over the loaded model; maps {attr.scores.dtype} "
          f"{attr.scores.nbytes * 2 / 2**30:.2f} GiB; median completeness {np.median(attr.completeness):.2e}; "
          f"load {os.getloadavg()[0]:.1f}; saved {args.out}")


if __name__ == "__main__":
    main()
