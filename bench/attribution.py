"""Benchmark: the v2 engine vs the v1 engine vs the paper's algorithm — time, peak memory and completeness,
every figure also as a multiple of one forward pass measured in the same process.

Methods (one example, the layers given):

* **(a) paper** — every α row recomputes the whole network, gradient w.r.t. the materialised probabilities of
  layer l, left Riemann sum with m = 20 (the authors' code);
* **(b) v1** — the previous engine (``tests/reference/legacy_attribution.py``): eager probabilities materialised
  in every layer, prefix caching by swapping modules, Gauss–Legendre 6 nodes;
* **(c) v2 GL-6** — this engine: the model's own fused attention everywhere, output form P ⊙ (Ḡ Vᵀ), prefix
  caching through a shadow module path, Gauss–Legendre 6 nodes;
* **(c) v2 auto** — the same with ``steps="auto"`` (tol 1e-3).

Models: a bert-base-sized classifier (12×12, hidden 768, random weights: speed does not depend on them) at 32 /
64 / 128 tokens, all 12 layers; the demo decoder (SmolLM2-135M, 30 layers) at 512 / 1,024 / 2,048 tokens,
layer 0 (the most expensive layer: its suffix is the whole network). Each (model, length, method) runs in a fresh
subprocess so that its peak memory (``ru_maxrss`` minus the RSS before the run) is its own, and times are
compared as multiples of the forward pass measured in the same subprocess (a shared machine's load drifts between
cells; the ratios of those multiples are what travels). Accuracy: median
completeness error on the trained demo sentiment model in float64 for (a), (c) GL-6 and (c) auto.

Run: ``make bench`` or ``.venv/bin/python bench/attribution.py [--quick] [--json out.json]``; prints a
markdown report (paste into bench/RESULTS.md with the date, machine and load).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
#: Intra-op threads per measurement. One by default: on a shared machine a multi-threaded forward waits in
#: OpenMP barriers whenever one of its threads is descheduled, which distorts "× one forward" ratios; with one
#: thread the load only time-slices every pass alike. Set ATTATTR_BENCH_THREADS=2 on an idle machine.
THREADS = int(os.environ.get("ATTATTR_BENCH_THREADS", "1"))
sys.path.insert(0, str(ROOT / "tests"))

METHODS = {
    "paper": dict(rule="left", steps=20, method="naive"),
    "v1": dict(rule="gauss-legendre", steps=6),
    "v2-gl6": dict(rule="gauss-legendre", steps=6),
    "v2-auto": dict(rule="gauss-legendre", steps="auto"),
}
SENTENCES = [
    "a gorgeous, witty, seductive movie.",
    "the plot is nothing but boilerplate cliches from start to finish.",
    "it's not a bad film, just a forgettable one.",
    "an utterly charming and hilarious film that reminded me why i love going to the movies.",
]
PROSE = ("the film is a quiet, patient study of grief and memory, and it earns every minute of its long running "
         "time with small gestures, careful light and a score that never tells you what to feel. ")


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_seconds(model, enc, repeats: int = 5) -> float:
    """Median seconds of one gradient-free forward of ``enc`` (after one warm-up forward): the unit of "× one
    forward"."""
    with torch.no_grad():
        model(**enc)
        return _median_time(lambda: model(**enc), repeats)


def header(script: str, what: str, fwd: float) -> None:
    """The first line of a benchmark log: script, what runs, UTC time, threads, 1-min load, one forward (s)."""
    print(f"# bench/{script} — {what}, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {THREADS} "
          f"thread(s), 1-min load {os.getloadavg()[0]:.1f}; one forward {fwd:.3f} s", flush=True)


def _load(model_name: str):
    if model_name == "bert-base":
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

        from attattr_widgets.demo.assets import encoder_dir

        tok = AutoTokenizer.from_pretrained(encoder_dir())
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, num_labels=2, max_position_embeddings=512)
        return BertForSequenceClassification(cfg).eval(), tok
    from attattr_widgets.demo import load_model

    return load_model("decoder")


