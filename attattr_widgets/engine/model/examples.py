"""Normalising collections of labelled examples for dataset-level engines."""
from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from .. import validate
from ..errors import ArgumentError, AttAttrError
from .encode import Encoded, check_text


@dataclass(frozen=True)
class Example:
    """One input: ``text``, optional ``text_pair`` (premise/hypothesis), optional integer ``label``, optional
    ``target``: for a causal LM, the answer that follows ``text`` (a string, tokenized without special tokens —
    leading spaces matter — or a tuple of token ids), attributed and evaluated teacher-forced."""

    text: str
    text_pair: str | None = None
    label: int | None = None
    target: str | tuple[int, ...] | None = None


_FORMS = ("a list of dicts {'text', 'text_pair'?, 'label'?} (or {'text': prompt, 'target': answer} for a causal LM), "
          "a dict of columns {'text': [...], 'label': [...]}, "
          "a pandas DataFrame or a datasets.Dataset with those columns, or a list of strings")


def _missing(v) -> bool:
    """None, or a missing value from pandas / numpy (NaN, pd.NA, NaT)."""
    if v is None:
        return True
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        return math.isnan(float(v))
    return type(v).__name__ in ("NAType", "NaTType")


def _rows(obj):
    """The examples as an indexable sequence of rows (dicts, strings or :class:`Example`)."""
    if isinstance(obj, (str, bytes)):
        raise AttAttrError(f"examples must be a collection of examples, not one string: wrap it in a list "
                           f"([{obj!r:.40}]); accepted: {_FORMS}")
    if hasattr(obj, "to_dict") and hasattr(obj, "columns") and hasattr(obj, "iloc"):  # pandas DataFrame
        return obj.to_dict("records")
    if isinstance(obj, Mapping):
        if "text" not in obj:
            raise AttAttrError(f"examples is a dict without a 'text' key (keys: {sorted(map(str, obj))}); "
                               f"accepted: {_FORMS}")
        if isinstance(obj["text"], str):
            raise AttAttrError("examples is one example (a dict whose 'text' is a string): wrap it in a list, "
                               "[{'text': ..., 'label': ...}]")
        cols = {str(k): list(v) for k, v in obj.items()}
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise AttAttrError(f"examples given as columns must have one length, got {lengths}")
        n = lengths["text"]
        return [{k: v[i] for k, v in cols.items()} for i in range(n)]
    try:
        len(obj)
        obj[0] if len(obj) else None
    except (TypeError, KeyError):
        obj = list(obj)
    return obj


def _is_picture(value) -> bool:
    """An image rather than a text: an array or tensor with a shape, or a PIL image (PIL not imported for it)."""
    pil = getattr(sys.modules.get("PIL.Image"), "Image", None)
    return (hasattr(value, "shape") and not isinstance(value, str)) or (pil is not None and isinstance(value, pil))


def as_examples(obj) -> list[Example]:
    """Accept a sequence of dicts ``{"text", "text_pair"?, "label"?}``, :class:`Example` objects, plain strings,
    a dict of columns ``{"text": [...], "label": [...]}``, a pandas ``DataFrame`` or a ``datasets.Dataset`` with
    those columns, and return a list of :class:`Example`.

    Texts must be strings; a missing ``text_pair`` / ``label`` (None, NaN) means none; labels must be whole
    numbers >= 0 (``1.7`` and ``-1`` are refused, not rounded or wrapped around).

    A non-empty ``list`` of :class:`Example` is already normalised: it is returned as it is (the same list, not
    copied), so the engine normalises a dataset once at its public entry and passes the list down.
    """
    if type(obj) is list and obj and all(type(x) is Example for x in obj):
        return obj
    if obj is None:
        raise AttAttrError(f"examples is None: pass at least one example; accepted: {_FORMS}")
    rows = _rows(obj)
    n = len(rows)
    if n == 0:
        raise AttAttrError("no examples given: pass at least one {'text': ..., 'label': ...}")
    out = []
    for i in range(n):
        item = rows[i]
        if isinstance(item, Example):
            out.append(item)
            continue
        if isinstance(item, str):
            out.append(Example(item))
            continue
        if not hasattr(item, "get"):
            raise AttAttrError(f"example {i} is a {type(item).__name__}: use a dict with 'text' (and 'label'); "
                               f"accepted: {_FORMS}")
        text = item.get("text")
        if _is_picture(item.get("image") if text is None else text):
            raise ArgumentError(f"example {i} is an image: dataset-level runs (iter_attributions, head importance, "
                                f"pruning, triggers) take text examples; attribute images one at a time with "
                                f"attribute(model, processor, image)")
        if text is None:
            raise AttAttrError(f"example {i} has no 'text' field (keys: {sorted(map(str, item))})")
        if not isinstance(text, str):
            raise ArgumentError(f"example {i}: 'text' must be a string, got {validate.show(text)} "
                                f"({type(text).__name__})")
        pair = item.get("text_pair")
        if _missing(pair):
            pair = None
        elif not isinstance(pair, str):
            raise ArgumentError(f"example {i}: 'text_pair' must be a string or None, got {validate.show(pair)}")
        label = item.get("label")
        label = None if _missing(label) else validate.label(label, f"example {i} 'label'")
        out.append(Example(text, pair, label, _answer(item.get("target"), i)))
    for i, ex in enumerate(out):
        try:
            check_text(ex.text, "text")
            if ex.text_pair is not None:
                check_text(ex.text_pair, "text_pair")
        except AttAttrError as exc:
            raise _indexed(exc, i) from None
    return out


