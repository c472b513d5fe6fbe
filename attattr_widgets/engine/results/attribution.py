"""The attribution of one example (:class:`Attribution`), one streamed layer of it (:class:`LayerResult`), and
the stores its [L, H, n, n] maps live in (:func:`allocate_maps`). numpy only, no torch."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AttAttrError
from ..reductions import reduce_heads
from .base import Result
from .image import ImageGrid
from .schema import array, parts

__all__ = ["STORES", "Attribution", "LayerResult", "allocate_maps", "sum_heads"]

STORES = ("memory", "fp16")


def allocate_maps(L: int, H: int, n: int, store: str | os.PathLike = "memory", dtype=np.float32):
    """Two zero ``[L, H, n, n]`` arrays (scores, attention) in ``store``, and the store's name.

    ``"memory"``: ``dtype`` (float32; float64 for models run in float64); ``"fp16"``: float16; a folder path:
    float32 ``scores.npy`` / ``attention.npy`` memory maps created in a new uniquely named sub-folder
    ``attribution-*`` of it (the folder is created; nothing already there is touched), whose path is the store's name.
    """
    shape = (int(L), int(H), int(n), int(n))
    if isinstance(store, str) and store in STORES:
        dtype = np.float16 if store == "fp16" else dtype
        return np.zeros(shape, dtype), np.zeros(shape, dtype), store
    if not isinstance(store, (str, os.PathLike)):
        raise AttAttrError(f"store={store!r}: use 'memory', 'fp16' or a folder path for memory-mapped maps")
    folder = _fresh_map_folder(Path(store))
    maps = tuple(np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
                 for name in ("scores", "attention"))
    return maps[0], maps[1], str(folder)


def _fresh_map_folder(store: Path) -> Path:
    """A new, uniquely named sub-folder of ``store`` (created, with ``store``) for one result's map files: two
    results in one ``store=`` folder never share (or truncate) each other's memory-mapped files."""
    try:
        store.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="attribution-", dir=store))
    except OSError as exc:
        raise AttAttrError(f"store={str(store)!r}: cannot create the folder for the memory-mapped maps there "
                           f"({exc.strerror or exc}); pass a writable folder, or store='memory' / 'fp16'") from exc


@dataclass
class LayerResult:
    """One finished layer of one example, as streamed to ``progress`` callbacks.

    ``scores``/``attention``: [H, n, n] float32; ``zero_prob``: F with this layer's attention zeroed;
    ``completeness``: |Σ scores − (prob − zero_prob)| / |prob − zero_prob|; ``steps``: quadrature nodes used for
    this layer (``steps="auto"``: every gradient its maps are built from, α = 1's from the clean pass's backward
    shared by all layers); ``converged``: False when ``steps="auto"`` stopped at ``max_steps`` before reaching
    ``tol`` (a layer at the gradients' rounding floor counts as converged: engine ``ROUNDING``);
    ``panels``: the partition of [0, 1] ``steps="auto"`` ended with, ``[(lo, hi), …]`` (narrow panels where the
    integrand varies fast, e.g. near α = 0 in a decoder's attention-sink layer), None for a fixed rule;
    ``site``: the attention site of an encoder–decoder (``"encoder"``, ``"decoder"``, ``"cross"``; ``layer``,
    ``index`` and ``total`` are then the site's own, ``tokens`` the maps' row tokens, ``col_tokens`` their column
    tokens and the maps [H, n_rows, n_cols]), None for single-stack models (``col_tokens`` None: the columns are
    ``tokens``); ``label_tokens``: an encoder–decoder's answer as the decoder predicts it (row i of the decoder and
    cross sites reads ``tokens[i]`` and predicts ``label_tokens[i]``), None otherwise; ``image``: an image model's patch grid and picture (the encoded input's :class:`~.image.ImageGrid`,
    the same object every layer and the finished ``Attribution.image``), so views show the picture from the first
    layer on; None for text.
    """

    layer: int
    index: int
    total: int
    tokens: list[str]
    scores: np.ndarray
    attention: np.ndarray
    zero_prob: float
    completeness: float
    target: int
    prob: float
    steps: int = 0
    converged: bool = True
    nonfinite: bool = False  # NaN/inf in this layer's maps, zero-layer score or completeness
    unresolved: bool = False  # ΔF below what the forward dtype resolves: completeness is rounding noise
    panels: list[tuple[float, float]] | None = None
    site: str | None = None
    col_tokens: list[str] | None = None
    label_tokens: list[str] | None = None
    answer_start: int | None = None  # continuations: index in tokens of the first answer token
    answer_token: int | None = None  # None: the whole answer's F (or no answer); t: answer token t's own F_t
    image: ImageGrid | None = None


