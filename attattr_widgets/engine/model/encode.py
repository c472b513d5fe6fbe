"""Encoding one example: text (and a text pair) → unpadded model inputs with display tokens and segments."""
from __future__ import annotations

import inspect
import unicodedata
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import validate
from ..errors import ArgumentError, EmptyInputError, InputTooLongError, TokenizerMismatchError
from ..results.image import ImageGrid
from .tokens import special_ids


@dataclass
class Encoded:
    """One encoded example (batch of 1, unpadded).

    Text: ``input_ids``/``attention_mask``/``token_type_ids``: (1, n) long tensors (``token_type_ids`` may be
    None). ``inputs``: the model's other inputs, which are not per token and have the same shape for every example
    of a batch (an image model's ``pixel_values`` (1, C, H, W)); a model without ``input_ids`` has only these.
    ``tokens``: n display strings (what the attention maps' rows and columns are); ``segments``: n ints (0 = first
    text, 1 = text pair); ``truncated``: whether tokens were dropped to fit the model; ``image``: the patch grid
    and picture behind an image model's tokens (:class:`~..results.image.ImageGrid`), else None;
    ``answer_start``: for a teacher-forced continuation (prompt + answer,
    :meth:`~.adapters.ContinuationAdapter.encode_answer`) the index of the first answer token, else None.
    """

    input_ids: torch.Tensor | None
    attention_mask: torch.Tensor | None
    token_type_ids: torch.Tensor | None
    tokens: list[str]
    segments: list[int]
    truncated: bool
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    image: ImageGrid | None = None
    answer_start: int | None = None

    @property
    def answer_len(self) -> int:
        """Number of answer tokens (0 without an answer)."""
        return 0 if self.answer_start is None else len(self) - self.answer_start

    def model_inputs(self) -> dict[str, torch.Tensor]:
        out = {k: v for k, v in (("input_ids", self.input_ids), ("attention_mask", self.attention_mask),
                                 ("token_type_ids", self.token_type_ids)) if v is not None}
        return {**out, **self.inputs}

    def __len__(self) -> int:
        return len(self.tokens)


