"""TriggersView: adversarial trigger patterns found by attribution (paper §4.3, Tables 1–2), live.

``TriggersView(model, tokenizer, examples, eval_examples, *, evaluate=3, sample=6, **mine_kwargs)``; ``.run()``
mines in a background thread (patterns stream into the table, one example at a time), then evaluates the
``evaluate`` best distinct patterns per predicted class on ``eval_examples`` (accuracy before → after per gold
class, one pattern at a time). ``.stop()`` keeps what is done; ``.wait()`` returns a :class:`TriggersResult`
whose ``patterns`` equal :func:`~attattr_widgets.engine.analysis.triggers.mine_triggers` and whose ``results`` equal
:func:`~attattr_widgets.engine.analysis.triggers.evaluate_triggers` of the same patterns (the view iterates the streams
those functions consume). ``.apply(text, text_pair=None, pattern=None)`` inserts a trigger into your own input
and predicts before / after.

Protocol (js/triggers/; names in js/shared/protocol.ts), all synced traits:
``state``, ``error``, ``run_id``, ``phase`` "" | "mining" | "evaluating", ``meta`` {model_name, label_names,
num_examples, num_eval, pair, num_patterns}, ``progress`` {mining|evaluating: {done, total, elapsed_s, eta_s}},
``patterns`` [{id, tokens, segments, relative, positions, score, layer, head, pred, pred_label, gold, text,
text_pair, evaluated, per_class: [{label, name, n, before, after, drop}], overall_before, overall_after,
flip_rate}] (id = source example index; the ``max_rows`` best by score plus every evaluated one, so a long
mining run does not resend thousands of rows), front-end owned ``selected`` (pattern id, -1 none);
``samples`` [{index, gold, before: {pred, label, prob}, after: {...}, tokens, inserted: [bool], segments}]
for the selected pattern; ``custom`` {text, text_pair, pattern, before, after, tokens, inserted, error}.
``samples`` and ``custom`` carry ``special`` (per token: a special token, ``engine.model.tokens.special_mask``) with their
``tokens``. Browser -> kernel commands (``js/shared/commands.ts``): ``_cmd_cancel`` ``{run_id}`` (Stop),
``_cmd_apply`` ``{text, text_pair, pattern}``.
"""
from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import traitlets

from ._base import BackgroundRun, BaseWidget, command, css_asset, esm_asset
from .serialize import token_fields

__all__ = ["TriggersResult", "TriggersView"]

MINE_KWARGS = ("top_pairs", "ratio", "min_score", "min_tokens", "blacklist", "rule", "steps", "layers",
               "batch_size", "max_length", "backend")


@dataclass
class TriggersResult:
    """``patterns`` (sorted by score, as :func:`mine_triggers`), ``results`` (one :class:`TriggerResult` per
    evaluated pattern, in evaluation order), ``partial`` (stopped early)."""

    patterns: list
    results: list = field(default_factory=list)
    partial: bool = False


def inserted_flags(clean: list[int], attacked: list[int]) -> list[bool]:
    """Which positions of ``attacked`` (token ids) are not in ``clean``: the tokens the trigger inserted. An
    in-order alignment (``difflib``): insertion only adds tokens and truncation only removes content, so what
    does not align is inserted; of two equal neighbouring tokens one is taken as the original."""
    out = [True] * len(attacked)
    for blk in difflib.SequenceMatcher(a=clean, b=attacked, autojunk=False).get_matching_blocks():
        for k in range(blk.size):
            out[blk.b + k] = False
    return out


