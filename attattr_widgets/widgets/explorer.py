"""Explorer: layer x head grid of head scores, the selected head's attention / attribution heatmaps and the
sentence coloured by the selected query token's attribution, all linked; streams results layer by layer.

Protocol (js/explorer/, names in js/shared/protocol.ts):

* synced traits (durable: reload / export show them)
  ``tokens`` list[str], ``special`` list[bool] (per token: a special token, ``engine.model.tokens.special_mask``),
  ``token_types`` list[int], ``meta`` dict, ``run_id`` int, ``state``
  ("empty" | "running" | "done" | "cancelled" | "error"), ``error`` str, ``layers_done`` / ``layers_total`` int,
  ``head_scores`` {view, dtype=float32, shape=[L, H]} (NaN rows = layers not computed),
  ``thumbs`` {view, dtype=float16, shape=[L, H, t, t]} (each map scaled to [-1, 1]),
  ``head`` {layer, head, attention: {view, dtype=float32, shape=[n, n] (rows × cols: see encoder–decoders)},
  attribution: {...}} for ``selected`` only,
  front-end owned: ``selected`` [layer_index, head], ``query`` int, ``locked`` [query, key] | [],
  ``normalize`` "global" | "layer", ``grid_mode`` "scores" | "maps" | "pair".
  ``pair`` {query, key, scores: {view, dtype=float32, shape=[L, H]}}: every head's attribution of the locked token
  pair (sent when ``locked`` changes; colours the grid in "pair" mode).
* custom messages kernel -> browser (one-way pushes): ``{"type": "layer", "run_id", "index", "layer", "total",
  "heads", "zero_prob", "completeness", "steps", "converged", "panels", "tokens", "special",
  "scores": {dtype, shape}, "thumbs": {dtype, shape}, "resend"}`` + 2 buffers, one per finished layer, in order
  (``panels``: ``[[lo, hi], …]``, the α panels of ``steps="auto"``, or null for a fixed rule).
* requests browser -> kernel are anywidget commands (``js/shared/commands.ts``; each answers ``{ok, error?}``):
  ``_cmd_cancel`` ``{run_id}`` (Stop), ``_cmd_resend`` ``{run_id}`` (a view that appears mid-run; the response
  holds the layers done so far: ``{run_id, layers: [layer message]}`` + 2 buffers per layer).
* input bar (when the Explorer has a model; ``interactive``): ``input_spec`` {kind "class" | "next-token", pair
  (the model takes a second segment), label_names}; ``targets`` {text, text_pair, kind, pred, options: [{id,
  label, prob}]} (every class, or the top-k next tokens) for the text in the box; ``history`` [{key, text,
  text_pair, target, target_label, prob}] (the last ``HISTORY`` finished runs whose maps fit ``HISTORY_BYTES``,
  newest last); ``contrast``
  {} | {target, target_label, prob, state, error} (a second target for the same input) and ``head.contrast``
  {view float32 [n, n]}: its attribution map for the selected head; front-end owned ``contrast_view``
  "diff" | "target" | "contrast" (which map the attribution heatmap shows).
  Commands: ``_cmd_run`` ``{text, text_pair, target, generate}`` (Enter / Run; target "pred", a class / token
  id, or a token / answer string; ``generate`` N > 0: generate up to N tokens, then explain them),
  ``_cmd_targets`` ``{text, text_pair}``, ``_cmd_history`` ``{key}``, ``_cmd_contrast`` ``{target}`` (``target``
  null clears it).
* images (image classifiers: ``input_spec.image`` true; the input is a picture, not text): ``image``
  {pixels: {view, dtype=uint8, shape=[h, w, 3]}, grid: [rows, cols], first_patch, patch_size} (the shown run's
  picture, ``widgets/image.py``; None for text; a live run sets it from the first streamed layer's
  ``LayerResult.image``, before that layer's message) — the image panel overlays the query's attribution /
  attention row per patch, layer by layer as they stream; ``meta.image_name`` names the picture; ``targets``
  lists the top-k classes. Command ``_cmd_image`` ``{name, target}`` + 1 buffer (the bytes of an uploaded image
  file: attribute it), or no buffer (attribute the shown picture again for ``target``).
* answers (causal LMs: a continuation target or ``generate=N``; the tokens are prompt + answer):
  ``meta.answer_start`` the index of the first answer token (None: no answer), ``meta.answer`` the answer text,
  ``meta.answer_ready`` the answer tokens whose own maps are complete, ``meta.predicts`` per row of the shown maps
  the answer token that row predicts ("" none; [] no answer: :func:`_row_predicts`, also set for an
  encoder–decoder's decoder and cross sites); front-end owned ``answer_token`` -1 (the
  whole answer, F = Σ_t log p(y_t | prompt, y_<t)) or t (answer token t's own maps, F_t): every trait above then
  describes that attribution, and streamed ``layer`` messages carry ``answer_token`` (null = the whole answer).
  ``input_spec.answers`` says whether the input bar offers an answer field and "generate N tokens". An export of an
  answer with per-token maps is a copy carrying ``answer_states`` (every answer token's ``meta`` / ``head_scores``
  / ``thumbs`` / embedded heads), from which the page's picker switches answer tokens without a kernel. A contrast
  of two answers compares the tokens both share (prompt + common answer prefix; ``contrast.common``); the rest
  of the difference map is NaN (drawn as zero).
* encoder–decoders (``explain(source, target=answer)`` or ``generate=N``; ``Explorer.from_attribution`` of a
  ``Seq2SeqAttribution``): ``meta.sites`` ["encoder", "decoder", "cross"], ``meta.site_layers`` {site: [done, total]};
  front-end owned ``site`` (default "cross") picks the site every trait above describes: ``tokens`` are its maps'
  rows, ``col_tokens`` / ``col_special`` its columns when they differ (cross-attention: answer rows × source
  columns; [] for the square sites), ``head`` maps [rows, cols]. Streamed ``layer`` messages carry ``site`` (their
  ``index`` / ``total`` are the site's own) and, for rectangular maps, ``col_tokens`` / ``col_special``; only the
  shown site's are pushed. ``input_spec.kind`` is "answer" (an answer typed or generated; no target list, no
  contrast). Exports stack one view per site (:meth:`Explorer._export_views`).
"""
from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

import numpy as np
import traitlets

from ._base import BackgroundRun, BaseWidget, binary_trait, command, css_asset, error_text, esm_asset
from .image import decode_upload, image_payload
from .serialize import head_summary, pack, thumbnails, token_fields

__all__ = ["Explorer"]

THUMB_SIZE = 32
HISTORY = 8
HISTORY_BYTES = 1 << 30  # maps kept in memory for the history (older runs dropped beyond it)
TOP_K_TOKENS = 10


def _attribute(*args, **kwargs):
    """Indirection so tests can substitute a fake engine."""
    from ..engine.attribution.api import attribute

    return attribute(*args, **kwargs)


def _model_name(model: Any) -> str:
    cfg = getattr(model, "config", None)
    name = getattr(cfg, "name_or_path", "") or getattr(cfg, "_name_or_path", "")
    return str(name or type(model).__name__)


def _layer_finite(r: Any) -> bool:
    """Whether a streamed LayerResult holds only finite numbers (maps, zero-layer score, completeness)."""
    if getattr(r, "nonfinite", False):
        return False
    return bool(np.isfinite(np.asarray(r.scores)).all() and np.isfinite(np.asarray(r.attention)).all()
                and np.isfinite([float(r.zero_prob), float(r.completeness)]).all())


