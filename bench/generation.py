"""Generated answers on the demo decoder (SmolLM2-135M, 30 layers × 9 heads): the cost of per-token maps and a
long answer at scale.

Two measurements (both print one summary line; ``--json`` appends it to a JSON-lines file):

* ``--mode ratio``: the per-token : whole-answer cost ratio. The same answer (``--answer`` tokens, greedily
  generated after a ``--prompt``-token prompt) is attributed twice, ``per_token=False`` and ``per_token=True``
  (the whole answer plus one row per answer token, in one batch: they share every pass and the nodes); wall
  time of each, their ratio, and the largest |Σ_t per-token − whole| relative to the whole map's largest entry.
* ``--mode scale``: a ``--answer``-token answer (default 64) after a ``--prompt``-token prompt (default 512), all
  30 layers: time, the multiple of one forward pass over prompt + answer, peak memory over the loaded model,
  completeness.

The answer is the model's own: greedy decoding (``model.generate``, ``min_new_tokens`` = ``max_new_tokens`` so
it has exactly ``--answer`` tokens), then ``attribute(target=answer_ids)``. Run with ``OMP_NUM_THREADS`` set to
the cores you may use, e.g. ``OMP_NUM_THREADS=2 .venv/bin/python bench/generation.py --mode scale --steps 2``.
"""
from __future__ import annotations

import argparse
import json
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


def _answer(model, tok, prompt: str, n: int) -> list[int]:
    """Exactly ``n`` greedy tokens after ``prompt`` (the user's own generate call; no end-of-sequence stop)."""
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1,
                             temperature=None, top_p=None, top_k=None, pad_token_id=tok.eos_token_id)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def _forward_seconds(model, tok, prompt: str, answer: list[int]) -> float:
    ids = torch.tensor([tok(prompt)["input_ids"] + answer])
    with torch.no_grad():
        model(input_ids=ids)  # warm
        t0 = time.perf_counter()
        model(input_ids=ids)
        return time.perf_counter() - t0


def _steps(text: str):
    return text if text == "auto" else int(text)


def ratio(args, model, tok) -> dict:
    prompt = _text(tok, args.prompt)
    answer = _answer(model, tok, prompt, args.answer)
    layers = None if args.layers is None else [int(x) for x in args.layers.split(",")]
    kw = dict(target=answer, steps=_steps(args.steps), layers=layers, max_steps=args.max_steps)
    t0 = time.perf_counter()
    whole = aw.attribute(model, tok, prompt, **kw)
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    both = aw.attribute(model, tok, prompt, per_token=True, **kw)
    t_per = time.perf_counter() - t0
    total = sum(p.scores.astype(np.float64) for p in both.per_token)
    identity = float(np.abs(total - both.scores).max() / np.abs(both.scores).max())
    return {"mode": "ratio", "prompt": args.prompt, "answer": len(answer), "layers": len(whole.layers),
            "steps": args.steps, "answer_text": tok.decode(answer), "whole_s": round(t_whole, 1),
            "whole_and_per_token_s": round(t_per, 1), "ratio": round(t_per / t_whole, 2),
            "nodes_whole": whole.layer_steps, "nodes_per_token_run": both.layer_steps,
            "sum_identity_rel": identity}


def scale(args, model, tok) -> dict:
    prompt = _text(tok, args.prompt)
    answer = _answer(model, tok, prompt, args.answer)
    fwd = _forward_seconds(model, tok, prompt, answer)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    last = [time.perf_counter()]

    def progress(r):
        now = time.perf_counter()
        print(f"layer {r.layer:2d}: {now - last[0]:6.1f} s, nodes {r.steps}, completeness {r.completeness:.2e}",
              flush=True)
        last[0] = now

    t0 = time.perf_counter()
    attr = aw.attribute(model, tok, prompt, target=answer, steps=_steps(args.steps), max_steps=args.max_steps,
                        progress=progress)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    if args.out:
        attr.save(args.out)
    return {"mode": "scale", "prompt": args.prompt, "answer": len(answer), "tokens": attr.num_tokens,
            "answer_start": attr.answer_start, "layers": len(attr.layers), "steps": args.steps,
            "nodes": attr.layer_steps, "seconds": round(wall, 1), "forward_s": round(fwd, 3),
            "x_forward": round(wall / fwd), "peak_mib_over_model": round(peak), "logprob": attr.prob,
            "median_completeness": float(np.median(attr.completeness)),
            "max_completeness": float(np.max(attr.completeness)), "threads": torch.get_num_threads(),
            "load": round(os.getloadavg()[0], 1), "answer_text": tok.decode(answer)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("ratio", "scale"), default="ratio")
    ap.add_argument("--prompt", type=int, default=None, help="prompt tokens (ratio: 32, scale: 512)")
    ap.add_argument("--answer", type=int, default=None, help="answer tokens (ratio: 8, scale: 64)")
    ap.add_argument("--steps", default="auto", help="Gauss–Legendre nodes per layer, or 'auto'")
    ap.add_argument("--max-steps", type=int, default=32)
    ap.add_argument("--layers", default=None, help="ratio mode: comma-separated layers (default all)")
    ap.add_argument("--out", type=Path, default=None, help="scale mode: save the Attribution here")
    ap.add_argument("--json", type=Path, default=None, help="append the summary line to this JSON-lines file")
    args = ap.parse_args()
    if args.prompt is None:
        args.prompt = 512 if args.mode == "scale" else 32
    if args.answer is None:
        args.answer = 64 if args.mode == "scale" else 8
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tok = load_model("decoder")
    out = (ratio if args.mode == "ratio" else scale)(args, model, tok)
    line = json.dumps(out)
    print(line, flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
