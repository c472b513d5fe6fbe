"""Private copies of the user's model: shadows (a private path to the blocks) and frozen structural copies.

Prefix caching without swapping modules: a shadow is a shallow copy of the module path from the root to the
blocks' ``ModuleList`` (parameters and all other modules shared, nothing of the user's changed) whose blocks below
l return their input and whose block l is fed a cached hidden state. A frozen copy is a structural copy of the
whole model whose parameters are detached aliases (same storage, ``requires_grad=False``), with its own mode
(eval) and its own config object: every engine pass runs on one, so autograd keeps only what the gradient w.r.t.
the taps needs, and the user's model — parameters and flags, mode, config — is never written, not even while a
run is going.
"""
from __future__ import annotations

import copy
import torch
from torch import nn

from .layout import LAYER_TAG, Layout


class _Stand(nn.Module):
    """Wraps block i in a shadow ``ModuleList``; unknown attributes read through to the block (ModernBERT and
    Qwen2 read ``attention_type`` off their layers)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        object.__setattr__(self, "_block", block)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_block"), name)


def _hidden_arg(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args, kwargs, hidden):
    if args:
        return (hidden,) + tuple(args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


class _Skip(_Stand):
    """Block below the attributed layer: returns its input (its real output is cached and fed above)."""

    def __init__(self, block, as_tuple: bool):
        super().__init__(block)
        self.as_tuple = as_tuple

    def forward(self, *args, **kwargs):
        h = _hidden_arg(args, kwargs)
        return (h,) if self.as_tuple else h


class _Feed(_Stand):
    """The attributed block: runs on the cached hidden state (rows, T, d) instead of its input."""

    def __init__(self, block, hidden: torch.Tensor):
        super().__init__(block)
        object.__setattr__(self, "_hidden", hidden)

    def forward(self, *args, **kwargs):
        args, kwargs = _with_hidden(args, kwargs, self._hidden)
        return self._block(*args, **kwargs)


class _Grab(_Stand):
    """Records the block's input hidden state (detached) into ``store[i]``, then runs the block."""

    def __init__(self, block, i: int, store: dict):
        super().__init__(block)
        object.__setattr__(self, "_store", store)
        self.i = i

    def forward(self, *args, **kwargs):
        self._store[self.i] = _hidden_arg(args, kwargs).detach()
        return self._block(*args, **kwargs)


class _Observe(_Stand):
    def __init__(self, block, i: int, kinds: dict):
        super().__init__(block)
        object.__setattr__(self, "_kinds", kinds)
        self.i = i

    def forward(self, *args, **kwargs):
        out = self._block(*args, **kwargs)
        self._kinds[self.i] = isinstance(out, tuple)
        return out




def _frozen_copy(model: nn.Module, layout: "Layout | None", *, config_overrides: dict | None = None,
                 originals: dict | None = None) -> nn.Module:
    """The engine's own structural copy of ``model``, on which every engine pass runs.

    Every module is copied (``copy.copy``, own ``_modules`` / ``_parameters`` / ``_buffers`` dicts, shared modules
    and tied weights kept shared) with its own ``training = False`` (eval semantics: no dropout, no RNG drawn);
    every parameter is replaced by a detached alias of the same storage with ``requires_grad=False`` (no bytes
    copied; the user's in-place updates show through). The copies share one copied ``config`` object of their
    own, which takes ``config_overrides`` (the model's adapter says which:
    :meth:`~..model.adapters.TaskAdapter.private_config`, e.g. a placeholder ``pad_token_id = -1`` — never in
    ``input_ids`` — for decoder classifiers without a pad id, which then pool each row's last token). Nothing of the user's — mode, flags, config — is ever written.
    Each copy has its own copies of the hook dicts: the user's hooks run on engine passes too, and a hook
    registered on a copy (transformers installs its output-capturing hooks on a model's first forward that asks
    for hidden states, e.g. a VLM's ``get_image_features``) never reaches the user's module.
    The copies of the attention modules carry their layer index (``LAYER_TAG``) when ``layout`` is given;
    ``originals`` (optional) receives ``id(copy) -> original module`` for every copied module."""
    layer_of = {} if layout is None else {id(m): (0 if layout.shared else i) for i, m in enumerate(layout.modules)}
    modules: dict[int, nn.Module] = {}
    params: dict[int, nn.Parameter] = {}
    user_cfg = getattr(model, "config", None)
    cfg = None if user_cfg is None else copy.copy(user_cfg)
    for k, v in (config_overrides or {}).items():
        if cfg is not None:
            setattr(cfg, k, v)

    def alias(p: nn.Parameter | None):
        if p is None:
            return None
        a = params.get(id(p))
        if a is None:
            a = params[id(p)] = nn.Parameter(p.detach(), requires_grad=False)
        return a

    def walk(m: nn.Module) -> nn.Module:
        c = modules.get(id(m))
        if c is None:
            c = modules[id(m)] = copy.copy(m)
            if originals is not None:
                originals[id(c)] = m
            d = c.__dict__
            d["training"] = False
            d["_parameters"] = {k: alias(p) for k, p in m._parameters.items()}
            d["_buffers"] = dict(m._buffers)
            d["_modules"] = {k: None if v is None else walk(v) for k, v in m._modules.items()}
            for k, v in m.__dict__.items():  # the user's hooks still run; a hook registered on the copy stays there
                if "hooks" in k and isinstance(v, dict):
                    d[k] = type(v)(v)
            if cfg is not None and d.get("config") is user_cfg:
                d["config"] = cfg
            if id(m) in layer_of:
                d[LAYER_TAG] = layer_of[id(m)]
        return c

    return walk(model)


def private_copy(model: nn.Module, *, config_overrides: dict | None = None) -> nn.Module:
    """:func:`_frozen_copy` without a layout: for passes that need no attention interception (plain
    predictions), so the user's model is never run in its own mode nor written."""
    return _frozen_copy(model, None, config_overrides=config_overrides)


def _shadow_with(model: nn.Module, path: list[str], blocks: nn.ModuleList, entries: list[nn.Module]) -> nn.Module:
    """A shallow copy of the modules on ``path`` (root → ModuleList) with ``entries`` as the blocks.

    Every other module, parameter, buffer and hook dict is ``model``'s, shared and unchanged; the copies have
    their own ``_modules`` dicts, so nothing the shadow does is visible to ``model``.
    """
    def clone(m: nn.Module) -> nn.Module:
        c = copy.copy(m)
        c.__dict__["_modules"] = dict(m._modules)
        return c

    root = clone(model)
    parent = root
    for name in path[:-1]:
        child = clone(parent._modules[name])
        parent._modules[name] = child
        parent = child
    if blocks is not None and path:
        new_list = nn.ModuleList(entries)
        new_list.__class__ = type(blocks)
        parent._modules[path[-1]] = new_list
    return root