@dataclass
class Attribution(Result, kind="attribution", record="fields", arrays="npz"):
    """The attribution of one example. Arrays are numpy; axis 0 of the [L, ...] arrays follows ``layers``.

    ``scores`` [L, H, n, n] float32, signed (Attr = A ⊙ ∫∂F/∂A); ``attention`` [L, H, n, n] float32 (the clean
    probabilities A); ``tokens`` n strings; ``token_type_ids`` [n] int (segment of each token);
    ``target`` the attributed class index / token id and ``target_label`` its name; ``prob`` F at α = 1;
    ``layer_zero_probs`` [L] F with that layer's attention zeroed; ``completeness`` [L] relative IG error;
    ``steps`` the requested quadrature (an int or ``"auto"``), ``layer_steps`` [L] the quadrature nodes each
    layer's maps are built from and ``converged`` [L] whether that layer met ``tol`` (always True for a fixed node
    count);
    ``layer_panels`` [L] the panels of [0, 1] each layer's ``steps="auto"`` rule ended with (``[[lo, hi], …]``;
    None for a fixed rule, or in files saved before they existed); ``nonfinite`` the model
    layers whose maps, zero-layer score or completeness hold NaN/inf (bf16 overflow, degenerate inputs);
    ``unresolved`` the model layers whose ΔF = prob − zero_prob is below what the forward dtype resolves
    (≤ 8 eps · |F|: e.g. fp16/bf16 models on CPU), where ``completeness`` is rounding noise, not a measure of the
    quadrature error (the maps themselves are still the attribution).

    ``image``: for image models, the patch grid behind the tokens and a small copy of the input picture
    (:class:`~.image.ImageGrid`; ``tokens`` are then ``[CLS]`` (DeiT: ``[CLS]``, ``[DIST]``) and one ``"(r,c)"``
    per patch, row-major); None for text (``text`` is then None for images).

    ``store``: where the two [L, H, n, n] maps live — ``"memory"`` (float32), ``"fp16"`` (float16 in memory, half
    the size; ~3 significant digits) or a folder path (float32 ``.npy`` files opened as memory maps, for inputs
    whose maps do not fit in memory). :meth:`save` writes a self-contained ``.npz`` whatever the store: the five
    arrays as ``.npz`` members, the other fields in the JSON record.

    **Answers** (causal LMs asked for a continuation: ``target_kind="continuation"``): ``tokens`` cover the prompt
    and the answer, ``answer_start`` is the index in ``tokens`` of the first answer token (None for other kinds);
    ``answer_token`` None means F is the whole answer's score (``score="logprob"``: Σ_t log p(y_t | prompt, y_<t);
    ``"prob"``: the joint probability), t means this result is answer token t's own F_t (log p(y_t | prompt,
    y_<t), or p(y_t) for ``"prob"``); ``target`` is then that token's id (the first answer token's for the whole
    answer) and ``target_label`` the answer's (or the token's) text. ``per_token``: with ``per_token=True``, the
    results of each answer token (their ``answer_token`` 0..A-1, their maps computed at the same nodes as this one:
    for ``"logprob"``/``"logit"`` they sum to this result's maps), saved in the same file; else None.
    """

    scores: np.ndarray = array(float, 4)
    attention: np.ndarray = array(float, 4)
    tokens: list[str]
    token_type_ids: np.ndarray = array(int, 1)
    target: int
    target_label: str
    prob: float
    layer_zero_probs: np.ndarray = array(float, 1)
    completeness: np.ndarray = array(float, 1)
    layers: list[int]
    num_layers: int
    rule: str
    steps: int | str
    score: str = "prob"
    text: str | None = ""
    text_pair: str | None = None
    model_name: str = ""
    target_kind: str = "class"
    label_names: list[str] | None = None
    truncated: bool = False
    gold: int | None = None
    extra: dict = field(default_factory=dict)
    layer_steps: list[int] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    layer_panels: list[list[list[float]] | None] = field(default_factory=list)
    tol: float | None = None
    store: str = "memory"
    nonfinite: list[int] = field(default_factory=list)  # model layer indices whose results hold NaN/inf
    unresolved: list[int] = field(default_factory=list)  # model layers whose ΔF the dtype does not resolve
    image: ImageGrid | None = None
    answer_start: int | None = None
    answer_token: int | None = None
    per_token: list[Attribution] | None = parts()

    def __post_init__(self):
        L = len(self.layers)
        if not self.layer_steps:
            self.layer_steps = [int(self.steps) if isinstance(self.steps, (int, np.integer)) else 0] * L
        if not self.converged:
            self.converged = [True] * L
        if not self.layer_panels:
            self.layer_panels = [None] * L
        self.layer_panels = [None if p is None else [[float(lo), float(hi)] for lo, hi in p]
                             for p in self.layer_panels]

    @classmethod
    def from_layers(cls, layers: Sequence[LayerResult], *, store: str | os.PathLike = "memory",
                    **meta) -> "Attribution":
        """Assemble streamed :class:`LayerResult` s (in order) into one Attribution.

        ``meta`` holds the remaining fields (``token_type_ids``, ``target_label``, ``num_layers``, ``rule``,
        ``steps``, ``text``, …); ``scores``/``attention`` are copied into the chosen ``store``.
        """
        if not layers:
            raise AttAttrError("Attribution.from_layers needs at least one LayerResult")
        first = layers[0]
        H, n = first.scores.shape[0], first.scores.shape[-1]
        scores, attention, where = allocate_maps(len(layers), H, n, store)
        for i, lr in enumerate(layers):
            if lr.scores.shape != (H, n, n) or lr.attention.shape != (H, n, n):
                raise AttAttrError(f"layer {lr.layer}: maps of shape {lr.scores.shape}, expected {(H, n, n)}")
            scores[i] = lr.scores
            attention[i] = lr.attention
        return cls(
            scores=scores, attention=attention, tokens=list(first.tokens), target=int(first.target),
            prob=float(first.prob), layer_zero_probs=np.asarray([lr.zero_prob for lr in layers], np.float64),
            completeness=np.asarray([lr.completeness for lr in layers], np.float64),
            layers=[int(lr.layer) for lr in layers], layer_steps=[int(lr.steps) for lr in layers],
            converged=[bool(lr.converged) for lr in layers], layer_panels=[lr.panels for lr in layers],
            store=where,
            nonfinite=[int(lr.layer) for lr in layers if lr.nonfinite],
            unresolved=[int(lr.layer) for lr in layers if lr.unresolved], **meta,
        )

    @property
    def num_heads(self) -> int:
        return int(self.scores.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.scores.shape[-1])

    def head_scores(self, reduce: str = "max") -> np.ndarray:
        """Per-head summary [L, H] over token pairs (:data:`~attattr_widgets.engine.reductions.HEAD_REDUCTIONS`):
        ``"max"`` (the paper's I_h for one example), ``"absmax"`` or ``"sum"``; the dtype of ``scores``."""
        return reduce_heads(self.scores, reduce)

    def layer_sum(self) -> np.ndarray:
        """Heads summed per layer: [L, n, n] float32 (the input of the attribution tree, :func:`sum_heads`)."""
        return sum_heads(self.scores)

    def layer(self, layer: int) -> np.ndarray:
        """Scores of model layer ``layer``: [H, n, n]."""
        return self.scores[self.layers.index(layer)]

    def to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        record, arrays = super().to_record()
        if self.store not in STORES:  # a folder of memory maps: the file holds the maps themselves
            record[self.record_key]["store"] = "memory"
        return record, arrays

    @classmethod
    def from_record(cls, record: dict, arrays: dict[str, np.ndarray]) -> "Attribution":
        if record[cls.record_key].get("store") == "fp16":
            arrays = {**arrays, **{k: arrays[k].astype(np.float16) for k in ("scores", "attention")}}
        return super().from_record(record, arrays)

    def __repr__(self) -> str:
        return (
            f"Attribution(tokens={self.num_tokens}, layers={len(self.layers)}/{self.num_layers}, "
            f"heads={self.num_heads}, target={self.target_label!r}, prob={self.prob:.4f}, rule={self.rule}-"
            f"{self.steps}, max completeness error={float(np.max(self.completeness)) if len(self.completeness) else 0:.2e}"
            + (f", ΔF below the dtype's resolution on layers {self.unresolved}" if self.unresolved else "") + ")"
        )


def sum_heads(scores, *, square: bool = True) -> np.ndarray:
    """``scores`` [L, H, n, n] summed over heads: [L, n, n] float32 (a float32 sum of H terms; also the
    attribution tree's input). Raises :class:`~attattr_widgets.engine.errors.AttAttrError` for another shape;
    ``square=False`` also takes rectangular maps [L, H, rows, cols] (cross-attention) → [L, rows, cols]."""
    scores = np.asarray(scores)
    if scores.ndim != 4 or (square and scores.shape[-1] != scores.shape[-2]):
        raise AttAttrError(f"attribution.scores must have shape [layers, heads, n, n], got {scores.shape}")
    return scores.sum(1, dtype=np.float32)  # float32 head sum (12 terms) is 2x faster than a float64 one
