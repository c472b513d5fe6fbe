"""The one validation of a model and its tokenizer at the public edge: wrapped models, vocabulary sizes and
class names, each refused with a message naming the problem and the fix before any work is done."""
from __future__ import annotations

from torch import nn

from ..errors import AttAttrError, LabelNamesError
from .adapters import adapter_for
from .wrappers import check_unwrapped


def check_model_and_tokenizer(model, tokenizer) -> None:
    """Refuse, at once: what is not a model, ``torch.compile`` / ``DataParallel`` / ``DistributedDataParallel``
    wrappers (naming the module to pass instead), what cannot encode the model's inputs (its adapter's
    :meth:`~.adapters.TaskAdapter.check_tokenizer`: a tokenizer; an image processor for image classifiers; the
    processor for vision–language prompts), and a classifier whose ``config.id2label`` does not name its
    head's outputs 0..C-1 exactly (fewer or more names, non-contiguous keys such as ``{0: "neg", 5: "pos"}``).
    A config without ``id2label`` is fine: its classes are ``LABEL_0``..``LABEL_{C-1}``. Token ids beyond the
    embedding table are refused where ids are made (:func:`~.encode.check_token_ids`); a ``text_pair`` the model
    cannot read, by its adapter (:meth:`~.adapters.TaskAdapter.check_text_pair`)."""
    check_unwrapped(model)
    adapter_for(model).check_tokenizer(tokenizer)  # text models: a tokenizer; image models: the image processor
    _check_label_names(model)


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
    if not adapter_for(model).classifies:
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