class TriggersView(BackgroundRun, BaseWidget):
    """Mined trigger patterns, their attack results, attacked samples and a live "apply" box (module doc)."""

    _esm = esm_asset("triggers.js")
    _css = css_asset("triggers.css")

    state = traitlets.Unicode("empty").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    run_id = traitlets.Int(0).tag(sync=True)
    phase = traitlets.Unicode("").tag(sync=True)
    meta = traitlets.Dict(default_value={}).tag(sync=True)
    progress = traitlets.Dict(default_value={}).tag(sync=True)
    patterns = traitlets.List(default_value=[]).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    samples = traitlets.List(default_value=[]).tag(sync=True)
    custom = traitlets.Dict(default_value={}).tag(sync=True)

    def __init__(self, model: Any, tokenizer: Any, examples: Any, eval_examples: Any, *, evaluate: int = 3,
                 sample: int = 6, eval_batch_size: int = 32, max_rows: int = 200, interval: float = 0.25,
                 **mine_kwargs):
        from ..engine.model.examples import as_examples

        unknown = sorted(set(mine_kwargs) - set(MINE_KWARGS))
        if unknown:
            raise TypeError(f"TriggersView() got unexpected keyword argument(s): {', '.join(unknown)} "
                            f"(mining settings: {', '.join(MINE_KWARGS)})")
        if isinstance(mine_kwargs.get("blacklist"), str):
            raise TypeError("blacklist must be a list of tokens, not one string: blacklist=['the', ...]")
        self.items = as_examples(examples)
        self.eval_items = as_examples(eval_examples)
        if any(ex.label is None for ex in self.eval_items):
            raise ValueError("eval_examples need a gold 'label' in every example (accuracy per gold class)")
        from ..engine import validate
        from ..engine.model.examples import check_labels
        from ..engine.model.adapters import adapter_for
        from ..engine.model.checks import check_model_and_tokenizer

        evaluate = validate.integer(evaluate, "evaluate", minimum=0, fix="how many top patterns to evaluate")
        sample = validate.integer(sample, "sample", minimum=0, fix="attacked examples shown per pattern")
        max_rows = validate.integer(max_rows, "max_rows", minimum=1, fix="pattern rows shown in the table")
        eval_batch_size = validate.batch_size(eval_batch_size, "eval_batch_size", allow_none=False)
        interval = validate.number(interval, "interval", minimum=0.0, fix="seconds between view updates")
        check_model_and_tokenizer(model, tokenizer)  # wrappers, tokenizer, class names: before the view shows them
        adapter = adapter_for(model)
        if not adapter.classifies:
            from ..engine.errors import UnsupportedModelError

            raise UnsupportedModelError(f"TriggersView needs a sequence classifier (accuracy per gold class); "
                                        f"{type(model).__name__} is a language model")
        check_labels(self.items + self.eval_items, *adapter.num_outputs())
        meta = {"model_name": str(getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__),
                "label_names": list(adapter.label_names() or []), "num_examples": len(self.items),
                "num_eval": len(self.eval_items), "evaluate": int(evaluate),
                "pair": any(ex.text_pair is not None for ex in self.items + self.eval_items)}
        super().__init__(meta=meta)
        self.model, self.tokenizer = model, tokenizer
        self.evaluate, self.sample, self.eval_batch_size = int(evaluate), int(sample), int(eval_batch_size)
        self.max_rows = int(max_rows)
        self.mine_kwargs = dict(mine_kwargs)
        self.interval = float(interval)
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self._exception: BaseException | None = None
        self._result: TriggersResult | None = None
        self._patterns: list = []
        self._results: dict[int, Any] = {}
        self._order: list[int] = []
        self._last_push = 0.0
        self._progress_state: dict = {}
        self.observe(self._on_selected, names=["selected"])

    # ------------------------------------------------------------------ public API
    def run(self) -> None:
        """Start mining (then evaluating) in a background thread and return at once."""
        self.stop(wait=True)
        cancel = threading.Event()
        with self._lock:
            self._cancel, self._exception, self._result = cancel, None, None
            self._patterns, self._results, self._order, self._progress_state = [], {}, [], {}
            run_id = self.run_id + 1
            with self._sync():
                self.run_id = run_id
                self.state, self.error, self.phase = "running", "", "mining"
                self.progress, self.patterns, self.samples, self.selected = {}, [], [], -1
        self._start(self._run, run_id, cancel, "attattr-triggers")

    def pattern(self, pid: int):
        """The mined :class:`TriggerPattern` with id ``pid`` (its source example's index)."""
        with self._lock:
            for p in self._patterns:
                if p.example_index == int(pid):
                    return p
        raise KeyError(f"no mined pattern with id {pid}")

    def apply(self, text: str, text_pair: str | None = None, pattern: Any = None) -> dict:
        """Insert ``pattern`` (a pattern id, a :class:`TriggerPattern`, or None = the selected / best one) into
        your input and predict before and after; the result is also shown in the view (``custom``)."""
        from ..engine.model.adapters import adapter_for
        from ..engine.analysis.triggers import insert_trigger
        from ..engine.model.predict import predict_encoded

        out: dict = {"text": str(text), "text_pair": text_pair, "pattern": None}
        try:
            pat = self._resolve_pattern(pattern)
            out["pattern"] = int(pat.example_index)
            if not str(text).strip():
                raise ValueError("type a sentence to attack")
            clean = adapter_for(self.model).encode(self.tokenizer, text, text_pair or None, truncation=True)
            att = insert_trigger(self.tokenizer, text, text_pair or None, pattern=pat, model=self.model)
            out.update(before=predict_encoded(self.model, clean), after=predict_encoded(self.model, att),
                       **token_fields(att.tokens), segments=list(att.segments),
                       inserted=inserted_flags(clean.input_ids[0].tolist(), att.input_ids[0].tolist()),
                       trigger=list(pat.tokens), error="")
        except Exception as exc:  # noqa: BLE001 - shown in the view, and raised to a Python caller below
            out["error"] = f"{type(exc).__name__}: {exc}"
            self.custom = out
            raise
        self.custom = out
        return out

    # ------------------------------------------------------------------ background run
    def _run(self, run_id: int, cancel: threading.Event) -> None:
        from ..engine.analysis.triggers import iter_evaluate_triggers, iter_mine_triggers, top_triggers

        t0 = time.monotonic()
        self._set_progress("mining", 0, len(self.items), t0)
        self._push(force=True)
        for done, total, pat in iter_mine_triggers(self.model, self.tokenizer, self.items, cancel=cancel,
                                                  **self.mine_kwargs):
            if run_id != self.run_id:
                return
            with self._lock:
                if pat is not None:
                    self._patterns.append(pat)
            self._set_progress("mining", done, total, t0)
            self._push(force=done == total)
        with self._lock:
            self._patterns.sort(key=lambda p: -p.score)
            chosen = [p for lst in top_triggers(self._patterns, per_class=self.evaluate).values() for p in lst] \
                if self.evaluate else []
            self._order = [p.example_index for p in chosen]
        with self._sync():
            self.phase = "evaluating"
        t1 = time.monotonic()
        self._set_progress("evaluating", 0, len(chosen), t1)
        self._push(force=True)
        if chosen:
            for k, res in enumerate(iter_evaluate_triggers(self.model, self.tokenizer, self.eval_items, chosen,
                                                           batch_size=self.eval_batch_size, cancel=cancel,
                                                           backend=self.mine_kwargs.get("backend"))):
                if run_id != self.run_id:
                    return
                with self._lock:
                    self._results[res.pattern.example_index] = res
                self._set_progress("evaluating", k + 1, len(chosen), t1)
                self._push(force=True)
                if self.selected < 0 and k == 0:
                    self.selected = res.pattern.example_index

    def _finish_prepare(self, state: str, value: Any) -> None:
        self._result = self._make_result(partial=state != "done")
        self._push(force=True)

    def _finish_apply(self, state: str, value: Any, prepared: Any) -> None:
        if state == "done":
            self.phase = ""

    def _make_result(self, partial: bool) -> TriggersResult:
        with self._lock:
            pats = sorted(self._patterns, key=lambda p: -p.score)
            return TriggersResult(patterns=pats, results=[self._results[i] for i in self._order if i in self._results],
                                  partial=partial)

    def _set_progress(self, key: str, done: int, total: int, t0: float) -> None:
        el = time.monotonic() - t0
        with self._lock:
            self._progress_state = {**self._progress_state, key: {
                "done": int(done), "total": int(total), "elapsed_s": round(el, 3),
                "eta_s": round(el / done * (total - done), 3) if done else None}}

    def _push(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_push < self.interval:
            return
        self._last_push = now
        with self._lock:
            ranked = sorted(self._patterns, key=lambda p: -p.score)
            shown = ranked[: self.max_rows] + [p for p in ranked[self.max_rows:] if p.example_index in self._results]
            rows = [_row(p, self._results.get(p.example_index)) for p in shown]
            prog = dict(self._progress_state)
            total = len(ranked)
        with self._sync():
            self.patterns = rows
            self.progress = prog
            if self.meta.get("num_patterns") != total:
                self.meta = {**self.meta, "num_patterns": total}

    # ------------------------------------------------------------------ selection -> attacked samples
    def _resolve_pattern(self, pattern: Any):
        from ..engine.results import TriggerPattern

        if isinstance(pattern, TriggerPattern):
            return pattern
        if isinstance(pattern, dict):
            return TriggerPattern.from_dict(pattern)
        if pattern is not None and int(pattern) >= 0:
            return self.pattern(int(pattern))
        if self.selected >= 0:
            return self.pattern(self.selected)
        with self._lock:
            if self._patterns:
                return max(self._patterns, key=lambda p: p.score)
        raise ValueError("no trigger pattern yet: run() the view (or pass pattern=...)")

    def samples_for(self, pid: int) -> list[dict]:
        """``sample`` evaluation examples with pattern ``pid`` inserted, predicted before / after: first those of
        the classes the trigger attacks (gold label other than the pattern's class), then the others, each in
        order."""
        from ..engine.model.adapters import adapter_for
        from ..engine.analysis.triggers import insert_trigger
        from ..engine.model.predict import predict_encoded

        pat = self.pattern(pid)
        rows = []
        order = [i for i, ex in enumerate(self.eval_items) if ex.label != pat.pred]
        order += [i for i, ex in enumerate(self.eval_items) if ex.label == pat.pred]
        for i in order[: self.sample]:
            ex = self.eval_items[i]
            clean = adapter_for(self.model).encode(self.tokenizer, ex.text, ex.text_pair, truncation=True)
            att = insert_trigger(self.tokenizer, ex.text, ex.text_pair, pattern=pat, model=self.model)
            rows.append({"index": i, "gold": ex.label, "before": _short(predict_encoded(self.model, clean)),
                         "after": _short(predict_encoded(self.model, att)), **token_fields(att.tokens),
                         "segments": list(att.segments),
                         "inserted": inserted_flags(clean.input_ids[0].tolist(), att.input_ids[0].tolist())})
        return rows

    def _on_selected(self, change) -> None:
        pid = int(change["new"])
        try:
            rows = self.samples_for(pid) if pid >= 0 else []
        except KeyError:
            rows = []
        self.samples = rows

    @command
    def _cmd_apply(self, msg: dict) -> None:
        """Browser -> kernel ``{text, text_pair, pattern}`` (the apply box): :meth:`apply`; its error is shown in the
        view (``custom.error``) and answered."""
        self.apply(str(msg.get("text", "")), msg.get("text_pair") or None, msg.get("pattern"))


def _short(pred: dict) -> dict:
    return {"pred": pred["pred"], "label": pred["label"], "prob": pred["prob"]}


def _row(p, res) -> dict:
    row = {"id": int(p.example_index), "tokens": [str(t) for t in p.tokens], "segments": [int(s) for s in p.segments],
           "relative": [float(r) for r in p.relative], "positions": [int(x) for x in p.positions],
           "score": float(p.score), "layer": int(p.layer), "head": int(p.head), "pred": int(p.pred),
           "pred_label": str(p.pred_label), "gold": None if p.gold is None else int(p.gold), "text": p.text,
           "text_pair": p.text_pair, "evaluated": res is not None}
    if res is not None:
        row.update(per_class=[dict(c) for c in res.per_class], overall_before=float(res.overall_before),
                   overall_after=float(res.overall_after), flip_rate=float(res.flip_rate))
    return row
