"""Generate, then explain: greedy decoding of an answer on the engine's private copy of a causal LM."""
from __future__ import annotations

import copy
import threading

import torch
from torch import nn

from ..errors import check_cancel
from .encode import Encoded


def greedy_answer(net: nn.Module, model: nn.Module, enc: Encoded, max_new_tokens: int,
                  cancel: threading.Event | None = None) -> list[int]:
    """The answer ``net`` — the engine's private copy of ``model`` (:meth:`~..intercept.controller.AttnController.private`)
    — decodes greedily after the prompt ``enc``: at most ``max_new_tokens`` ids, ending with the end-of-sequence
    token when the model produces it (that token is part of the answer: it is what the model chose).

    The model's own generation config is kept (end-of-sequence ids, repetition penalty, bad words, …) except that
    decoding is greedy (``do_sample=False``, ``num_beams=1``; sampling settings dropped) and limited to
    ``max_new_tokens``; a deep copy of it is passed, so neither the user's model nor its ``generation_config`` is
    written. ``cancel`` (set) stops decoding between tokens with :class:`~..errors.AttributionCancelled`."""
    base = getattr(model, "generation_config", None)
    cfg = copy.deepcopy(base) if base is not None else None
    if cfg is None:
        from transformers import GenerationConfig

        cfg = GenerationConfig()
    for key in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        if hasattr(cfg, key):
            setattr(cfg, key, None)
    cfg.do_sample, cfg.num_beams, cfg.num_return_sequences = False, 1, 1
    cfg.max_new_tokens, cfg.max_length, cfg.min_new_tokens = int(max_new_tokens), None, None
    if cfg.eos_token_id is None:
        cfg.eos_token_id = getattr(model.config, "eos_token_id", None)
    if cfg.pad_token_id is None:
        eos = cfg.eos_token_id
        cfg.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    stop = None
    if cancel is not None:
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                check_cancel(cancel)
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        stop = StoppingCriteriaList([_Cancel()])
    device = next(net.parameters()).device
    ids = enc.input_ids.to(device)
    with torch.no_grad():
        out = net.generate(input_ids=ids, attention_mask=enc.attention_mask.to(device), generation_config=cfg,
                           stopping_criteria=stop)
    # a causal LM returns prompt + answer; an encoder-decoder the decoder's start token + answer
    answer = out[0, 1 if getattr(model.config, "is_encoder_decoder", False) else ids.shape[1]:].tolist()
    eos = cfg.eos_token_id
    eos = set(eos) if isinstance(eos, (list, tuple)) else ({eos} if eos is not None else set())
    for i, t in enumerate(answer):  # nothing after the first end-of-sequence token
        if t in eos:
            return answer[: i + 1]
    return answer
