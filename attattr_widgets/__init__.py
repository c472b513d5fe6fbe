"""attattr-widgets: Self-Attention Attribution (AttAttr) engines and Jupyter widgets.

See which attention links a Transformer's prediction actually depends on (Hao et al., AAAI 2021).

    >>> from attattr_widgets import attribute
    >>> attr = attribute(model, tokenizer, "a gorgeous, witty, seductive movie.")
    >>> attr.scores.shape          # [layers, heads, tokens, tokens]
"""
from __future__ import annotations

from .engine.attribution.api import attribute, iter_attributions
from .engine.results import Attribution, LayerResult
from .engine.errors import (
    AttAttrError,
    AttributionCancelled,
    AttributionOutOfMemoryError,
    EmptyInputError,
    InputTooLongError,
    LabelNamesError,
    NoClassificationHeadError,
    TargetError,
    TokenizerMismatchError,
    UnsupportedModelError,
)
from .engine.intercept.controller import controller_for

__version__ = "0.1.0"

# Heavier parts load on first use, so `import attattr_widgets` stays light (no Bokeh, no widget runtime).
_LAZY = {
    "Explorer": "attattr_widgets.widgets",
    "TreeView": "attattr_widgets.widgets",
    "HeadsView": "attattr_widgets.widgets",
    "HeadsResult": "attattr_widgets.widgets",
    "TriggersView": "attattr_widgets.widgets",
    "TriggersResult": "attattr_widgets.widgets",
    "head_importance": "attattr_widgets.engine.analysis.importance",
    "pruning_curve": "attattr_widgets.engine.analysis.pruning",
    "compare_pruning": "attattr_widgets.engine.analysis.pruning",
    "effectiveness": "attattr_widgets.engine.analysis.pruning",
    "head_correlation": "attattr_widgets.engine.analysis.pruning",
    "PruningCurve": "attattr_widgets.engine.results",
    "Effectiveness": "attattr_widgets.engine.results",
    "Correlation": "attattr_widgets.engine.results",
    "head_mask_gradients": "attattr_widgets.engine.analysis.taylor",
    "attribution_tree": "attattr_widgets.engine.analysis.tree",
    "AttributionTree": "attattr_widgets.engine.results",
    "mine_triggers": "attattr_widgets.engine.analysis.triggers",
    "evaluate_trigger": "attattr_widgets.engine.analysis.triggers",
    "top_triggers": "attattr_widgets.engine.analysis.triggers",
    "evaluate_triggers": "attattr_widgets.engine.analysis.triggers",
    "insert_trigger": "attattr_widgets.engine.analysis.triggers",
    "TriggerPattern": "attattr_widgets.engine.results",
    "TriggerResult": "attattr_widgets.engine.results",
    "RayBackend": "attattr_widgets.batch",
    "HeadImportance": "attattr_widgets.engine.results",
    "ImageGrid": "attattr_widgets.engine.results",
    "zero_shot_classifier": "attattr_widgets.engine.model.zero_shot",
    "image_prompt": "attattr_widgets.engine.model.image_prompt",
    "save_result": "attattr_widgets.engine.results",
    "load_result": "attattr_widgets.engine.results",
    "to_html": "attattr_widgets.export",
    "plots": "attattr_widgets.plots",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.endswith("." + name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attattr_widgets' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "AttAttrError",
    "Attribution",
    "AttributionCancelled",
    "AttributionOutOfMemoryError",
    "EmptyInputError",
    "InputTooLongError",
    "LabelNamesError",
    "LayerResult",
    "NoClassificationHeadError",
    "TargetError",
    "TokenizerMismatchError",
    "UnsupportedModelError",
    "attribute",
    "controller_for",
    "iter_attributions",
    *list(_LAZY),
]
