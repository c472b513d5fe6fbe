"""Typed results of every engine, in one torch-free module, with one versioned file format.

Widgets, plots, the CLI and the distributed backend import these types instead of guessing attributes.

* :class:`LayerResult` — one finished layer of one example (what ``progress`` callbacks and the views stream);
  :class:`Attribution` — all layers of one example (``Attribution.from_layers`` assembles streamed layers);
* :class:`HeadImportance` — an ``[L, H]`` float64 array with ``method`` / ``num_examples`` metadata;
* :class:`PruningCurve`, :class:`Effectiveness`, :class:`Correlation` — paper Figs 2–4;
* :class:`AttributionTree` (with :class:`TreeNode`, :class:`TreeEdge`) — paper Algorithm 1;
* :class:`TriggerPattern`, :class:`TriggerResult` — paper §4.3.

Files: :func:`save_result` / :func:`load_result` write and read any of them as one ``.npz`` holding a JSON
record ``{"kind", "format_version", ...}`` plus the numeric arrays (never pickles). Every result also has
``.save(path)`` and ``Cls.load(path)``. Writes are atomic (a temporary file in the same folder, then renamed), so
a failed write leaves the previous file intact.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from .errors import AttAttrError

FORMAT_VERSION = 2
STORES = ("memory", "fp16")


class ResultFileError(AttAttrError):
    """A result file is missing, not a result file, of another kind, or inconsistent."""


# ------------------------------------------------------------------------------------------------------------
# atomic writes


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_NEW_FILE_MODE = _new_file_mode()  # read once, at import (os.umask is process-wide)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` (its folder is created) through a temporary file in the same folder and
    ``os.replace``: a failed or interrupted write leaves the previous file as it was."""
    from .validate import output_path

    path = output_path(path, "path")  # a folder in the way, a file as folder: OutputPathError naming the path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files: give the result the old file's mode, or what open() would have given
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


def _write_npz(path: str | os.PathLike, meta: dict, arrays: Mapping[str, np.ndarray]) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


class Saveable:
    """``save(path)`` / ``Cls.load(path)`` through the one result file format (:func:`save_result`)."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write this result to ``path`` (``.npz``, atomically); ``Cls.load(path)`` reads it back."""
        return save_result(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike):
        return load_result(path, kind=cls)


def allocate_maps(L: int, H: int, n: int, store: str | os.PathLike = "memory", dtype=np.float32):
    """Two zero ``[L, H, n, n]`` arrays (scores, attention) in ``store``, and the store's name.

    ``"memory"``: ``dtype`` (float32; float64 for models run in float64); ``"fp16"``: float16; a folder path:
    float32 ``scores.npy`` / ``attention.npy`` memory maps created there (the folder is created; existing map
    files are replaced).
    """
    shape = (int(L), int(H), int(n), int(n))
    if isinstance(store, str) and store in STORES:
        dtype = np.float16 if store == "fp16" else dtype
        return np.zeros(shape, dtype), np.zeros(shape, dtype), store
    if not isinstance(store, (str, os.PathLike)):
        raise AttAttrError(f"store={store!r}: use 'memory', 'fp16' or a folder path for memory-mapped maps")
    folder = Path(store)
    folder.mkdir(parents=True, exist_ok=True)
    maps = tuple(np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
                 for name in ("scores", "attention"))
    return maps[0], maps[1], str(folder)


