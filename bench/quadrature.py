"""Benchmark (not a test): how Gauss–Legendre converges on one layer of the demo decoder (issue 9).

Prints, for layer ``--layer`` of the demo decoder (SmolLM2-135M) on a ``--tokens``-token prompt:

* the IG completeness error for 2, 3, 4, 6, 8, 12, 16, 24, 32 Gauss–Legendre nodes (``--orders``);
* with ``--shape``, the integrand f(α) = ⟨∂F/∂out_l(α · P V), P V⟩ (what each node contributes before its
  weight; Σ_k w_k f(α_k) = Σ Attr) on a grid of α — where the layer's mass lies along the path.

Run: ``.venv/bin/python bench/quadrature.py --tokens 512 [--float64] [--shape]``. Results: bench/RESULTS.md.
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
from attribution import _text  # noqa: E402  (same prompt as the attribution benchmark)

GRID = (0, 1e-3, 3e-3, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.85, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--orders", type=int, nargs="*", default=[2, 3, 4, 6, 8, 12, 16, 24, 32])
    ap.add_argument("--float64", action="store_true")
    ap.add_argument("--shape", action="store_true", help="also sample the integrand f(α) on a grid")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    import attattr_widgets as aw
    import attattr_widgets.engine.attribution.engine as engine
    from attattr_widgets.demo import load_model

    model, tok = load_model("decoder")
    if args.float64:
        model = model.double()
    text = _text(tok, args.tokens)
    print(f"# demo decoder, layer {args.layer}, {args.tokens} tokens, "
          f"{'float64' if args.float64 else 'float32'}, {args.threads} thread(s)", flush=True)
    for n in args.orders:
        t0 = time.perf_counter()
        a = aw.attribute(model, tok, text, layers=[args.layer], rule="gauss-legendre", steps=n, store="fp16")
        print(f"GL-{n:<3d} completeness {a.completeness[0]:.2e}  Σ Attr {float(a.scores.sum()):+.4e}  "
              f"F(1) {a.prob:.4f}  F(0) {a.layer_zero_probs[0]:.4f}  {time.perf_counter() - t0:.1f} s", flush=True)
    if args.shape:
        original = engine.quadrature
        try:
            for alpha in GRID:  # one node of weight 1 at α: Σ Attr = f(α)
                engine.quadrature = lambda rule, steps, alpha=alpha: (np.array([alpha]), np.array([1.0]))
                a = aw.attribute(model, tok, text, layers=[args.layer], rule="gauss-legendre", steps=1)
                print(f"f({alpha:.3f}) = {float(a.scores.sum()):+.4e}", flush=True)
        finally:
            engine.quadrature = original


if __name__ == "__main__":
    main()
