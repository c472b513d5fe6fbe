"""Explorer: layer x head grid of head scores, the selected head's attention / attribution heatmaps and the
sentence coloured by the selected query token's attribution, all linked; streams results layer by layer.

Protocol (see js/explorer.ts, docs in js/lib/protocol.ts):

* synced traits (durable: reload / export show them)
  ``tokens`` list[str], ``token_types`` list[int], ``meta`` dict, ``run_id`` int, ``state``
  ("empty" | "running" | "done" | "cancelled" | "error"), ``error`` str, ``layers_done`` / ``layers_total`` int,
  ``head_scores`` {view, dtype=float32, shape=[L, H]} (NaN rows = layers not computed),
  ``thumbs`` {view, dtype=float16, shape=[L, H, t, t]} (each map scaled to [-1, 1]),
  ``head`` {layer, head, attention: {view, dtype=float32, shape=[n, n]}, attribution: {...}} for ``selected`` only,
  front-end owned: ``selected`` [layer_index, head], ``query`` int, ``locked`` [query, key] | [],
  ``normalize`` "global" | "layer", ``grid_mode`` "scores" | "maps" | "pair".
  ``pair`` {query, key, scores: {view, dtype=float32, shape=[L, H]}}: every head's attribution of the locked token
  pair (sent when ``locked`` changes; colours the grid in "pair" mode).
* custom messages kernel -> browser: ``{"type": "layer", "run_id", "index", "layer", "total", "heads",
  "zero_prob", "completeness", "tokens", "scores": {dtype, shape}, "thumbs": {dtype, shape}}`` + 2 buffers,
  one per finished layer, in order.
* custom messages browser -> kernel: ``{"type": "cancel", "run_id"}``, ``{"type": "resend", "run_id"}``.
"""
from __future__ import annotations

import contextlib
import threading
import uuid
import traceback
from typing import Any

import numpy as np
import traitlets

from ..engine.errors import AttributionCancelled
from ._base import BaseWidget, binary_trait, css_asset, esm_asset
from .serialize import head_summary, pack, thumbnails

__all__ = ["Explorer"]

THUMB_SIZE = 32


def _attribute(*args, **kwargs):
    """Indirection so tests can substitute a fake engine."""
    from ..engine.attribution import attribute

    return attribute(*args, **kwargs)


def _model_name(model: Any) -> str:
    cfg = getattr(model, "config", None)
    name = getattr(cfg, "name_or_path", "") or getattr(cfg, "_name_or_path", "")
    return str(name or type(model).__name__)


def _default_query(tokens: list[str], target_kind: str) -> int:
    if not tokens:
        return -1
    return len(tokens) - 1 if target_kind == "next-token" else 0


