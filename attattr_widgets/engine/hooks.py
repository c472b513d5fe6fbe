"""Side-effect-free attention injection: the model keeps its own (fused) attention, a run only watches it.

While any run is active, the attention functions the model uses (``config._attn_implementation``: ``"sdpa"``,
``"eager"``, ``"flash_attention_2"``, …) are looked up through a thin wrapper registered in the global
``ALL_ATTENTION_FUNCTIONS`` instance. The wrapper calls exactly the function the model would have called, with
the same arguments, and only then consults the **calling thread's** session (``threading.local``): forwards in
any other thread — the user's own cells while an Explorer streams in the background — run the unchanged function
and get bit-identical results. The wrapper is removed when the last run ends. Nothing is stamped on the model,
no module is swapped, ``config`` is not touched, the model is never moved.

A session (``ctrl.session(...)``, thread-local) can, per layer l:

* scale the layer's per-head **output** ``out_l = P_l V_l`` by a per-row α (``alpha={l: (B,)}``) — identical to
  scaling the probabilities P_l, since out is linear in P;
* add a zero tap to that output (``out_taps={l}`` → ``s.leaves[l]`` of shape (B, T, H, d)) whose gradient is
  ∂F/∂out_l: the output form of AttAttr, ``Attr_l = P ⊙ (Ḡ Vᵀ)`` (engine-notes §7);
* keep one head per entry of ``head_mask={l: (H,) or (B, H)}`` (1 keeps, 0 prunes), as output scaling;
* capture the layer's query/key/value, mask and arguments (``capture={l}`` → ``s.captured[l]``, a
  :class:`Captured`), from which :func:`attention_probs` forms P explicitly, in row tiles;
* for the reference/paper algorithms and dataset engines that need P itself (``record``, ``tap_layers``,
  ``grad_layers``): form P explicitly at that layer (eager maths) and apply α / a gradient leaf / a tap to P.

Prefix caching without swapping modules: :meth:`AttnController.shadow` builds a shallow copy of the module path
from the root to the blocks' ``ModuleList`` (parameters and all other modules shared, nothing of the user's
changed) whose blocks below l return their input and whose block l is fed a cached hidden state. With
``frozen=True`` the shadow is a structural copy of the whole model whose parameters are detached aliases (same
storage, ``requires_grad=False``): autograd then keeps only what the gradient w.r.t. the taps needs — not the
input of every Linear, as it would for weights that require grad — and the user's parameters keep their flags.

Layers are discovered by one tiny forward in the discovering thread (works without ``layer_idx``, e.g.
DistilBERT, and for ALBERT, whose single attention module runs once per layer: indexed by call count). Models
whose attention never reaches the interface (DeBERTa, XLNet, BLOOM, …; Falcon before transformers 5.25) raise
:class:`UnsupportedModelError`.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
import transformers
from torch import nn

from .errors import UnsupportedModelError, check_cancel

SUPPORTED_FAMILIES = (
    "BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA, ALBERT, ModernBERT (encoders); GPT-2, Llama, Mistral, Qwen2, "
    "Gemma 1/2, Falcon (transformers >= 5.25) and other decoders whose attention calls transformers' "
    "AttentionInterface"
)
# Families whose attention moved onto the interface in a later transformers release than the one installed.
_ROUTED_SINCE = {"falcon": (5, 25)}


# ------------------------------------------------------------------------------------------------------------
# explicit probabilities (the one place P is formed)


@dataclass
class Captured:
    """What layer l's attention function received in a clean pass (detached).

    ``query`` (B, Hq, T, d), ``key``/``value`` (B, Hkv, T, d), ``mask`` (None, bool or additive, broadcastable to
    (B, 1|H, T, T); flash attention's (B, T) padding mask becomes (B, 1, 1, T)), ``causal`` (apply a causal mask
    on top: SDPA's ``is_causal`` without a mask, or flash attention),
    ``scaling``, ``softcap``, ``position_bias``.
    """

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None
    causal: bool
    scaling: float
    softcap: float | None
    position_bias: torch.Tensor | None
    out: torch.Tensor | None = None  # the layer's per-head output P V, (B, T, Hq, d), at α = 1

    def values(self) -> torch.Tensor:
        """V per query head: (B, Hq, T, d) (grouped-query KV heads repeated)."""
        return _repeat_kv(self.value, self.query.shape[1])


def _repeat_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x if x.shape[1] == heads else x.repeat_interleave(heads // x.shape[1], dim=1)


def attention_probs(c: Captured, rows: slice | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Post-softmax probabilities of query rows ``rows`` (default all): (B, Hq, t, Tk), without grad.

    Mirrors the eager maths of transformers (GQA, bool/additive masks, T5 position bias, Gemma 2 softcap);
    half precision is computed in fp32.
    """
    q = c.query if rows is None else c.query[:, :, rows]
    k = _repeat_kv(c.key, c.query.shape[1])
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    scores = torch.matmul(q.to(work), k.to(work).transpose(-1, -2)) * c.scaling
    Tq0 = 0 if rows is None else (rows.start or 0)
    Tk = k.shape[-2]
    if c.position_bias is not None:
        pb = c.position_bias if rows is None else c.position_bias[..., rows, :]
        scores = scores + pb[..., :Tk].to(work)
    if c.softcap is not None:
        scores = torch.tanh(scores / c.softcap) * c.softcap
    if c.mask is not None:
        m = c.mask if rows is None or c.mask.shape[-2] == 1 else c.mask[..., rows, :]
        m = m[..., :Tk]
        if m.dtype == torch.bool:
            scores = scores.masked_fill(~m, torch.finfo(work).min)
        else:
            scores = scores + m.to(work)
    if c.causal:
        t = scores.shape[-2]
        qpos = torch.arange(Tq0, Tq0 + t, device=scores.device).view(-1, 1) + (Tk - c.query.shape[2])
        scores = scores.masked_fill(torch.arange(Tk, device=scores.device).view(1, -1) > qpos,
                                    torch.finfo(work).min)
    probs = torch.softmax(scores, dim=-1)
    return probs if dtype is None else probs.to(dtype)


# ------------------------------------------------------------------------------------------------------------
# sessions (thread-local)


@dataclass
class Session:
    """One thread's injection settings and what the forwards inside it produced (see the module docstring)."""

    layout: "Layout"
    alpha: dict[int, torch.Tensor] = field(default_factory=dict)
    grad_layers: frozenset[int] = frozenset()
    tap_layers: frozenset[int] = frozenset()
    out_taps: frozenset[int] = frozenset()
    head_mask: dict[int, torch.Tensor] = field(default_factory=dict)
    record: bool = False
    capture: frozenset[int] = frozenset()
    cancel: Any = None
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    leaves: dict[int, torch.Tensor] = field(default_factory=dict)
    captured: dict[int, Captured] = field(default_factory=dict)
    calls: int = 0
    spy: list | None = None  # discovery: (module, query heads) of every attention call, nothing changed

    def explicit(self, layer: int) -> bool:
        return self.record or layer in self.grad_layers or layer in self.tap_layers


_local = threading.local()


def _current() -> Session | None:
    return getattr(_local, "session", None)


def _process(s: Session, layer: int, base: Callable, module, query, key, value, attention_mask, kwargs):
    """The session's work at one attention call; returns the attention function's ``(out, weights)``."""
    check_cancel(s.cancel)
    if layer in s.capture:
        s.captured[layer] = _capture(module, query, key, value, attention_mask, kwargs)
    if s.explicit(layer):
        c = _capture(module, query, key, value, attention_mask, kwargs, detach=False)
        probs = attention_probs(c).to(query.dtype)
        values = _repeat_kv(value, query.shape[1])
        if layer in s.captured and s.captured[layer].out is None:
            s.captured[layer].out = torch.matmul(probs.detach(), values).transpose(1, 2)
        if s.record:
            s.attn[layer] = probs.detach()
        a = s.alpha.get(layer)
        if layer in s.grad_layers:
            leaf = probs.detach()
            if a is not None:
                leaf = leaf * a.to(leaf.dtype).view(-1, 1, 1, 1)
            probs = leaf.requires_grad_(True)
            s.leaves[layer] = probs
        elif a is not None:
            probs = probs * a.to(probs.dtype).view(-1, 1, 1, 1)
        if layer in s.tap_layers:
            tap = torch.zeros_like(probs, requires_grad=True)
            s.leaves[layer] = tap
            probs = probs + tap
        keep = s.head_mask.get(layer)
        if keep is not None:
            keep = keep.to(device=probs.device, dtype=probs.dtype)
            probs = probs * (keep.view(1, -1, 1, 1) if keep.dim() == 1 else keep.view(keep.shape[0], -1, 1, 1))
        out = torch.matmul(probs.to(value.dtype), values)
        return out.transpose(1, 2).contiguous(), probs
    out, weights = base(module, query, key, value, attention_mask, **kwargs)
    if layer in s.captured and s.captured[layer].out is None:
        s.captured[layer].out = out.detach()
    a = s.alpha.get(layer)
    if a is not None:  # out (B, T, H, d): scaling P by α == scaling out by α
        out = out * a.to(out.dtype).view(-1, 1, 1, 1)
    if layer in s.out_taps:
        tap = torch.zeros_like(out, requires_grad=True)
        s.leaves[layer] = tap
        out = out + tap
    keep = s.head_mask.get(layer)
    if keep is not None:
        keep = keep.to(device=out.device, dtype=out.dtype)
        out = out * (keep.view(1, 1, -1, 1) if keep.dim() == 1 else keep.view(keep.shape[0], 1, -1, 1))
    if s.cancel is not None and out.requires_grad:
        out.register_hook(lambda g: (check_cancel(s.cancel), g)[1])  # Stop answers during the backward too
    return out, weights


def _capture(module, query, key, value, mask, kwargs, detach: bool = True) -> Captured:
    if getattr(module, "sinks", None) is not None:
        raise UnsupportedModelError(
            f"{type(module).__name__} uses attention sinks (gpt-oss), which attattr-widgets does not support; "
            f"supported: {SUPPORTED_FAMILIES}"
        )
    d = (lambda t: t.detach()) if detach else (lambda t: t)
    scaling = kwargs.get("scaling")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    is_causal = kwargs.get("is_causal")
    is_causal = getattr(module, "is_causal", False) if is_causal is None else is_causal
    pb = kwargs.get("position_bias")
    if mask is not None and mask.dim() == 2:  # flash attention gets the (B, T) padding mask, causality apart
        mask = mask.bool()[:, None, None, :]
        causal = bool(is_causal) and query.shape[2] > 1
    else:  # a 4-D mask already holds causality; SDPA's is_causal applies only when there is no mask
        causal = bool(is_causal) and mask is None and query.shape[2] > 1
    return Captured(
        query=d(query), key=d(key), value=d(value), mask=None if mask is None else d(mask),
        causal=causal, scaling=float(scaling),
        softcap=kwargs.get("softcap"), position_bias=None if pb is None else d(pb),
    )


# ------------------------------------------------------------------------------------------------------------
# the interceptor: installed while runs are active, exact delegation otherwise


_install_lock = threading.RLock()
_installed: dict[str, tuple[int, Any]] = {}  # implementation name -> (refcount, previous local entry or _NONE)
_NONE = object()
_layouts: "weakref.WeakKeyDictionary[nn.Module, Layout]" = weakref.WeakKeyDictionary()


def _interface():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS


def _base_function(name: str, previous: Any) -> Callable | None:
    if previous is not _NONE:
        return previous
    if name == "eager":
        return None  # resolved per module: the model file's own eager_attention_forward
    return type(_interface())._global_mapping[name]


def _eager_for(module: nn.Module) -> Callable:
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        raise UnsupportedModelError(
            f"{type(module).__name__} runs eager attention but its module has no eager_attention_forward; "
            f"switch the model to SDPA (model.set_attn_implementation('sdpa')). Supported: {SUPPORTED_FAMILIES}"
        )
    return fn


def _make_wrapper(name: str, base: Callable | None) -> Callable:
    def attattr_watch(module, query, key, value, attention_mask, *args, **kwargs):
        fn = base if base is not None else _eager_for(module)
        s = _current()
        if s is not None and s.spy is not None:
            s.spy.append((module, query.shape[1]))
            s = None
        # the interface passes everything after the mask by keyword; stay exact if a model does not
        if s is None or args or (layer := s.layout.layer_of(module, s)) is None:
            return fn(module, query, key, value, attention_mask, *args, **kwargs)
        return _process(s, layer, fn, module, query, key, value, attention_mask, kwargs)

    attattr_watch.__attattr_base__ = base  # type: ignore[attr-defined]
    return attattr_watch


@contextlib.contextmanager
def _watching(names: Iterable[str]) -> Iterator[None]:
    """Install the wrapper for ``names`` (reference-counted across threads) for the duration of the block."""
    names = sorted(set(names))
    iface = _interface()
    with _install_lock:
        for name in names:
            count, prev = _installed.get(name, (0, None))
            if count == 0:
                prev = iface._local_mapping.get(name, _NONE)
                iface._local_mapping[name] = _make_wrapper(name, _base_function(name, prev))
            _installed[name] = (count + 1, prev)
    try:
        yield
    finally:
        with _install_lock:
            for name in names:
                count, prev = _installed[name]
                if count == 1:
                    if prev is _NONE:
                        iface._local_mapping.pop(name, None)
                    else:
                        iface._local_mapping[name] = prev
                    del _installed[name]
                else:
                    _installed[name] = (count - 1, prev)


def _implementations(model: nn.Module) -> set[str]:
    names = set()
    for m in model.modules():
        cfg = getattr(m, "config", None)
        impl = getattr(cfg, "_attn_implementation", None)
        if isinstance(impl, str):
            names.add(impl.removeprefix("paged|") if impl.startswith("paged|") and impl != "paged|eager" else impl)
    return names or {"eager"}


# ------------------------------------------------------------------------------------------------------------
# layout of one model (discovered once, kept outside the model)


@dataclass
class Layout:
    """Where a model's attention lives: ``modules`` in call order (L entries; one shared module for ALBERT),
    ``num_heads`` (query heads), ``blocks`` (the ``nn.ModuleList`` of the L blocks, or None), ``path`` (attribute
    names from the root to it) and ``impls`` (attention implementation names the model uses)."""

    modules: list[nn.Module]
    num_heads: int
    shared: bool
    blocks: nn.ModuleList | None
    path: list[str]
    impls: set[str]
    block_outputs_tuple: list[bool]
    index: dict[int, int] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    def layer_of(self, module: nn.Module, s: Session) -> int | None:
        tag = module.__dict__.get(_LAYER_TAG)  # a frozen copy's attention module: the original's layer
        if self.shared:
            if module is not self.modules[0] and tag is None:
                return None
            layer = s.calls % self.num_layers
            s.calls += 1
            return layer
        return tag if tag is not None else self.index.get(id(module))


def _discover(model: nn.Module) -> Layout:
    impls = _implementations(model)
    calls: list = []
    with _watching(impls), _session(Session(layout=None, spy=calls)), torch.no_grad():  # type: ignore[arg-type]
        model(**_dummy_inputs(model))
    order = [m for m, _ in calls]
    heads = [h for _, h in calls]
    if not order:
        model_type = getattr(model.config, "model_type", "?")
        since = _ROUTED_SINCE.get(model_type)
        upgrade = (f" transformers {'.'.join(map(str, since))} routes {model_type} through the interface; you have "
                   f"{transformers.__version__}: pip install 'transformers>={since[0]}.{since[1]}'." if since else "")
        raise UnsupportedModelError(
            f"{type(model).__name__} (model_type={model_type!r}) does not route its attention through "
            f"transformers' AttentionInterface, so its attention probabilities cannot be attributed.{upgrade} "
            f"Supported: {SUPPORTED_FAMILIES}. Not supported: DeBERTa, XLNet, BLOOM, MPT, GPT-Neo, Longformer, "
            f"BigBird and other models with a hand-written attention."
        )
    shared = len(set(map(id, order))) != len(order)
    blocks, path = (None, []) if shared else _find_blocks(model, order)
    block_io = {} if blocks is None else _block_output_kinds(model, blocks, path)
    layout = Layout(
        modules=order, num_heads=heads[0], shared=shared, blocks=blocks, path=path, impls=impls,
        block_outputs_tuple=[block_io.get(i, False) for i in range(len(order))],
    )
    if not shared:
        layout.index = {id(m): i for i, m in enumerate(order)}
    return layout


def _find_blocks(model: nn.Module, order: list[nn.Module]) -> tuple[nn.ModuleList | None, list[str]]:
    """The ``nn.ModuleList`` whose i-th child contains the i-th attention module, and its attribute path."""
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) == len(order):
            if all(any(sub is att for sub in block.modules()) for block, att in zip(m, order)):
                return m, name.split(".") if name else []
    return None, []


