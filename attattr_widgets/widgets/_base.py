"""Shared base for the anywidget views: bundle lookup with a readable fallback, kwarg checking."""
from __future__ import annotations

import os
import pathlib
import threading
from typing import Any

import anywidget
import traitlets

from ..export import HTMLExportMixin

# ATTATTR_WIDGETS_STATIC overrides where the bundles are looked up (tests of the missing-bundle fallback).
STATIC = pathlib.Path(os.environ.get("ATTATTR_WIDGETS_STATIC") or pathlib.Path(__file__).resolve().parent.parent / "static")

BUNDLE_MISSING_MESSAGE = "attattr-widgets: front-end bundle not built: run `npm ci && npm run build`"

# Inline ES module shown when the esbuild output is missing (e.g. a source checkout without node).
# The text is a constant: nothing user-supplied is interpolated.
_MISSING_ESM = """
export default {
  render({ el }) {
    const box = document.createElement("div");
    box.className = "attattr-missing";
    box.setAttribute("data-state", "error");
    box.style.cssText = "padding:10px 14px;border:1px solid #d9534f;border-radius:6px;" +
      "font:13px system-ui,sans-serif;color:#a94442;background:rgba(217,83,79,.08)";
    box.textContent = %s;
    el.appendChild(box);
    return () => box.remove();
  }
};
"""


def bundle_path(name: str) -> pathlib.Path:
    return STATIC / name


def esm_asset(name: str):
    """Path of the built bundle (FileContents + HMR in anywidget) or an inline fallback ES module."""
    import json

    p = bundle_path(name)
    return p if p.exists() else _MISSING_ESM % json.dumps(BUNDLE_MISSING_MESSAGE)


def css_asset(name: str):
    p = bundle_path(name)
    return p if p.exists() else ""


def bundle_built(name: str) -> bool:
    return bundle_path(name).exists()


class BaseWidget(HTMLExportMixin, anywidget.AnyWidget):
    """AnyWidget with eager validation of constructor keywords (typos raise instead of passing silently),
    plus ``to_html(path)`` (self-contained offline page) and ``to_png(path)``."""

    def __init__(self, **kwargs):
        allowed = set(self.trait_names()) | {"layout", "style"}
        unknown = sorted(k for k in kwargs if k not in allowed)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(unknown)}")
        super().__init__(**kwargs)

    def get_state(self, key=None, drop_defaults=False):
        """The synced state, every string valid Unicode (lone surrogates → U+FFFD) so that the comm (UTF-8),
        saved notebooks and exported pages can carry it."""
        from .serialize import valid_strings

        return valid_strings(super().get_state(key=key, drop_defaults=drop_defaults))

    # -- helpers for subclasses ---------------------------------------------------------------------------
    def _send_custom(self, content: dict, buffers=None) -> None:
        from .serialize import valid_strings

        if self.comm is not None:
            self.send(valid_strings(content), buffers=list(buffers or []))


class BackgroundRun:
    """The run lifecycle every streaming view shares (Explorer, HeadsView, TriggersView): one background thread
    per run, ``stop()`` sets its cancel event (what was computed so far is kept), ``wait()`` joins it and returns
    :attr:`result` or re-raises the run's error. Subclasses set ``_result`` / ``_exception`` from the thread (or
    override :attr:`result`)."""

    _thread: threading.Thread | None = None
    _cancel: threading.Event | None = None
    _exception: BaseException | None = None
    _result: Any = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def result(self):
        """The result of the last run (partial after a Stop), None while running."""
        return self._result

    def _start(self, target, run_id: int, cancel: threading.Event, name: str, *args) -> None:
        """Run ``target(run_id, cancel, *args)`` in a daemon thread named ``name-run_id``."""
        t = threading.Thread(target=target, args=(run_id, cancel, *args), name=f"{name}-{run_id}", daemon=True)
        self._thread = t
        t.start()

    def stop(self, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Cancel the run; everything computed so far is kept (``state == "cancelled"``, result ``partial``)."""
        if self._cancel is not None:
            self._cancel.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def close(self) -> None:
        """Stop the run (its thread ends within one block; ipywidgets keeps a widget alive until it is closed,
        so this is also what ends a run of a view that is no longer used) and close the widget."""
        self.stop()
        super().close()  # type: ignore[misc] - the widget class after this mixin

    def wait(self, timeout: float | None = None):
        """Block until the run ends and return its result (None if never run); re-raises the run's error."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._exception is not None:
            raise self._exception
        return self.result


# Traits that carry binary arrays: serialized with serialize.jsonable
def binary_trait(default=None) -> traitlets.Any:
    from .serialize import jsonable

    return traitlets.Any(default).tag(sync=True, to_json=jsonable)