class Explorer(BaseWidget):
    """Interactive AttAttr explorer.

    ``Explorer(model, tokenizer).explain(text, text_pair=None, **attribute_kwargs)`` starts a background
    attribution run and returns at once; the view fills layer by layer. ``Explorer.from_attribution(attr)``
    shows a saved :class:`~attattr_widgets.engine.attribution.Attribution`.
    """

    _esm = esm_asset("explorer.js")
    _css = css_asset("explorer.css")

    tokens = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    token_types = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    meta = traitlets.Dict(default_value={}).tag(sync=True)
    run_id = traitlets.Int(0).tag(sync=True)
    state = traitlets.Unicode("empty").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    layers_done = traitlets.Int(0).tag(sync=True)
    layers_total = traitlets.Int(0).tag(sync=True)
    head_scores = binary_trait(None)
    thumbs = binary_trait(None)
    head = binary_trait(None)
    selected = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    query = traitlets.Int(-1).tag(sync=True)
    locked = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    normalize = traitlets.Enum(["global", "layer"], default_value="global").tag(sync=True)
    grid_mode = traitlets.Enum(["scores", "maps", "pair"], default_value="scores").tag(sync=True)
    pair = binary_trait(None)
    # identifies this instance in the browser: anywidget gives initialize() and render() different model proxies
    _stream_key = traitlets.Unicode().tag(sync=True)

    @traitlets.default("_stream_key")
    def _default_stream_key(self) -> str:
        return uuid.uuid4().hex

    def __init__(self, model: Any = None, tokenizer: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.tokenizer = tokenizer
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self._attribution = None
        self._exception: BaseException | None = None
        self._layers: dict[int, Any] = {}  # index in `layers` -> LayerResult of the current run
        self._auto_select = True
        self._setting_selection = False
        self.observe(self._on_selected, names=["selected"])
        self.observe(self._on_locked, names=["locked"])
        self.on_msg(self._on_custom)

    @contextlib.contextmanager
    def _sync(self):
        """hold_sync() serialised across the worker thread and the comm thread (ipywidgets' is not thread-safe)."""
        with self._lock, self.hold_sync():
            yield

    # ------------------------------------------------------------------ construction from a saved result
    @classmethod
    def from_attribution(cls, attribution: Any, **kwargs) -> "Explorer":
        """An Explorer showing a finished :class:`Attribution` (no model needed)."""
        state = cls._final_state(attribution)
        sel = cls._best_head(state["_scores"])
        init = {k: v for k, v in state.items() if not k.startswith("_")}
        init.update(selected=list(sel), query=init["meta"].get("default_query", -1), state="done")
        init.update(kwargs)
        li, h = init["selected"]
        scores, attn = np.asarray(attribution.scores), np.asarray(attribution.attention)
        init["head"] = {"layer": li, "head": h, "attention": np.asarray(attn[li, h], dtype=np.float32),
                        "attribution": np.asarray(scores[li, h], dtype=np.float32)}
        w = cls(**init)
        w._attribution = attribution
        w._auto_select = "selected" not in kwargs
        if w.locked:
            w._push_pair()
        return w

    # ------------------------------------------------------------------ public API
    @property
    def attribution(self):
        """The finished :class:`Attribution` of the last run (None while running / after an error)."""
        return self._attribution

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def explain(self, text: str, text_pair: str | None = None, **attribute_kwargs) -> None:
        """Start attributing ``text`` (and ``text_pair``) in a background thread and return at once.

        Keyword arguments go to ``attribute()`` (``target``, ``layers``, ``rule``, ``steps``, ``device``, ...).
        A run in progress is cancelled first. Returns None (so a cell ending in ``ex.explain(...)`` does not
        display a second copy of the widget); display the explorer itself, ``ex.wait()`` blocks for the result.
        """
        if self.model is None or self.tokenizer is None:
            raise ValueError("this Explorer has no model/tokenizer: create it as Explorer(model, tokenizer) "
                             "(Explorer.from_attribution() only shows a saved result)")
        for reserved in ("progress", "cancel"):
            if reserved in attribute_kwargs:
                raise TypeError(f"explain() manages {reserved!r} itself")
        self.stop(wait=True)
        cancel = threading.Event()
        with self._lock:
            self._cancel = cancel
            self._layers = {}
            self._attribution = None
            self._exception = None
            run_id = self.run_id + 1
            self._setting_selection = True  # the reset below is not a user choice
            with self._sync():
                self.run_id = run_id
                self.state = "running"
                self.error = ""
                self.layers_done = 0
                self.layers_total = len(attribute_kwargs["layers"]) if attribute_kwargs.get("layers") else 0
                self.head_scores = None
                self.thumbs = None
                self.head = None
                self.tokens = []
                self.token_types = []
                self.locked = []
                self.pair = None
                self.query = -1
                self.selected = []
                self.meta = {"text": text, "text_pair": text_pair, "model_name": _model_name(self.model)}
            self._setting_selection = False
            self._auto_select = True
        t = threading.Thread(target=self._run, args=(run_id, cancel, text, text_pair, attribute_kwargs),
                             name=f"attattr-explain-{run_id}", daemon=True)
        self._thread = t
        t.start()

    def stop(self, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Cancel the run in progress (the view ends in the ``cancelled`` state)."""
        if self._cancel is not None:
            self._cancel.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None):
        """Block until the current run ends; returns the Attribution (None if cancelled), re-raises errors."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._exception is not None:
            raise self._exception
        return self._attribution

    def select(self, layer: int, head: int, query: int | None = None, key: int | None = None) -> None:
        """Select a head (``layer`` = index into the attribution's layer axis) and optionally a token pair."""
        with self._sync():
            self.selected = [int(layer), int(head)]
            if query is not None:
                self.query = int(query)
                self.locked = [int(query), int(key)] if key is not None else []

    def layer_index(self, model_layer: int) -> int:
        """Position on the layer axis of a model layer index."""
        layers = self.meta.get("layers") or []
        return layers.index(model_layer) if model_layer in layers else int(model_layer)

    def tree_view(self, threshold: float = 0.4, **kwargs):
        """A :class:`TreeView` of the finished attribution, linked to this explorer."""
        from .tree import TreeView

        if self._attribution is None:
            raise ValueError("no finished attribution yet (wait for the run to end: explorer.wait())")
        return TreeView(self._attribution, threshold=threshold, explorer=self, **kwargs)

    # ------------------------------------------------------------------ background run
    def _run(self, run_id: int, cancel: threading.Event, text, text_pair, kwargs) -> None:
        try:
            attr = _attribute(self.model, self.tokenizer, text, text_pair,
                              progress=lambda r: self._on_layer(run_id, r), cancel=cancel, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - everything must reach the view
            if run_id != self.run_id:
                return
            if isinstance(exc, AttributionCancelled):
                self._finish_cancelled(run_id)
            else:
                self._exception = exc
                self._finish_error(run_id, exc)
            return
        if run_id != self.run_id:
            return
        try:  # a Stop after the last layer still keeps the finished result
            self._finish_done(run_id, attr)
        except Exception as exc:  # noqa: BLE001 - a failure while showing the result must reach the view too
            self._exception = exc
            self._finish_error(run_id, exc)

    def _on_layer(self, run_id: int, r: Any) -> None:
        if run_id != self.run_id:
            return
        scores = np.asarray(r.scores, dtype=np.float32)
        with self._lock:
            self._layers[int(r.index)] = r
            first = len(self._layers) == 1
        if first:
            with self._sync():
                self.tokens = [str(t) for t in r.tokens]
                self.layers_total = int(r.total)
                self.meta = {**self.meta, "num_heads": int(scores.shape[0]), "target": int(r.target),
                             "prob": float(r.prob), "thumb_size": min(THUMB_SIZE, scores.shape[-1])}
        self._send_layer(run_id, r)
        with self._sync():
            self.layers_done = len(self._layers)
            if self._auto_select and (not self.selected or first):
                self._set_selection([int(r.index), int(np.argmax(head_summary(scores)))])
                if self.query < 0:
                    self.query = _default_query(self.tokens, self.meta.get("target_kind", "class"))
            elif self.selected and self.selected[0] == int(r.index):
                self._push_head()
            if self.locked:
                self._push_pair()

    def _send_layer(self, run_id: int, r: Any, resend: bool = False) -> None:
        scores = np.asarray(r.scores, dtype=np.float32)
        h_scores, b_scores = pack(head_summary(scores), "float32")
        h_thumbs, b_thumbs = pack(thumbnails(scores, THUMB_SIZE), "float16")
        msg = {"type": "layer", "run_id": run_id, "index": int(r.index), "layer": int(r.layer),
               "total": int(r.total), "heads": int(scores.shape[0]), "zero_prob": float(r.zero_prob),
               "completeness": float(r.completeness), "tokens": [str(t) for t in r.tokens],
               "scores": h_scores, "thumbs": h_thumbs, "resend": resend}
        self._send_custom(msg, [b_scores, b_thumbs])

    def _finish_done(self, run_id: int, attr: Any) -> None:
        state = self._final_state(attr)
        with self._lock:
            self._attribution = attr
        with self._sync():
            for k, v in state.items():
                if not k.startswith("_"):
                    setattr(self, k, v)
            if self._auto_select or not self.selected:
                self._set_selection(list(self._best_head(state["_scores"])))
            else:
                self._push_head()
            if self.query < 0:
                self.query = state["meta"]["default_query"]
            if self.locked:
                self._push_pair()
            self.state = "done"

    def _partial_scores(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        with self._lock:
            layers = dict(self._layers)
        if not layers:
            return None, None
        total = max(self.layers_total, max(layers) + 1)
        any_r = next(iter(layers.values()))
        H = np.asarray(any_r.scores).shape[0]
        t = min(THUMB_SIZE, np.asarray(any_r.scores).shape[-1])
        hs = np.full((total, H), np.nan, dtype=np.float32)
        th = np.zeros((total, H, t, t), dtype=np.float16)
        for i, r in layers.items():
            s = np.asarray(r.scores, dtype=np.float32)
            hs[i] = head_summary(s)
            th[i] = thumbnails(s, THUMB_SIZE)
        return hs, th

    def _finish_cancelled(self, run_id: int) -> None:
        hs, th = self._partial_scores()
        with self._sync():
            self.head_scores = hs
            self.thumbs = th
            self.layers_done = len(self._layers)
            self.state = "cancelled"
            self.error = ""

    def _finish_error(self, run_id: int, exc: BaseException) -> None:
        hs, th = self._partial_scores()
        msg = str(exc).strip() or type(exc).__name__
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with self._sync():
            self.head_scores = hs
            self.thumbs = th
            self.error = f"{type(exc).__name__}: {msg}"
            self.meta = {**self.meta, "error_detail": detail[-4000:]}
            self.state = "error"

    @staticmethod
    def _final_state(attr: Any) -> dict:
        scores = np.asarray(attr.scores, dtype=np.float32)
        L, H, n, _ = scores.shape
        try:
            hs = np.asarray(attr.head_scores("max"), dtype=np.float32)
        except Exception:  # noqa: BLE001
            hs = np.stack([head_summary(s) for s in scores])
        th = thumbnails(scores, THUMB_SIZE)
        tokens = [str(t) for t in attr.tokens]
        target_kind = str(getattr(attr, "target_kind", "class") or "class")
        tt = getattr(attr, "token_type_ids", None)
        meta = {
            "text": getattr(attr, "text", None), "text_pair": getattr(attr, "text_pair", None),
            "model_name": str(getattr(attr, "model_name", "") or ""),
            "target": int(getattr(attr, "target", 0)), "target_label": str(getattr(attr, "target_label", "")),
            "target_kind": target_kind, "prob": float(getattr(attr, "prob", float("nan"))),
            "layers": [int(x) for x in getattr(attr, "layers", range(L))],
            "num_layers": int(getattr(attr, "num_layers", L)), "num_heads": int(H),
            "rule": str(getattr(attr, "rule", "")), "steps": int(getattr(attr, "steps", 0) or 0),
            "layer_zero_probs": [float(x) for x in np.asarray(getattr(attr, "layer_zero_probs", []))],
            "completeness": [float(x) for x in np.asarray(getattr(attr, "completeness", []))],
            "label_names": list(getattr(attr, "label_names", None) or []),
            "default_query": _default_query(tokens, target_kind), "thumb_size": int(th.shape[-1]),
        }
        meta = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in meta.items()}
        return {"tokens": tokens, "token_types": [int(x) for x in np.asarray(tt)] if tt is not None else [],
                "meta": meta, "head_scores": hs, "thumbs": th, "layers_done": L, "layers_total": L,
                "error": "", "_scores": hs}

    @staticmethod
    def _best_head(hs: np.ndarray) -> tuple[int, int]:
        filled = np.where(np.isfinite(hs), hs, -np.inf)
        li, h = np.unravel_index(int(np.argmax(filled)), hs.shape)
        return int(li), int(h)

    # ------------------------------------------------------------------ selection -> full-res head
    def _set_selection(self, sel: list[int]) -> None:
        self._setting_selection = True
        try:
            if list(self.selected) == sel:
                self._push_head()
            else:
                self.selected = sel
        finally:
            self._setting_selection = False

    def _on_selected(self, change) -> None:
        with self._lock:
            if not self._setting_selection:
                self._auto_select = False
            self._push_head()

    def _head_arrays(self, li: int, h: int) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            attr = self._attribution
            r = self._layers.get(li)
        if attr is not None:
            scores, attn = np.asarray(attr.scores), np.asarray(attr.attention)
            if 0 <= li < scores.shape[0] and 0 <= h < scores.shape[1]:
                return attn[li, h], scores[li, h]
            return None
        if r is not None:
            scores, attn = np.asarray(r.scores), np.asarray(r.attention)
            if 0 <= h < scores.shape[0]:
                return attn[h], scores[h]
        return None

    def _on_locked(self, change) -> None:
        with self._lock:
            self._push_pair()

    def _pair_scores(self, q: int, k: int) -> np.ndarray | None:
        with self._lock:
            attr = self._attribution
            layers = dict(self._layers)
        if attr is not None:
            scores = np.asarray(attr.scores)
            n = scores.shape[-1]
            return scores[:, :, q, k].astype(np.float32) if 0 <= q < n and 0 <= k < n else None
        if not layers:
            return None
        any_r = np.asarray(next(iter(layers.values())).scores)
        H, n = any_r.shape[0], any_r.shape[-1]
        if not (0 <= q < n and 0 <= k < n):
            return None
        total = max(self.layers_total, max(layers) + 1)
        out = np.full((total, H), np.nan, dtype=np.float32)
        for i, r in layers.items():
            out[i] = np.asarray(r.scores)[:, q, k]
        return out

    def _push_pair(self) -> None:
        lk = list(self.locked)
        scores = self._pair_scores(*lk) if len(lk) == 2 else None
        self.pair = None if scores is None else {"query": lk[0], "key": lk[1], "scores": scores}

    def _push_head(self) -> None:
        sel = list(self.selected)
        if len(sel) != 2:
            self.head = None
            return
        arrays = self._head_arrays(*sel)
        if arrays is None:
            self.head = None
            return
        attn, scores = arrays
        self.head = {"layer": sel[0], "head": sel[1],
                     "attention": np.asarray(attn, dtype=np.float32),
                     "attribution": np.asarray(scores, dtype=np.float32)}

    # ------------------------------------------------------------------ messages from the front end
    def _on_custom(self, _w, content: Any, buffers) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "cancel":
            if content.get("run_id") in (None, self.run_id):
                self.stop()
        elif kind == "resend":
            if content.get("run_id") not in (None, self.run_id) or self.state != "running":
                return
            with self._lock:
                layers = sorted(self._layers.items())
            for _, r in layers:
                self._send_layer(self.run_id, r, resend=True)