def _block_output_kinds(model: nn.Module, blocks: nn.ModuleList, path: list[str]) -> dict[int, bool]:
    """Whether each block returns a tuple (older block APIs) rather than a tensor, seen on the dummy input."""
    kinds: dict[int, bool] = {}
    shadow = _shadow_with(model, path, blocks, [_Observe(b, i, kinds) for i, b in enumerate(blocks)])
    with torch.no_grad():
        shadow(**_dummy_inputs(model))
    return kinds


def _dummy_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    ids = torch.tensor([[min(5, vocab - 1), min(6, vocab - 1), min(7, vocab - 1)]], device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


# ------------------------------------------------------------------------------------------------------------
# shadow models: the user's modules, a private path to the blocks


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


_LAYER_TAG = "_attattr_layer"  # set on a frozen copy's attention modules (ours), never on the user's


def _frozen_copy(model: nn.Module, layout: "Layout") -> nn.Module:
    """A structural copy of ``model``: every module copied (``copy.copy``, own ``_modules`` / ``_parameters`` /
    ``_buffers`` dicts, shared modules and tied weights kept shared), every parameter replaced by a detached alias
    of the same storage with ``requires_grad=False`` (no bytes copied; the user's in-place updates show through).
    The copies of the attention modules carry their layer index (``_LAYER_TAG``)."""
    layer_of = {id(m): (0 if layout.shared else i) for i, m in enumerate(layout.modules)}
    modules: dict[int, nn.Module] = {}
    params: dict[int, nn.Parameter] = {}

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
            d = c.__dict__
            d["_parameters"] = {k: alias(p) for k, p in m._parameters.items()}
            d["_buffers"] = dict(m._buffers)
            d["_modules"] = {k: None if v is None else walk(v) for k, v in m._modules.items()}
            if id(m) in layer_of:
                d[_LAYER_TAG] = layer_of[id(m)]
        return c

    return walk(model)


def _shadow_with(model: nn.Module, path: list[str], blocks: nn.ModuleList, entries: list[nn.Module],
                 config_overrides: dict | None = None) -> nn.Module:
    """A shallow copy of the modules on ``path`` (root → ModuleList) with ``entries`` as the blocks.

    Every other module, parameter, buffer and hook dict is the user's, shared and unchanged; the copies have
    their own ``_modules`` dicts, so nothing the shadow does is visible to the user's model.
    """
    def clone(m: nn.Module) -> nn.Module:
        c = copy.copy(m)
        c.__dict__["_modules"] = dict(m._modules)
        return c

    root = clone(model)
    if config_overrides:
        cfg = copy.copy(model.config)
        for k, v in config_overrides.items():
            setattr(cfg, k, v)
        root.__dict__["config"] = cfg
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


# ------------------------------------------------------------------------------------------------------------
# mode guard: eval() for the run, restored afterwards; a pad id for decoder classifiers


_mode_lock = threading.RLock()
_mode_state: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _mode(model: nn.Module, fake_pad: bool = False) -> Iterator[None]:
    """Reference-counted across threads: the first run puts a training-mode model in eval() (dropout off) and,
    for ``fake_pad``, gives a decoder classifier without a pad id the id -1 (never in ``input_ids``); the last run
    restores both. A model already in eval() with a pad id — the usual case — is never touched."""
    with _mode_lock:
        st = _mode_state.get(model)
        if st is None:
            st = [0, model.training, "unset", 0]
            _mode_state[model] = st
            if model.training:
                model.eval()
        st[0] += 1
        if fake_pad:
            if st[3] == 0:
                st[2] = getattr(model.config, "pad_token_id", None)
                if st[2] is None:
                    model.config.pad_token_id = -1
            st[3] += 1
    try:
        yield
    finally:
        with _mode_lock:
            if fake_pad:
                st[3] -= 1
                if st[3] == 0 and st[2] is None:
                    model.config.pad_token_id = None
            st[0] -= 1
            if st[0] == 0:
                if st[1]:
                    model.train(True)
                del _mode_state[model]


def prepared(model: nn.Module, kind: str, rows_need_pad: bool):
    """Context for dataset engines: eval() semantics and (for decoder classifiers run one example at a time
    without a pad id) a placeholder pad id, restored afterwards under a lock. The user's parameters are never
    frozen: gradient passes run on ``ctrl.shadow(frozen=True)`` and differentiate w.r.t. taps only."""
    from .inputs import CLASSIFIER

    fake = kind == CLASSIFIER and getattr(model.config, "pad_token_id", None) is None and not rows_need_pad
    return _mode(model, fake_pad=fake)


# ------------------------------------------------------------------------------------------------------------
# the controller (API of the dataset engines and the attribution engine)


@contextlib.contextmanager
def _session(s: Session) -> Iterator[Session]:
    prev = getattr(_local, "session", None)
    _local.session = s
    try:
        yield s
    finally:
        _local.session = prev
        _local.last = s


class AttnController:
    """Per-model view of the injection. Create with :func:`controller_for` (cached outside the model).

    ``num_layers`` (L), ``num_heads`` (H, query heads), ``blocks`` (the ``nn.ModuleList`` of the L blocks, or
    None where the layers share one module, as in ALBERT). ``attn`` / ``leaves``: what the calling thread's
    latest session recorded.
    """

    def __init__(self, model: nn.Module, layout: Layout):
        self._model = weakref.ref(model)
        self.layout = layout
        self.num_layers = layout.num_layers
        self.num_heads = layout.num_heads
        self.blocks = layout.blocks
        self.shared = layout.shared

    @property
    def model(self) -> nn.Module:
        m = self._model()
        if m is None:
            raise RuntimeError("the model of this controller no longer exists")
        return m

    @property
    def attn(self) -> dict[int, torch.Tensor]:
        s = _current() or getattr(_local, "last", None)
        return {} if s is None else s.attn

    @property
    def leaves(self) -> dict[int, torch.Tensor]:
        s = _current() or getattr(_local, "last", None)
        return {} if s is None else s.leaves

    @contextlib.contextmanager
    def session(
        self,
        *,
        alpha: dict[int, torch.Tensor] | None = None,
        grad_layers: Iterable[int] = (),
        tap_layers: Iterable[int] = (),
        out_taps: Iterable[int] = (),
        head_mask: dict[int, torch.Tensor] | None = None,
        record: bool = False,
        capture: Iterable[int] = (),
        cancel=None,
    ) -> Iterator[Session]:
        """Configure the injection for the forwards this thread runs inside the ``with`` block.

        Other threads are not affected. Yields the :class:`Session` (``.attn``, ``.leaves``, ``.captured``).
        """
        s = Session(
            layout=self.layout, alpha=dict(alpha or {}), grad_layers=frozenset(grad_layers),
            tap_layers=frozenset(tap_layers), out_taps=frozenset(out_taps), head_mask=dict(head_mask or {}),
            record=record, capture=frozenset(capture), cancel=cancel,
        )
        with _watching(self.layout.impls), _session(s):
            yield s

    # -- shadow models ----------------------------------------------------------------------------------------
    def shadow(self, *, start: int = 0, hidden: torch.Tensor | None = None, grab: Iterable[int] = (),
               store: dict | None = None, config_overrides: dict | None = None, frozen: bool = False) -> nn.Module:
        """The model with blocks ``< start`` skipped and block ``start`` fed ``hidden`` (rows, T, d), and/or the
        inputs of blocks ``grab`` recorded into ``store``; ``frozen``: on a copy whose parameters do not require
        grad (for passes that differentiate w.r.t. taps only). The user's model is unchanged."""
        lay = self.layout
        grab = set(grab)
        model = _frozen_copy(self.model, lay) if frozen else self.model
        if lay.blocks is None:
            if hidden is not None or grab:
                raise RuntimeError("prefix caching needs one block per layer")
            return _shadow_with(model, [], None, [], config_overrides)
        blocks = model.get_submodule(".".join(lay.path)) if frozen else lay.blocks
        entries: list[nn.Module] = []
        for i, b in enumerate(blocks):
            if hidden is not None and i < start:
                entries.append(_Skip(b, lay.block_outputs_tuple[i]))
            elif hidden is not None and i == start:
                entries.append(_Feed(b, hidden))
            elif i in grab:
                entries.append(_Grab(b, i, store if store is not None else {}))
            else:
                entries.append(b)
        return _shadow_with(model, lay.path, blocks, entries, config_overrides)


_controllers_lock = threading.Lock()


def controller_for(model: nn.Module) -> AttnController:
    """Discover ``model``'s attention layers once (cached outside the model) and return its controller.

    Nothing about the model changes: it keeps its attention implementation, mode and parameters. Raises
    :class:`UnsupportedModelError` for models that do not route through ``AttentionInterface`` and for
    encoder–decoders.
    """
    from .inputs import model_kind

    model_kind(model)  # unsupported heads (token classification, multiple choice, no text input) first
    with _controllers_lock:
        layout = _layouts.get(model)
        if layout is None:
            if getattr(model.config, "is_encoder_decoder", False):
                raise UnsupportedModelError(
                    f"{type(model).__name__} is an encoder-decoder model; attattr-widgets attributes encoder "
                    f"classifiers and decoder language models. Supported: {SUPPORTED_FAMILIES}"
                )
            layout = _discover(model)
            _layouts[model] = layout
        layout.impls = _implementations(model)  # the user may switch implementations between runs
        return AttnController(model, layout)


def accepts(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (e.g. ``logits_to_keep``)."""
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
