"""Normalising collections of labelled examples for dataset-level engines."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import AttAttrError


@dataclass(frozen=True)
class Example:
    """One input: ``text``, optional ``text_pair`` (premise/hypothesis), optional integer ``label``."""

    text: str
    text_pair: str | None = None
    label: int | None = None


def as_examples(obj) -> list[Example]:
    """Accept a sequence of dicts ``{"text", "text_pair"?, "label"?}``, :class:`Example` objects, plain strings,
    or a ``datasets.Dataset`` with those columns, and return a list of :class:`Example`."""
    if isinstance(obj, (str, bytes)):
        raise AttAttrError("examples must be a collection of examples, not one string: wrap it in a list")
    try:
        n = len(obj)
    except TypeError:
        obj = list(obj)
        n = len(obj)
    if n == 0:
        raise AttAttrError("no examples given: pass at least one {'text': ..., 'label': ...}")
    out = []
    for i in range(n):
        item = obj[i]
        if isinstance(item, Example):
            out.append(item)
            continue
        if isinstance(item, str):
            out.append(Example(item))
            continue
        if not hasattr(item, "get"):
            raise AttAttrError(f"example {i} is a {type(item).__name__}: use a dict with 'text' (and 'label')")
        text = item.get("text")
        if text is None:
            raise AttAttrError(f"example {i} has no 'text' field (keys: {sorted(item)})")
        label = item.get("label")
        out.append(Example(str(text), item.get("text_pair"), None if label is None else int(label)))
    return out
