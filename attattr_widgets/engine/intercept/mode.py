"""The run's mode guard: eval() semantics for the run and a placeholder pad id for decoder classifiers."""
from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Iterator

from torch import nn


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


def prepared(model: nn.Module, adapter, rows_need_pad: bool):
    """Context for dataset engines: eval() semantics and, where the model's adapter asks for it
    (``adapter.placeholder_pad(rows_need_pad)``: classifiers without a pad id run one example at a time), a
    placeholder pad id, restored afterwards under a lock. The user's parameters are never frozen: gradient passes
    run on ``ctrl.shadow(frozen=True)`` and differentiate w.r.t. taps only."""
    return _mode(model, fake_pad=adapter.placeholder_pad(rows_need_pad))
