"""TreeView: the attribution tree (Hao et al. Algorithm 1) as SVG, with a live threshold slider.

Traits: ``tree`` (the dict of ``attribution_tree(attr, threshold=t).to_dict()``:
``{"tokens", "num_layers", "threshold", "root", "nodes": [{"index", "token", "layer"}],
"edges": [{"parent", "child", "layer", "score"}]}``), ``threshold`` (float, set by the slider),
For an encoder–decoder's tree across source and answer (``attribution`` a ``Seq2SeqAttribution``) ``tree`` also
has ``sides`` (per token: "source" / "answer"; source tokens first), ``encoder_layers`` and node ``side`` /
``position``; its ``layer_sums`` holds the three sites' head sums (``widgets.embed.embed_layer_sums``), from which
the browser recomputes that tree too (``seq2seqTreeFromLayerSums``).
``answer_start`` (an explained answer of a causal LM: index in ``tree["tokens"]`` of its first token, whose labels
from there on are drawn in the answer colour after a boundary line; None for other attributions),
``special`` (per token of ``tree["tokens"]``: a special token, ``engine.model.tokens.special_mask``), ``state`` ("done" | "error"), ``error``, ``selected_edge`` ([parent, child, layer] or []), ``linked`` (bool),
``layer_sums`` (``widgets.embed.embed_layer_sums``: the float32 head sums the tree is built from, compressed, or
None when over budget), ``image`` (image attributions: ``widgets.image.image_payload``, the picture the tree is
also drawn on, edges between patch centres; None for text): with it the browser recomputes the tree for any threshold with the same algorithm
(``js/tree/tree-algo.ts``), so the slider works without a kernel (exported pages, reopened notebooks).
Browser -> kernel command (``js/shared/commands.ts``): ``_cmd_edge`` ``{parent, child, layer}`` (click on an edge):
selects that layer (and the head with the largest attribution for that token pair) in the linked Explorer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from ._base import BaseWidget, binary_trait, command, css_asset, esm_asset
from .serialize import token_fields

__all__ = ["TreeView"]


def _attribution_tree(attribution: Any, threshold: float) -> dict:
    """Indirection so tests can substitute a fake tree builder."""
    from ..engine.analysis.tree import attribution_tree

    tree = attribution_tree(attribution, threshold=threshold)
    return tree.to_dict() if hasattr(tree, "to_dict") else dict(tree)


def _clean_tree(d: dict) -> dict:
    """JSON-safe copy (numpy scalars -> Python) with the documented keys."""
    def num(x):
        return x.item() if isinstance(x, np.generic) else x

    def node(n: dict) -> dict:
        out = {"index": int(n["index"]), "token": str(n.get("token", "")), "layer": int(n["layer"])}
        if n.get("side"):  # a tree across source and answer
            out.update(side=str(n["side"]), position=int(n["position"]))
        return out

    out = {
        "tokens": [str(t) for t in d.get("tokens", [])],
        "num_layers": int(d.get("num_layers", 0)),
        "threshold": float(d.get("threshold", 0.0)),
        "root": None if d.get("root") is None else int(d["root"]),
        "nodes": [node(n) for n in d.get("nodes", [])],
        "edges": [{"parent": int(e["parent"]), "child": int(e["child"]), "layer": int(e["layer"]),
                   "score": float(num(e.get("score", 0.0)))} for e in d.get("edges", [])],
    }
    if d.get("sides"):
        out.update(sides=[str(x) for x in d["sides"]], encoder_layers=int(d.get("encoder_layers", 0)))
    return out


class TreeView(BaseWidget):
    """``TreeView(attribution, threshold=0.4, explorer=None)``: interactive attribution tree."""

    _esm = esm_asset("tree.js")
    _css = css_asset("tree.css")

    tree = traitlets.Dict(default_value={}).tag(sync=True)
    special = traitlets.List(traitlets.Bool(), default_value=[]).tag(sync=True)
    threshold = traitlets.Float(0.4).tag(sync=True)
    state = traitlets.Unicode("empty").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    selected_edge = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    linked = traitlets.Bool(False).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    answer_start = traitlets.Int(None, allow_none=True).tag(sync=True)
    layer_sums = binary_trait(None)
    image = binary_trait(None)

    def __init__(self, attribution: Any, threshold: float = 0.4, explorer: Any = None, **kwargs):
        from ..engine.validate import number

        threshold = number(threshold, "threshold", minimum=0.0, maximum=1.0, fix="the paper uses 0.4")
        self.attribution = attribution
        self.explorer = explorer
        init = self._compute(float(threshold))
        from .image import image_payload

        init.update(threshold=float(threshold), linked=explorer is not None, layer_sums=self._sums(attribution),
                    image=image_payload(getattr(attribution, "image", None)),
                    answer_start=self._answer_start(attribution, init["tree"]),
                    special=token_fields(getattr(attribution, "tokens", None) or init["tree"].get("tokens", []))
                    ["special"])
        init.update(kwargs)
        super().__init__(**init)
        self.observe(self._on_threshold, names=["threshold"])

    @staticmethod
    def _answer_start(attribution: Any, tree: dict) -> int | None:
        """Index of an explained answer's first token in the tree's tokens (None: no answer, or out of range)."""
        start = getattr(attribution, "answer_start", None)
        if start is None or tree.get("sides") or not 0 <= int(start) < len(tree.get("tokens", [])):
            return None
        return int(start)

    @staticmethod
    def _sums(attribution: Any) -> dict | None:
        from .embed import embed_layer_sums

        try:
            return embed_layer_sums(attribution)
        except Exception:  # noqa: BLE001 - no browser-side tree then; the kernel still computes it
            return None

    def _compute(self, threshold: float) -> dict:
        try:
            tree = _clean_tree(_attribution_tree(self.attribution, threshold))
        except Exception as exc:  # noqa: BLE001 - shown in the view
            msg = str(exc).strip() or type(exc).__name__
            return {"tree": {}, "state": "error", "error": f"{type(exc).__name__}: {msg}"}
        return {"tree": tree, "state": "done", "error": ""}

    def _on_threshold(self, change) -> None:
        new = self._compute(float(change["new"]))
        with self.hold_sync():
            for k, v in new.items():
                setattr(self, k, v)
            if self.selected_edge and not any(
                [e["parent"], e["child"], e["layer"]] == list(self.selected_edge)
                for e in self.tree.get("edges", [])
            ):
                self.selected_edge = []

    def _best_head(self, layer_index: int, parent: int, child: int, scores: Any = None) -> int:
        if scores is None:
            scores = getattr(self.attribution, "scores", np.zeros((0, 0, 0, 0)))
        scores = np.asarray(scores)
        if scores.ndim != 4 or not (0 <= layer_index < scores.shape[0]):
            return 0
        if not (0 <= parent < scores.shape[-2] and 0 <= child < scores.shape[-1]):
            return int(np.argmax(scores[layer_index].reshape(scores.shape[1], -1).max(-1)))
        return int(np.argmax(scores[layer_index, :, parent, child]))

    def _site_edge(self, parent: int, child: int, layer: int) -> tuple[str, Any, int, int, int]:
        """An edge of the tree across source and answer as ``(site, site maps, layer index, query, key)``: encoder
        (source → source, below ``encoder_layers``), decoder (answer → answer) or cross (answer → source)."""
        sides, ns = self.tree["sides"], self.tree["sides"].count("source")
        site = "encoder" if sides[parent] == "source" else "decoder" if sides[child] == "answer" else "cross"
        maps = self.attribution.site(site)
        model_layer = layer - (0 if site == "encoder" else int(self.tree.get("encoder_layers", 0)))
        li = maps.layers.index(model_layer) if model_layer in maps.layers else 0
        query = parent - (0 if site == "encoder" else ns)
        return site, maps, li, query, child - (0 if sides[child] == "source" else ns)

    def select_edge(self, parent: int, child: int, layer: int) -> None:
        """Highlight an edge and, when linked, show its layer / best head / token pair in the Explorer (for a
        tree across source and answer, on the edge's site: encoder, decoder or cross-attention)."""
        self.selected_edge = [int(parent), int(child), int(layer)]
        if self.explorer is None:
            return
        if self.tree.get("sides"):
            site, maps, li, q, k = self._site_edge(int(parent), int(child), int(layer))
            self.explorer.show_site(site)
            self.explorer.select(li, self._best_head(li, q, k, maps.scores), query=q, key=k)
            return
        layers = list(getattr(self.attribution, "layers", []) or [])
        li = layers.index(layer) if layer in layers else int(layer)
        self.explorer.select(li, self._best_head(li, parent, child), query=int(parent), key=int(child))

    @command
    def _cmd_edge(self, msg: dict) -> None:
        """Browser -> kernel ``{parent, child, layer}`` (click on an edge): :meth:`select_edge`."""
        self.select_edge(int(msg["parent"]), int(msg["child"]), int(msg["layer"]))
