"""Command line: ``attattr demo | explain | importance | triggers | run-notebooks | assets`` (also
``python -m attattr_widgets.cli``); the batch jobs ``importance`` / ``triggers`` live in :mod:`.batch`."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

DEMO_TEXT = "The acting is superb, but the plot is a mess and the ending falls flat."
#: The held-out digit the demo page explains (index into the digits' test split).
DEMO_DIGIT = 0


def _say(msg: str) -> None:
    print(msg, flush=True)


def _cached(key: dict, compute):
    """Cache a JSON-able result of ``compute()`` under the demo cache, keyed by ``key``."""
    from .demo.assets import cache_dir

    from .engine.results import atomic_write_text

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "results" / f"{key['what']}-{digest}.json"
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8")), True
        except (OSError, ValueError):  # an unreadable cache entry is recomputed (and rewritten), not fatal
            _say(f"cache entry {path} is unreadable: recomputing it")
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(value))
    return value, False


def demo(args) -> int:
    """The main job on the embedded default model: explain a sentence with every view, write one offline page."""
    import numpy as np

    import attattr_widgets as aw
    from attattr_widgets.demo import load_dataset, load_model
    from attattr_widgets.engine.analysis.importance import head_importance
    from attattr_widgets.engine.analysis.pruning import compare_pruning
    from attattr_widgets.engine.results import PruningCurve
    from attattr_widgets.engine.validate import output_path

    out_path = output_path(args.out, "--out")  # checked before minutes of computation, not after
    t0 = time.perf_counter()
    _say("loading the sentiment demo model (all-MiniLM-L6-v2 fine-tuned on movie reviews, offline) ...")
    model, tok = load_model("sentiment")

    def progress(r):
        _say(f"  layer {r.layer + 1}/{r.total}: completeness error {r.completeness:.1e}")

    _say(f"attributing: {args.text!r}")
    attr = aw.attribute(model, tok, args.text, progress=progress)
    _say(f"  -> predicted {attr.target_label!r} with p = {attr.prob:.3f}")

    n_imp, n_eval = (16, 120) if args.small else (48, 400)
    examples = load_dataset("sentiment", "test")
    imp_set, eval_set = examples[:n_imp], examples[n_imp : n_imp + n_eval]
    key = {"what": "demo-pruning", "n_imp": n_imp, "n_eval": n_eval, "model": "sentiment", "v": 1}

    def compute():
        _say(f"head importance on {n_imp} held-out reviews (AttAttr, Taylor, random) ...")
        imps = {m: head_importance(model, tok, imp_set, method=m) for m in ("attattr", "taylor", "random")}
        _say(f"pruning curves on {n_eval} other held-out reviews ...")
        curves = compare_pruning(model, tok, eval_set, imps)
        return {"importance": {k: v.tolist() for k, v in imps.items()}, "curves": [c.to_dict() for c in curves]}

    result, hit = _cached(key, compute)
    if hit:
        _say("pruning curves: cached result")
    curves = [PruningCurve.from_dict(d) for d in result["curves"]]
    _say("loading the digits ViT (trained by `make assets` on scikit-learn's 8 x 8 handwritten digits) ...")
    vit, processor = load_model("digits-vit")
    digit = load_dataset("digits", "test")[DEMO_DIGIT]
    image_attr = aw.attribute(vit, processor, digit["image"])
    _say(f"  a handwritten {digit['label']} -> predicted {image_attr.target_label!r} "
         f"with p = {image_attr.prob:.3f}")
    out = demo_page(attr, curves, np.asarray(result["importance"]["attattr"]), out_path, image_attr)
    size = Path(out).stat().st_size / 1e6
    _say(f"\nwrote {Path(out).resolve()} ({size:.1f} MB, self-contained: opens offline in any browser) "
         f"in {time.perf_counter() - t0:.0f} s")
    _say("live and interactive: `make lab`, then open notebooks/01_quickstart.ipynb")
    return 0


def demo_page(attr, curves, importance, out, image_attr=None) -> Path:
    """The demo's offline page: Explorer and TreeView of ``attr``, the pruning curves, a header naming the
    three most important heads of ``importance`` [L, H], and, when given, the Explorer of an image
    attribution ``image_attr`` (the digits ViT). Returns the written path."""
    import numpy as np

    from attattr_widgets import plots
    from attattr_widgets.export import to_html
    from attattr_widgets.widgets import Explorer, TreeView

    plot = plots.pruning_plot(curves, title="Sentiment demo model: accuracy as heads are pruned (least important first)")
    imp = np.asarray(importance)
    top = np.dstack(np.unravel_index(np.argsort(-imp, axis=None)[:3], imp.shape))[0]
    images = [] if image_attr is None else [Explorer.from_attribution(image_attr)]
    picture = "" if image_attr is None else (
        f" Last: a handwritten digit ({image_attr.image.grid[0]} × {image_attr.image.grid[1]} patches) explained "
        f"by a small ViT → {image_attr.target_label} (p = {image_attr.prob:.3f}).")
    return to_html(
        [Explorer.from_attribution(attr), TreeView(attr, threshold=0.4), plot, *images],
        out,
        title="attattr-widgets demo",
        heading="Which attention links does the prediction depend on?",
        description=(
            f"“{attr.text}” → {attr.target_label} (p = {attr.prob:.3f}). Click a head in the grid to compare its "
            f"attention with its attribution. Most important heads: "
            + ", ".join(f"layer {l} head {h}" for l, h in top)
            + "." + picture
        ),
    )


def explain(args) -> int:
    """Attribute one input with a demo model or a checkpoint; save the result and/or an offline page."""
    import attattr_widgets as aw
    from attattr_widgets.demo import load_model
    from attattr_widgets.engine.validate import output_path

    save = None if args.save is None else output_path(args.save, "--save")
    html = None if args.html is None else output_path(args.html, "--html")
    model, tok = load_model(args.model)
    attr = aw.attribute(model, tok, args.text, args.pair, target=args.target, rule=args.rule, steps=args.steps,
                        truncation=args.truncate,
                        progress=lambda r: _say(f"  layer {r.layer + 1}/{r.total} done"))
    _say(repr(attr))
    if save is not None:
        _say(f"saved {attr.save(save)}")
    if html is not None:
        from attattr_widgets.export import to_html
        from attattr_widgets.widgets import Explorer

        _say(f"wrote {to_html(Explorer.from_attribution(attr), html, title='AttAttr explorer')}")
    return 0


def _target(value: str):
    return int(value) if value.lstrip("-").isdigit() else value


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the demo heads are trained deltas: no "newly initialized" load reports
    parser = argparse.ArgumentParser(prog="attattr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="explain a review with the embedded sentiment model; write demo.html")
    p.add_argument("--text", default=DEMO_TEXT)
    p.add_argument("--out", default="demo.html")
    p.add_argument("--small", action="store_true", help="fewer examples for the pruning curves")
    p.set_defaults(func=demo)

    p = sub.add_parser("explain", help="attribute one input and save it (.npz) and/or an offline HTML page")
    p.add_argument("text")
    p.add_argument("--pair", default=None, help="second sentence (e.g. the NLI hypothesis)")
    p.add_argument("--model", default="sentiment", help="sentiment | nli | decoder | a checkpoint dir or hub id")
    p.add_argument("--target", type=_target, default="pred")
    p.add_argument("--rule", default="gauss-legendre")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--truncate", action="store_true", help="truncate inputs longer than the model accepts")
    p.add_argument("--save", default=None, help="write the Attribution here (.npz)")
    p.add_argument("--html", default=None, help="write an offline Explorer page here")
    p.set_defaults(func=explain)

    from . import batch, notebooks

    batch.add_commands(sub)
    p = notebooks.add_arguments(sub.add_parser("run-notebooks", help="execute tutorial notebooks"))
    p.set_defaults(func=notebooks.run_from_args)

    p = sub.add_parser("assets", help="install / check the offline demo weights and data")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: _assets(a.rest))

    args = parser.parse_args(argv)
    user_errors = _user_errors()
    try:
        return int(args.func(args) or 0)
    except user_errors as exc:  # the user's mistake: one clear line, exit 2 (as argparse does), no traceback
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{parser.prog} {args.command}: error: {msg}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or setup (named in their message), not a bug in attattr-widgets."""
    from .demo.assets import DemoAssetError
    from .engine.errors import AttAttrError
    from .export import ExportError

    return (AttAttrError, DemoAssetError, ExportError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError)


def _assets(rest: list[str]) -> int:
    from .demo.assets import main as assets_main

    return int(assets_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
