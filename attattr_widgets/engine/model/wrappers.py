"""Refusing wrapped models (``torch.compile``, ``DataParallel``, ``DistributedDataParallel``) and what is not a
model at all, naming what to pass instead: checked first by every entry point (through
:func:`~.checks.check_model_and_tokenizer` and :func:`~..intercept.controller.controller_for`)."""
from __future__ import annotations

from torch import nn

from ..errors import ArgumentError, UnsupportedModelError


def check_unwrapped(model) -> None:
    """A plain transformers model: wrappers are refused naming the module to pass."""
    wrapped = getattr(model, "_orig_mod", None)
    if isinstance(wrapped, nn.Module):
        raise UnsupportedModelError(
            f"model is a torch.compile() wrapper ({type(model).__name__}), whose compiled graph the attention "
            f"interception cannot enter: pass model._orig_mod ({type(wrapped).__name__}, the original module, "
            f"same weights) — keep the compiled one for your own forwards")
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        raise UnsupportedModelError(
            f"model is wrapped in {type(model).__name__}: pass model.module ({type(model.module).__name__}, the "
            f"model itself); attattr-widgets runs on the device the model is on (several GPUs: "
            f"iter_attributions(..., backend=aw.RayBackend(...)))")
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise ArgumentError(f"model must be a transformers model (a torch.nn.Module with a .config, e.g. from "
                            f"AutoModelForSequenceClassification.from_pretrained(...)), got {type(model).__name__}")