@dataclass
class LayerResult:
    """One finished layer of one example, as streamed to ``progress`` callbacks.

    ``scores``/``attention``: [H, n, n] float32; ``zero_prob``: F with this layer's attention zeroed;
    ``completeness``: |Σ scores − (prob − zero_prob)| / |prob − zero_prob|; ``steps``: quadrature nodes used for
    this layer (``steps="auto"``: every gradient evaluation spent on it); ``converged``: False when
    ``steps="auto"`` stopped before reaching ``tol`` (at ``max_steps``, or at the gradients' rounding floor);
    ``panels``: the partition of [0, 1] ``steps="auto"`` ended with, ``[(lo, hi), …]`` (narrow panels where the
    integrand varies fast, e.g. near α = 0 in a decoder's attention-sink layer), None for a fixed rule.
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
    panels: list[tuple[float, float]] | None = None


@dataclass
class Attribution(Saveable):
    """The attribution of one example. Arrays are numpy; axis 0 of the [L, ...] arrays follows ``layers``.

    ``scores`` [L, H, n, n] float32, signed (Attr = A ⊙ ∫∂F/∂A); ``attention`` [L, H, n, n] float32 (the clean
    probabilities A); ``tokens`` n strings; ``token_type_ids`` [n] int (segment of each token);
    ``target`` the attributed class index / token id and ``target_label`` its name; ``prob`` F at α = 1;
    ``layer_zero_probs`` [L] F with that layer's attention zeroed; ``completeness`` [L] relative IG error;
    ``steps`` the requested quadrature (an int or ``"auto"``), ``layer_steps`` [L] the gradient evaluations each layer spent and
    ``converged`` [L] whether that layer met ``tol`` (always True for a fixed node count); ``layer_panels`` [L]
    the panels of [0, 1] each layer's ``steps="auto"`` rule ended with (``[[lo, hi], …]``; None for a fixed
    rule, or in files saved before they existed); ``nonfinite`` the model
    layers whose maps, zero-layer score or completeness hold NaN/inf (bf16 overflow, degenerate inputs).

    ``store``: where the two [L, H, n, n] maps live — ``"memory"`` (float32), ``"fp16"`` (float16 in memory, half
    the size; ~3 significant digits) or a folder path (float32 ``.npy`` files opened as memory maps, for inputs
    whose maps do not fit in memory). :meth:`save` writes a self-contained ``.npz`` whatever the store.
    """

    scores: np.ndarray
    attention: np.ndarray
    tokens: list[str]
    token_type_ids: np.ndarray
    target: int
    target_label: str
    prob: float
    layer_zero_probs: np.ndarray
    completeness: np.ndarray
    layers: list[int]
    num_layers: int
    rule: str
    steps: int | str
    score: str = "prob"
    text: str = ""
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

    _ARRAYS: ClassVar[tuple[str, ...]] = ("scores", "attention", "token_type_ids", "layer_zero_probs", "completeness")

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
            converged=[bool(lr.converged) for lr in layers], layer_panels=[lr.panels for lr in layers], store=where,
            nonfinite=[int(lr.layer) for lr in layers if lr.nonfinite], **meta,
        )

    @property
    def num_heads(self) -> int:
        return int(self.scores.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.scores.shape[-1])

    def head_scores(self, reduce: str = "max") -> np.ndarray:
        """Per-head summary [L, H]: ``"max"`` (the paper's I_h for one example), ``"absmax"`` or ``"sum"``."""
        flat = self.scores.reshape(self.scores.shape[0], self.scores.shape[1], -1)
        if reduce == "max":
            return flat.max(-1)
        if reduce == "absmax":
            return np.abs(flat).max(-1)
        if reduce == "sum":
            return flat.sum(-1)
        raise AttAttrError(f"unknown reduce {reduce!r}: choose 'max', 'absmax' or 'sum'")

    def layer_sum(self) -> np.ndarray:
        """Heads summed per layer: [L, n, n] (the input of the attribution tree)."""
        return self.scores.sum(1)

    def layer(self, layer: int) -> np.ndarray:
        """Scores of model layer ``layer``: [H, n, n]."""
        return self.scores[self.layers.index(layer)]

    def _to_record(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._ARRAYS}
        meta["store"] = "memory" if self.store not in STORES else self.store
        meta["layers"] = [int(x) for x in self.layers]
        meta["layer_steps"] = [int(x) for x in np.asarray(self.layer_steps)]
        meta["converged"] = [bool(x) for x in np.asarray(self.converged)]
        arrays = {k: np.asarray(getattr(self, k)) for k in self._ARRAYS}
        return {"fields": meta}, arrays

    @classmethod
    def _from_record(cls, path: Path, meta: dict, data, prefix: str) -> "Attribution":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in meta["fields"].items() if k in known}
        for k in cls._ARRAYS:
            kw[k] = np.asarray(data[prefix + k])
        if kw.get("store") == "fp16":
            kw["scores"], kw["attention"] = kw["scores"].astype(np.float16), kw["attention"].astype(np.float16)
        return cls(**kw)

    def __repr__(self) -> str:
        return (
            f"Attribution(tokens={self.num_tokens}, layers={len(self.layers)}/{self.num_layers}, "
            f"heads={self.num_heads}, target={self.target_label!r}, prob={self.prob:.4f}, rule={self.rule}-"
            f"{self.steps}, max completeness error={float(np.max(self.completeness)) if len(self.completeness) else 0:.2e})"
        )


@dataclass
class HeadImportanceMeta:
    """Metadata that travels with a :class:`HeadImportance`."""

    method: str = ""
    num_examples: int = 0
    target: str = "gold"
    extra: dict = field(default_factory=dict)


