"""Benchmark (not a test): ``steps="auto"`` (adaptive Simpson–Boole on nested dyadic panels, issue 25) against
the previous ``auto`` (the Gauss–Legendre ladder 2, 3, 4, 6, 8, …, kept below as ``_ladder_layer`` for this
comparison), fixed Gauss–Legendre 6 and the paper's left-20 (every α row recomputes the whole network) — in ONE
process per model, so that times compare as multiples of one forward pass measured in the same process just before each method.

Per method: gradient evaluations per layer (every α row of every gradient pass, counted at ``_grad_chunk``,
discarded ones included), wall time (× one forward), completeness median / max over layers, layers converged
(``steps="auto"`` only) and, on ``--dense-layers``, the maps' error against a dense reference (composite
Gauss–Legendre, 8 nodes on each of ``--dense`` / 8 equal panels), max |Attr − ref| / max |ref| per layer.

Run: ``.venv/bin/python bench/auto.py --model decoder --tokens 32`` (one intra-op thread,
``ATTATTR_BENCH_THREADS`` as in bench/attribution.py). Models: ``decoder`` (demo SmolLM2-135M, the prose prompt
of bench/attribution.py cut to ``--tokens``), ``sentiment`` / ``nli`` (the trained demo MiniLMs, four demo
sentences or pairs), ``bert-base`` (12×12, hidden 768, random weights). Results: bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from attribution import SENTENCES, THREADS, _load, _median_time, _text  # noqa: E402

PAIRS = [("a man is playing a guitar on stage.", "a person is performing music."),
         ("two dogs run through a field.", "the animals are sleeping indoors."),
         ("a woman reads a book in the park.", "someone is outside."),
         ("children are playing soccer.", "the kids are at school taking a test.")]
METHODS = {
    "auto": dict(steps="auto"),
    "auto-ladder (previous)": dict(steps="auto"),
    "GL-6": dict(rule="gauss-legendre", steps=6),
    "paper left-20": dict(rule="left", steps=20, method="naive"),
}
AUTO_LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def _ladder_layer(self, batch, layer, hidden, targets, F_clean, zero, captured, cancel):
    """The previous ``steps="auto"`` (main 2a2ebeb), for comparison: Gauss–Legendre orders from AUTO_LADDER,
    each layer starting at its predecessor's order (one rung lower when far inside tol), stopping at tol, the
    cap or three orders whose error does not halve; every order re-evaluates all its nodes."""
    from attattr_widgets.engine.attribution.engine import quadrature

    q = self.quad
    delta = (F_clean - zero).to(self.acc_dtype)
    ladder = [s for s in AUTO_LADDER if s <= q.max_steps] or [q.max_steps]
    rung = min(getattr(self, "_start_rung", 0), len(ladder) - 1)
    floor = 32 * torch.finfo(self.acc_dtype).eps * (F_clean.abs() + zero.abs()).to(self.acc_dtype)
    allowed = q.tol * delta.abs() + floor
    ref = captured.get(layer).out.to(self.acc_dtype)
    errors = []
    while True:
        steps = ladder[rung]
        alphas, weights = quadrature("gauss-legendre", steps)
        g = self.integrate(batch, layer, hidden, targets, alphas, weights, cancel)
        gap = ((g * ref).flatten(1).sum(1) - delta).abs()
        ok = bool((gap <= allowed).all())
        worst = float((gap / allowed.clamp_min(1e-300)).max())
        errors.append(worst)
        stalled = len(errors) >= 3 and errors[-1] > 0.5 * errors[-3]
        if ok or rung == len(ladder) - 1 or stalled:
            self._start_rung = max(0, rung - 1) if ok and worst < 0.02 else rung
            return g, steps, ok, None
        rung += 1


def _inputs(model_name, tok, tokens):
    if model_name == "decoder":
        return [(_text(tok, tokens), None)]
    if model_name == "nli":
        return PAIRS
    if model_name == "bert-base":
        return [(_text(tok, tokens), None)]
    return [(s, None) for s in SENTENCES]


def _dense_rule(points: int):
    from attattr_widgets.engine.quadrature import quadrature

    panels = points // 8
    x, w = quadrature("gauss-legendre", 8)
    return np.concatenate([(k + x) / panels for k in range(panels)]), np.tile(w / panels, panels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="decoder", choices=("decoder", "sentiment", "nli", "bert-base"))
    ap.add_argument("--tokens", type=int, default=32, help="decoder / bert-base prompt length")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--dense", type=int, default=256, help="nodes of the dense reference (multiple of 8)")
    ap.add_argument("--dense-layers", type=int, nargs="*", default=[], help="layers checked against it")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(THREADS)
    import attattr_widgets as aw
    from attattr_widgets.engine.attribution import engine as eng_mod
    from attattr_widgets.demo import load_model

    if args.model in ("sentiment", "nli"):
        model, tok = load_model(args.model)
    else:
        model, tok = _load(args.model)
    inputs = _inputs(args.model, tok, args.tokens)
    enc = tok(*inputs[0], return_tensors="pt") if inputs[0][1] else tok(inputs[0][0], return_tensors="pt")
    with torch.no_grad():
        model(**enc)
        fwd = _median_time(lambda: model(**enc), 5)
    print(f"# bench/auto.py — {args.model}, {enc['input_ids'].shape[1]} tokens (first input), {len(inputs)} "
          f"input(s), {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {THREADS} thread(s), 1-min load "
          f"{os.getloadavg()[0]:.1f}; one forward {fwd:.3f} s", flush=True)
    count = [0]
    grad_chunk, new_layer = eng_mod._Engine._grad_chunk, eng_mod._Engine._layer

    def counting(self, batch, layer, hidden, targets, alphas, cancel):
        count[0] += len(alphas) * batch.B
        return grad_chunk(self, batch, layer, hidden, targets, alphas, cancel)

    eng_mod._Engine._grad_chunk = counting
    rows, maps = [], {}
    for name in args.methods:
        eng_mod._Engine._layer = _ladder_layer if name.startswith("auto-ladder") else new_layer
        with torch.no_grad():  # the load of a shared machine drifts: a forward measured just before each method
            fwd = _median_time(lambda: model(**enc), 3)
        count[0], seconds, comp, conv, L = 0, 0.0, [], [], 0
        maps[name] = []
        for text, pair in inputs:
            t0 = time.perf_counter()
            a = aw.attribute(model, tok, text, pair, store="memory", **METHODS[name])
            seconds += time.perf_counter() - t0
            comp += list(a.completeness)
            conv += list(a.converged)
            L += len(a.layers)
            maps[name].append(a)
        row = dict(model=args.model, method=name, tokens=int(enc["input_ids"].shape[1]), inputs=len(inputs),
                   forward=fwd, seconds=seconds, x_forward=seconds / fwd / len(inputs), evals=count[0] / L,
                   completeness_median=float(np.median(comp)), completeness_max=float(np.max(comp)),
                   converged=f"{sum(conv)}/{len(conv)}" if name.startswith("auto") else "–",
                   layer_steps=[list(m.layer_steps) for m in maps[name]])
        rows.append(row)
        print(f"{name:24s} {row['evals']:5.1f} evaluations/layer  {seconds:7.1f} s = {row['x_forward']:6.0f}× fwd "
              f"({fwd:.3f} s, load {os.getloadavg()[0]:.1f})"
              f"  completeness median {row['completeness_median']:.1e} max {row['completeness_max']:.1e}"
              f"  converged {row['converged']}", flush=True)
        if name == "auto":
            print("   auto evaluations per layer:", row["layer_steps"], flush=True)
            print("   auto panels, first input, layer 0:", maps[name][0].layer_panels[0], flush=True)
    eng_mod._Engine._layer = new_layer
    if args.dense_layers:
        alphas, weights = _dense_rule(args.dense)
        original = eng_mod.quadrature
        eng_mod.quadrature = lambda rule, steps: (alphas, weights)
        try:
            for i, (text, pair) in enumerate(inputs[:2]):
                ref = aw.attribute(model, tok, text, pair, layers=args.dense_layers, steps=len(alphas))
                for name in args.methods:
                    a = maps[name][i]
                    errs = []
                    for j, layer in enumerate(args.dense_layers):
                        r = ref.scores[j]
                        errs.append(float(np.abs(a.scores[a.layers.index(layer)] - r).max() / np.abs(r).max()))
                    print(f"dense-{args.dense} map error, input {i}, layers {args.dense_layers}: {name:24s} "
                          + " ".join(f"{e:.1e}" for e in errs) + f"  (reference completeness "
                          f"{' '.join(f'{c:.1e}' for c in ref.completeness)})", flush=True)
                    rows.append(dict(model=args.model, method=name, dense_input=i, dense_layers=args.dense_layers,
                                     map_error=errs, ref_completeness=list(map(float, ref.completeness))))
        finally:
            eng_mod.quadrature = original
    print(f"1-min load at end {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