def collate(encs: list[Encoded], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Model inputs of a batch: the per-token inputs right-padded to (B, T) (``token_type_ids`` only if all have
    them), the other inputs (:attr:`Encoded.inputs`) stacked along the batch axis."""
    B, T = len(encs), max(len(e) for e in encs)

    def pad(key: str, value: int) -> torch.Tensor:
        out = torch.full((B, T), value, dtype=torch.long)
        for b, e in enumerate(encs):
            t = getattr(e, key)
            out[b, : t.shape[1]] = t[0]
        return out.to(device)

    inputs = {}
    if all(e.input_ids is not None for e in encs):
        inputs = {"input_ids": pad("input_ids", pad_id), "attention_mask": pad("attention_mask", 0)}
        if all(e.token_type_ids is not None for e in encs):
            inputs["token_type_ids"] = pad("token_type_ids", 0)
    for key in encs[0].inputs:
        parts = [e.inputs.get(key) for e in encs]
        if any(p is None or p.shape[1:] != parts[0].shape[1:] for p in parts):
            raise ArgumentError(f"the examples of one batch need {key} of one shape, got "
                                f"{[None if p is None else tuple(p.shape) for p in parts]}: pass batch_size=1")
        inputs[key] = torch.cat(parts).to(device)
    return inputs


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
    """Readable token strings (byte-level BPE / sentencepiece pieces decoded to text; ``"<id 123>"`` for an id the
    tokenizer does not know)."""
    raw = tokenizer.convert_ids_to_tokens(ids)
    if any(t.startswith(("Ġ", "▁")) or "Ċ" in t for t in raw if t):
        return [tokenizer.decode([i]) for i in ids]  # byte-level BPE / sentencepiece: show real text
    # an id the model has but the tokenizer does not (a padded embedding table: a generated answer may hold one)
    return [t if t is not None else f"<id {int(i)}>" for t, i in zip(raw, ids)]


def encode(
    model: nn.Module,
    tokenizer,
    text: str,
    text_pair: str | None = None,
    *,
    max_length: int | None = None,
    truncation: bool = False,
) -> Encoded:
    """Encode one example unpadded. Raises :class:`EmptyInputError` / :class:`InputTooLongError` (and
    :class:`ArgumentError` for a text that is not a string or ``max_length`` that is not a positive int).

    ``truncated`` is True exactly when tokens of the text were dropped; truncation that would leave a segment
    without any of its tokens raises instead."""
    check_text(text, "text")
    if text_pair is not None:
        check_text(text_pair, "text_pair")
    max_length = validate.max_length(max_length)
    limit = max_positions(model, tokenizer)
    if max_length is not None:
        limit = min(limit, max_length)
    kwargs = {"return_tensors": "pt", "return_token_type_ids": True}
    enc = tokenizer(text, text_pair, **kwargs) if text_pair is not None else tokenizer(text, **kwargs)
    n = enc["input_ids"].shape[1]
    full_segments = _segment_sizes(tokenizer, enc, text_pair)
    for size, name in zip(full_segments, ("text", "text_pair")):
        if size == 0:
            raise EmptyInputError(f"the {name} gives no token but the tokenizer's special ones (it has only "
                                  f"characters the tokenizer drops: control, zero-width or unknown marks): pass "
                                  f"text with words in it")
    truncated = False
    specials = n - sum(full_segments)
    need = specials + len([f for f in full_segments if f])  # the special tokens and one token per segment
    if n > limit and limit < need:
        raise InputTooLongError(
            f"max_length={limit} leaves no room for the text: the tokenizer adds {specials} special tokens, so "
            f"pass max_length of at least {need}")
    if n > limit:
        if not truncation:
            raise InputTooLongError(
                f"the input is {n} tokens long but the model accepts at most {limit}: shorten the text, or pass "
                f"truncation=True to attribute only its first {limit} tokens (the result is flagged truncated)"
            )
        kw = {**kwargs, "truncation": True, "max_length": limit}
        try:
            enc = tokenizer(text, text_pair, **kw) if text_pair is not None else tokenizer(text, **kw)
        except Exception as exc:  # noqa: BLE001 - tokenizers raise assorted errors for impossible lengths
            raise InputTooLongError(
                f"cannot truncate the {n}-token input to {limit} tokens ({type(exc).__name__}: {exc}): pass a "
                f"larger max_length") from exc
        m = enc["input_ids"].shape[1]
        kept = _segment_sizes(tokenizer, enc, text_pair)
        if m > limit or any(k == 0 < f for k, f in zip(kept, full_segments)):
            raise InputTooLongError(
                f"max_length={limit} leaves no room for the text: the tokenizer adds {specials} special tokens, "
                f"so pass max_length of at least {need}")
        truncated = m < n
    ids = enc["input_ids"][0].tolist()
    if not ids:
        raise EmptyInputError("the text encodes to no tokens: pass text the tokenizer recognises")
    check_token_ids(model, tokenizer, ids)
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


def check_text(text, name: str = "text") -> str:
    """A non-empty string the tokenizer can encode (no unpaired UTF-16 surrogates)."""
    if not isinstance(text, str):
        raise ArgumentError(f"{name} must be a string, got {validate.show(text)} ({type(text).__name__})")
    if not _visible(text):
        what = "the text" if name == "text" else name
        fix = "a non-empty string to attribute" if name == "text" else "a non-empty second sentence, or text_pair=None"
        raise EmptyInputError(f"{what} is empty (nothing but whitespace, control or zero-width characters): "
                              f"pass {fix}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(
            f"{name} contains an unpaired surrogate {text[exc.start]!r} at position {exc.start}, which is not "
            f"text: decode the source with errors='replace' (or remove it)") from None
    return text


def _visible(text: str) -> bool:
    """Whether ``text`` has a character that is not whitespace, a control or a format (zero-width) character."""
    return any(not (c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp")) for c in text)


def _segment_sizes(tokenizer, enc, text_pair) -> list[int]:
    """Number of content (non-special, :func:`~.tokens.special_ids`) tokens of each segment of an encoding:
    [first] or [first, pair]."""
    ids = enc["input_ids"][0].tolist()
    special = special_ids(tokenizer)
    tti = enc.get("token_type_ids")
    if text_pair is None:
        return [sum(1 for i in ids if int(i) not in special)]
    segs = tti[0].tolist() if tti is not None and any(tti[0].tolist()) else _segments_from_separators(tokenizer, ids)
    return [sum(1 for i, s in zip(ids, segs) if s == k and int(i) not in special) for k in (0, 1)]


def _segments_from_separators(tokenizer, ids: list[int]) -> list[int]:
    sep = tokenizer.sep_token_id
    if sep is None or sep not in ids:
        return [0] * len(ids)
    first = ids.index(sep)
    j = first
    while j + 1 < len(ids) and ids[j + 1] == sep:
        j += 1
    return [0] * (j + 1) + [1] * (len(ids) - j - 1)


def embedding_rows(model: nn.Module) -> int | None:
    """Rows of the model's input embedding table (the largest token id + 1 it accepts), None if unknown."""
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    weight = getattr(emb, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None


def check_token_ids(model: nn.Module, tokenizer, ids: list[int]) -> None:
    """Raise :class:`TokenizerMismatchError` naming both sizes when an id is outside the embedding table (every
    encoding and every spliced trigger pattern is checked here, before a forward could index past the table)."""
    rows = embedding_rows(model)
    if rows is None or not ids:
        return
    bad = max(ids)
    if bad >= rows or min(ids) < 0:
        bad = bad if bad >= rows else min(ids)
        try:
            size = len(tokenizer)
        except TypeError:
            size = "?"
        raise TokenizerMismatchError(
            f"the tokenizer ({size} tokens) gave token id {bad} but the model's embedding table has {rows} rows "
            f"(ids 0..{rows - 1}): this tokenizer does not belong to this model. Load the tokenizer saved with the "
            f"model (AutoTokenizer.from_pretrained(<the model's name or folder>)), or after adding tokens call "
            f"model.resize_token_embeddings(len(tokenizer)) yourself")
