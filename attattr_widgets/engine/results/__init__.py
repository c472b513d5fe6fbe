"""Typed results of every engine (torch-free), with one versioned file format.

Widgets, plots, the CLI and the distributed backend import these types instead of guessing attributes.

* :class:`LayerResult` — one finished layer of one example (what ``progress`` callbacks and the views stream);
  :class:`Attribution` — all layers of one example (``Attribution.from_layers`` assembles streamed layers)
  — :mod:`.attribution`;
* :class:`HeadImportance` — an ``[L, H]`` float64 array with ``method`` / ``num_examples`` metadata;
  :class:`PruningCurve`, :class:`Effectiveness`, :class:`Correlation` — paper Figs 2–4 — :mod:`.heads`;
* :class:`AttributionTree` (with :class:`TreeNode`, :class:`TreeEdge`) — paper Algorithm 1 — :mod:`.tree`;
* :class:`ImageGrid` — the patch grid and a small copy of the picture behind an image model's tokens
  (``Attribution.image``) — :mod:`.image`;
* :class:`TriggerPattern`, :class:`TriggerResult` — paper §4.3 — :mod:`.triggers`;
* :class:`Seq2SeqAttribution` — one encoder–decoder answer: encoder, decoder and cross-attention maps
  (:class:`SiteMaps` views, :class:`SiteMeta` per-layer facts) — :mod:`.seq2seq`.

Every kind derives :class:`~.base.Result`: its saved schema is derived from its dataclass fields (:mod:`.schema`)
and it is registered by its ``kind``. Files: :func:`save_result` / :func:`load_result` (:mod:`.fileformat`) write
and read any of them as one ``.npz`` holding a JSON record plus the numeric arrays (never pickles), checked on load
by :mod:`.loadcheck`; every result also has ``.save(path)`` and ``Cls.load(path)``. Writes are atomic
(:mod:`.atomic`).
"""
from __future__ import annotations

from ..errors import ResultFileError
from .atomic import atomic_write_bytes, atomic_write_text
from .attribution import STORES, Attribution, LayerResult, allocate_maps, sum_heads
from .base import Result
from .fileformat import FORMAT_VERSION, load_result, save_result
from .heads import Correlation, Effectiveness, HeadImportance, HeadImportanceMeta, PruningCurve
from .image import ImageGrid
from .schema import Record, array
from .seq2seq import Seq2SeqAttribution, SiteMaps, SiteMeta
from .tree import AttributionTree, TreeEdge, TreeNode
from .triggers import ClassAccuracy, TriggerPattern, TriggerResult

__all__ = [
    "FORMAT_VERSION", "STORES", "Attribution", "AttributionTree", "ClassAccuracy", "Correlation", "Effectiveness",
    "HeadImportance", "HeadImportanceMeta", "ImageGrid", "LayerResult", "PruningCurve", "Record", "Result",
    "ResultFileError", "Seq2SeqAttribution", "SiteMaps", "SiteMeta",
    "TreeEdge", "TreeNode", "TriggerPattern", "TriggerResult", "allocate_maps", "array", "atomic_write_bytes",
    "atomic_write_text", "load_result", "save_result", "sum_heads",
]
