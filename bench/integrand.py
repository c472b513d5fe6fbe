"""Design study (not a test): sample the IG integrand of ``steps="auto"`` on a grid, to see what the
quadrature faces. For layer l, f(α) = ⟨g(α), P V⟩ with g(α) = ∂F/∂out_l at out_l = α·P V
(∫_0^1 f dα = ΔF = F(1) − F(0)); every sample is one gradient row of the engine's own passes
(``_Engine._node_grads``).

Run: ``.venv/bin/python bench/integrand.py --tokens 32 --layers 0 1 --points 129 [--lo 0 --hi 1] [--float64]``
on the demo decoder (SmolLM2-135M, bench/attribution.py's prose prompt cut to ``--tokens``); prints F, F(0), ΔF
and ``α:f(α)`` per layer. Results: bench/RESULTS.md (issue 25, sink layers).
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
from attribution import THREADS, _load, _text  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--points", type=int, default=129)
    ap.add_argument("--lo", type=float, default=0.0)
    ap.add_argument("--hi", type=float, default=1.0)
    ap.add_argument("--float64", action="store_true", help="run the model in float64")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(THREADS)
    from attattr_widgets.engine.attribution.engine import _Batch, _Engine
    from attattr_widgets.engine.attribution.options import AttributionOptions
    from attattr_widgets.engine.attribution.scores import target_score

    model, tok = _load("decoder")
    if args.float64:
        model = model.double()
    eng = _Engine(model, tok, AttributionOptions.from_kwargs())
    enc = eng.adapter.encode(tok, _text(tok, args.tokens), None, max_length=None, truncation=False)
    batch = _Batch([enc], eng.device, eng.adapter.pad_id(tok))
    captured, hidden, logits, _ = eng.clean_forward(batch, args.layers, None)
    targets = torch.tensor([int(logits[0].float().argmax())])
    F = float(target_score(logits, targets, "prob", eng.acc_dtype)[0])
    alphas = np.linspace(args.lo, args.hi, args.points)
    print(f"# bench/integrand.py — {args.tokens} tokens, {'float64' if args.float64 else 'float32'}, "
          f"{args.points} points on [{args.lo}, {args.hi}]", flush=True)
    for layer in args.layers:
        zero = float(eng.zero_scores(batch, layer, hidden, targets, None)[0])
        ref = captured[layer].out.to(eng.acc_dtype)
        t0, f = time.perf_counter(), []
        for _, g, _ in eng._node_grads(batch, layer, hidden, targets, alphas, None):
            f.append((g.to(eng.acc_dtype) * ref.unsqueeze(1)).flatten(2).sum(-1)[0])
        f = torch.cat(f).double().numpy()
        print(f"layer {layer}: F {F:.6g} F(0) {zero:.6g} ΔF {F - zero:.6g} ({time.perf_counter() - t0:.0f} s)")
        print(" ".join(f"{a:.4f}:{v:.4g}" for a, v in zip(alphas, f)), flush=True)


if __name__ == "__main__":
    main()
