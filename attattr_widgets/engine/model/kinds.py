"""Recognising what a model predicts (its kind), its outputs and label names, and resolving attribution targets."""
from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn

from ..errors import NoClassificationHeadError, TargetError, UnsupportedModelError
from ..intercept.layout import discovered_outputs


CLASSIFIER = "classifier"


CAUSAL_LM = "causal-lm"


def prediction_logits(kind: str, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The logits a prediction is read from: [R, C] for classifiers as they are; for causal LMs the [R, V]
    next-token logits at each row's last real position ``last`` [R]."""
    if kind == CAUSAL_LM:
        return logits[torch.arange(logits.shape[0], device=logits.device), last]
    return logits


# Heads whose output is not one prediction per input: refused up front (their logits would be misread).
_UNSUPPORTED_HEADS = {
    "ForTokenClassification": "token classification (one prediction per token)",
    "ForMultipleChoice": "multiple choice (one score per choice, inputs shaped [batch, choices, tokens])",
    "ForQuestionAnswering": "extractive question answering (start/end scores per token)",
    "ForMaskedLM": "masked language modelling (one prediction per [MASK] position)",
    "ForImageClassification": "image classification (pixel input)",
    "ForObjectDetection": "object detection (pixel input)",
    "ForSemanticSegmentation": "segmentation (pixel input)",
    "ForAudioClassification": "audio classification (waveform input)",
    "ForSpeechSeq2Seq": "speech recognition (audio input)",
    "ForConditionalGeneration": "encoder-decoder / multimodal generation",
}


def _check_supported_head(model: nn.Module) -> None:
    name = type(model).__name__
    for suffix, what in _UNSUPPORTED_HEADS.items():
        if name.endswith(suffix):
            raise UnsupportedModelError(
                f"{name} has a head for {what}, which attattr-widgets does not attribute: load the checkpoint with "
                f"AutoModelForSequenceClassification (one class per input) or AutoModelForCausalLM (next-token "
                f"targets) instead")
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - C-implemented forwards
        return
    other = [k for k in params if k in ("pixel_values", "input_values", "input_features")]
    if "input_ids" not in params and (other or not any(p.kind is p.VAR_KEYWORD for p in params.values())):
        takes = ", ".join(other or list(params)[:3])
        raise UnsupportedModelError(
            f"{name} takes no text input (its forward takes {takes}): attattr-widgets attributes text models "
            f"(a classifier or a causal LM over input_ids)")


def model_kind(model: nn.Module) -> str:
    """``"classifier"`` (a sequence-classification head) or ``"causal-lm"`` (a next-token head).

    Raises :class:`UnsupportedModelError` for heads with no single prediction per input (token classification,
    multiple choice, QA, masked LM) and models without text input, :class:`NoClassificationHeadError` for a
    bare encoder/decoder."""
    _check_supported_head(model)
    name = type(model).__name__
    if name.endswith("ForSequenceClassification") or (
        hasattr(model, "classifier") and getattr(model.config, "num_labels", 0) and not name.endswith("LMHeadModel")
    ):
        return CLASSIFIER
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return CAUSAL_LM
    raise NoClassificationHeadError(
        f"{name} has no classification head and no language-model head, so there is no prediction to "
        f"attribute. Load it with AutoModelForSequenceClassification.from_pretrained(...) (a fine-tuned "
        f"classifier) or AutoModelForCausalLM.from_pretrained(...) (next-token targets)."
    )


def is_decoder_classifier(model: nn.Module) -> bool:
    """A decoder with a classification head (GPT-2, Llama, … ``ForSequenceClassification``): it pools the last
    non-pad token by pad id, so its examples run unpadded."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    return bool(getattr(model.config, "is_decoder", False)) or (
        base is not None and not hasattr(base, "encoder") and not hasattr(base, "embeddings")
    )


def num_outputs(model: nn.Module, kind: str) -> tuple[int | None, str]:
    """How many targets the model has and what they are: ``(num_labels, "classes")`` for classifiers,
    ``(vocab_size, "tokens in the vocabulary")`` for causal LMs (None when the config does not say)."""
    cfg = model.config
    if kind == CAUSAL_LM:
        n = getattr(cfg, "vocab_size", None) or getattr(getattr(cfg, "get_text_config", lambda: cfg)(), "vocab_size", None)
        return (int(n) if n else None), "tokens in the vocabulary"
    n = getattr(cfg, "num_labels", None) or discovered_outputs(model)
    return (int(n) if n else None), "classes"


def label_names(model: nn.Module) -> list[str] | None:
    """Readable class names of a classifier: ``config.id2label`` (checked to name the head's outputs 0..C-1 by
    :func:`~.checks.check_model_and_tokenizer`), ``LABEL_i`` for a config without one (as many as the head's
    outputs, once the model is discovered); None for language models (never tokenizer tokens)."""
    cfg = model.config
    id2label = getattr(cfg, "id2label", None) or {}
    n = getattr(cfg, "num_labels", None) or (model_kind(model) == CLASSIFIER and discovered_outputs(model))
    if not n:
        return None
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]


def resolve_target(model: nn.Module, tokenizer, kind: str, target, logits: torch.Tensor, gold=None) -> int:
    """Turn a user target into a class index / token id.

    ``target``: ``"pred"`` (argmax of ``logits``, shape [C] — the paper's default), ``"gold"`` (needs ``gold``),
    an int, or a string (a class name for classifiers; a single token such as ``" Paris"`` for language models).
    """
    size = logits.shape[-1]
    if isinstance(target, str) and target == "pred":
        return int(logits.argmax(-1))
    if isinstance(target, str) and target == "gold":
        if gold is None:
            raise TargetError('target="gold" needs a gold label: pass the example label, or use target="pred"')
        target = gold
    if isinstance(target, (bool, np.bool_)) or (isinstance(target, (torch.Tensor, np.ndarray)) and target.dtype in (
            torch.bool, np.bool_)):
        raise TargetError(f"target must be 'pred', 'gold', an int or a string, not {target!r} (a bool is not a "
                          f"class index)")
    if isinstance(target, float) and target.is_integer():
        target = int(target)
    if isinstance(target, (int, np.integer)) or (isinstance(target, torch.Tensor) and target.numel() == 1
                                                 and not target.is_floating_point()):
        t = int(target)
        if not 0 <= t < size:
            what = "classes" if kind == CLASSIFIER else "tokens in the vocabulary"
            raise TargetError(f"target {t} is out of range: the model has {size} {what} (0..{size - 1})")
        return t
    if isinstance(target, str):
        if kind == CLASSIFIER:
            names = label_names(model) or []
            for i, name in enumerate(names):
                if name.lower() == target.lower():
                    return i
            raise TargetError(f"unknown class {target!r}: the model's classes are {names}")
        ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = tokenizer.convert_ids_to_tokens(ids)
            raise TargetError(
                f"target {target!r} is {len(ids)} tokens {pieces}: a next-token target must be one token — pass "
                f"its first piece or a token id (leading spaces matter for byte-level tokenizers)"
            )
        return int(ids[0])
    raise TargetError(f"target must be 'pred', 'gold', an int or a string, not {type(target).__name__}")
