"""Special tokens: the one rule of the engine, from token ids (a tokenizer at hand) or from display strings.

**The rule.** A token is *special* when it is a structural token the tokenizer adds around, between or after the
texts — ``[CLS]``, ``[SEP]``, ``[PAD]``, ``<s>``, ``</s>``, ``<pad>``, ``<|endoftext|>``, ``<bos>``, … — and
*content* otherwise. ``[UNK]`` / ``<unk>`` and ``[MASK]`` / ``<mask>`` stand for a word of the text, so they are
content — unless the tokenizer also opens, separates or closes texts with that very token (CLS, SEP, BOS or EOS),
as GPT-2's ``<|endoftext|>`` is its unknown, begin and end token at once.

Two forms of the same rule:

* :func:`special_ids` — where a tokenizer is at hand (encoding, trigger mining and insertion): the tokenizer's
  ``all_special_ids`` plus its CLS/SEP/PAD/BOS/EOS ids, less the UNK and MASK ids that are not also CLS, SEP,
  BOS or EOS.
* :func:`special_mask` — where only display strings exist (saved results, the attribution tree, what the browser
  shows): a string written like a special token — ``[NAME]``, ``<name>`` / ``</name>``, ``<|name|>`` — less the
  written forms of UNK and MASK. The two agree on every token a tokenizer adds and on ordinary text
  (``tests/engine/model/test_tokens.py``); they can differ only on a special token's string typed into the text
  itself, e.g. SmolLM2's ``<|endoftext|>``, which is its unknown token (content by id, special by its string).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["is_special_token", "special_ids", "special_mask"]

_STRUCTURAL = ("cls_token_id", "sep_token_id", "pad_token_id", "bos_token_id", "eos_token_id")
_WORDS = ("unk_token_id", "mask_token_id")
_FRAMING = ("cls_token_id", "sep_token_id", "bos_token_id", "eos_token_id")  # a word token that frames stays special

_WRITTEN = re.compile(r"^(\[[A-Za-z_]+\]|<[^<>\s]*>|<\|[^|]*\|>)$")
_WRITTEN_WORDS = frozenset({"[unk]", "[mask]", "<unk>", "<mask>"})


def special_ids(tokenizer) -> frozenset[int]:
    """Ids of the tokenizer's structural special tokens (the rule in the module docstring)."""
    ids = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}
    for name in _STRUCTURAL:
        v = getattr(tokenizer, name, None)
        if v is not None:
            ids.add(int(v))
    framing = {getattr(tokenizer, name, None) for name in _FRAMING}
    for name in _WORDS:
        v = getattr(tokenizer, name, None)
        if v is not None and v not in framing:
            ids.discard(int(v))
    return frozenset(ids)


def is_special_token(token: str) -> bool:
    """Whether one display string is written like a structural special token (surrounding spaces ignored)."""
    t = str(token).strip()
    return bool(_WRITTEN.match(t)) and t.lower() not in _WRITTEN_WORDS


def special_mask(tokens: Sequence[str]) -> list[bool]:
    """:func:`is_special_token` of every display string: ``[n]`` bools, for results saved without a tokenizer."""
    return [is_special_token(t) for t in tokens]
