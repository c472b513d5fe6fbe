"""Single-input predictions for the interactive views: class probabilities / top-k next tokens of one text.

Used by the Explorer's target selector and the TriggersView's live "apply to my sentence" box. Every forward runs
on the engine's private copy of the model (:func:`~attattr_widgets.engine.intercept.shadow.private_copy`: eval
mode, its own config) under ``torch.no_grad()``, so the user's model is never run nor written.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..engine.intercept.shadow import private_copy
from ..engine.model.checks import check_model_and_tokenizer
from ..engine.model.wrappers import check_unwrapped
from ..engine.model.encode import collate, encode, Encoded
from ..engine.model.kinds import CLASSIFIER, label_names, model_kind, prediction_logits

__all__ = ["probabilities", "predict_encoded", "target_options"]


def probabilities(model: Any, enc: Encoded) -> np.ndarray:
    """Softmax of the prediction logits of one encoded input: [C] (classes) or [V] (next token), float64."""
    check_unwrapped(model)
    kind = model_kind(model)
    device = next(model.parameters()).device
    pad = getattr(model.config, "pad_token_id", None)
    with torch.no_grad():
        inputs = collate([enc], 0 if pad is None else int(pad), device)
        logits = private_copy(model)(**inputs).logits
        last = torch.tensor([len(enc) - 1], device=device)
        out = prediction_logits(kind, logits, last)[0]
    return torch.softmax(out.double(), -1).cpu().numpy()


def predict_encoded(model: Any, enc: Encoded) -> dict:
    """``{"pred", "label", "prob", "probs"}`` of one encoded input (classifier: class names; LM: top token)."""
    p = probabilities(model, enc)
    i = int(np.argmax(p))
    names = label_names(model) if model_kind(model) == CLASSIFIER else None
    return {"pred": i, "label": names[i] if names else str(i), "prob": float(p[i]),
            "probs": [float(x) for x in p] if names else []}


def target_options(model: Any, tokenizer: Any, text: str, text_pair: str | None = None, *, k: int = 10,
                   max_length: int | None = None) -> dict:
    """What the target selector offers for one input.

    Classifiers: every class ``{"id", "label", "prob"}`` in class order. Causal LMs: the ``k`` most probable next
    tokens (``label`` = the token as text, e.g. ``" Paris"``), most probable first. ``pred`` is the arg-max id,
    ``kind`` ``"class"`` | ``"next-token"``.
    """
    check_model_and_tokenizer(model, tokenizer)
    enc = encode(model, tokenizer, text, text_pair, max_length=max_length, truncation=True)
    p = probabilities(model, enc)
    kind = model_kind(model)
    if kind == CLASSIFIER:
        names = label_names(model) or [str(i) for i in range(len(p))]
        opts = [{"id": i, "label": str(names[i]), "prob": float(p[i])} for i in range(len(p))]
        return {"kind": "class", "pred": int(np.argmax(p)), "options": opts, "truncated": bool(enc.truncated)}
    top = np.argsort(-p, kind="stable")[: max(1, int(k))]
    opts = [{"id": int(i), "label": str(tokenizer.decode([int(i)])), "prob": float(p[i])} for i in top]
    return {"kind": "next-token", "pred": int(top[0]), "options": opts, "truncated": bool(enc.truncated)}