def _layer_summary(scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """What the grid shows of maps [..., H, n, n]: head summaries [..., H] float32 (``head_summary``) and
    thumbnails [..., H, t, t] float16. Computed once per streamed layer (the final state reuses it)."""
    s = np.asarray(scores, dtype=np.float32)
    return head_summary(s), thumbnails(s, THUMB_SIZE)


def _nonfinite_layers(attr: Any) -> list[int]:
    """Model layer indices whose maps, zero-layer score or completeness hold NaN/inf: the engine's own
    ``attr.nonfinite`` plus whatever the arrays show (results built or loaded by hand carry no flag)."""
    flagged = {int(x) for x in (getattr(attr, "nonfinite", None) or [])}
    scores, attn = np.asarray(attr.scores), np.asarray(attr.attention)
    zero = np.asarray(getattr(attr, "layer_zero_probs", np.zeros(len(scores))), dtype=np.float64)
    comp = np.asarray(getattr(attr, "completeness", np.zeros(len(scores))), dtype=np.float64)
    layers = [int(x) for x in getattr(attr, "layers", range(len(scores)))]
    return sorted(flagged | {layers[i] for i in range(len(scores))
                             if not (np.isfinite(scores[i]).all() and np.isfinite(attn[i]).all()
                                     and (i >= len(zero) or np.isfinite(zero[i]))
                                     and (i >= len(comp) or np.isfinite(comp[i])))})


def _panels(panels: Any) -> list[list[float]] | None:
    """A layer's α panels for the browser: ``[[lo, hi], …]`` (``steps="auto"``) or None (a fixed rule)."""
    return None if panels is None else [[float(lo), float(hi)] for lo, hi in panels]


def _finite_or_none(v: Any) -> Any:
    """NaN/inf floats → None at any depth (JSON, hence the comm and exports, has no NaN)."""
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    return v


def _default_query(tokens: list[str], target_kind: str, answer_start: int | None = None,
                   answer_token: int | None = None) -> int:
    """The query row the view opens on (-1: no tokens): for an answer, the row that predicts its first token (or
    answer token ``answer_token``), else as the adapter of results of ``target_kind`` says."""
    from ..engine.model.adapters import adapter_class

    if not tokens:
        return -1
    if answer_start is not None:
        return max(0, min(len(tokens) - 1, int(answer_start) - 1 + (answer_token or 0)))
    return adapter_class(target_kind).default_query(len(tokens))


def _answer_start(attr: Any) -> int | None:
    """Index of an Attribution's first answer token (None: not an answer)."""
    start = getattr(attr, "answer_start", None)
    return None if start is None else int(start)


def _has_answer_tokens(attr: Any) -> bool:
    """Whether a finished result is an explained answer with maps of its own for some answer token."""
    return _answer_start(attr) is not None and any(p is not None for p in (getattr(attr, "per_token", None) or []))


def _row_predicts(r: Any) -> list[str]:
    """Per row of the shown maps, the token that row's output predicts in an explained answer ("" for a row that
    predicts none of it): an encoder–decoder's decoder and cross sites predict ``label_tokens`` (row i reads
    ``tokens[i]``, the answer shifted right); a causal LM's answer from the row before it on (row i predicts
    ``tokens[i + 1]``). [] when the maps explain no answer (a class, one next token, an encoder site). ``r``: an
    Attribution, a streamed LayerResult or a site view."""
    labels = getattr(r, "label_tokens", None)
    if labels is not None and getattr(r, "site", None) in ("decoder", "cross"):
        return [str(t) for t in labels]
    start = _answer_start(r)
    if start is None:
        return []
    toks = [str(t) for t in r.tokens]
    return [""] * max(0, start - 1) + toks[max(1, start):] + [""]


def _target_id(target: Any) -> int:
    """A result's ``target`` as a JSON int: the class / token id, or -1 for an answer (a list of token ids)."""
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return int(target)
    try:
        return int(target) if np.ndim(target) == 0 else -1
    except (TypeError, ValueError):
        return -1


class Explorer(BackgroundRun, BaseWidget):
    """Interactive AttAttr explorer.

    ``Explorer(model, tokenizer).explain(text, text_pair=None, **attribute_kwargs)`` starts a background
    attribution run and returns at once; the view fills layer by layer. With a model the view also has an input
    bar (type a text, pick a target, Enter; switch back through the history; contrast a second target:
    :meth:`compare`), which reuses the settings of the last ``explain()``. ``Explorer.from_attribution(attr)``
    shows a saved :class:`~attattr_widgets.engine.attribution.Attribution`.
    """

    _esm = esm_asset("explorer.js")
    _css = css_asset("explorer.css")

    tokens = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    special = traitlets.List(traitlets.Bool(), default_value=[]).tag(sync=True)
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
    interactive = traitlets.Bool(False).tag(sync=True)
    input_spec = traitlets.Dict(default_value={}).tag(sync=True)
    targets = traitlets.Dict(default_value={}).tag(sync=True)
    history = traitlets.List(default_value=[]).tag(sync=True)
    contrast = traitlets.Dict(default_value={}).tag(sync=True)
    contrast_view = traitlets.Enum(["diff", "target", "contrast"], default_value="diff").tag(sync=True)
    answer_token = traitlets.Int(-1).tag(sync=True)  # -1: the whole answer; t: answer token t's own maps
    # encoder–decoders: the attention site shown ("encoder" | "decoder" | "cross"; "" for single-stack models) and
    # the maps' column tokens when they are not ``tokens`` (cross-attention: the source; [] = square maps)
    site = traitlets.Unicode("").tag(sync=True)
    col_tokens = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    col_special = traitlets.List(traitlets.Bool(), default_value=[]).tag(sync=True)
    # every head's maps (float16, compressed) up to a budget, so exports / saved notebooks draw any head without a
    # kernel (widgets/embed.py embed_heads); set when a run is done, None while running
    heads_data = binary_trait(None)
    # an exported copy of an explained answer only (None otherwise): {str(t): {"meta", "head_scores", "thumbs",
    # "heads_data"}} for t = -1 (the whole answer) and every answer token with maps of its own, so the page's answer
    # picker switches without a kernel (Explorer._answer_states)
    answer_states = binary_trait(None)
    image = binary_trait(None)
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
        # the current run's streamed layers per answer token (None = the whole answer / a single target):
        # index in `layers` -> LayerResult, and index -> (head summary [H], thumbs)
        self._streams: dict[int | None, dict[int, Any]] = {}
        self._stream_summaries: dict[int | None, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        self._continuation = False  # the current run explains an answer (per-token streams expected)
        self._seq2seq = False  # the current run is an encoder–decoder's (streams keyed by site)
        self._resetting_answer = False
        self._auto_select = True
        self._setting_selection = False
        self._run_kwargs: dict = {}
        self._history: dict[int, Any] = {}  # history key -> finished Attribution
        self._history_inputs: dict[int, Any] = {}  # history key -> the picture of an image run (text runs: none)
        self._input: Any = None  # the picture of the shown image run (contrast and re-runs attribute it again)
        self._history_seq = 0
        self._contrast_attr = None
        self._contrast_thread: threading.Thread | None = None
        if model is not None and tokenizer is not None:
            self.interactive = True
            self.input_spec = _input_spec(model, tokenizer)
        self.observe(self._on_selected, names=["selected"])
        self.observe(self._on_locked, names=["locked"])
        self.observe(self._on_answer_token, names=["answer_token"])
        self.observe(self._on_site, names=["site"])

    @property
    def _image_mode(self) -> bool:
        """Whether this Explorer's model reads pictures (its input is an image, not text)."""
        return bool(self.input_spec.get("image"))

    # ------------------------------------------------------------------ construction from a saved result
    @classmethod
    def from_attribution(cls, attribution: Any, **kwargs) -> "Explorer":
        """An Explorer showing a finished :class:`Attribution` (no model needed), or an encoder–decoder's
        :class:`~attattr_widgets.engine.results.Seq2SeqAttribution` with its three sites (``site="cross"`` by
        default: the alignment view)."""
        from ..engine.validate import attribution as check_attribution

        seq2seq = _is_seq2seq_result(attribution)
        if not seq2seq:
            check_attribution(attribution)
        site = kwargs.get("site") or ("cross" if seq2seq else "")
        shown = _site_view(attribution, site) if seq2seq else attribution
        state = cls._final_state(shown, whole=attribution)
        sel = cls._best_head(state["_scores"])
        init = {k: v for k, v in state.items() if not k.startswith("_")}
        init.update(selected=list(sel), query=init["meta"].get("default_query", -1), state="done")
        init.update(kwargs)
        li, h = init["selected"]
        scores, attn = np.asarray(shown.scores), np.asarray(shown.attention)
        init["head"] = {"layer": li, "head": h, "attention": np.asarray(attn[li, h], dtype=np.float32),
                        "attribution": np.asarray(scores[li, h], dtype=np.float32)}
        init["site"] = site
        w = cls(**init)
        w._seq2seq = seq2seq
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

    result = attribution  # what wait() returns, as for the dataset views

    def explain(self, text: str, text_pair: str | None = None, **attribute_kwargs) -> None:
        """Start attributing ``text`` (and ``text_pair``) in a background thread and return at once. For an image
        classifier ``text`` is the picture (a PIL image, an H×W×3 array, a path or ``pixel_values``).

        Keyword arguments go to ``attribute()`` (``target``, ``generate``, ``layers``, ``rule``, ``steps``,
        ``device``, ...). For a causal LM, ``target=" Paris, a city"`` (several tokens, or a list of token ids)
        explains that answer after the prompt ``text`` (teacher-forced; leading spaces matter for byte-level
        tokenizers) and ``generate=N`` explains the answer the model generates (greedy, up to N tokens); both also
        compute each answer token's own maps (``per_token=True`` unless given), shown by clicking an answer token
        (:meth:`show_answer_token`). A run in progress is cancelled first. Returns None (so a cell ending in
        ``ex.explain(...)`` does not display a second copy of the widget); display the explorer itself,
        ``ex.wait()`` blocks for the result.
        """
        self._explain(text, text_pair, None, attribute_kwargs)

    def _explain(self, text: Any, text_pair: str | None, image_name: str | None, attribute_kwargs: dict) -> None:
        """:meth:`explain`; ``image_name``: what the header calls the picture of an image run (an upload's file
        name), None = derived from ``text``."""
        if self.model is None or self.tokenizer is None:
            raise ValueError("this Explorer has no model/tokenizer: create it as Explorer(model, tokenizer) "
                             "(Explorer.from_attribution() only shows a saved result)")
        for reserved in ("progress", "cancel"):
            if reserved in attribute_kwargs:
                raise TypeError(f"explain() manages {reserved!r} itself")
        attribute_kwargs = _checked_run_kwargs(self.model, self.tokenizer, attribute_kwargs)
        is_image = self._image_mode or not isinstance(text, str)
        if is_image and image_name is None:
            image_name = _image_name(text)
        if attribute_kwargs.get("generate") is not None and not (self.input_spec or {}).get("answers"):
            raise ValueError(f"generate= needs a causal language model or an encoder-decoder; "
                             f"{type(self.model).__name__} is neither: leave generate out (or pass target=)")
        seq2seq = (self.input_spec or {}).get("kind") == "answer"
        if seq2seq and attribute_kwargs.get("generate") is None and attribute_kwargs.get("target", "pred") == "pred":
            raise ValueError(f"{type(self.model).__name__} is an encoder-decoder: give the answer to explain, "
                             f"explain(source, target='the answer'), or let it write one: "
                             f"explain(source, generate=16)")
        continuation = not seq2seq and _is_continuation(self.model, self.tokenizer, self.input_spec, attribute_kwargs)
        run_kwargs = {k: v for k, v in attribute_kwargs.items() if k not in ("target", "generate")}
        if continuation:
            attribute_kwargs.setdefault("per_token", True)
        self.stop(wait=True)
        cancel = threading.Event()
        with self._lock:
            self._run_kwargs = run_kwargs
            self._continuation = continuation
            self._seq2seq = seq2seq
            self._contrast_attr = None
            self._input = text if is_image else None
            self._cancel = cancel
            self._streams, self._stream_summaries = {}, {}
            self._attribution = None
            self._exception = None
            run_id = self.run_id + 1
            self._setting_selection = True  # the reset below is not a user choice
            with self._sync():
                self.run_id = run_id
                self.state = "running"
                self.error = ""
                self.layers_done = 0
                self.layers_total = len(attribute_kwargs.get("layers") or [])
                self.head_scores = None
                self.thumbs = None
                self.head = None
                self.heads_data = None
                self.image = None
                self.tokens = []
                self.special = []
                self.col_tokens = []
                self.col_special = []
                self.token_types = []
                self.locked = []
                self.pair = None
                self.query = -1
                self.selected = []
                self.meta = {"text": None if is_image else text, "text_pair": text_pair,
                             "model_name": _model_name(self.model),
                             **({"image_name": image_name} if is_image else {}),
                             **({"target_kind": "continuation", "answer_start": None, "answer_ready": [],
                                 "answer": _answer_arg(attribute_kwargs)} if continuation else {}),
                             **({"target_kind": "answer", "answer": _answer_arg(attribute_kwargs),
                                 "sites": list(_SITES), "site_layers": {}} if seq2seq else {})}
                self.contrast = {}
                self._set_answer_token(-1)
                self._set_site("cross" if seq2seq else "")
            self._setting_selection = False
            self._auto_select = True
        self._start(self._run, run_id, cancel, "attattr-explain", text, text_pair, attribute_kwargs)

    def stop(self, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Cancel the run (what was computed so far is kept); a view left "running" with no run behind it shows
        "cancelled"."""
        super().stop(wait=wait, timeout=timeout)
        if self.state == "running" and not self.running:
            self._finish("cancelled", None)

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

    def tree_view(self, threshold: float = 0.4, answer_token: int | None = -1, site: str | None = None, **kwargs):
        """A :class:`TreeView` of the finished attribution, linked to this explorer. For an explained answer,
        ``answer_token`` t grows the tree from answer token t's own attribution (F_t = log p(y_t | prompt, y_<t)),
        None from the whole answer's; the default (-1) follows what the explorer shows. For an encoder–decoder,
        ``site`` None or "cross" (default) gives the tree across source and answer (decoder self-attention and
        cross-attention down the decoder layers, then encoder self-attention: ``engine.analysis.tree.seq2seq_tree``);
        "encoder" (source tokens) or "decoder" (answer tokens) a tree over that one square site."""
        from .tree import TreeView

        if self._attribution is None:
            raise ValueError("no finished attribution yet (wait for the run to end: explorer.wait())")
        if _is_seq2seq_result(self._attribution):
            if site in (None, "cross"):
                kwargs.setdefault("title", "Attribution tree across source and answer")
                return TreeView(self._attribution, threshold=threshold, explorer=self, **kwargs)
            if site not in ("encoder", "decoder"):
                raise ValueError(f"unknown site {site!r}: pass site='encoder' (source), 'decoder' (answer), or "
                                 f"'cross' / None (the tree across source and answer)")
            attr = self._attribution.as_attribution(site)
            return TreeView(attr, threshold=threshold, explorer=self if site == self.site else None, **kwargs)
        t = self._shown_token() if answer_token == -1 else answer_token
        attr = self._answer_view(self._attribution, t, strict=True)
        if t is not None:
            kwargs.setdefault("title", f"answer token {t}: {attr.tokens[_answer_start(attr) + t]}")
        return TreeView(attr, threshold=threshold, explorer=self if t == self._shown_token() else None, **kwargs)

    # ------------------------------------------------------------------ answers (continuations)
    def show_answer_token(self, t: int | None) -> None:
        """Show answer token ``t``'s own maps (F_t = log p(y_t | prompt, y_<t)), or the whole answer's (None);
        the same as clicking an answer token (or "whole answer") in the view."""
        if t is not None and self.state != "running":
            self._answer_view(self._attribution, int(t), strict=True)
        with self._sync():
            self.answer_token = -1 if t is None else int(t)

    def _shown_token(self) -> int | None:
        """The answer token whose maps are shown (None: the whole answer, or not an answer at all)."""
        return None if self.answer_token < 0 else int(self.answer_token)

    def _shown_key(self) -> int | str | None:
        """Key of the shown stream: an encoder–decoder's site, else the answer token (None: the whole answer)."""
        return self.site if self._seq2seq else self._shown_token()

    @property
    def _layers(self) -> dict[int, Any]:
        """index -> LayerResult of the shown stream of the current run."""
        return self._streams.setdefault(self._shown_key(), {})

    @property
    def _summaries(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """index -> (head summary [H], thumbs) of the shown stream of the current run."""
        return self._stream_summaries.setdefault(self._shown_key(), {})

    # ------------------------------------------------------------------ encoder–decoders: three sites
    def show_site(self, site: str) -> None:
        """Show an encoder–decoder's attention site: ``"encoder"`` (source × source), ``"decoder"`` (answer ×
        answer) or ``"cross"`` (answer rows × source columns, the alignment view); the same as the view's switch."""
        if not self._seq2seq:
            raise ValueError("show_site() is for encoder-decoders; this Explorer shows a single-stack model")
        if site not in _SITES:
            raise ValueError(f"unknown site {site!r}: choose one of {', '.join(_SITES)}")
        self.site = site

    def _set_site(self, site: str) -> None:
        """Set ``site`` from the kernel (not a user's choice)."""
        self._resetting_answer = True
        try:
            self.site = site
        finally:
            self._resetting_answer = False

    def _on_site(self, change) -> None:
        """The user switched the site: show its maps (rows / columns change), keeping the head where it exists."""
        if self._resetting_answer or not self._seq2seq:
            return
        if change["new"] not in _SITES:
            self._set_site(change["old"])
            return
        with self._lock, self._sync():
            self.locked, self.pair = [], None
            if self.state == "running":
                layers = self._layers
                first = layers[min(layers)] if layers else None
                fields = token_fields(first.tokens if first else [])
                self.tokens, self.special = fields["tokens"], fields["special"]
                self.col_tokens, self.col_special = _col_fields(first)
                self.meta = {**self.meta, "predicts": _row_predicts(first) if first else []}
                self.layers_done = len(layers)
                self.layers_total = int(first.total) if first else 0
                self.head_scores, self.thumbs = self._partial_scores()
                self.query = 0 if first else -1
                sel = list(self.selected)
                if self.head_scores is not None and (len(sel) != 2 or sel[0] not in layers):
                    self._set_selection(list(self._best_head(self.head_scores)))
                else:
                    self._push_head()
                return
            if self._attribution is None:
                return
            state = self._final_state(self._shown_attribution(), whole=self._attribution)
            for k2, v in state.items():
                if not k2.startswith("_"):
                    setattr(self, k2, v)
            sel = list(self.selected)
            if len(sel) != 2 or not (sel[0] < state["_scores"].shape[0] and sel[1] < state["_scores"].shape[1]):
                self._set_selection(list(self._best_head(state["_scores"])))
            self.query = state["meta"]["default_query"]
            self._push_head()

    @staticmethod
    def _answer_view(attr: Any, t: int | None, strict: bool = False) -> Any:
        """The Attribution shown for answer token ``t`` of ``attr`` (None: ``attr`` itself); None (``strict``:
        ValueError) when ``attr`` has no maps for that token."""
        if t is None or attr is None:
            return attr
        per = getattr(attr, "per_token", None) or []
        if 0 <= t < len(per) and per[t] is not None:
            return per[t]
        if strict:
            n = len(per)
            raise ValueError(f"answer token {t} has no maps of its own: " + (
                f"the answer has {n} tokens (0..{n - 1})" if n else
                "explain an answer with per_token=True (the default for explain(prompt, target=answer))"))
        return None

    def _set_answer_token(self, t: int) -> None:
        """Set ``answer_token`` from the kernel (not a user's choice: nothing is recomputed)."""
        self._resetting_answer = True
        try:
            self.answer_token = int(t)
        finally:
            self._resetting_answer = False

    def _on_answer_token(self, change) -> None:
        """The user picked an answer token (or the whole answer): show that attribution, keeping the head."""
        if self._resetting_answer:
            return
        t = None if change["new"] < 0 else int(change["new"])
        if self.state == "running":
            with self._lock, self._sync():
                self.layers_done = len(self._layers)
                self._stream_meta()
                self._push_head()
                if self.locked:
                    self._push_pair()
            return
        shown = self._answer_view(self._attribution, t)
        if shown is None:  # no maps of its own (not an answer, or computed without per_token)
            self._set_answer_token(change["old"])
            return
        state = self._final_state(shown, whole=self._attribution)
        with self._lock, self._sync():
            for k2, v in state.items():
                if not k2.startswith("_") and k2 not in ("tokens", "special", "token_types"):
                    setattr(self, k2, v)
            self.query = state["meta"]["default_query"]
            self._push_head()
            if self.locked:
                self._push_pair()

    def _stream_meta(self) -> None:
        """While running: the header's target / probability of the shown stream (its first layer)."""
        layers = self._layers
        if not layers:
            return
        r = layers[min(layers)]
        start = self.meta.get("answer_start")
        t = self._shown_token()
        self.meta = {**self.meta, "prob": float(r.prob), "answer_token": t,
                     **({"default_query": start - 1 + (t or 0)} if start is not None else {})}
        if start is not None:
            self.query = self.meta["default_query"]

    # ------------------------------------------------------------------ background run
    def _run(self, run_id: int, cancel: threading.Event, text, text_pair, kwargs) -> Any:
        return _attribute(self.model, self.tokenizer, text, text_pair,
                          progress=lambda r: self._on_layer(run_id, r), cancel=cancel, **kwargs)

    def _on_layer(self, run_id: int, r: Any) -> None:
        if run_id != self.run_id:
            return
        scores = np.asarray(r.scores, dtype=np.float32)
        summary = _layer_summary(scores)  # once per layer: streamed, resent and reused by the final state
        key = getattr(r, "site", None) or getattr(r, "answer_token", None)
        key = key if key is None or isinstance(key, str) else int(key)
        with self._lock:
            self._streams.setdefault(key, {})[int(r.index)] = r
            self._stream_summaries.setdefault(key, {})[int(r.index)] = summary
            first_any = sum(len(v) for v in self._streams.values()) == 1
            shown = key == self._shown_key()
            first = shown and len(self._layers) == 1
            ready = isinstance(key, int) and len(self._streams[key]) >= int(r.total)
        if isinstance(key, str):  # an encoder–decoder's site: its progress for the site switch
            with self._sync():
                self.meta = {**self.meta, "site_layers": {**self.meta.get("site_layers", {}),
                                                          key: [len(self._streams[key]), int(r.total)]}}
        if first_any or (first and isinstance(key, str)):
            with self._sync():
                if shown or not isinstance(key, str):
                    fields = token_fields(r.tokens)
                    self.tokens, self.special = fields["tokens"], fields["special"]
                    self.col_tokens, self.col_special = _col_fields(r)
                    self.meta = {**self.meta, "predicts": _row_predicts(r)}
                    if getattr(r, "image", None) is not None:
                        self.image = image_payload(r.image)
                    self.layers_total = int(r.total)
                start = getattr(r, "answer_start", None)
                self.meta = {**self.meta, "num_heads": int(scores.shape[0]), "target": _target_id(r.target),
                             "prob": float(r.prob), "thumb_size": int(summary[1].shape[-1]),
                             **self._target_meta(_target_id(r.target)),
                             **({"answer_start": int(start)} if start is not None else {})}
        if ready:  # an answer token's own maps are complete: its chip becomes live
            with self._sync():
                self.meta = {**self.meta, "answer_ready": sorted({*self.meta.get("answer_ready", []), key})}
        if not shown:  # another answer token's stream: kept for when it is picked
            return
        self._send_custom(*self._layer_message(run_id, r, summary))
        with self._sync():
            if not _layer_finite(r):  # NaN/inf (bf16 overflow, a degenerate input): warn instead of "done"
                self.meta = {**self.meta, "nonfinite": sorted({*self.meta.get("nonfinite", []), int(r.layer)})}
            if getattr(r, "unresolved", False):  # ΔF below the dtype's resolution: completeness is noise there
                self.meta = {**self.meta, "unresolved": sorted({*self.meta.get("unresolved", []), int(r.layer)})}
            self.layers_done = len(self._layers)
            if self._auto_select and (not self.selected or first):
                self._set_selection([int(r.index), int(np.argmax(summary[0]))])
                if self.query < 0:
                    self.query = _default_query(self.tokens, self.meta.get("target_kind", "class"),
                                                self.meta.get("answer_start"), self._shown_token())
            elif self.selected and self.selected[0] == int(r.index):
                self._push_head()
            if self.locked:
                self._push_pair()

    @staticmethod
    def _layer_message(run_id: int, r: Any, summary: tuple[np.ndarray, np.ndarray],
                       resend: bool = False) -> tuple[dict, list]:
        """A streamed layer (one-way push, not a request): the ``layer`` message and its 2 buffers, the layer's
        ``summary`` = (head summaries [H] float32, thumbnails [H, t, t] float16) from :func:`_layer_summary`."""
        scores = np.asarray(r.scores)
        h_scores, b_scores = pack(summary[0], "float32")
        h_thumbs, b_thumbs = pack(summary[1], "float16")
        t = getattr(r, "answer_token", None)
        col = _col_fields(r)
        msg = {"type": "layer", "run_id": run_id, "answer_token": None if t is None else int(t),
               "site": getattr(r, "site", None), **({"col_tokens": col[0], "col_special": col[1]} if col[0] else {}),
               "index": int(r.index), "layer": int(r.layer),
               "total": int(r.total), "heads": int(scores.shape[0]), "zero_prob": float(r.zero_prob),
               "completeness": float(r.completeness), "steps": int(getattr(r, "steps", 0) or 0),
               "converged": bool(getattr(r, "converged", True)), "panels": _panels(getattr(r, "panels", None)),
               **token_fields(r.tokens),
               "scores": h_scores, "thumbs": h_thumbs, "resend": resend}
        return msg, [b_scores, b_thumbs]

    def _finish_prepare(self, state: str, value: Any) -> dict:
        """Done: keep the Attribution (and in the history), compute the final traits; stopped / failed: the grid of
        the layers computed so far."""
        if state != "done":
            hs, th = self._partial_scores()
            return {"head_scores": hs, "thumbs": th}
        with self._lock:
            summaries = dict(self._summaries)
            shown = self._view_of(value)
        if shown is None:  # an answer token was picked, but the result has no maps of its own for it
            self._set_answer_token(-1)
            shown, summaries = value, dict(self._stream_summaries.get(None, {}))
        final = self._final_state(shown, summaries, whole=value)
        if "image_name" in self.meta:
            final["meta"] = {**final["meta"], "image_name": self.meta["image_name"]}
        with self._lock:
            self._attribution = value
            if self.interactive:
                self._remember(value)
        if self.interactive:
            self._targets_for(value)
        return final

    def _finish_apply(self, state: str, value: Any, prepared: dict) -> None:
        for k, v in prepared.items():
            if not k.startswith("_"):
                setattr(self, k, v)
        if state == "cancelled":
            self.layers_done = len(self._layers)
        if state != "done":
            return
        if self._auto_select or not self.selected:
            self._set_selection(list(self._best_head(prepared["_scores"])))
        else:
            self._push_head()
        if self.query < 0:
            self.query = prepared["meta"]["default_query"]
        if self.locked:
            self._push_pair()

    def _partial_scores(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        with self._lock:
            summaries = dict(self._summaries)
        if not summaries:
            return None, None
        total = max(self.layers_total, max(summaries) + 1)
        any_hs, any_th = next(iter(summaries.values()))
        hs = np.full((total, *any_hs.shape), np.nan, dtype=np.float32)
        th = np.zeros((total, *any_th.shape), dtype=np.float16)
        for i, (h_i, t_i) in summaries.items():
            hs[i], th[i] = h_i, t_i
        return hs, th

    def _target_meta(self, target: int) -> dict:
        """``target_kind`` / ``target_label`` / ``label_names`` while streaming (the final state has them too)."""
        from ..engine.model.adapters import adapter_for

        spec = self.input_spec or {}
        label = ""
        if self._continuation or self._seq2seq:  # the answer's text while streaming (a generated one: at the end)
            return {"target_kind": "continuation" if self._continuation else "answer",
                    "target_label": self.meta.get("answer") or "", "label_names": []}
        with contextlib.suppress(Exception):  # a label is a nicety while streaming: the final state has it
            label = str(adapter_for(self.model).target_label(self.tokenizer, target))
        return {"target_kind": spec.get("kind", "class"), "target_label": label,
                "label_names": list(spec.get("label_names") or [])}

    def embed_heads(self, heads: Any = "all", max_bytes: int | None = None) -> dict | None:
        """Embed the maps of ``heads`` (``"all"``, ``"top-<k>"``, an int k or ``[(layer_index, head), ...]``) in
        the widget state, up to ``max_bytes`` compressed (default ``widgets.embed.DEFAULT_MAX_BYTES``; None = no
        limit), so a saved notebook or an HTML export draws them without a kernel; returns the ``heads_data``
        summary. Done automatically (all heads, default budget) when a run finishes."""
        from .embed import DEFAULT_MAX_BYTES, embed_heads

        if self._attribution is None:
            raise ValueError("no finished attribution to embed yet (wait for the run: explorer.wait())")
        shown = self._shown_attribution() or self._attribution  # the shown site's / answer token's own maps
        data = embed_heads(shown, heads, DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)
        self.heads_data = data
        return data

    def to_html(self, path: Any = None, *, heads: Any = "all", max_bytes: int | None = None, **kwargs) -> Any:
        """One self-contained offline HTML page of this explorer (see :func:`attattr_widgets.export.to_html`)
        with the maps of ``heads`` embedded up to ``max_bytes`` (see :meth:`embed_heads`); the page draws any
        embedded head and says which heads were left out."""
        from ..export import to_html

        kwargs.setdefault("title", f"AttAttr – {type(self).__name__}")
        return to_html(self, path, heads=heads, max_bytes=max_bytes, **kwargs)

    def _export_views(self) -> list:
        """What an export (:func:`attattr_widgets.export.to_html`) shows of this explorer: itself, or for a finished
        encoder–decoder result one view per site (encoder, decoder, cross-attention; the shown one keeps its head,
        query and lock), since the site switch needs the kernel."""
        if getattr(self, "_is_answer_copy", False):  # already the exported copy (to_html expands items twice)
            return [self]
        if self._attribution is not None and _has_answer_tokens(self._attribution):
            return [self._answer_copy()]
        if (self._attribution is None or not _is_seq2seq_result(self._attribution)
                or len(self.meta.get("sites") or []) < 2):
            return [self]
        views = []
        for s in _SITES:
            keep = {"selected": list(self.selected), "query": int(self.query), "locked": list(self.locked)} \
                if s == self.site and len(self.selected) == 2 else {}
            v = Explorer.from_attribution(self._attribution, site=s, **keep)
            v.meta = {**v.meta, "sites": [s]}  # one site per exported view: its switch shows just its name
            views.append(v)
        return views

    def _answer_copy(self) -> "Explorer":
        """What an export shows of an explained answer with per-token maps: a copy on the same answer token, head,
        query and lock, whose ``_embedding`` also embeds every answer token's state (``answer_states``) — a copy,
        because only a page without a kernel may switch answer tokens by itself."""
        v = Explorer.from_attribution(self._attribution)
        if self._shown_token() is not None:
            v.answer_token = int(self._shown_token())
        if len(self.selected) == 2:
            v.selected = list(self.selected)
        v.query, v.locked = int(self.query), list(self.locked)
        v._is_answer_copy = True
        return v

    def _answer_states(self, heads: Any, max_bytes: int | None) -> dict:
        """``answer_states``: for the whole answer (key "-1") and each answer token with maps of its own, the traits
        the kernel would set when it is picked (``meta``, ``head_scores``, ``thumbs``) and the maps of ``heads``
        embedded within an equal share of ``max_bytes`` (default ``widgets.embed.DEFAULT_MAX_BYTES``)."""
        from .embed import DEFAULT_MAX_BYTES, embed_heads

        attr = self._attribution
        per = list(attr.per_token)
        views = [(-1, attr)] + [(t, p) for t, p in enumerate(per) if p is not None]
        share = (DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)) // len(views)
        out = {}
        for t, view in views:
            st = self._final_state(view, whole=attr, embed=False)
            out[str(t)] = {"meta": st["meta"], "head_scores": st["head_scores"], "thumbs": st["thumbs"],
                           "heads_data": embed_heads(view, heads, share, head_scores=st["_scores"])}
        return out

    @contextlib.contextmanager
    def _embedding(self, heads: Any, max_bytes: int | None):
        """Temporarily embed ``heads`` (export); the previous ``heads_data`` is restored afterwards. An exported
        copy of an explained answer also embeds every answer token's state (``answer_states``)."""
        if getattr(self, "_is_answer_copy", False):
            self.answer_states = self._answer_states(heads, max_bytes)
        if self._attribution is None or (heads == "all" and max_bytes is None and self.heads_data is not None):
            yield
            return
        before = self.heads_data
        self.embed_heads(heads, max_bytes)
        try:
            yield
        finally:
            self.heads_data = before

    @staticmethod
    def _final_state(attr: Any, summaries: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
                     whole: Any = None, embed: bool = True) -> dict:
        """Every trait of a finished attribution. ``summaries``: the streamed run's per-layer (head summary,
        thumbnails), reused when they cover every layer (a finished run), else computed here (a saved result, a
        history entry). ``whole``: the answer's Attribution when ``attr`` is one of its answer tokens' own (the
        answer entries of ``meta`` are the whole answer's, ``answer_token`` the shown one). ``embed``: False leaves
        ``heads_data`` None (the caller embeds with a budget of its own)."""
        scores = np.asarray(attr.scores)
        L, H = scores.shape[:2]
        if summaries and sorted(summaries) == list(range(L)):
            hs = np.stack([summaries[i][0] for i in range(L)]).astype(np.float32, copy=False)
            th = np.stack([summaries[i][1] for i in range(L)])
        else:
            hs, th = _layer_summary(scores)
        fields = token_fields(attr.tokens)
        tokens = fields["tokens"]
        target_kind = str(getattr(attr, "target_kind", "class") or "class")
        tt = getattr(attr, "token_type_ids", None)
        meta = {
            "text": _text_of(attr), "text_pair": getattr(attr, "text_pair", None),
            "model_name": str(getattr(attr, "model_name", "") or ""),
            "target": _target_id(getattr(attr, "target", 0)), "target_label": str(getattr(attr, "target_label", "")),
            "target_kind": target_kind, "prob": float(getattr(attr, "prob", float("nan"))),
            "layers": [int(x) for x in getattr(attr, "layers", range(L))],
            "num_layers": int(getattr(attr, "num_layers", L)), "num_heads": int(H),
            "rule": str(getattr(attr, "rule", "")),
            "steps": attr.steps if isinstance(getattr(attr, "steps", 0), str) else int(getattr(attr, "steps", 0) or 0),
            "layer_zero_probs": [float(x) for x in np.asarray(getattr(attr, "layer_zero_probs", []))],
            "completeness": [float(x) for x in np.asarray(getattr(attr, "completeness", []))],
            "layer_steps": [int(x) for x in np.ravel(getattr(attr, "layer_steps", []))],
            "converged": [bool(x) for x in np.ravel(getattr(attr, "converged", []))],
            "layer_panels": [_panels(p) for p in (getattr(attr, "layer_panels", None) or [None] * L)],
            "label_names": list(getattr(attr, "label_names", None) or []),
            "default_query": _default_query(tokens, target_kind, _answer_start(attr),
                                            getattr(attr, "answer_token", None)),
            "predicts": _row_predicts(attr),
            "thumb_size": int(th.shape[-1]), "score": str(getattr(attr, "score", "prob") or "prob"),
            **_answer_meta(attr),
            "nonfinite": _nonfinite_layers(attr),
            "unresolved": [int(x) for x in (getattr(attr, "unresolved", None) or [])],
        }
        if _is_seq2seq_result(whole):  # an encoder–decoder's site
            meta.update(answer=str(whole.answer), text=str(whole.text), sites=list(_SITES), site_layers={
                name: [len(whole.site(name).layers)] * 2 for name in _SITES})
        elif whole is not None and whole is not attr:
            meta.update({k: v for k, v in _answer_meta(whole).items() if k != "answer_token"})
            meta["default_query"] = _default_query(tokens, target_kind, meta.get("answer_start"),
                                                   getattr(attr, "answer_token", None))
        meta = _finite_or_none(meta)
        from .embed import DEFAULT_MAX_BYTES, embed_heads

        image = image_payload(getattr(attr, "image", None))
        if image is not None:
            meta.setdefault("image_name", _image_name(image["pixels"]))
        col_tokens, col_special = _col_fields(attr)
        return {"heads_data": embed_heads(attr, "all", DEFAULT_MAX_BYTES, head_scores=hs) if embed else None,
                "image": image,
                **fields, "col_tokens": col_tokens, "col_special": col_special,
                "token_types": [int(x) for x in np.asarray(tt)] if tt is not None else [],
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

    def _view_of(self, attr: Any) -> Any:
        """What the view shows of a finished result: an encoder–decoder's shown site (:func:`_site_view`), an
        answer token's own Attribution (``answer_token``), or ``attr`` itself."""
        if _is_seq2seq_result(attr):
            return _site_view(attr, self.site or "cross")
        return self._answer_view(attr, self._shown_token())

    def _shown_attribution(self) -> Any:
        """The finished Attribution the view shows: the run's, its shown site's, or its answer token's own."""
        return self._view_of(self._attribution)

    def _head_arrays(self, li: int, h: int) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            attr = self._shown_attribution()
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
            attr = self._shown_attribution()
            layers = dict(self._layers)
        if attr is not None:
            scores = np.asarray(attr.scores)
            rows, cols = scores.shape[-2:]
            return scores[:, :, q, k].astype(np.float32) if 0 <= q < rows and 0 <= k < cols else None
        if not layers:
            return None
        any_r = np.asarray(next(iter(layers.values())).scores)
        H, rows, cols = any_r.shape[0], any_r.shape[-2], any_r.shape[-1]
        if not (0 <= q < rows and 0 <= k < cols):
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
        head = {"layer": sel[0], "head": sel[1], "attention": np.asarray(attn, dtype=np.float32),
                "attribution": np.asarray(scores, dtype=np.float32)}
        other = self._answer_view(self._contrast_attr, self._shown_token())
        shown = self._shown_attribution()
        if other is not None and shown is not None and self.state == "done":
            cs = np.asarray(other.scores)
            if 0 <= sel[0] < cs.shape[0] and 0 <= sel[1] < cs.shape[1]:
                b = _aligned_map(shown.tokens, other.tokens, cs[sel[0], sel[1]])
                if b is not None:
                    head["contrast"] = b
        self.head = head

    # ------------------------------------------------------------------ requests from the front end (commands)
    @command
    def _cmd_resend(self, msg: dict) -> tuple[dict, list] | None:
        """``{run_id}``: a view that appeared mid-run (or lost chunks) asks for the layers done so far; the response
        carries them: ``{run_id, layers: [layer message, ...]}`` + 2 buffers per layer (scores, thumbs)."""
        if msg.get("run_id") not in (None, self.run_id) or self.state != "running":
            return {"run_id": self.run_id, "layers": []}
        run_id = self.run_id
        with self._lock:
            layers = sorted(self._layers.items())
            summaries = dict(self._summaries)
        heads, buffers = [], []
        for i, r in layers:
            head, bufs = self._layer_message(run_id, r, summaries[i], resend=True)
            heads.append(head)
            buffers += bufs
        return {"run_id": run_id, "layers": heads}, buffers

    @command
    def _cmd_run(self, msg: dict) -> None:
        """``{text, text_pair, target, generate}`` (Enter / Run; target "pred", a class / token id, or a token /
        answer string; ``generate`` N > 0: generate up to N tokens and explain them, ``target`` unused)."""
        gen = msg.get("generate")

        def run():
            what = ({"generate": _generate_arg(gen)} if gen not in (None, 0, "")
                    else {"target": _target_arg(msg.get("target"))})
            self.explain(str(msg.get("text") or ""), msg.get("text_pair") or None, **what, **self._run_kwargs)

        self._input_request("run", run)

    @command
    def _cmd_targets(self, msg: dict) -> None:
        """``{text, text_pair}`` (debounced while typing): fill the ``targets`` trait for that text."""
        self._input_request("targets", lambda: self.predict_targets(str(msg.get("text") or ""),
                                                                   msg.get("text_pair") or None))

    @command
    def _cmd_image(self, msg: dict, buffers: list) -> None:
        """``{name, target}`` + the bytes of an uploaded image file: attribute that picture (its top-k classes fill
        the target selector); without a buffer: attribute the shown picture again for ``target``."""
        def run():
            if not self._image_mode:
                raise ValueError("this Explorer's model does not read images: type a text instead")
            target = _target_arg(msg.get("target"))
            if buffers:
                picture, name = decode_upload(buffers[0]), str(msg.get("name") or "upload")
            elif self._input is not None:
                picture, name = self._input, self.meta.get("image_name") or "image"
            else:
                raise ValueError("no picture yet: choose an image file first")
            self._explain(picture, None, name, {**self._run_kwargs, "target": target})
            self._targets_soon(picture)
        self._input_request("run", run)

    def _targets_soon(self, picture: Any) -> None:
        """The top-k classes of a picture for the selector, asked in the background (the run already started)."""
        def work():
            with contextlib.suppress(Exception):  # the selector then lists the class names only
                self.predict_targets(picture)
        threading.Thread(target=work, name="attattr-targets", daemon=True).start()

    @command
    def _cmd_history(self, msg: dict) -> None:
        """``{key}``: show that earlier run again."""
        self._input_request("history", lambda: self.show_run(int(msg.get("key"))))

    @command
    def _cmd_contrast(self, msg: dict) -> None:
        """``{target}``: contrast with a second target (null clears it)."""
        t = msg.get("target")
        self._input_request("contrast", lambda: self.compare(None if t is None else _target_arg(t)))

    def _input_request(self, kind: str, do) -> None:
        """Run an input-bar request; its error is shown in the view (``error``; ``state`` "error" for a run or
        while nothing is shown) and answered to the browser."""
        if not self.interactive:
            raise ValueError("this Explorer has no model: its input bar is read-only")
        try:
            do()
        except Exception as exc:
            with self._sync():
                self.error = error_text(exc)
                if kind == "run" or self.state in ("empty", "running"):
                    self.state = "error"
            raise

    # ------------------------------------------------------------------ input bar: targets, history, contrast
    def predict_targets(self, text: str, text_pair: str | None = None, k: int = TOP_K_TOKENS) -> dict:
        """What the target selector offers for ``text``: every class with its probability, or the ``k`` most
        probable next tokens (causal LMs); also stored in the ``targets`` trait."""
        from ..engine.model.predict import target_options

        if (isinstance(text, str) and not text.strip() and not self._image_mode) \
                or (self.input_spec or {}).get("kind") == "answer":  # encoder–decoders: the answer is typed
            self.targets = {}
            return {}
        opts = target_options(self.model, self.tokenizer, text, text_pair, k=k,
                              max_length=self._run_kwargs.get("max_length"))
        if self._image_mode:  # a picture (the engine lists its k most probable classes): named for the selector
            text = self.meta.get("image_name") or _image_name(text)
        out = {"text": text, "text_pair": text_pair, **opts}
        self.targets = out
        return out

    def _targets_for(self, attr: Any) -> None:
        """Fill the target selector for a shown run's input (its classes / top-k next tokens with probabilities)."""
        if self._image_mode:
            return  # the picture's top-k were asked when it was uploaded
        text = _text_of(attr)
        if not text or (self.targets.get("text") == text and self.targets.get("text_pair") == getattr(attr, "text_pair", None)):
            return
        try:
            self.predict_targets(text, getattr(attr, "text_pair", None))
        except Exception:  # noqa: BLE001 - the selector then lists the class names only
            pass

    def _remember(self, attr: Any) -> None:
        self._history_seq += 1
        key = self._history_seq
        self._history[key] = attr
        if self._input is not None:
            self._history_inputs[key] = self._input
        entry = {"key": key, "text": _text_of(attr) if self._input is None else self.meta.get("image_name", "image"),
                 "text_pair": getattr(attr, "text_pair", None),
                 "target": _target_id(getattr(attr, "target", -1)),
                 "target_label": str(getattr(attr, "target_label", "")),
                 "prob": _finite_or_none(float(getattr(attr, "prob", float("nan")))),
                 "answer": str(attr.answer) if _is_seq2seq_result(attr) else _answer_meta(attr).get("answer")}
        hist = [h for h in self.history if h.get("key") in self._history][-(HISTORY - 1):] + [entry]
        # long inputs make big maps: keep older runs only while all kept maps fit HISTORY_BYTES (newest always kept)
        used = 0
        for i in range(len(hist) - 1, -1, -1):
            used += _map_bytes(self._history[hist[i]["key"]])
            if used > HISTORY_BYTES and i < len(hist) - 1:
                hist = hist[i + 1:]
                break
        for old in list(self._history):
            if old not in {h["key"] for h in hist}:
                del self._history[old]
                self._history_inputs.pop(old, None)
        self.history = hist

    def show_run(self, key: int) -> None:
        """Show an earlier finished run again (a ``history`` entry's ``key``); no recomputation."""
        attr = self._history.get(int(key))
        if attr is None:
            raise ValueError(f"run {key} is no longer in the history (the last {HISTORY} runs are kept)")
        self.stop(wait=True)
        seq2seq = _is_seq2seq_result(attr)
        self._seq2seq = seq2seq
        self._set_site("cross" if seq2seq else "")
        state = self._final_state(self._view_of(attr), whole=attr)
        picture = self._history_inputs.get(int(key))
        if picture is not None:
            name = next((h["text"] for h in self.history if h.get("key") == int(key)), None) or "image"
            state["meta"] = {**state["meta"], "image_name": name}
        self._targets_for(attr)
        with self._lock:
            self._streams, self._stream_summaries = {}, {}
            self._attribution = attr
            self._input = picture
            self._continuation = _answer_start(attr) is not None
            self._contrast_attr = None
            self._exception = None
            self._setting_selection = True
            with self._sync():
                self.run_id = self.run_id + 1
                for k2, v in state.items():
                    if not k2.startswith("_"):
                        setattr(self, k2, v)
                self.locked, self.pair, self.contrast = [], None, {}
                self._set_answer_token(-1)
                self._auto_select = True
                self._set_selection(list(self._best_head(state["_scores"])))
                self.query = state["meta"]["default_query"]
                self.state = "done"
            self._setting_selection = False

    def compare(self, target: Any) -> None:
        """Contrast: attribute ``target`` (a second class / next token, or a second answer to the same prompt) for
        the same input in the background; the view then shows the difference map (this run's attribution − the
        contrast's) for the selected head. Two answers share the prompt (and any common answer prefix): the
        difference covers those tokens, the rest of the map is NaN. ``None`` clears it. Needs a finished run."""
        attr = self._attribution
        if target is None:
            self._contrast_attr = None
            with self._sync():
                self.contrast = {}
                self._push_head()
            return
        if attr is None or self.state != "done":
            raise ValueError("contrast needs a finished run: explain a text first and wait for it")
        if self._seq2seq:
            raise ValueError("contrast is not offered for encoder-decoders: explain the other answer and compare "
                             "the two runs through the history")
        kwargs = {k: v for k, v in self._run_kwargs.items() if k != "layers"}
        kwargs["layers"] = list(attr.layers)
        if _answer_start(attr) is not None and getattr(attr, "per_token", None):
            kwargs.setdefault("per_token", True)  # answer token t of A against answer token t of B
        key = self.run_id

        def work():
            try:
                source = self._input if self._input is not None else attr.text
                other = _attribute(self.model, self.tokenizer, source, attr.text_pair, target=target, **kwargs)
            except BaseException as exc:  # noqa: BLE001
                if key == self.run_id:
                    self.contrast = {**self.contrast, "state": "error", "error": f"{type(exc).__name__}: {exc}"}
                return
            if key != self.run_id:
                return
            with self._lock:
                self._contrast_attr = other
            with self._sync():
                target_id = _target_id(other.target)
                self.contrast = {"target": target_id if target_id >= 0 else str(other.target_label),
                                 "target_label": str(other.target_label), "prob": _finite_or_none(float(other.prob)),
                                 "state": "done", "error": "", "common": _common_prefix(attr.tokens, other.tokens),
                                 "answer_start": _answer_start(other)}
                self._push_head()

        self.contrast = {"target": target if isinstance(target, int) else str(target), "target_label": str(target),
                         "state": "running", "error": ""}
        t = threading.Thread(target=work, name=f"attattr-contrast-{key}", daemon=True)
        self._contrast_thread = t
        t.start()

    def wait_contrast(self, timeout: float | None = None):
        """Block until the contrast run ends; returns its Attribution (None if there is none)."""
        if self._contrast_thread is not None:
            self._contrast_thread.join(timeout)
        return self._contrast_attr


_SITES = ("encoder", "decoder", "cross")  # an encoder–decoder's sites (engine.results.seq2seq.SITE_NAMES)


def _is_seq2seq_result(attr: Any) -> bool:
    """Whether ``attr`` is an encoder–decoder's result (three sites: ``attr.site(name)``)."""
    from ..engine.results import Seq2SeqAttribution

    return isinstance(attr, Seq2SeqAttribution)


def _site_view(res: Any, site: str) -> Any:
    """One site of a Seq2SeqAttribution as what the Explorer's state is built from: an Attribution-shaped record
    with ``scores`` / ``attention`` [L, H, n_rows, n_cols], ``tokens`` (rows) and ``col_tokens`` (columns; None
    for the square self-attention sites)."""
    from types import SimpleNamespace

    s = res.site(site)
    m = s.meta
    L = len(m.layers)
    return SimpleNamespace(
        scores=s.scores, attention=s.attention, tokens=list(s.row_tokens),
        col_tokens=list(s.col_tokens) if site == "cross" else None, token_type_ids=None, target=-1,
        target_label=str(res.answer), prob=float(res.prob), layer_zero_probs=np.asarray(m.zero_probs, np.float64),
        completeness=np.asarray(m.completeness, np.float64), layers=list(m.layers), num_layers=m.num_layers,
        rule=res.rule, steps=res.steps, score=res.score, text=res.text, text_pair=None, model_name=res.model_name,
        target_kind="answer", label_names=[], layer_steps=list(m.steps), converged=list(m.converged),
        layer_panels=[None] * L, nonfinite=[x for x, bad in zip(m.layers, m.nonfinite) if bad],
        unresolved=[x for x, bad in zip(m.layers, m.unresolved) if bad], site=site,
        label_tokens=list(res.label_tokens))


def _col_fields(r: Any) -> tuple[list[str], list[bool]]:
    """A result's (or streamed layer's) column tokens and their special flags; ([], []) when its maps are square
    (the columns are its ``tokens``)."""
    col = getattr(r, "col_tokens", None) if r is not None else None
    if col is None or list(col) == list(r.tokens):
        return [], []
    f = token_fields(col)
    return f["tokens"], f["special"]


def _checked_run_kwargs(model: Any, tokenizer: Any, kwargs: dict) -> dict:
    """A run's arguments refused before the view changes, so a bad call raises at once and never leaves the view
    "running": ``layers`` (its form; its range too, with the model's model/tokenizer checks, for a torch
    model — anything else is reported by the run itself), which comes back as a validated list."""
    from torch import nn

    from ..engine import validate
    from ..engine.intercept.controller import controller_for
    from ..engine.model.checks import check_model_and_tokenizer

    layers = kwargs.get("layers")
    if not isinstance(model, nn.Module):
        if layers is not None:
            validate.layer_list(layers, 1 << 30)  # the form only
        return kwargs
    check_model_and_tokenizer(model, tokenizer)
    return kwargs if layers is None else {**kwargs, "layers": validate.layer_list(layers, controller_for(model).num_layers)}


def _map_bytes(attr: Any) -> int:
    """Bytes of an Attribution's score and attention maps held in memory, its answer tokens' own maps included
    (memory-mapped maps count as 0)."""
    n = 0
    for name in ("scores", "attention", *(f"{s}_{k}" for s in _SITES for k in ("scores", "attention"))):
        a = getattr(attr, name, None)
        if isinstance(a, np.memmap):
            continue
        n += int(getattr(a, "nbytes", 0) or 0)
    return n + sum(_map_bytes(p) for p in (getattr(attr, "per_token", None) or []) if p is not None)


def _is_continuation(model: Any, tokenizer: Any, input_spec: dict, kwargs: dict) -> bool:
    """Whether a run explains an answer of a causal LM: ``generate=N``, or a target the engine reads as an answer
    (:meth:`~attattr_widgets.engine.model.adapters.CausalLMAdapter.is_continuation`)."""
    from ..engine.model.adapters import adapter_for

    if not input_spec.get("answers"):
        return False
    if kwargs.get("generate") is not None:
        return True
    with contextlib.suppress(Exception):  # the engine reports a bad target itself
        return bool(adapter_for(model).is_continuation(tokenizer, kwargs.get("target", "pred")))
    return False


def _answer_arg(kwargs: dict) -> str:
    """The answer a run explains as the header shows it while streaming ("" when it is generated)."""
    t = kwargs.get("target")
    return t if isinstance(t, str) and kwargs.get("generate") is None else ""


def _answer_meta(attr: Any) -> dict:
    """The ``meta`` entries of an answer (none for a single target): ``answer_start``, ``answer_token`` (the
    token whose own maps these are, None for the whole answer), ``answer`` (the whole answer's text, "" for an
    answer token's own result) and ``answer_ready`` (the answer tokens with maps of their own)."""
    start = _answer_start(attr)
    if start is None:
        return {}
    t = getattr(attr, "answer_token", None)
    per = getattr(attr, "per_token", None) or []
    return {"answer_start": start, "answer_token": None if t is None else int(t),
            "answer": str(getattr(attr, "target_label", "") or "") if t is None else "",
            "answer_ready": [i for i, p in enumerate(per) if p is not None]}


def _common_prefix(a: list[str], b: list[str]) -> int:
    """How many leading tokens two token lists share."""
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return k


def _aligned_map(tokens: list[str], other_tokens: list[str], other_map: Any) -> np.ndarray | None:
    """A contrast's map [m, m] on this run's tokens: [n, n] float32 holding it on the leading tokens both share
    (the prompt and a common answer prefix), NaN elsewhere; None when they share none."""
    b = np.asarray(other_map, dtype=np.float32)
    n = len(tokens)
    if list(tokens) == list(other_tokens) and b.shape == (n, n):
        return b
    k = min(_common_prefix(list(tokens), list(other_tokens)), b.shape[-1])
    if k == 0:
        return None
    out = np.full((n, n), np.nan, dtype=np.float32)
    out[:k, :k] = b[:k, :k]
    return out


def _generate_arg(n: Any) -> int:
    """``generate`` from the front end: a whole number of tokens ≥ 1."""
    if isinstance(n, bool) or not isinstance(n, (int, float, str)) or not str(n).strip().isdigit() or int(n) < 1:
        raise ValueError(f"generate must be a whole number of tokens ≥ 1, not {n!r}")
    return int(n)


def _text_of(attr: Any) -> str | None:
    """An attribution's input text for the view (None when its input was not text: an image run)."""
    t = getattr(attr, "text", None)
    return t if isinstance(t, str) else None


def _image_name(picture: Any) -> str:
    """What the header calls a picture given to ``explain``: a path's file name, else "image W×H" (a PIL image, an
    H×W×C array, ``pixel_values`` [.., C, H, W]), else "image"."""
    import os

    if isinstance(picture, (str, os.PathLike)):
        return os.path.basename(os.fspath(picture)) or "image"
    size = getattr(picture, "size", None)
    if isinstance(size, tuple) and len(size) == 2:  # PIL: (width, height)
        return f"image {size[0]}×{size[1]}"
    shape = tuple(getattr(picture, "shape", ()) or ())
    if len(shape) >= 3:
        h, w = shape[-3:-1] if shape[-1] in (1, 3, 4) else shape[-2:]
        return f"image {w}×{h}"
    return "image"


def _target_arg(t: Any) -> Any:
    """A target from the front end: "pred", an int id (also as a numeric string), or a token / class string."""
    if t is None or t == "":
        return "pred"
    if isinstance(t, bool):
        raise ValueError(f"bad target {t!r}")
    if isinstance(t, (int, float)) and float(t).is_integer():
        return int(t)
    return str(t)


def _input_spec(model: Any, tokenizer: Any) -> dict:
    from ..engine.model.adapters import ImageClassifierAdapter, ImagePromptAdapter, adapter_for

    try:
        adapter = adapter_for(model)
    except Exception:  # noqa: BLE001 - the engine refuses unsupported models when a run starts
        return {"kind": "class", "pair": False, "label_names": [], "image": False, "answers": False}
    # image classifiers (ViT, DeiT, CLIP / SigLIP zero-shot) read a picture: the input bar takes an image file
    return {"kind": adapter.target_kind, "pair": bool(adapter.takes_pair(tokenizer)),
            "label_names": list(adapter.label_names() or []), "image": isinstance(adapter, ImageClassifierAdapter),
            # answers (an answer field, generate N) are text causal LMs' and encoder–decoders'; a vision–language
            # prompt explains one next token
            "answers": adapter.target_kind in ("next-token", "continuation", "answer")
            and not isinstance(adapter, ImagePromptAdapter)}