def _text(tok, n: int, prose: str = PROSE) -> str:
    """``prose`` repeated and cut so that its encoding is exactly ``n`` tokens long (with the tokenizer's special
    tokens)."""
    ids = tok(prose * (n // 20 + 4), add_special_tokens=False)["input_ids"]
    special = len(tok("a")["input_ids"]) - len(tok("a", add_special_tokens=False)["input_ids"])
    text = tok.decode(ids[: n - special])
    for _ in range(8):  # decoding and re-encoding can merge or split a piece at the edges
        m = len(tok(text)["input_ids"])
        if m == n:
            return text
        ids = ids[: len(ids) - (m - n)] if m > n else ids
        text = tok.decode(ids[: len(ids) if m > n else n - special])
    return text


def measure(model_name: str, n: int, method: str, layers) -> dict:
    """One (model, length, method) cell, in this process: forward time, run time, peak memory, completeness."""
    import attattr_widgets as aw

    torch.set_num_threads(THREADS)
    model, tok = _load(model_name)
    text = _text(tok, n)
    enc = tok(text, return_tensors="pt")
    assert enc["input_ids"].shape[1] == n, (enc["input_ids"].shape, n)
    kw = dict(max_length=n + 8, layers=layers, **METHODS[method])
    fwd = forward_seconds(model, enc)
    if method == "v1":
        from reference.legacy_attribution import legacy_attribute

        model = copy.deepcopy(model)  # v1 changes the model it runs on
        kw.pop("max_length")
        run = lambda: legacy_attribute(model, tok, text, **kw)  # noqa: E731
    else:
        run = lambda: aw.attribute(model, tok, text, store="fp16" if n > 1024 else "auto", **kw)  # noqa: E731
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    out = run()
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    comp = np.asarray(out["completeness"] if isinstance(out, dict) else out.completeness, dtype=float)
    steps = [20] * len(comp) if method == "paper" else [6] * len(comp) if method in ("v1", "v2-gl6") else \
        list(out.layer_steps)
    return dict(model=model_name, tokens=n, method=method, forward=fwd, seconds=wall, peak_mib=max(0.0, peak),
                completeness_median=float(np.median(comp)), completeness_max=float(np.max(comp)),
                nodes=float(np.mean(steps)))


def accuracy(sentences) -> dict:
    import attattr_widgets as aw
    from attattr_widgets.demo import load_model

    model, tok = load_model("sentiment")
    model = model.double()
    out = {}
    for name in ("paper", "v2-gl6", "v2-auto"):
        errs, nodes = [], []
        for s in sentences:
            attr = aw.attribute(model, tok, s, **METHODS[name])
            errs.extend(attr.completeness.tolist())
            nodes.extend(attr.layer_steps)
        out[name] = (float(np.median(errs)), float(np.max(errs)), float(np.mean(nodes)))
        print(f"  completeness {name}: median {out[name][0]:.2e}, max {out[name][1]:.2e}, "
              f"mean nodes {out[name][2]:.1f}", flush=True)
    return out


def _cell(model_name, n, method, layers, timeout) -> dict | None:
    cmd = [sys.executable, __file__, "--cell", model_name, str(n), method, json.dumps(layers)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        print(f"  {model_name} T={n} {method}: timed out after {timeout} s", flush=True)
        return dict(model=model_name, tokens=n, method=method, timeout=timeout)
    if res.returncode != 0:
        print(f"  {model_name} T={n} {method}: failed\n{res.stderr[-2000:]}", flush=True)
        return None
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {model_name} T={n} {method}: {row['seconds']:.1f} s = {row['seconds'] / row['forward']:.0f}× fwd, "
          f"peak +{row['peak_mib']:.0f} MiB, completeness median {row['completeness_median']:.1e}, "
          f"nodes {row['nodes']:.1f}", flush=True)
    return row


def report(rows: list[dict], acc: dict | None) -> str:
    lines = []
    by = {(r["model"], r["tokens"], r["method"]): r for r in rows}
    for model_name, what in (("bert-base", "all 12 layers"), ("decoder", "layer 0")):
        lengths = sorted({r["tokens"] for r in rows if r["model"] == model_name})
        if not lengths:
            continue
        lines += [f"\n**{model_name}** ({what}) — seconds (× one forward), peak extra memory, median completeness, "
                  f"mean nodes per layer:\n",
                  "| tokens | forward | (a) paper left-20 | (b) v1 GL-6 | (c) v2 GL-6 | (c) v2 auto | a/c-auto | b/c-GL6 time | b/c-GL6 memory |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n in lengths:
            cells = []
            fwd = next((r["forward"] for m in METHODS if (r := by.get((model_name, n, m))) and "forward" in r), None)
            for m in METHODS:
                r = by.get((model_name, n, m))
                if r is None:
                    cells.append("–")
                elif "timeout" in r:
                    cells.append(f"> {r['timeout']} s")
                else:
                    cells.append(f"{r['seconds']:.1f} s ({r['seconds'] / r['forward']:.0f}×), "
                                 f"+{r['peak_mib']:.0f} MiB, {r['completeness_median']:.0e}, {r['nodes']:.1f}")

            def ratio(a, b, key):
                """a/b of time as multiples of each cell's own forward (load drifts between cells) or memory."""
                ra, rb = by.get((model_name, n, a)), by.get((model_name, n, b))
                if not ra or not rb or key not in ra or key not in rb or not rb[key]:
                    return "–"
                if key == "seconds":
                    return f"**{(ra[key] / ra['forward']) / (rb[key] / rb['forward']):.1f}×**"
                return f"**{ra[key] / rb[key]:.1f}×**"

            lines.append(f"| {n} | {fwd:.3f} s | " + " | ".join(cells) + f" | {ratio('paper', 'v2-auto', 'seconds')}"
                         f" | {ratio('v1', 'v2-gl6', 'seconds')} | {ratio('v1', 'v2-gl6', 'peak_mib')} |")
    if acc:
        lines += ["\nAccuracy on the trained demo sentiment model (float64, 4 sentences × 6 layers):\n",
                  "| method | median completeness | max | mean nodes |", "|---|---|---|---|"]
        for name, (med, mx, nodes) in acc.items():
            lines.append(f"| {name} | {med:.2e} | {mx:.2e} | {nodes:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", nargs=4, metavar=("MODEL", "TOKENS", "METHOD", "LAYERS"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="bert-base 32 tokens and decoder 128 tokens only")
    ap.add_argument("--bert", type=int, nargs="*", default=[32, 64, 128])
    ap.add_argument("--decoder", type=int, nargs="*", default=[512, 1024, 2048])
    ap.add_argument("--paper-decoder-max", type=int, default=1024,
                    help="longest decoder input for the paper's algorithm (20 full passes each)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--json", type=Path, help="append every finished cell to this JSON-lines file")
    args = ap.parse_args()
    if args.cell:
        model_name, n, method, layers = args.cell
        print(json.dumps(measure(model_name, int(n), method, json.loads(layers))))
        return
    if args.quick:
        args.bert, args.decoder = [32], [128]
    load = os.getloadavg()[0]
    print(f"# AttAttr benchmark — {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC — "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {THREADS} thread(s) per run, torch "
          f"{torch.__version__}, 1-min load at start {load:.1f}", flush=True)
    rows = []
    plan = [("bert-base", n, m, None) for n in args.bert for m in METHODS]
    plan += [("decoder", n, m, [0]) for n in args.decoder for m in METHODS
             if m != "paper" or n <= args.paper_decoder_max]
    for model_name, n, m, layers in plan:
        row = _cell(model_name, n, m, layers, args.timeout)
        if row:
            rows.append(row)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print("accuracy (demo sentiment model, float64):", flush=True)
    acc = accuracy(SENTENCES[:2] if args.quick else SENTENCES)
    print(f"1-min load at end {os.getloadavg()[0]:.1f}")
    print(report(rows, acc))


if __name__ == "__main__":
    main()
