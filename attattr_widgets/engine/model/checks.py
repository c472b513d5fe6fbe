"""The one validation of a model and its tokenizer at the public edge: wrapped models, vocabulary sizes and
class names, each refused with a message naming the problem and the fix before any work is done."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ArgumentError, AttAttrError, LabelNamesError, TokenizerMismatchError
from .wrappers import check_unwrapped


def check_model_and_tokenizer(model, tokenizer) -> None:
    """Refuse, at once: what is not a model, ``torch.compile`` / ``DataParallel`` / ``DistributedDataParallel``
    wrappers (naming the module to pass instead), and a classifier whose ``config.id2label`` does not name its
    head's outputs 0..C-1 exactly (fewer or more names, non-contiguous keys such as ``{0: "neg", 5: "pos"}``).
    A config without ``id2label`` is fine: its classes are ``LABEL_0``..``LABEL_{C-1}``. Token ids beyond the
    embedding table are refused where ids are made (:func:`check_token_ids`)."""
    check_unwrapped(model)
    if tokenizer is None or not callable(tokenizer):
        raise ArgumentError(f"tokenizer must be the model's tokenizer (e.g. AutoTokenizer.from_pretrained(...)), "
                            f"got {type(tokenizer).__name__}")
    _check_label_names(model)


def check_text_pair(model: nn.Module, tokenizer) -> None:
    """A ``text_pair`` only where the model reads two segments: refused for language models (a prompt is one
    text; the answer is a ``target=``) and for decoder classifiers whose tokenizer has no separator (the two
    texts would be glued together, "is" + "Paris" → "isParis")."""
    from .kinds import CAUSAL_LM, is_decoder_classifier, model_kind

    if model_kind(model) == CAUSAL_LM:
        raise ArgumentError(
            "text_pair does not apply to a language model: it continues one text. Put the whole prompt in text "
            "(e.g. 'The capital of France is') and the answer to attribute in target= (e.g. target=' Paris')")
    if is_decoder_classifier(model) and getattr(tokenizer, "sep_token", None) is None:
        raise ArgumentError(
            f"text_pair: {type(model).__name__}'s tokenizer has no separator token, so the pair would be glued to "
            f"the text with nothing between them: join them yourself the way the model was trained (e.g. "
            f"text=premise + ' ' + hypothesis) and pass text_pair=None")


def embedding_rows(model: nn.Module) -> int | None:
    """Rows of the model's input embedding table (the largest token id + 1 it accepts), None if unknown."""
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    weight = getattr(emb, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None


def check_token_ids(model: nn.Module, tokenizer, ids: list[int]) -> None:
    """Raise :class:`TokenizerMismatchError` naming both sizes when an id is outside the embedding table."""
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


def head_outputs(model: nn.Module) -> int | None:
    """How many outputs (classes / vocabulary entries) the model's head really has: the last dimension of its
    logits on the discovery forward (:func:`~..intercept.controller.controller_for`, once per model); None for
    a model the engine cannot intercept (the run itself says why)."""
    from ..intercept.controller import controller_for

    try:
        return controller_for(model).layout.outputs
    except AttAttrError:
        return None


def _check_label_names(model: nn.Module) -> None:
    from .kinds import CLASSIFIER, model_kind

    if model_kind(model) != CLASSIFIER:
        return
    id2label = getattr(model.config, "id2label", None)
    if not id2label:
        return
    C = head_outputs(model)
    if C is None:
        return
    try:
        keys = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        keys = None
    if keys != list(range(C)):
        shown = ", ".join(f"{k!r}: {v!r}" for k, v in list(id2label.items())[:6]) + (", …" if len(id2label) > 6 else "")
        raise LabelNamesError(
            f"model.config.id2label has {len(id2label)} name(s) {{{shown}}} but the model's classification head has "
            f"{C} outputs (classes 0..{C - 1}), so classes would be misnamed: set model.config.id2label to one name "
            f"per output with keys 0..{C - 1} (e.g. {{0: 'LABEL_0', …, {C - 1}: 'LABEL_{C - 1}'}}), or to None for "
            f"LABEL_0..LABEL_{C - 1}")
