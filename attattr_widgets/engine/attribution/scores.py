"""The score F that is attributed, read from the prediction logits of the target."""
from __future__ import annotations

import torch

SCORES = ("prob", "logprob", "logit")


def _target_score(logits: torch.Tensor, targets: torch.Tensor, score: str, acc_dtype) -> torch.Tensor:
    logits = logits.to(acc_dtype)
    if score == "prob":
        vals = torch.softmax(logits, -1)
    elif score == "logprob":
        vals = torch.log_softmax(logits, -1)
    else:
        vals = logits
    return vals.gather(-1, targets.view(-1, 1)).squeeze(-1)
