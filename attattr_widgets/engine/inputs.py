"""Encoding inputs, checking lengths, recognising model kinds and resolving attribution targets."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from .errors import EmptyInputError, InputTooLongError, NoClassificationHeadError, TargetError

CLASSIFIER = "classifier"
CAUSAL_LM = "causal-lm"


@dataclass
class Encoded:
    """One encoded example (batch of 1, unpadded).

    ``input_ids``/``attention_mask``/``token_type_ids``: (1, n) long tensors (``token_type_ids`` may be None);
    ``tokens``: n display strings; ``segments``: n ints (0 = first text, 1 = text pair);
    ``truncated``: whether tokens were dropped to fit the model.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    tokens: list[str]
    segments: list[int]
    truncated: bool

    def model_inputs(self) -> dict[str, torch.Tensor]:
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            out["token_type_ids"] = self.token_type_ids
        return out

    def __len__(self) -> int:
        return self.input_ids.shape[1]


def collate(encs: list[Encoded], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-pad encoded examples into model inputs of shape (B, T) (``token_type_ids`` only if all have them)."""
    B, T = len(encs), max(len(e) for e in encs)

    def pad(key: str, value: int) -> torch.Tensor:
        out = torch.full((B, T), value, dtype=torch.long)
        for b, e in enumerate(encs):
            t = getattr(e, key)
            out[b, : t.shape[1]] = t[0]
        return out.to(device)

    inputs = {"input_ids": pad("input_ids", pad_id), "attention_mask": pad("attention_mask", 0)}
    if all(e.token_type_ids is not None for e in encs):
        inputs["token_type_ids"] = pad("token_type_ids", 0)
    return inputs


def prediction_logits(kind: str, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The logits a prediction is read from: [R, C] for classifiers as they are; for causal LMs the [R, V]
    next-token logits at each row's last real position ``last`` [R]."""
    if kind == CAUSAL_LM:
        return logits[torch.arange(logits.shape[0], device=logits.device), last]
    return logits


def model_kind(model: nn.Module) -> str:
    """``"classifier"`` (a sequence-classification head) or ``"causal-lm"`` (a next-token head)."""
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


def max_positions(model: nn.Module, tokenizer) -> int:
    """The longest input (in tokens) the model accepts."""
    limits = []
    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if n:
        # RoBERTa-style position ids start after the padding index
        offset = (cfg.pad_token_id + 1) if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
        limits.append(int(n) - int(offset))
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:
        limits.append(int(tok_max))
    return min(limits) if limits else 1 << 30


def display_tokens(tokenizer, ids: list[int]) -> list[str]:
    """Readable token strings (byte-level BPE / sentencepiece pieces decoded to text)."""
    raw = tokenizer.convert_ids_to_tokens(ids)
    if any(t.startswith(("Ġ", "▁")) or "Ċ" in t for t in raw if t):
        return [tokenizer.decode([i]) for i in ids]  # byte-level BPE / sentencepiece: show real text
    return list(raw)


def encode(
    model: nn.Module,
    tokenizer,
    text: str,
    text_pair: str | None = None,
    *,
    max_length: int | None = None,
    truncation: bool = False,
) -> Encoded:
    """Encode one example unpadded. Raises :class:`EmptyInputError` / :class:`InputTooLongError`."""
    if not isinstance(text, str) or not text.strip():
        raise EmptyInputError("the text is empty: pass a non-empty string to attribute")
    if text_pair is not None and (not isinstance(text_pair, str) or not text_pair.strip()):
        raise EmptyInputError("text_pair is empty: pass a non-empty second sentence, or text_pair=None")
    limit = max_positions(model, tokenizer)
    if max_length is not None:
        limit = min(limit, int(max_length))
    kwargs = {"return_tensors": "pt", "return_token_type_ids": True}
    enc = tokenizer(text, text_pair, **kwargs) if text_pair is not None else tokenizer(text, **kwargs)
    n = enc["input_ids"].shape[1]
    truncated = False
    if n > limit:
        if not truncation:
            raise InputTooLongError(
                f"the input is {n} tokens long but the model accepts at most {limit}: shorten the text, or pass "
                f"truncation=True to attribute only its first {limit} tokens (the result is flagged truncated)"
            )
        kw = {**kwargs, "truncation": True, "max_length": limit}
        enc = tokenizer(text, text_pair, **kw) if text_pair is not None else tokenizer(text, **kw)
        truncated = True
    ids = enc["input_ids"][0].tolist()
    if not ids:
        raise EmptyInputError("the text encodes to no tokens: pass text the tokenizer recognises")
    tti = enc.get("token_type_ids")
    segments = tti[0].tolist() if tti is not None else [0] * len(ids)
    if text_pair is not None and tti is not None and not any(segments):
        # tokenizers without segment ids (RoBERTa): the second segment starts after the first separator run
        segments = _segments_from_separators(tokenizer, ids)
    # pass segment ids exactly when the usual `model(**tokenizer(text))` call would
    uses_tti = "token_type_ids" in getattr(tokenizer, "model_input_names", []) and (
        "token_type_ids" in inspect.signature(model.forward).parameters
    )
    return Encoded(
        input_ids=enc["input_ids"],
        attention_mask=enc.get("attention_mask", torch.ones_like(enc["input_ids"])),
        token_type_ids=tti if (tti is not None and uses_tti) else None,
        tokens=display_tokens(tokenizer, ids),
        segments=[int(s) for s in segments],
        truncated=truncated,
    )


def _segments_from_separators(tokenizer, ids: list[int]) -> list[int]:
    sep = tokenizer.sep_token_id
    if sep is None or sep not in ids:
        return [0] * len(ids)
    first = ids.index(sep)
    j = first
    while j + 1 < len(ids) and ids[j + 1] == sep:
        j += 1
    return [0] * (j + 1) + [1] * (len(ids) - j - 1)


def label_names(model: nn.Module) -> list[str] | None:
    """Readable class names of a classifier (from ``config.id2label``), or None for language models."""
    cfg = model.config
    n = getattr(cfg, "num_labels", None)
    id2label = getattr(cfg, "id2label", None) or {}
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
    if isinstance(target, bool):
        raise TargetError(f"target must be 'pred', 'gold', an int or a string, not {target!r}")
    if isinstance(target, (int,)) or (isinstance(target, torch.Tensor) and target.numel() == 1):
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
