"""Refusing wrapped models (``torch.compile``, ``DataParallel``, ``DistributedDataParallel``) and what is not a
model at all, naming what to pass instead: checked first by every entry point (through
:func:`~.checks.check_model_and_tokenizer` and :func:`~..intercept.controller.controller_for`)."""
from __future__ import annotations

from torch import nn

from ..errors import ArgumentError, UnsupportedModelError


def check_unwrapped(model) -> None:
    """A plain transformers model: wrappers are refused naming the module to pass (through nested wrappers:
    ``model.module._orig_mod`` for ``DataParallel(torch.compile(model))``)."""
    inner, path, kinds = model, "model", []
    while True:
        if isinstance(getattr(inner, "_orig_mod", None), nn.Module):
            inner, path = inner._orig_mod, path + "._orig_mod"
            kinds.append(f"a torch.compile() wrapper ({type(model).__name__ if not kinds else 'OptimizedModule'}), "
                         f"whose compiled graph the attention interception cannot enter")
        elif isinstance(inner, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            kinds.append(f"wrapped in {type(inner).__name__} (attattr-widgets runs on the device the model is "
                         f"on; several GPUs: iter_attributions(..., backend=aw.RayBackend(...)))")
            inner, path = inner.module, path + ".module"
        else:
            break
    if kinds:
        raise UnsupportedModelError(
            f"model is {'; inside it, '.join(kinds)}: pass {path} ({type(inner).__name__}, the model itself, same "
            f"weights)" + (" — keep the compiled one for your own forwards" if "_orig_mod" in path else ""))
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise ArgumentError(f"model must be a transformers model (a torch.nn.Module with a .config, e.g. from "
                            f"AutoModelForSequenceClassification.from_pretrained(...)), got {type(model).__name__}")