class HeadImportance(np.ndarray):
    """Head importance ``[L, H]`` (float64): an ``ndarray`` (so every numpy operation works) that also carries
    ``method`` ("attattr", "taylor", …), ``num_examples`` (examples averaged) and ``target`` ("gold" | "pred").

    Arithmetic results are plain arrays again (the metadata describes this exact estimate only).
    """

    def __new__(cls, scores, method: str = "", num_examples: int = 0, target: str = "gold",
                extra: dict | None = None) -> "HeadImportance":
        obj = np.asarray(scores, dtype=np.float64).view(cls)
        if obj.ndim != 2:
            raise AttAttrError(f"head importance must be a [layers, heads] array, got shape {obj.shape}")
        obj.meta = HeadImportanceMeta(str(method), int(num_examples), str(target), dict(extra or {}))
        return obj

    def __array_finalize__(self, obj):
        self.meta = getattr(obj, "meta", None) or HeadImportanceMeta()

    def __array_wrap__(self, out_arr, context=None, return_scalar=False):
        out = np.asarray(out_arr)
        return out[()] if return_scalar else out

    @property
    def method(self) -> str:
        return self.meta.method

    @property
    def num_examples(self) -> int:
        return self.meta.num_examples

    @property
    def scores(self) -> np.ndarray:
        """The plain ``[L, H]`` float64 array."""
        return np.asarray(self)

    def __reduce__(self):  # pickles (Ray object store, multiprocessing) keep the metadata
        return (_rebuild_importance, (np.asarray(self), asdict(self.meta)))

    def __repr__(self) -> str:
        return (f"HeadImportance(method={self.method!r}, examples={self.num_examples}, "
                f"shape={tuple(self.shape)})\n{np.asarray(self)!r}")

    save = Saveable.save
    load = classmethod(Saveable.load.__func__)


def _rebuild_importance(scores, meta):
    return HeadImportance(scores, **meta)

