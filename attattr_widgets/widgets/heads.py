"""HeadsView: the dataset half of the paper live — head importance (§4.1, Fig 3 left), pruning curves (Fig 3),
effectiveness (Fig 2) and cross-task correlation (Fig 4) in one widget.

``HeadsView(model, tokenizer, examples, methods=("attattr", "taylor", "random"), eval_examples=None,
fractions=None, **engine_kwargs)``; ``.run()`` starts a background thread and returns, ``.stop()`` cancels,
``.wait(timeout)`` returns a :class:`HeadsResult`. The numbers are those of
:func:`~attattr_widgets.engine.analysis.importance.head_importance` and
:func:`~attattr_widgets.engine.analysis.pruning.compare_pruning` on the same data and settings: the view iterates the
very streams those functions consume (``iter_head_importance``, ``PruningSweep``), so they are equal by
construction.

Protocol (js/heads/; names mirrored in js/shared/protocol.ts) — everything is a synced trait (durable: a view
opened mid-run, a reload and ``to_html`` all show the state so far), updated at most every ``interval`` s while
running and always at the end of each step that finishes a method / a fraction:

* ``state`` "empty" | "running" | "done" | "cancelled" | "error", ``error``, ``run_id``,
  ``phase`` "" | "importance" | "pruning" | "effectiveness";
* ``meta`` {model_name, num_layers, num_heads, methods, num_examples, num_eval, fractions, target,
  label_names};
* ``progress`` {method: {done, total, elapsed_s, eta_s}} (``"pruning"`` and ``"effectiveness"`` keys too);
* ``importance`` {method: {view, dtype=float32, shape=[L, H]}} — running estimates (exactly the engine's);
* ``curves`` [{method, order, fractions: [K], accuracy: {view float32 [K]} (NaN = not yet), counts: [K],
  pruned: {view uint8 [K, L, H]}}];
* ``effectiveness`` the :class:`Effectiveness` ``to_dict()`` or {} ; ``correlation`` {labels, r, spearman, n,
  x: {view float32 [L·H]}, y: {...}} or {};
* front-end owned: ``view`` "importance" | "pruning" | "effectiveness" | "correlation", ``method`` (grid shown
  when switchable), ``arrangement`` "side" | "single", ``selected`` [layer, head] | [];
* ``examples`` [{text, text_pair, label}] (the importance examples) and ``example_scores`` {method: float32
  [N, L, H]} (per-example head scores, NaN = not processed; sent when a method finishes or stops): the view
  ranks a clicked head's examples from them (the same rule as :meth:`HeadsView.top_examples`, tested on shared
  cases), so this also works in exported pages;
* ``head_examples`` [{index, text, text_pair, label, score, method}] — the examples where the selected head
  carries the most attribution under ``method`` (its per-example score, largest first; methods without
  per-example scores, "random" and "accuracy", use the first method that has them).
* browser -> kernel commands (``js/shared/commands.ts``): ``_cmd_cancel`` ``{run_id}`` (Stop), ``_cmd_open``
  ``{index, layer, head}`` (open an example in the linked Explorer on that head).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import traitlets

from ._base import BackgroundRun, BaseWidget, binary_trait, command, css_asset, esm_asset

__all__ = ["HeadsResult", "HeadsView"]

IMPORTANCE_KWARGS = ("target", "rule", "steps", "batch_size", "seed", "reduce", "max_length", "normalize", "backend")
PRUNING_KWARGS = ("order", "rounding", "seed", "max_length", "eval_batch_size", "backend")
TOP_EXAMPLES = 8


def _model_name(model: Any) -> str:
    cfg = getattr(model, "config", None)
    name = getattr(cfg, "name_or_path", "") or getattr(cfg, "_name_or_path", "")
    return str(name or type(model).__name__)


@dataclass
class HeadsResult:
    """What a :class:`HeadsView` run computed.

    ``importance`` {method: HeadImportance [L, H]} (a method stopped half-way holds the running estimate over
    ``num_examples`` of them); ``curves`` the ``compare_pruning`` curves (NaN accuracy at fractions not yet
    evaluated; empty when stopped before pruning); ``example_scores`` {method: [N, L, H]} per-example head
    scores (NaN rows = not processed); ``effectiveness`` (or None); ``partial`` True when stopped early.
    """

    importance: dict
    curves: list
    example_scores: dict = field(default_factory=dict)
    effectiveness: Any = None
    partial: bool = False

    def __repr__(self) -> str:
        imp = ", ".join(f"{m}: {getattr(v, 'num_examples', '?')} examples" for m, v in self.importance.items())
        return f"HeadsResult({'partial, ' if self.partial else ''}importance={{{imp}}}, curves={len(self.curves)})"


class HeadsView(BackgroundRun, BaseWidget):
    """Live dataset-level view: importance grids, pruning curves, effectiveness, correlation (see module doc).

    Args:
        examples: the importance examples (dicts ``{"text", "text_pair"?, "label"}``, a DataFrame or a
            ``datasets.Dataset``; the paper uses 200 held-out examples).
        methods: importance methods (see :func:`head_importance`), one grid each.
        eval_examples: held-out examples for the pruning curves (default: ``examples``, as the authors).
        fractions: pruned fractions (default 0, 0.1, …, 1).
        effectiveness_examples: if given, also run :func:`effectiveness` on them (Fig 2; one more attribution
            per example).
        explorer: the Explorer that clicked examples open in (default: a new one, ``view.explorer``; display it
            next to the view: ``display(view, view.explorer)``).
        interval: seconds between trait updates while running (the view redraws at most that often).
        engine_kwargs: ``target``, ``rule``, ``steps``, ``batch_size``, ``seed``, ``reduce``, ``max_length``,
            ``normalize`` (importance) and ``order``, ``rounding``, ``eval_batch_size`` (pruning; default
            ``batch_size`` or 32), exactly as the engine functions take them; ``backend`` (e.g. an
            ``aw.RayBackend``) goes to every engine call.
    """

    _esm = esm_asset("heads.js")
    _css = css_asset("heads.css")

    state = traitlets.Unicode("empty").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    run_id = traitlets.Int(0).tag(sync=True)
    phase = traitlets.Unicode("").tag(sync=True)
    meta = traitlets.Dict(default_value={}).tag(sync=True)
    progress = traitlets.Dict(default_value={}).tag(sync=True)
    importance = binary_trait({})
    curves = binary_trait([])
    effectiveness = traitlets.Dict(default_value={}).tag(sync=True)
    correlation = binary_trait({})
    view = traitlets.Enum(["importance", "pruning", "effectiveness", "correlation"],
                          default_value="importance").tag(sync=True)
    method = traitlets.Unicode("").tag(sync=True)
    arrangement = traitlets.Enum(["side", "single"], default_value="side").tag(sync=True)
    selected = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    head_examples = traitlets.List(default_value=[]).tag(sync=True)
    examples = traitlets.List(default_value=[]).tag(sync=True)
    example_scores = binary_trait({})

    def __init__(self, model: Any, tokenizer: Any, examples: Any, *, methods=("attattr", "taylor", "random"),
                 eval_examples: Any = None, fractions=None, effectiveness_examples: Any = None,
                 explorer: Any = None, interval: float = 0.25, **engine_kwargs):
        from ..engine.model.examples import as_examples
        from ..engine.analysis.importance import METHODS

        unknown = sorted(set(engine_kwargs) - set(IMPORTANCE_KWARGS) - set(PRUNING_KWARGS))
        if unknown:
            raise TypeError(f"HeadsView() got unexpected keyword argument(s): {', '.join(unknown)} "
                            f"(engine settings: {', '.join(sorted(set(IMPORTANCE_KWARGS) | set(PRUNING_KWARGS)))})")
        if isinstance(methods, str):
            methods = (methods,)
        methods = tuple(str(m) for m in methods)
        bad = [m for m in methods if m not in METHODS]
        if not methods or bad:
            raise ValueError(f"methods={list(methods)!r}: choose one or more of {', '.join(METHODS)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods={list(methods)!r} lists a method twice")
        self.items = as_examples(examples)
        if not self.items:
            raise ValueError("examples is empty: pass at least one {'text', 'label'} example")
        self.eval_items = self.items if eval_examples is None else as_examples(eval_examples)
        self.eff_items = None if effectiveness_examples is None else as_examples(effectiveness_examples)
        from ..engine import validate
        from ..engine.model.examples import check_labels
        from ..engine.intercept.controller import controller_for
        from ..engine.model.adapters import adapter_for
        from ..engine.model.checks import check_model_and_tokenizer

        fractions = validate.fractions(fractions)  # refused here, not later in the background thread
        interval = validate.number(interval, "interval", minimum=0.0, fix="seconds between view updates")
        check_model_and_tokenizer(model, tokenizer)  # wrappers, tokenizer, class names: before the view shows them
        adapter = adapter_for(model)  # unsupported heads refused before the model is probed
        outputs = adapter.num_outputs()
        for items in (self.items, self.eval_items, self.eff_items or []):
            check_labels(items, *outputs)
        ctrl = controller_for(model)
        L, H = ctrl.num_layers, ctrl.num_heads
        fr = None if fractions is None else [float(f) for f in np.asarray(fractions, dtype=float).ravel()]
        meta = {"model_name": _model_name(model), "num_layers": int(L), "num_heads": int(H),
                "methods": list(methods), "num_examples": len(self.items), "num_eval": len(self.eval_items),
                "fractions": fr if fr is not None else [round(x, 10) for x in np.linspace(0, 1, 11).tolist()],
                "target": str(engine_kwargs.get("target", "gold")), "label_names": list(adapter.label_names() or []),
                "effectiveness": self.eff_items is not None}
        rows = [{"text": ex.text, "text_pair": ex.text_pair, "label": ex.label} for ex in self.items]
        super().__init__(meta=meta, method=methods[0], examples=rows)
        self.model, self.tokenizer = model, tokenizer
        self.methods = methods
        self.fractions = fractions
        self.engine_kwargs = dict(engine_kwargs)
        self.interval = float(interval)
        self._explorer = explorer
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self._exception: BaseException | None = None
        self._result: HeadsResult | None = None
        self._estimates: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self._example_scores: dict[str, np.ndarray] = {}
        self._curves: list = []
        self._effectiveness = None
        self._last_push = 0.0
        self.observe(self._on_selected, names=["selected", "method"])

    # ------------------------------------------------------------------ public API
    @property
    def explorer(self):
        """The linked :class:`Explorer` (created on first use) that clicked examples open in."""
        if self._explorer is None:
            from .explorer import Explorer

            self._explorer = Explorer(self.model, self.tokenizer)
        return self._explorer

    def run(self) -> None:
        """Start (or restart) the computation in a background thread and return at once."""
        self.stop(wait=True)
        cancel = threading.Event()
        with self._lock:
            self._cancel = cancel
            self._exception = None
            self._result = None
            self._estimates, self._counts, self._example_scores = {}, {}, {}
            self._curves, self._effectiveness = [], None
            self._progress_state = {}
            run_id = self.run_id + 1
            with self._sync():
                self.run_id = run_id
                self.state = "running"
                self.error = ""
                self.phase = "importance"
                self.progress = {}
                self.importance = {}
                self.curves = []
                self.effectiveness = {}
                self.head_examples = []
                self.example_scores = {}
        self._start(self._run, run_id, cancel, "attattr-heads")

    def compare_with(self, other: Any, *, method: str | None = None, labels: tuple[str, str] | None = None):
        """Fig 4: Pearson/Spearman correlation of this view's importance with ``other`` (another HeadsView, or
        an [L, H] array); shown in the "correlation" view and returned as a :class:`Correlation`."""
        from ..engine.analysis.pruning import head_correlation

        m = method or self.methods[0]
        mine = self._estimates.get(m)
        if mine is None:
            raise ValueError(f"no importance for {m!r} yet: run() and wait() first")
        if isinstance(other, HeadsView):
            theirs = other._estimates.get(m)
            if theirs is None:
                raise ValueError(f"the other HeadsView has no importance for {m!r} yet")
            other_name = other.meta.get("model_name", "B")
        else:
            theirs, other_name = np.asarray(other, dtype=np.float64), "B"
        labels = labels or (str(self.meta.get("model_name", "A")), str(other_name))
        corr = head_correlation(mine, theirs, labels=labels)
        self.correlation = {"labels": list(corr.labels), "r": corr.r, "spearman": corr.spearman, "n": corr.n,
                            "p_value": corr.p_value, "method": m,
                            "x": np.asarray(corr.x, np.float32), "y": np.asarray(corr.y, np.float32)}
        self.view = "correlation"
        return corr

    # ------------------------------------------------------------------ background run
    def _imp_kwargs(self) -> dict:
        return {k: v for k, v in self.engine_kwargs.items() if k in IMPORTANCE_KWARGS}

    def _prune_kwargs(self) -> dict:
        kw = {k: v for k, v in self.engine_kwargs.items() if k in PRUNING_KWARGS and k != "eval_batch_size"}
        bs = self.engine_kwargs.get("eval_batch_size", self.engine_kwargs.get("batch_size"))
        if bs is not None:
            kw["batch_size"] = int(bs)
        return kw

    def _run(self, run_id: int, cancel: threading.Event) -> None:
        self._run_importance(run_id, cancel)
        self._run_pruning(run_id, cancel)
        if self.eff_items is not None:
            self._run_effectiveness(run_id, cancel)

    def _finish_prepare(self, state: str, value: Any) -> None:
        self._result = self._make_result(partial=state != "done")
        if state != "done":
            self._push_example_scores()
        self._push(force=True)

    def _finish_apply(self, state: str, value: Any, prepared: Any) -> None:
        if state == "done":
            self.phase = ""

    def _run_importance(self, run_id: int, cancel: threading.Event) -> None:
        from ..engine.analysis.importance import iter_head_importance
        from ..engine.results import HeadImportance

        N = len(self.items)
        L, H = int(self.meta["num_layers"]), int(self.meta["num_heads"])
        for m in self.methods:
            t0 = time.monotonic()
            per = np.full((N, L, H), np.nan)
            self._example_scores[m] = per
            self._progress(m, 0, N, t0)
            self._push(force=True)
            for step in iter_head_importance(self.model, self.tokenizer, self.items, method=m, cancel=cancel,
                                             **self._imp_kwargs()):
                if run_id != self.run_id:
                    return
                if len(step.example_index):
                    per[step.example_index] = step.example_scores
                with self._lock:
                    self._estimates[m] = HeadImportance(step.estimate, method=m, num_examples=step.done,
                                                        target=str(self.meta["target"]))
                    self._counts[m] = step.done
                self._progress(m, step.done, step.total, t0)
                self._push(force=step.final)
            self._push_example_scores()
            if self.selected:
                self._push_examples()

    def _run_pruning(self, run_id: int, cancel: threading.Event) -> None:
        from ..engine.analysis.pruning import PruningSweep

        with self._sync():
            self.phase = "pruning"
        sweep = PruningSweep(self.model, self.tokenizer, self.eval_items,
                             {m: np.asarray(self._estimates[m]) for m in self.methods},
                             fractions=self.fractions, cancel=cancel, **self._prune_kwargs())
        self._sweep = sweep
        t0 = time.monotonic()
        K = len(sweep.fractions)
        self._curves = sweep.curves()
        self._progress("pruning", 0, K, t0)
        self._push(force=True)
        for point in sweep:
            if run_id != self.run_id:
                return
            with self._lock:
                self._curves = sweep.curves()
            self._progress("pruning", point.done, point.total, t0)
            self._push(force=True)

    def _run_effectiveness(self, run_id: int, cancel: threading.Event) -> None:
        from ..engine.analysis.pruning import effectiveness

        with self._sync():
            self.phase = "effectiveness"
        t0 = time.monotonic()
        kw = {k: v for k, v in self.engine_kwargs.items() if k in ("target", "rule", "steps", "seed", "max_length", "backend")}
        if "eval_batch_size" in self.engine_kwargs or "batch_size" in self.engine_kwargs:
            kw["batch_size"] = int(self.engine_kwargs.get("eval_batch_size", self.engine_kwargs.get("batch_size")))
        eff = effectiveness(self.model, self.tokenizer, self.eff_items, cancel=cancel,
                            progress=lambda d, t: self._progress("effectiveness", d, t, t0) or self._push(), **kw)
        if run_id != self.run_id:
            return
        self._effectiveness = eff
        with self._sync():
            self.effectiveness = _jsonable_eff(eff)

    # ------------------------------------------------------------------ state -> traits
    def _progress(self, key: str, done: int, total: int, t0: float) -> None:
        el = time.monotonic() - t0
        eta = el / done * (total - done) if done else None
        with self._lock:
            self._progress_state = {**getattr(self, "_progress_state", {}),
                                    key: {"done": int(done), "total": int(total), "elapsed_s": round(el, 3),
                                          "eta_s": None if eta is None else round(eta, 3)}}

    def _push(self, force: bool = False) -> None:
        """Copy the running state into the traits (at most every ``interval`` s unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_push < self.interval:
            return
        self._last_push = now
        with self._lock:
            imp = {m: np.asarray(v, dtype=np.float32) for m, v in self._estimates.items()}
            curves = [_curve_payload(c) for c in self._curves]
            prog = dict(getattr(self, "_progress_state", {}))
        with self._sync():
            self.importance = imp
            self.curves = curves
            self.progress = prog

    def _push_example_scores(self) -> None:
        """Per-example head scores of every method that has them, so the view ranks a clicked head's examples
        itself (also in exported pages without a kernel). Sent once per finished (or stopped) method."""
        with self._lock:
            out = {m: np.asarray(v, dtype=np.float32) for m, v in self._example_scores.items() if np.isfinite(v).any()}
        with self._sync():
            self.example_scores = out

    def _make_result(self, partial: bool) -> HeadsResult:
        with self._lock:
            return HeadsResult(importance=dict(self._estimates), curves=list(self._curves),
                               example_scores={m: v.copy() for m, v in self._example_scores.items()},
                               effectiveness=self._effectiveness, partial=partial)

    # ------------------------------------------------------------------ head -> top examples
    def top_examples(self, layer: int, head: int, method: str | None = None, k: int = TOP_EXAMPLES) -> list[dict]:
        """The ``k`` examples with the largest per-example score of head (``layer``, ``head``) under ``method``
        (default: the view's ``method``; ``"attattr"``: the head's max attribution in that example)."""
        m = method or self.method or self.methods[0]
        with self._lock:
            have = [k2 for k2 in self.methods if np.isfinite(self._example_scores.get(k2, np.nan)).any()]
            if method is None:
                m = ranking_method(m, have)
            per = self._example_scores.get(m)
        if per is None or not (0 <= layer < per.shape[1] and 0 <= head < per.shape[2]):
            return []
        s = per[:, layer, head]
        return [{"index": i, "text": self.items[i].text, "text_pair": self.items[i].text_pair,
                 "label": self.items[i].label, "score": float(s[i]), "method": m} for i in rank_examples(s, k)]

    def _on_selected(self, change) -> None:
        self._push_examples()

    def _push_examples(self) -> None:
        sel = list(self.selected)
        rows = self.top_examples(*sel) if len(sel) == 2 else []
        with self._sync():
            self.head_examples = rows

    def open_example(self, index: int, layer: int, head: int):
        """Explain example ``index`` in the linked Explorer (same target and quadrature as the importance run)
        and select head (``layer``, ``head``) there. Returns the Explorer."""
        ex = self.items[int(index)]
        kw = {k: v for k, v in self.engine_kwargs.items() if k in ("rule", "steps", "max_length")}
        target = self.engine_kwargs.get("target", "gold")
        if ex.target is not None:  # a causal LM's example with an answer: explain that answer
            target = ex.target if isinstance(ex.target, str) else list(ex.target)
        elif target == "gold":
            target = ex.label if ex.label is not None else "pred"
        exp = self.explorer
        exp.explain(ex.text, ex.text_pair, target=target, **kw)
        exp.select(int(layer), int(head))
        return exp

    @command
    def _cmd_open(self, msg: dict) -> None:
        """Browser -> kernel ``{index, layer, head}`` (a click on an example): :meth:`open_example`; its error is
        shown in the view (``error``) and answered."""
        try:
            self.open_example(int(msg["index"]), int(msg["layer"]), int(msg["head"]))
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise


def ranking_method(method: str, have: list[str]) -> str:
    """The method whose per-example scores rank a head's examples: ``method`` if it has any, else the first of
    ``have`` (methods with scores, in the view's order) — "random" / "accuracy" have none. Mirrored by
    ``rankingMethod`` in js/heads/heads-view.ts."""
    return method if method in have or not have else have[0]


def rank_examples(scores, k: int = TOP_EXAMPLES) -> list[int]:
    """Indices of the ``k`` largest finite scores (compared in float32, as the view does), largest first, ties
    by index. Mirrored by ``rankExamples`` in js/heads/heads-view.ts (tests/data/top_examples_cases.json)."""
    s = np.asarray(scores, dtype=np.float32)
    key = np.where(np.isfinite(s), -s, np.inf)
    return [int(i) for i in np.argsort(key, kind="stable")[: int(k)] if np.isfinite(s[i])]


def _curve_payload(c) -> dict:
    acc = np.asarray(c.accuracy, dtype=np.float32)
    pruned = np.asarray(c.pruned, dtype=np.uint8)
    return {"method": str(c.method), "order": str(c.order), "fractions": [float(f) for f in c.fractions],
            "counts": [int(x) for x in pruned.reshape(len(pruned), -1).sum(1)], "accuracy": acc, "pruned": pruned}


def _jsonable_eff(eff) -> dict:
    d = eff.to_dict()
    return {k: v for k, v in d.items() if k != "extra"}
