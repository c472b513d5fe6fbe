"""Errors raised by the engine. Every message names the problem and how to fix it."""
from __future__ import annotations


class AttAttrError(ValueError):
    """Base class of every error the engine raises on bad input or an unsupported setup."""


class ArgumentError(AttAttrError, TypeError):
    """An argument has the wrong type or an impossible value (the message names it and says what to pass).

    A ``ValueError`` and a ``TypeError``, so code catching either keeps working."""


class EmptyInputError(AttAttrError):
    """The text (or text pair) has no content."""


class InputTooLongError(AttAttrError):
    """The encoded input has more tokens than the model has positions."""


class UnsupportedModelError(AttAttrError):
    """The model's attention does not route through transformers' AttentionInterface, or its head (token
    classification, multiple choice, an image model without text input, …) has no prediction to attribute."""


class NoClassificationHeadError(AttAttrError):
    """The model has neither a classification head nor a language-model head."""


class TokenizerMismatchError(AttAttrError):
    """The tokenizer produces token ids the model's embedding table does not have."""


class LabelNamesError(AttAttrError):
    """``config.id2label`` does not name the classification head's outputs 0..C-1 exactly."""


class TargetError(AttAttrError):
    """The requested target (class or next token) does not exist for this model."""


class AttributionOutOfMemoryError(AttAttrError, MemoryError):
    """Even the smallest chunk of integration points does not fit in memory."""


class AttributionCancelled(Exception):
    """Raised inside a run when its `cancel` event was set; the run stops cleanly, nothing is half-written."""


class OutputPathError(AttAttrError):
    """A file cannot be written where asked (no such folder, a folder in the way, no permission)."""


class ResultFileError(AttAttrError):
    """A result file is missing, not a result file, of another kind, or inconsistent."""


def check_cancel(cancel) -> None:
    """Raise :class:`AttributionCancelled` if the ``threading.Event`` ``cancel`` is set (None: never)."""
    if cancel is not None and cancel.is_set():
        raise AttributionCancelled("cancelled")
