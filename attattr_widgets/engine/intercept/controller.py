"""The per-model controller: the API the attribution and dataset engines use to configure the interception.

Nothing is stamped on the model, no module is swapped, ``config`` is not touched, the model is never moved: every
engine pass runs on the controller's :meth:`~AttnController.private` copy (own mode and config).
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Iterable, Iterator

import torch
from torch import nn

from .interface import _implementations, _watching
from .discover import _discover
from .layout import Layout, _layouts
from .session import Session, _current, _local, _session
from .shadow import _Feed, _frozen_copy, _Grab, _shadow_with, _Skip



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
    def private(self, *, config_overrides: dict | None = None) -> nn.Module:
        """The engine's own structural copy of the model (:func:`~.shadow._frozen_copy`): eval mode, its own
        config (``config_overrides`` set there only, e.g. the adapter's placeholder pad id), parameters that alias
        the user's storage without requiring grad. Every engine pass runs on one; the user's model is never
        written."""
        return _frozen_copy(self.model, self.layout, config_overrides=config_overrides)

    def shadow(self, *, start: int = 0, hidden: torch.Tensor | None = None, grab: Iterable[int] = (),
               store: dict | None = None, base: nn.Module | None = None) -> nn.Module:
        """A :meth:`private` copy (``base``: one made earlier, reused — its own modules are not changed) with
        blocks ``< start`` skipped and block ``start`` fed ``hidden`` (rows, T, d), and/or the inputs of blocks
        ``grab`` recorded into ``store``. The user's model is unchanged."""
        lay = self.layout
        grab = set(grab)
        model = self.private() if base is None else base
        if hidden is None and not grab:
            return model
        if lay.blocks is None:
            raise RuntimeError("prefix caching needs one block per layer")
        blocks = model.get_submodule(".".join(lay.path))
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
        return _shadow_with(model, lay.path, blocks, entries)


_controllers_lock = threading.Lock()


def controller_for(model: nn.Module) -> AttnController:
    """Discover ``model``'s attention layers once (cached outside the model) and return its controller.

    Nothing about the model changes: it keeps its attention implementation, mode and parameters. Raises
    :class:`UnsupportedModelError` for models that do not route through ``AttentionInterface`` (and, through
    :func:`~..model.adapters.adapter_for`, for heads no adapter attributes).
    """
    from ..model.adapters import adapter_for
    from ..model.wrappers import check_unwrapped

    check_unwrapped(model)  # torch.compile / DataParallel wrappers: named at once
    adapter_for(model)  # unsupported heads (token classification, multiple choice, no text input) first
    with _controllers_lock:
        layout = _layouts.get(model)
        if layout is None:
            layout = _discover(model)
            _layouts[model] = layout
        layout.impls = _implementations(model)  # the user may switch implementations between runs
        return AttnController(model, layout)

