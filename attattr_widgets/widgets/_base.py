"""Shared base for the anywidget views: bundle lookup with a readable fallback, kwarg checking, kernel commands
(:func:`command`), the run lifecycle of the streaming views (:class:`BackgroundRun`) and the static fallback every
view puts in its mimebundle (attattr_widgets/snapshot.py), refreshed in displayed outputs when a run ends."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import pathlib
import threading
import traceback
from typing import Any, Callable

import anywidget
import traitlets
from anywidget.experimental import command as _anywidget_command

from ..engine.errors import AttributionCancelled
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


_log = logging.getLogger(__name__)
_DISPLAYS_LOCK = threading.Lock()


class BaseWidget(HTMLExportMixin, anywidget.AnyWidget):
    """AnyWidget with eager validation of constructor keywords (typos raise instead of passing silently),
    plus ``to_html(path)`` (self-contained offline page) and ``to_png(path)``."""

    def __init__(self, **kwargs):
        allowed = set(self.trait_names()) | {"layout", "style"}
        unknown = sorted(k for k in kwargs if k not in allowed)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(unknown)}")
        super().__init__(**kwargs)
        self._displays: list[Any] = []  # DisplayHandles of the displays made while running
        if self.has_trait("state"):
            self.observe(self._on_state_for_displays, names=["state"])

    # -- static fallback (text/html beside the widget view) -----------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        """The widget view plus a script-free ``text/html`` snapshot of what the view shows now, which hosts
        without a widget manager render instead (nbconvert, nbviewer, GitHub, VS Code without widget state)."""
        bundle = super()._repr_mimebundle_(**kwargs)  # anywidget: (data, metadata); metadata carries Colab's
        if bundle is None:                             # custom_widget_manager url there
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data)
        try:
            from ..snapshot import snapshot_html

            html = snapshot_html(self)
        except Exception:  # noqa: BLE001 - the live view must still display
            _log.exception("attattr-widgets: static snapshot of %s failed", type(self).__name__)
            html = None
        if html:
            data["text/html"] = html
        return data, metadata

    def _ipython_display_(self, **kwargs):
        """Display with a display id, so a view displayed while its run streams gets its static fallback
        replaced by the finished one when the run ends (see :meth:`_on_state_for_displays`)."""
        from IPython.display import display

        bundle = self._repr_mimebundle_() if callable(getattr(self, "_repr_mimebundle_", None)) else None
        if not bundle:  # closed widget
            display({"text/plain": repr(self)}, raw=True)
            return
        data, metadata = bundle
        handle = display(data, metadata=metadata, raw=True, display_id=True)
        if handle is not None and getattr(self, "state", None) == "running":
            with _DISPLAYS_LOCK:
                self._displays.append(handle)

    def _on_state_for_displays(self, change) -> None:
        """When a run ends, update the outputs it was displayed in while running (same widget view, the
        finished snapshot): what a notebook saved without widget state, nbconvert or nbviewer show. JupyterLab
        redraws the live view once for it (one view, tested in tests/e2e/test_reach.py)."""
        if change["old"] != "running" or change["new"] == "running":
            return
        with _DISPLAYS_LOCK:
            displays, self._displays = self._displays, []
        if not displays:
            return
        try:
            data, metadata = self._repr_mimebundle_()
            for handle in displays:
                handle.update(data, metadata=metadata, raw=True)
        except Exception:  # noqa: BLE001 - a refresh is best effort; the widget state is unaffected
            _log.exception("attattr-widgets: refreshing the displayed snapshot of %s failed", type(self).__name__)

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


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn(self, msg: dict) -> dict | None`` (or ``-> (dict, buffers)``) as a request the browser sends with
    ``experimental.invoke(name, msg, {signal, buffers})`` (``js/shared/commands.ts``): an anywidget command named
    after the method. ``fn(self, msg, buffers)`` (three parameters) also receives the request's binary buffers
    (``bytes`` each). The response is ``{"ok": True, **returned}`` (strings made valid Unicode) plus the returned buffers; a
    request that raises answers ``{"ok": False, "error": "Type: message"}`` and leaves the comm working."""

    with_buffers = fn.__code__.co_argcount >= 3

    @functools.wraps(fn)
    def handler(self, msg: Any, buffers: list) -> tuple[dict, list]:
        from .serialize import valid_strings

        try:
            m = msg if isinstance(msg, dict) else {}
            out = fn(self, m, [bytes(b) for b in buffers or []]) if with_buffers else fn(self, m)
        except Exception as exc:  # noqa: BLE001 - a bad request must not kill the comm; the view gets the reason
            return valid_strings({"ok": False, "error": error_text(exc)}), []
        body, bufs = out if isinstance(out, tuple) else (out, [])
        return valid_strings({"ok": True, **(body or {})}), list(bufs)

    return _anywidget_command(handler)