def _answer(value, i: int):
    """An example's ``target`` answer: None, a non-empty string, or a tuple of token ids."""
    if not isinstance(value, (list, tuple)) and _missing(value):
        return None
    if isinstance(value, str):
        check_text(value, f"example {i} 'target'")
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return tuple(int(v) for v in value)
    raise ArgumentError(f"example {i}: 'target' (the answer after the prompt) must be a string or a list of token "
                        f"ids, got {validate.show(value)}")


def answers_of(items: list[Example]) -> bool:
    """Whether the examples carry answers (``target``): all of them, or none (a mix raises)."""
    have = [ex.target is not None for ex in items]
    if any(have) and not all(have):
        raise AttAttrError(f"examples {[i for i, h in enumerate(have) if not h][:5]} have no 'target' answer while "
                           f"others do: give every example an answer, or none")
    return bool(have) and have[0]


def _indexed(exc: AttAttrError, index: int) -> AttAttrError:
    """The same error, its message prefixed with the example's index."""
    return type(exc)(f"example {index}: {exc}")


def encode_examples(adapter, tokenizer, items: list[Example], *, offset: int = 0, **kw) -> list[Encoded]:
    """``adapter.encode`` (:meth:`~.adapters.TaskAdapter.encode`) for each example (``kw``: ``max_length``,
    ``truncation``), or for examples with answers (a causal LM) the prompt and the answer
    (:meth:`~.adapters.ContinuationAdapter.encode_answer`); an error names the example's index in the caller's
    list (``offset`` + position)."""
    out = []
    answers = answers_of(items) if items else False
    if answers:
        from .adapters import CausalLMAdapter, ContinuationAdapter

        if not isinstance(adapter, CausalLMAdapter):
            raise AttAttrError(f"examples with a 'target' answer need a causal language model; "
                               f"{type(adapter.model).__name__} is a {adapter.name} model: give 'label's instead")
        adapter = adapter if isinstance(adapter, ContinuationAdapter) else ContinuationAdapter(adapter.model)
    for i, ex in enumerate(items):
        try:
            if answers:
                if ex.text_pair is not None:
                    adapter.check_text_pair(tokenizer)
                out.append(adapter.encode_answer(tokenizer, ex.text, adapter.answer_ids(tokenizer, list(ex.target)
                                                 if isinstance(ex.target, tuple) else ex.target), **kw))
                continue
            out.append(adapter.encode(tokenizer, ex.text, ex.text_pair, **kw))
        except AttAttrError as exc:
            raise _indexed(exc, offset + i) from exc
    return out


def check_labels(items: list[Example], num_classes: int | None, what: str = "classes") -> None:
    """Raise :class:`ArgumentError` if a label is not a class of the model (``0 <= label < num_classes``)."""
    if not num_classes:
        return
    for i, ex in enumerate(items):
        if ex.label is not None:
            validate.label(ex.label, f"example {i} 'label'", num_classes, what=what)
