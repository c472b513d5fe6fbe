"""Benchmark (not a test): ``steps="auto"`` (adaptive Simpson–Boole on nested dyadic panels, α = 1 from the clean
pass's shared backward, F(0) from the α = 0 rows; issue 25) against the two previous ``auto`` rules, kept below
for this comparison — main fa0ca17's (the same panels, but α = 1 and a zero pass evaluated per layer, 32·eps float
floor; ``_simpson_v1_layer``) and 1af22cc's Gauss–Legendre ladder 2, 3, 4, 6, 8, … (``_ladder_layer``) — fixed
Gauss–Legendre 6 and the paper's left-20 (every α row recomputes the whole network), in ONE process per model,
so that times compare as multiples of one forward pass measured in the same process just before each method.

Per method: gradient evaluations per layer (every α row of every gradient pass, counted at ``_grad_chunk``,
discarded ones included, plus, for the new ``auto``, one per example for the clean pass's backward that gives
every layer's α = 1), wall time (× one forward), completeness median / max over layers, layers converged
(``steps="auto"`` only) and, on ``--dense-layers``, the maps' error against a dense reference (composite
Gauss–Legendre, 8 nodes on each of ``--dense`` / 8 equal panels), max |Attr − ref| / max |ref| per layer.

Run: ``.venv/bin/python bench/auto.py --model decoder --tokens 32`` (one intra-op thread,
``ATTATTR_BENCH_THREADS`` as in bench/attribution.py). Models: ``decoder`` (demo SmolLM2-135M, ``--prompts``:
indices of the three PROMPTS, each cut to ``--tokens``), ``sentiment`` / ``nli`` (the trained demo MiniLMs, four demo
sentences or pairs), ``bert-base`` (12×12, hidden 768, random weights). Results: bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from attribution import PROSE, SENTENCES, THREADS, _load, _text, forward_seconds, header  # noqa: E402

PAIRS = [("a man is playing a guitar on stage.", "a person is performing music."),
         ("two dogs run through a field.", "the animals are sleeping indoors."),
         ("a woman reads a book in the park.", "someone is outside."),
         ("children are playing soccer.", "the kids are at school taking a test.")]
#: Decoder prompts (the first is bench/attribution.py's); each is repeated and cut to ``--tokens``.
PROMPTS = [PROSE,
           "In the spring of that year the river rose higher than anyone in the village could remember. The old "
           "bridge held, but the mill was lost, and the families who had lived along the bank moved up the hill. ",
           "To install the package, create a virtual environment, activate it and run the installer with the "
           "offline flag. If the build fails, check that the compiler is on your path and that the cache is clean. "]
METHODS = {
    "auto": dict(steps="auto"),
    "auto-simpson (main fa0ca17)": dict(steps="auto"),
    "auto-ladder (1af22cc)": dict(steps="auto"),
    "GL-6": dict(rule="gauss-legendre", steps=6),
    "paper left-20": dict(rule="left", steps=20, method="naive"),
}
AUTO_LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def _simpson_v1_layer(self, batch, layer, hidden, targets, F_clean, captured, g_one, cancel):
    """main fa0ca17's ``steps="auto"``, for comparison: the same AdaptiveSimpson panels, but a zero pass and every
    node (α = 1 included) evaluated per layer, the float floor 32·eps·(|F| + |F0|), and a stop (not converged) from
    9 nodes on when the estimates are under tol/10 and the gap under 1000·eps·(|F| + |F0|)."""
    from attattr_widgets.engine.quadrature import AdaptiveSimpson

    q = self.quad
    zero = self.zero_scores(batch, layer, hidden, targets, cancel)
    delta = (F_clean - zero).to(self.acc_dtype)
    floor = 32 * torch.finfo(self.acc_dtype).eps * (F_clean.abs() + zero.abs()).to(self.acc_dtype)
    allowed = (q.tol * delta.abs() + floor).cpu().double().numpy()
    rounding = (1000 * floor / 32).cpu().double().numpy()
    delta = delta.cpu().double().numpy()
    ref = captured.get(layer).out.to(self.acc_dtype)
    rule, grads, new = AdaptiveSimpson(), {}, [0.0, 0.5, 1.0]
    while True:
        nodes = np.asarray(new, np.float64)
        for idx, g, _ in self._node_grads(batch, layer, hidden, targets, nodes, cancel):
            g = g.to(self.acc_dtype)
            f = (g * ref.unsqueeze(1)).flatten(2).sum(-1)
            for j, a in enumerate(nodes[idx]):
                grads[float(a)] = g[:, j]
            rule.record(nodes[idx], f.T.cpu().double().numpy())
        ok = bool((np.abs(rule.integral() - delta) <= allowed).all())
        if ok or len(rule.alphas) + 2 > q.max_steps:
            break
        if len(rule.alphas) >= 9 and (np.sum(rule.errors(), axis=0) <= 0.1 * allowed).all() and (
                np.abs(rule.integral() - delta) <= rounding).all():
            break
        new = rule.split(allowed)
    alphas, weights = rule.rule()
    g = sum(float(w) * grads[float(a)] for a, w in zip(alphas, weights))
    return g, zero, len(alphas), ok, list(rule.panels)


def _ladder_layer(self, batch, layer, hidden, targets, F_clean, captured, g_one, cancel):
    """1af22cc's ``steps="auto"``, for comparison: Gauss–Legendre orders from AUTO_LADDER, each layer starting at
    its predecessor's order (one rung lower when far inside tol), stopping at tol, the cap or three orders whose
    error does not halve; every order re-evaluates all its nodes."""
    from attattr_widgets.engine.attribution.engine import quadrature

    q = self.quad
    zero = self.zero_scores(batch, layer, hidden, targets, cancel)
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
            return g, zero, steps, ok, None
        rung += 1


PREVIOUS = {"auto-simpson (main fa0ca17)": _simpson_v1_layer, "auto-ladder (1af22cc)": _ladder_layer}


def _inputs(model_name, tok, tokens, prompts):
    if model_name == "decoder":
        return [(_text(tok, tokens, PROMPTS[i]), None) for i in prompts]
    if model_name == "nli":
        return PAIRS
    if model_name == "bert-base":
        return [(_text(tok, tokens, PROSE), None)]
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
    ap.add_argument("--prompts", type=int, nargs="+", default=[0, 1, 2], help="decoder prompts (indices of PROMPTS)")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--dense", type=int, default=256, help="nodes of the dense reference (multiple of 8)")
    ap.add_argument("--dense-layers", type=int, nargs="*", default=[], help="layers checked against it")
    ap.add_argument("--dense-inputs", type=int, default=2, help="inputs checked against it (the first ones)")
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
    inputs = _inputs(args.model, tok, args.tokens, args.prompts)
    enc = tok(*inputs[0], return_tensors="pt") if inputs[0][1] else tok(inputs[0][0], return_tensors="pt")
    header("auto.py", f"{args.model}, {enc['input_ids'].shape[1]} tokens (first input), {len(inputs)} input(s)",
           forward_seconds(model, enc))
    count = [0]
    grad_chunk, new_layer = eng_mod._Engine._grad_chunk, eng_mod._Engine._layer
    clean_pass, shares = eng_mod._Engine.clean_pass, eng_mod._Engine.shares_alpha_one

    def counting(self, batch, layer, hidden, targets, alphas, cancel):
        count[0] += len(alphas) * batch.B
        return grad_chunk(self, batch, layer, hidden, targets, alphas, cancel)

    def counting_clean(self, batch, *a):  # one backward per example for every layer's α = 1
        out = clean_pass(self, batch, *a)
        count[0] += batch.B if out[-1] else 0
        return out

    eng_mod._Engine._grad_chunk, eng_mod._Engine.clean_pass = counting, counting_clean
    rows, maps = [], {}
    for name in args.methods:
        eng_mod._Engine._layer = PREVIOUS.get(name, new_layer)
        # the previous rules evaluate α = 1 per layer
        eng_mod._Engine.shares_alpha_one = (lambda self, batch: False) if name in PREVIOUS else shares
        fwd = forward_seconds(model, enc, 3)  # the load of a shared machine drifts: measured before each method
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
                   layer_steps=[list(m.layer_steps) for m in maps[name]],
                   not_converged=[[l for l, c in zip(m.layers, m.converged) if not c] for m in maps[name]],
                   completeness=[[float(c) for c in m.completeness] for m in maps[name]])
        rows.append(row)
        print(f"{name:24s} {row['evals']:5.1f} evaluations/layer  {seconds:7.1f} s = {row['x_forward']:6.0f}× fwd "
              f"({fwd:.3f} s, load {os.getloadavg()[0]:.1f})"
              f"  completeness median {row['completeness_median']:.1e} max {row['completeness_max']:.1e}"
              f"  converged {row['converged']}", flush=True)
        if name == "auto":
            print("   auto nodes per layer (α = 1 from the shared clean backward):", row["layer_steps"], flush=True)
            print("   auto layers not converged:", row["not_converged"], flush=True)
            print("   auto panels, first input, layer 0:", maps[name][0].layer_panels[0], flush=True)
    eng_mod._Engine._layer, eng_mod._Engine.shares_alpha_one = new_layer, shares
    if args.dense_layers:
        alphas, weights = _dense_rule(args.dense)
        original = eng_mod.quadrature
        eng_mod.quadrature = lambda rule, steps: (alphas, weights)
        try:
            for i, (text, pair) in enumerate(inputs[:args.dense_inputs]):
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