def error_text(exc: BaseException) -> str:
    """``"ValueError: text is empty"``: what the views show for an error (the type name when there is no message)."""
    return f"{type(exc).__name__}: {str(exc).strip() or type(exc).__name__}"


class BackgroundRun:
    """The run lifecycle every streaming view shares (Explorer, HeadsView, TriggersView): one background thread
    per run (``_start``), ``stop()`` sets its cancel event (what was computed so far is kept), ``wait()`` joins it
    and returns :attr:`result` or re-raises the run's error, and one place where a run ends (``_finish``): the
    run's outcome — ``"done"`` (the work returned), ``"cancelled"`` (it raised :class:`AttributionCancelled`) or
    ``"error"`` (anything else, kept for ``wait()``) — lands in one synced update that sets ``state``, ``error`` and
    ``meta["error_detail"]``. A run superseded by a newer one (``run_id`` changed) ends silently.

    Subclasses (widgets with ``run_id`` / ``state`` / ``error`` / ``meta`` traits and an RLock ``_lock``) give
    the work to ``_start`` and may override ``_finish_prepare`` (outside the final update: keep the result, compute
    what to show) and ``_finish_apply`` (inside it: their own traits)."""

    _thread: threading.Thread | None = None
    _cancel: threading.Event | None = None
    _exception: BaseException | None = None
    _result: Any = None

    _lock: threading.RLock  # set by the subclass's __init__

    @contextlib.contextmanager
    def _sync(self):
        """hold_sync() serialised across the worker thread and the comm thread (ipywidgets' is not thread-safe)."""
        with self._lock, self.hold_sync():
            yield

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def result(self):
        """The result of the last run (partial after a Stop), None while running."""
        return self._result

    def _start(self, work, run_id: int, cancel: threading.Event, name: str, *args) -> None:
        """Run ``work(run_id, cancel, *args)`` in a daemon thread named ``name-run_id``, then :meth:`_finish`
        with its outcome."""
        t = threading.Thread(target=self._lifecycle, args=(work, run_id, cancel, *args), name=f"{name}-{run_id}",
                             daemon=True)
        self._thread = t
        t.start()

    def _lifecycle(self, work, run_id: int, cancel: threading.Event, *args) -> None:
        try:
            value = work(run_id, cancel, *args)
        except BaseException as exc:  # noqa: BLE001 - everything must reach the view
            if run_id == self.run_id:
                self._finish("cancelled" if isinstance(exc, AttributionCancelled) else "error", exc)
            return
        if run_id != self.run_id:
            return
        try:  # a Stop after the work returned still keeps the finished result
            self._finish("done", value)
        except Exception as exc:  # noqa: BLE001 - a failure while showing the result must reach the view too
            self._finish("error", exc)

    def _finish(self, state: str, value: Any) -> None:
        """End the run as ``state`` ("done" | "cancelled" | "error"); ``value``: the work's return value, or the
        exception that ended it."""
        if state == "error":
            self._exception = value
        prepared = self._finish_prepare(state, value)
        with self._sync():
            self._finish_apply(state, value, prepared)
            if state == "error":
                detail = "".join(traceback.format_exception(type(value), value, value.__traceback__))
                self.error = error_text(value)
                self.meta = {**self.meta, "error_detail": detail[-4000:]}
            else:
                self.error = ""
            self.state = state

    def _finish_prepare(self, state: str, value: Any) -> Any:
        """Hook, in the run's thread before the final update: keep the result, compute what the update shows."""
        return None

    def _finish_apply(self, state: str, value: Any, prepared: Any) -> None:
        """Hook, inside the final synced update (before ``state`` is set): the subclass's own traits."""

    @command
    def _cmd_cancel(self, msg: dict) -> None:
        """Browser -> kernel ``{run_id}`` (Stop): cancel that run (a request for an older run is ignored)."""
        if msg.get("run_id") in (None, self.run_id):
            self.stop()

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
