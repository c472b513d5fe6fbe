"""attattr-widgets: Self-Attention Attribution (AttAttr) engines and Jupyter widgets.

See which attention links a Transformer's prediction actually depends on (Hao et al., AAAI 2021).

    >>> from attattr_widgets import attribute
    >>> attr = attribute(model, tokenizer, "a gorgeous, witty, seductive movie.")
    >>> attr.scores.shape          # [layers, heads, tokens, tokens]
"""
from __future__ import annotations

from .engine.attribution import Attribution, LayerResult, attribute, iter_attributions
from .engine.errors import (
    AttAttrError,
    AttributionCancelled,
    AttributionOutOfMemoryError,
    EmptyInputError,
    InputTooLongError,
    NoClassificationHeadError,
    TargetError,
    UnsupportedModelError,
)
from .engine.hooks import controller_for

__version__ = "0.1.0"

__all__ = [
    "AttAttrError",
    "Attribution",
    "AttributionCancelled",
    "AttributionOutOfMemoryError",
    "EmptyInputError",
    "InputTooLongError",
    "LayerResult",
    "NoClassificationHeadError",
    "TargetError",
    "UnsupportedModelError",
    "attribute",
    "controller_for",
    "iter_attributions",
]
