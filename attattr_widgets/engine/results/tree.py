"""The attribution tree (paper Algorithm 1): :class:`AttributionTree` of :class:`TreeNode` s and
:class:`TreeEdge` s. Built by :func:`~attattr_widgets.engine.analysis.tree.attribution_tree`; numpy-free."""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import Result
from .schema import Record

__all__ = ["AttributionTree", "TreeEdge", "TreeNode"]


@dataclass(frozen=True)
class TreeNode(Record, closed=True):
    """A token of the tree: ``index`` (position in ``tokens``), ``token``, ``layer`` (model layer at which it
    entered; the root has ``layer == num_layers``, i.e. above the last layer). In an encoder–decoder's tree across
    source and answer, ``side`` is ``"source"`` or ``"answer"`` and ``position`` the token's index within that
    side (``""`` / None in a one-site tree)."""

    index: int
    token: str
    layer: int
    side: str = ""
    position: int | None = None



@dataclass(frozen=True)
class TreeEdge(Record, closed=True):
    """``parent`` (query token index) attends to ``child`` (key token index) at model ``layer``; ``score`` is the
    normalised head-summed attribution a^l (> threshold)."""

    parent: int
    child: int
    layer: int
    score: float



@dataclass
class AttributionTree(Result, kind="attribution_tree"):
    """The result of :func:`attribution_tree`. ``nodes[0]`` is the root; ``edges`` are ordered top layer first.
    ``to_dict()`` gives plain JSON types, exactly the keys the TreeView widget consumes.

    An encoder–decoder's tree across source and answer (:func:`seq2seq_tree`) also has ``sides`` (per token of
    ``tokens``: ``"source"`` or ``"answer"``; empty in a one-site tree) and ``encoder_layers`` (L_enc: layers
    below it are encoder layers, layer ``L_enc + l`` is decoder layer l; 0 in a one-site tree)."""

    tokens: list[str]
    num_layers: int
    threshold: float
    root: int
    nodes: list[TreeNode] = field(default_factory=list)
    edges: list[TreeEdge] = field(default_factory=list)
    sides: list[str] = field(default_factory=list)
    encoder_layers: int = 0

    def _one_site(self, d: dict) -> dict:
        """A one-site tree's JSON without the encoder–decoder keys, so its files and the browser contract
        (``js/tree/tree-algo.ts``) stay as they were; loading fills in the defaults."""
        if self.sides:
            return d
        d = {k: v for k, v in d.items() if k not in ("sides", "encoder_layers")}
        d["nodes"] = [{k: v for k, v in n.items() if k not in ("side", "position")} for n in d["nodes"]]
        return d

    def to_dict(self) -> dict:
        return self._one_site(super().to_dict())

    def to_record(self):
        record, arrays = super().to_record()
        return {k: self._one_site(v) for k, v in record.items()}, arrays

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