@dataclass
class PruningCurve(Saveable):
    """Accuracy vs fraction of heads pruned, for one importance method and one order.

    ``fractions`` [K]; ``accuracy`` [K]; ``pruned`` [K, L, H] bool (True = masked); ``order``
    ("least-first" | "largest-first"); ``num_examples`` evaluated; ``rounding`` ("round" | "floor").
    """

    method: str
    fractions: np.ndarray
    accuracy: np.ndarray
    pruned: np.ndarray
    order: str = "least-first"
    num_examples: int = 0
    rounding: str = "round"
    importance: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        """Number of pruned heads at each fraction: [K]."""
        return self.pruned.reshape(len(self.pruned), -1).sum(1)

    def area(self) -> float:
        """Area under the curve over fractions (trapezoid): one number to compare methods; higher = better."""
        x = np.asarray(self.fractions, dtype=float)
        y = np.asarray(self.accuracy, dtype=float)
        if len(x) < 2:
            return float(y.mean()) if len(y) else float("nan")
        return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0] or 1.0))

    def to_dict(self) -> dict:
        return {
            "method": self.method, "order": self.order, "num_examples": int(self.num_examples),
            "rounding": self.rounding, "fractions": np.asarray(self.fractions, float).tolist(),
            "accuracy": np.asarray(self.accuracy, float).tolist(),
            "pruned": np.asarray(self.pruned, bool).astype(int).tolist(),
            "importance": None if self.importance is None else np.asarray(self.importance, float).tolist(),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "PruningCurve":
        return cls(
            method=str(d["method"]), fractions=np.asarray(d["fractions"], float),
            accuracy=np.asarray(d["accuracy"], float), pruned=np.asarray(d["pruned"], bool),
            order=str(d.get("order", "least-first")), num_examples=int(d.get("num_examples", 0)),
            rounding=str(d.get("rounding", "round")),
            importance=None if d.get("importance") is None else np.asarray(d["importance"], float),
            extra=dict(d.get("extra") or {}),
        )

    def __repr__(self) -> str:
        pts = ", ".join(f"{f:.0%}:{a:.3f}" for f, a in zip(self.fractions, self.accuracy))
        return f"PruningCurve({self.method!r}, {self.order}, n={self.num_examples}, [{pts}])"


@dataclass
class Effectiveness(Saveable):
    """Paper Fig 2. ``heads`` [K] heads pruned in every layer; ``accuracy[criterion][order]`` [K] with
    criterion "attribution" | "attention" and order "smallest-first" | "largest-first"; ``full_accuracy``."""

    heads: np.ndarray
    accuracy: dict
    num_examples: int
    full_accuracy: float
    target: str = "gold"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "heads": np.asarray(self.heads).tolist(),
            "accuracy": {c: {o: np.asarray(v, float).tolist() for o, v in d.items()} for c, d in self.accuracy.items()},
            "num_examples": int(self.num_examples), "full_accuracy": float(self.full_accuracy),
            "target": self.target, "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Effectiveness":
        return cls(
            heads=np.asarray(d["heads"]),
            accuracy={c: {o: np.asarray(v, float) for o, v in dd.items()} for c, dd in d["accuracy"].items()},
            num_examples=int(d["num_examples"]), full_accuracy=float(d["full_accuracy"]),
            target=str(d.get("target", "gold")), extra=dict(d.get("extra") or {}),
        )


@dataclass
class Correlation(Saveable):
    """Cross-task head correlation (paper Fig 4): ``r`` Pearson, ``p_value`` (None without scipy), ``spearman``,
    and the scatter data ``layer``, ``head``, ``x`` (task A), ``y`` (task B), one entry per head."""

    r: float
    p_value: float | None
    spearman: float | None
    n: int
    layer: np.ndarray
    head: np.ndarray
    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, str] = ("A", "B")

    def to_dict(self) -> dict:
        return {
            "r": self.r, "p_value": self.p_value, "spearman": self.spearman, "n": self.n,
            "layer": self.layer.tolist(), "head": self.head.tolist(), "x": self.x.tolist(), "y": self.y.tolist(),
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Correlation":
        return cls(
            r=float(d["r"]), p_value=None if d.get("p_value") is None else float(d["p_value"]),
            spearman=None if d.get("spearman") is None else float(d["spearman"]), n=int(d["n"]),
            layer=np.asarray(d["layer"], int), head=np.asarray(d["head"], int), x=np.asarray(d["x"], float),
            y=np.asarray(d["y"], float), labels=tuple(d.get("labels", ("A", "B"))),
        )


@dataclass(frozen=True)
class TreeNode:
    """A token of the tree: ``index`` (position in the input), ``token``, ``layer`` (model layer at which it
    entered; the root has ``layer == num_layers``, i.e. above the last layer)."""

    index: int
    token: str
    layer: int

    def to_dict(self) -> dict:
        return {"index": int(self.index), "token": str(self.token), "layer": int(self.layer)}


@dataclass(frozen=True)
class TreeEdge:
    """``parent`` (query token index) attends to ``child`` (key token index) at model ``layer``; ``score`` is the
    normalised head-summed attribution a^l (> threshold)."""

    parent: int
    child: int
    layer: int
    score: float

    def to_dict(self) -> dict:
        return {"parent": int(self.parent), "child": int(self.child), "layer": int(self.layer),
                "score": float(self.score)}


@dataclass
class AttributionTree(Saveable):
    """The result of :func:`attribution_tree`. ``nodes[0]`` is the root; ``edges`` are ordered top layer first."""

    tokens: list[str]
    num_layers: int
    threshold: float
    root: int
    nodes: list[TreeNode] = field(default_factory=list)
    edges: list[TreeEdge] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON types, exactly the keys the TreeView widget consumes."""
        return {
            "tokens": [str(t) for t in self.tokens],
            "num_layers": int(self.num_layers),
            "threshold": float(self.threshold),
            "root": int(self.root),
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttributionTree:
        return cls(
            tokens=[str(t) for t in d["tokens"]],
            num_layers=int(d["num_layers"]),
            threshold=float(d["threshold"]),
            root=int(d["root"]),
            nodes=[TreeNode(int(n["index"]), str(n["token"]), int(n["layer"])) for n in d["nodes"]],
            edges=[TreeEdge(int(e["parent"]), int(e["child"]), int(e["layer"]), float(e["score"]))
                   for e in d["edges"]],
        )

    # -- navigation -------------------------------------------------------------------------------------------
    def parent(self, index: int) -> int | None:
        """Parent token index of ``index`` (None for the root or a token outside the tree)."""
        for e in self.edges:
            if e.child == index:
                return e.parent
        return None

    def children(self, index: int) -> list[int]:
        return [e.child for e in self.edges if e.parent == index]

    def depth(self) -> int:
        """Number of edges on the longest root-to-leaf path."""
        kids: dict[int, list[int]] = {}
        for e in self.edges:
            kids.setdefault(e.parent, []).append(e.child)
        best, stack = 0, [(self.root, 0)]
        while stack:
            node, d = stack.pop()
            best = max(best, d)
            stack.extend((c, d + 1) for c in kids.get(node, ()))
        return best

    def __repr__(self) -> str:
        root = self.tokens[self.root] if 0 <= self.root < len(self.tokens) else "?"
        return (f"AttributionTree(root={self.root}:{root!r}, nodes={len(self.nodes)}/{len(self.tokens)}, "
                f"edges={len(self.edges)}, threshold={self.threshold})")


@dataclass
class TriggerPattern(Saveable):
    """One mined pattern.

    ``tokens`` / ``token_ids`` / ``positions`` / ``segments`` / ``relative``: the trigger WordPieces in source
    order, their position in the source input, their segment (0 = first text, 1 = text pair) and relative position
    inside that segment (0 = first content token, 1 = last).  ``score`` = v1 + v2 (+ …) of the top pairs;
    ``pairs``: the top pairs ``{"query", "key", "query_token", "key_token", "value", "used"}`` of the
    (``layer``, ``head``) matrix holding the example's largest attribution.  ``pred`` / ``pred_label``: the
    predicted (attributed) class; ``gold``: the example label (None if unlabelled).
    """

    tokens: list[str]
    token_ids: list[int]
    positions: list[int]
    segments: list[int]
    relative: list[float]
    score: float
    layer: int
    head: int
    pairs: list[dict]
    pred: int
    pred_label: str
    gold: int | None
    prob: float
    example_index: int
    text: str
    text_pair: str | None = None
    source_tokens: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = float(self.score)
        d["prob"] = float(self.prob)
        d["relative"] = [float(r) for r in self.relative]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TriggerPattern:
        return cls(**d)

    @property
    def key(self) -> tuple:
        """Identity of the trigger for de-duplication: (segment, token id) pairs in source order."""
        return tuple(zip(self.segments, self.token_ids))

    def __repr__(self) -> str:
        segs = "" if not any(self.segments) else f", segments={self.segments}"
        return (f"TriggerPattern({' '.join(self.tokens)!r}{segs}, score={self.score:.4f}, "
                f"pred={self.pred_label!r}, layer={self.layer}, head={self.head}, example={self.example_index})")


@dataclass
class TriggerResult(Saveable):
    """Per-gold-class accuracy without (``before``) and with (``after``) the trigger inserted.

    ``per_class``: one dict per gold class present, ``{"label", "name", "n", "before", "after", "drop"}``
    (accuracies in [0, 1]); ``overall_before`` / ``overall_after``; ``flip_rate``: share of examples whose
    prediction changed; ``truncated``: examples that had to be shortened to fit the trigger.
    """

    pattern: TriggerPattern
    per_class: list[dict]
    overall_before: float
    overall_after: float
    flip_rate: float
    n: int
    truncated: int = 0

    def to_dict(self) -> dict:
        return {
            "pattern": self.pattern.to_dict(),
            "per_class": [dict(c) for c in self.per_class],
            "overall_before": float(self.overall_before),
            "overall_after": float(self.overall_after),
            "flip_rate": float(self.flip_rate),
            "n": int(self.n),
            "truncated": int(self.truncated),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "TriggerResult":
        return cls(
            pattern=TriggerPattern.from_dict(d["pattern"]), per_class=[dict(c) for c in d["per_class"]],
            overall_before=float(d["overall_before"]), overall_after=float(d["overall_after"]),
            flip_rate=float(d["flip_rate"]), n=int(d["n"]), truncated=int(d.get("truncated", 0)),
        )

    def accuracy(self, label) -> tuple[float, float]:
        """(before, after) for a gold class given by index or name."""
        for c in self.per_class:
            if c["label"] == label or c["name"] == label:
                return c["before"], c["after"]
        raise KeyError(f"no gold class {label!r} among {[c['name'] for c in self.per_class]}")

    @property
    def largest_drop(self) -> dict:
        """The per-class record with the largest accuracy drop."""
        return max(self.per_class, key=lambda c: c["drop"])

    def __repr__(self) -> str:
        cells = ", ".join(f"{c['name']}: {100 * c['before']:.1f}% -> {100 * c['after']:.1f}%" for c in self.per_class)
        return f"TriggerResult({' '.join(self.pattern.tokens)!r}: {cells})"


# ------------------------------------------------------------------------------------------------------------
# one file format for every result


def _kinds() -> dict[str, type]:
    return {
        "attribution": Attribution, "head_importance": HeadImportance, "pruning_curve": PruningCurve,
        "effectiveness": Effectiveness, "correlation": Correlation, "attribution_tree": AttributionTree,
        "trigger_pattern": TriggerPattern, "trigger_result": TriggerResult,
    }


def _kind_of(obj: Any) -> str:
    for name, cls in _kinds().items():
        if isinstance(obj, cls):
            return name
    raise AttAttrError(f"{type(obj).__name__} is not an attattr result: save one of {', '.join(_kinds())}")


def save_result(obj: Any, path: str | os.PathLike) -> Path:
    """Write any result (or a list of :class:`TriggerPattern` / :class:`PruningCurve`) to one ``.npz``.

    The file holds ``__meta__`` (JSON: ``kind``, ``format_version`` and the fields) and the numeric arrays.
    """
    if isinstance(obj, (list, tuple)):
        items = list(obj)
        kinds = {_kind_of(o) for o in items}
        if len(kinds) > 1:
            raise AttAttrError(f"save_result takes a list of one kind of result, got {sorted(kinds)}")
        meta = {"kind": "list", "item_kind": kinds.pop() if kinds else "trigger_pattern",
                "format_version": FORMAT_VERSION, "items": [_meta_of(o)[0] for o in items]}
        arrays: dict[str, np.ndarray] = {}
        for i, o in enumerate(items):
            arrays.update({f"{i}/{k}": v for k, v in _meta_of(o)[1].items()})
        return _write_npz(path, meta, arrays)
    fields_, arrays = _meta_of(obj)
    meta = {"kind": _kind_of(obj), "format_version": FORMAT_VERSION, **fields_}
    return _write_npz(path, meta, arrays)


def _meta_of(obj: Any) -> tuple[dict, dict[str, np.ndarray]]:
    if isinstance(obj, Attribution):
        return obj._to_record()
    if isinstance(obj, HeadImportance):
        return {"meta": asdict(obj.meta)}, {"scores": np.asarray(obj)}
    return {"data": obj.to_dict()}, {}


def load_result(path: str | os.PathLike, kind: type | str | None = None) -> Any:
    """Read a file written by :func:`save_result` (or any ``.save``), checking kind and version.

    ``kind`` (a class or its kind name) makes the loader refuse files of another kind.
    """
    from .loadcheck import check_meta_size, check_record

    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # np.load would read a bare .npy (of any declared size) at once
        raise ResultFileError(f"{path}: not an attattr result file (a .npz archive written by .save()); "
                              f"it starts with {magic!r}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear error
        raise ResultFileError(f"{path}: not an attattr result file (.npz): {exc}") from exc
    with data:
        if "__meta__" not in data.files:
            raise ResultFileError(f"{path}: not an attattr result file (no __meta__ record)")
        check_meta_size(path, data)
        try:
            meta = json.loads(str(data["__meta__"]))
        except (ValueError, TypeError) as exc:
            raise ResultFileError(f"{path}: the __meta__ record is not valid JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise ResultFileError(f"{path}: the __meta__ record is not a JSON object")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ResultFileError(f"{path}: unknown result file format {version!r} (this version reads {FORMAT_VERSION})")
        want = kind if isinstance(kind, str) or kind is None else _kind_name(kind)
        got = meta.get("kind")
        if want is not None and got != want:
            raise ResultFileError(f"{path}: holds a {got!r} result, not a {want!r}")
        check_record(path, meta, data)  # fields, lengths, shapes and sizes, from the array headers only
        return _from_record(path, meta, data)


def _kind_name(cls: type) -> str:
    for name, c in _kinds().items():
        if c is cls:
            return name
    raise AttAttrError(f"{cls!r} is not an attattr result class")


def _from_record(path: Path, meta: dict, data) -> Any:
    kinds = _kinds()
    got = meta.get("kind")
    try:
        if got == "list":
            cls = kinds[meta["item_kind"]]
            return [_build(path, cls, item, data, prefix=f"{i}/") for i, item in enumerate(meta["items"])]
        return _build(path, kinds[got], meta, data, prefix="")
    except ResultFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ResultFileError(f"{path}: inconsistent {got!r} result file ({type(exc).__name__}: {exc})") from exc


def _build(path: Path, cls: type, meta: dict, data, prefix: str) -> Any:
    if cls is Attribution:
        return Attribution._from_record(path, meta, data, prefix)
    if cls is HeadImportance:
        return HeadImportance(np.asarray(data[prefix + "scores"]), **meta["meta"])
    return cls.from_dict(meta["data"])
