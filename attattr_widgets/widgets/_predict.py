"""Single-input predictions for the interactive views: class probabilities / top-k next tokens of one text.

Used by the Explorer's target selector and the TriggersView's live "apply to my sentence" box. Every forward runs
inside the engine's ``prepared()`` context (eval mode, frozen parameters, restored afterwards) under
``torch.no_grad()``, so the user's model is left exactly as it was.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..engine.intercept.mode import prepared
from ..engine.model.encode import collate, Encoded
from ..engine.model.adapters import adapter_for

__all__ = ["probabilities", "predict_encoded", "target_options"]


def probabilities(model: Any, enc: Encoded) -> np.ndarray:
    """Softmax of the prediction logits of one encoded input: [C] (classes) or [V] (next token), float64."""
    adapter = adapter_for(model)
    device = next(model.parameters()).device
    pad = getattr(model.config, "pad_token_id", None)
    with torch.no_grad(), prepared(model, adapter, rows_need_pad=False):
        inputs = collate([enc], 0 if pad is None else int(pad), device)
        logits = model(**inputs).logits
        last = torch.tensor([len(enc) - 1], device=device)
        out = adapter.prediction_logits(logits, last)[0]
    return torch.softmax(out.double(), -1).cpu().numpy()


def predict_encoded(model: Any, enc: Encoded) -> dict:
    """``{"pred", "label", "prob", "probs"}`` of one encoded input (classifier: class names; LM: top token)."""
    p = probabilities(model, enc)
    i = int(np.argmax(p))
    names = adapter_for(model).label_names()
    return {"pred": i, "label": names[i] if names else str(i), "prob": float(p[i]),
            "probs": [float(x) for x in p] if names else []}


def target_options(model: Any, tokenizer: Any, text: str, text_pair: str | None = None, *, k: int = 10,
                   max_length: int | None = None) -> dict:
    """What the target selector offers for one input.

    Classifiers: every class ``{"id", "label", "prob"}`` in class order. Causal LMs: the ``k`` most probable next
    tokens (``label`` = the token as text, e.g. ``" Paris"``), most probable first. ``pred`` is the arg-max id,
    ``kind`` ``"class"`` | ``"next-token"``.
    """
    adapter = adapter_for(model)
    enc = adapter.encode(tokenizer, text, text_pair, max_length=max_length, truncation=True)
    p = probabilities(model, enc)
    opts = adapter.target_options(tokenizer, p, k)
    return {"kind": adapter.target_kind, "pred": int(np.argmax(p)), "options": opts, "truncated": bool(enc.truncated)}
