"""Where a model's attention lives (:class:`Layout`), kept outside the model."""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from torch import nn

LAYER_TAG = "_attattr_layer"  # set on a frozen copy's attention modules (ours), never on the user's


@dataclass
class Layout:
    """Where a model's attention lives: ``modules`` in call order (L entries; one shared module for ALBERT),
    ``num_heads`` (query heads), ``blocks`` (the ``nn.ModuleList`` of the L blocks, or None), ``path`` (attribute
    names from the root to it), ``impls`` (attention implementation names the model uses) and ``outputs`` (the
    head's real number of outputs — classes or vocabulary entries — seen on the discovery forward). Encoder–decoders:
    ``roles`` names each module's kind in call order (``"encoder"`` self-attention, ``"decoder"`` self-attention,
    ``"cross"`` attention; seen from the query/key lengths of the discovery forward) and ``heads`` their query
    heads; single-stack models have ``roles`` None."""

    modules: list[nn.Module]
    num_heads: int
    shared: bool
    blocks: nn.ModuleList | None
    path: list[str]
    impls: set[str]
    block_outputs_tuple: list[bool]
    index: dict[int, int] = field(default_factory=dict)
    outputs: int | None = None
    roles: list[str] | None = None
    heads: list[int] | None = None

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    def layer_of(self, module: nn.Module, s) -> int | None:
        """Layer index of an attention ``module`` called in session ``s`` (ALBERT: counted on ``s.calls``)."""
        tag = module.__dict__.get(LAYER_TAG)  # a frozen copy's attention module: the original's layer
        if self.shared:
            if module is not self.modules[0] and tag is None:
                return None
            layer = s.calls % self.num_layers
            s.calls += 1
            return layer
        return tag if tag is not None else self.index.get(id(module))


_layouts: "weakref.WeakKeyDictionary[nn.Module, Layout]" = weakref.WeakKeyDictionary()  # per model, outside it


def discovered_outputs(model: nn.Module) -> int | None:
    """The head's real number of outputs seen when ``model`` was discovered (None before its first run)."""
    lay = _layouts.get(model)
    return None if lay is None else lay.outputs
