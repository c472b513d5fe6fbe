"""The only code that touches transformers' ``AttentionInterface``.

While any run is active, the attention functions the model uses (``config._attn_implementation``: ``"sdpa"``,
``"eager"``, ``"flash_attention_2"``, …) are looked up through a thin wrapper registered in the global
``ALL_ATTENTION_FUNCTIONS`` instance (through its public ``GeneralInterface`` item API). The wrapper calls exactly
the function the model would have called, with the same arguments, and only then consults the **calling
thread's** session: forwards in any other thread — the user's own cells while an Explorer streams in the
background — run the unchanged function and get bit-identical results. The wrapper is removed when the last run
ends.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Callable, Iterable, Iterator

from torch import nn

from ..errors import UnsupportedModelError
from .session import _current, _process
from .support import SUPPORTED_FAMILIES


_install_lock = threading.RLock()


_installed: dict[str, tuple[int, Any]] = {}  # implementation name -> (refcount, previous local entry or _NONE)


_NONE = object()


def _interface():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS


def _registered(name: str) -> Any:
    """The class-wide (``AttentionInterface.register``) function for ``name``, or ``_NONE``: a fresh interface
    instance has no local entries, so its lookup sees only the registry."""
    fresh = type(_interface())()
    return fresh[name] if name in fresh else _NONE


def _local_entry(name: str) -> Any:
    """The global instance's own (local) entry for ``name``, or ``_NONE`` where it just reads the registry."""
    iface = _interface()
    current = iface[name] if name in iface else _NONE
    return _NONE if current is _registered(name) else current


def _base_function(name: str, previous: Any) -> Callable | None:
    if previous is not _NONE:
        return previous
    if name == "eager":
        return None  # resolved per module: the model file's own eager_attention_forward
    return _registered(name)


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
            s.spy.append((module, query.shape[1], query.shape[2], key.shape[2]))
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
                prev = _local_entry(name)
                iface[name] = _make_wrapper(name, _base_function(name, prev))
            _installed[name] = (count + 1, prev)
    try:
        yield
    finally:
        with _install_lock:
            for name in names:
                count, prev = _installed[name]
                if count == 1:
                    if prev is _NONE:
                        del iface[name]
                    else:
                        iface[name] = prev
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
