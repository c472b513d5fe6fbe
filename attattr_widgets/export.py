"""Self-contained, offline HTML export of widgets (and Bokeh layouts); optional PNG screenshots.

``to_html(items, path)`` writes ONE HTML file that renders the anywidget views with **zero network
requests**: it inlines require.js, anywidget's AMD module (registered under the name ``anywidget``),
``@jupyter-widgets/html-manager``'s ``embed-amd.js`` and the widget state from ``ipywidgets.embed``
(``dependency_state(..., drop_defaults=False)``), with no CDN ``<script src>``. Bokeh layouts among the items
are embedded with Bokeh's INLINE resources.

Only *trait* state is exported (what ``widget.get_state()`` holds); data sent as custom messages and Python
callbacks do not survive, so a widget must keep what it wants to show after export in traits.

Widgets get a ``to_html(path)`` method by inheriting :class:`HTMLExportMixin`.

Vendor scripts are looked up in ``attattr_widgets/static/vendor/`` (``npm run build`` copies them there), then
in ``node_modules`` of a source checkout; anywidget's AMD module preferably comes from the installed Python
package's nbextension (``<prefix>/share/jupyter/nbextensions/anywidget/index.js``), so the front end always
matches the Python ``anywidget`` version.
"""
from __future__ import annotations

import functools
import html as _html
import json
import os
import pathlib
import re
import shutil
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ExportError",
    "HTMLExportMixin",
    "find_chromium",
    "html_string",
    "json_for_script",
    "screenshot",
    "to_html",
    "vendor_paths",
]

_PKG = pathlib.Path(__file__).resolve().parent
_VENDOR = _PKG / "static" / "vendor"
_REPO_NM = _PKG.parent / "node_modules"

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


class ExportError(RuntimeError):
    """The export cannot be produced (missing front-end vendor files, unsupported item, …)."""


# --------------------------------------------------------------------------------------------------------
# vendor scripts
# --------------------------------------------------------------------------------------------------------
def _anywidget_amd_candidates() -> list[pathlib.Path]:
    # the installed Python package's own front end first (always the matching version)
    out = [pathlib.Path(sys.prefix) / "share" / "jupyter" / "nbextensions" / "anywidget" / "index.js",
           _VENDOR / "anywidget.js", _REPO_NM / "anywidget" / "dist" / "index.js"]
    try:
        from jupyter_core.paths import jupyter_path
        out += [pathlib.Path(d) / "nbextensions" / "anywidget" / "index.js" for d in jupyter_path()]
    except ImportError:  # pragma: no cover - jupyter_core is an ipywidgets dependency
        pass
    return out


def vendor_paths() -> dict[str, pathlib.Path]:
    """Where the three inlined scripts come from: ``{"require", "anywidget", "embed"}`` → path.

    Raises :class:`ExportError` naming the fix when one is missing.
    """
    cands = {
        "require": [_VENDOR / "require.min.js", _REPO_NM / "requirejs" / "require.js"],
        "anywidget": _anywidget_amd_candidates(),
        "embed": [_VENDOR / "embed-amd.js",
                  _REPO_NM / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js"],
    }
    found: dict[str, pathlib.Path] = {}
    for key, paths in cands.items():
        for p in paths:
            if p.is_file():
                found[key] = p
                break
        else:
            raise ExportError(
                f"offline export needs the front-end vendor script '{key}', not found in "
                + ", ".join(str(p) for p in paths)
                + ". Build the front end once: `npm ci && npm run build` (copies require.js, anywidget and "
                  "@jupyter-widgets/html-manager into attattr_widgets/static/vendor/).")
    return found


_ANON_DEFINE = re.compile(r'(^|[;\s])define\(\s*\[\s*"@jupyter-widgets/base"\s*\]')


def _named_anywidget(src: str) -> str:
    """Give anywidget's anonymous AMD ``define([...], f)`` the module name ``anywidget``.

    html-manager resolves a widget module with ``requirejs([name])`` before falling back to a CDN; an
    anonymous define in an inline script would be a "mismatched anonymous define" error instead.
    """
    if re.search(r'define\(\s*"anywidget"', src):
        return src
    new, n = _ANON_DEFINE.subn(r'\1define("anywidget", ["@jupyter-widgets/base"]', src)
    if n != 1:
        raise ExportError("anywidget's front-end module is not the expected AMD build (no "
                          "`define([\"@jupyter-widgets/base\"], …)`); reinstall anywidget or rebuild the vendor "
                          "files with `npm run build`")
    return new


def _script_safe(js: str) -> str:
    """Make JS text safe inside an inline <script> element."""
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    return js.replace("<!--", "<\\!--")


@functools.lru_cache(maxsize=4)
def _vendor_js(key: tuple[str, str, str]) -> tuple[str, str, str]:
    req, anyw, emb = (pathlib.Path(p).read_text(encoding="utf-8") for p in key)
    return _script_safe(req), _script_safe(_named_anywidget(anyw)), _script_safe(emb)


def _load_vendor() -> tuple[str, str, str]:
    v = vendor_paths()
    return _vendor_js((str(v["require"]), str(v["anywidget"]), str(v["embed"])))


# --------------------------------------------------------------------------------------------------------
# items
# --------------------------------------------------------------------------------------------------------
def _is_bokeh(obj: Any) -> bool:
    try:
        from bokeh.model import Model
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Model)


def _unwrap(obj: Any) -> Any:
    """jupyter_bokeh.BokehModel → its Bokeh layout (its JS module is not available offline)."""
    if type(obj).__name__ == "BokehModel" and hasattr(obj, "_model") and _is_bokeh(obj._model):
        return obj._model
    return obj


def _as_items(items: Any) -> list[Any]:
    from ipywidgets import Widget

    if isinstance(items, Widget) or _is_bokeh(items) or not isinstance(items, Iterable) \
            or isinstance(items, (str, bytes)):
        items = [items]
    # a view can stand for several (an encoder–decoder Explorer: one view per attention site, as its site switch
    # needs the kernel): `_export_views()` lists them
    out = [v for it in items for v in (it._export_views() if hasattr(it, "_export_views") else [_unwrap(it)])]
    for it in out:
        if not (isinstance(it, Widget) or _is_bokeh(it)):
            raise ExportError(f"to_html: cannot export a {type(it).__name__}; pass ipywidgets/anywidgets or "
                              "Bokeh layouts")
    if not out:
        raise ExportError("to_html: nothing to export")
    return out


def _widget_state(widgets: Sequence[Any]) -> dict:
    from ipywidgets.embed import dependency_state

    state = dependency_state(list(widgets), drop_defaults=False)
    for entry in state.values():
        if entry.get("model_module") == "@bokeh/jupyter_bokeh":
            raise ExportError("to_html: a jupyter_bokeh.BokehModel nested inside a widget container cannot be "
                              "exported offline; pass the Bokeh layout as its own item instead")
    return {"version_major": 2, "version_minor": 0, "state": state}


_JSON_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_SCRIPT_RE = re.compile("[<>&\u2028\u2029]")


def json_for_script(obj: Any) -> str:
    """JSON text that is safe inside an HTML ``<script>`` element and still valid JSON for every string.

    ``<``, ``>``, ``&`` and U+2028/U+2029 become ``\\u003c``-style escapes (what ipywidgets.embed does for
    ``<`` and what Django's ``json_script`` does for all five), so no ``</script>``, ``<!--`` or ``<script``
    can end or re-open the element; these characters only ever occur inside JSON strings, where the escape
    decodes to the same character. Non-ASCII text is ``\\u``-escaped (``ensure_ascii``), which keeps lone
    surrogates representable; NaN/inf are refused (not JSON).
    """
    txt = json.dumps(obj, allow_nan=False, separators=(",", ":"), ensure_ascii=True)
    return _JSON_SCRIPT_RE.sub(lambda m: _JSON_SCRIPT_ESCAPES[m.group(0)], txt)



def html_string(items: Any, *, title: str = "AttAttr widgets", heading: str | None = None,
                description: str | None = None) -> str:
    """The self-contained HTML text for widgets and/or Bokeh layouts (see :func:`to_html`)."""
    from ipywidgets import Widget

    from .widgets.serialize import valid_text

    title, heading, description = (None if t is None else valid_text(str(t)) for t in (title, heading, description))
    items = _as_items(items)
    widgets = [it for it in items if isinstance(it, Widget)]
    for w in widgets:
        if getattr(w, "state", None) == "running":
            import warnings

            warnings.warn(f"to_html: {type(w).__name__} is still running; the export shows its state so far "
                          "(call .wait() first for the finished result)", RuntimeWarning, stacklevel=3)
    bokeh_items = [it for it in items if not isinstance(it, Widget)]

    head: list[str] = [
        "<meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_html.escape(title)}</title>",
        "<meta name=\"generator\" content=\"attattr-widgets export\">",
        ("<style>body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:16px;"
         "background:#fff;color:#222}.attattr-export-item{margin:12px 0}"
         ".attattr-export-desc{color:#555;max-width:60em}</style>"),
    ]
    body: list[str] = []
    if heading:
        body.append(f"<h1>{_html.escape(heading)}</h1>")
    if description:
        body.append(f"<p class=\"attattr-export-desc\">{_html.escape(description)}</p>")

    bokeh_divs: dict[int, str] = {}
    if bokeh_items:
        from bokeh.embed import components
        from bokeh.embed.bundle import bundle_for_objs_and_resources
        from bokeh.resources import INLINE

        # Only the BokehJS parts these layouts need, inlined. BokehJS goes before require.js: with
        # `define.amd` present its UMD wrapper could register anonymously.
        js_html, css_html = bundle_for_objs_and_resources(bokeh_items, INLINE)
        head.append(css_html)
        head.append(js_html)
        script, divs = components(bokeh_items)
        head.append(script)
        for it, div in zip(bokeh_items, divs):
            bokeh_divs[id(it)] = div

    if widgets:
        req, anyw, emb = _load_vendor()
        head.append(f"<script>{req}</script>")
        head.append(f"<script>{anyw}</script>")
        head.append(f"<script>{emb}</script>")
        head.append(f"<script type=\"{WIDGET_STATE_MIME}\">{json_for_script(_widget_state(widgets))}</script>")

    for i, it in enumerate(items):
        if isinstance(it, Widget):
            view = {"version_major": 2, "version_minor": 0, "model_id": it.model_id}
            inner = f"<script type=\"{WIDGET_VIEW_MIME}\">{json_for_script(view)}</script>"
        else:
            inner = bokeh_divs[id(it)]
        body.append(f"<div class=\"attattr-export-item\" data-index=\"{i}\">{inner}</div>")

    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n" + "\n".join(head) + "\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def to_html(items: Any, path: str | os.PathLike | None = None, *, title: str = "AttAttr widgets",
            heading: str | None = None, description: str | None = None, heads: Any = "all",
            max_bytes: int | None = None) -> Any:
    """Write one self-contained HTML file rendering ``items`` offline (no CDN, no network).

    ``items``: a widget (anywidget / ipywidgets, containers included), a Bokeh layout, or a list mixing
    them (rendered top to bottom). ``title`` is the page title; ``heading``/``description`` optionally add a
    visible header. Returns the written ``pathlib.Path``, or the HTML text when ``path`` is None.

    An encoder–decoder's Explorer is exported as three views, its encoder, decoder and cross-attention sites
    (the site switch needs the kernel).

    Explorers among the items embed the maps of ``heads`` (``"all"``, ``"top-<k>"``, an int k or
    ``[(layer_index, head), ...]``) as compressed float16 up to ``max_bytes`` (default
    ``widgets.embed.DEFAULT_MAX_BYTES``), so the page draws every embedded head without a kernel and says which
    heads were left out; TreeViews embed their layer sums, so the threshold slider works in the page.

    The file is ~4 MB (html-manager's bundle) plus the widgets' state (binary traits base64-encoded).
    """
    import contextlib

    items = _as_items(items)
    with contextlib.ExitStack() as stack:
        for it in items:
            if hasattr(it, "_embedding"):
                stack.enter_context(it._embedding(heads, max_bytes))
        text = html_string(items, title=title, heading=heading, description=description)
    if path is None:
        return text
    from .engine.results import atomic_write_text

    return atomic_write_text(path, text)  # a failed write keeps the previous file


class HTMLExportMixin:
    """Adds ``to_html(path, title=...)`` (offline, self-contained HTML) and ``to_png`` to a widget class."""

    def to_html(self, path: str | os.PathLike | None = None, *, title: str | None = None,
                heading: str | None = None, description: str | None = None) -> Any:
        """Write this widget as one self-contained offline HTML file; see :func:`attattr_widgets.export.to_html`."""
        return to_html(self, path, title=title or f"AttAttr – {type(self).__name__}", heading=heading,
                       description=description)

    def to_png(self, path: str | os.PathLike, *, width: int = 1100, height: int = 800,
               wait_for: str | None = None, timeout: float = 60.0) -> pathlib.Path:
        """Render the offline export in headless Chromium and save a PNG of the widget."""
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            page = to_html(self, pathlib.Path(d) / "w.html")
            return screenshot(page, path, width=width, height=height, wait_for=wait_for, timeout=timeout,
                              selector=".attattr-export-item")


# --------------------------------------------------------------------------------------------------------
# PNG via headless Chromium
# --------------------------------------------------------------------------------------------------------
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic"]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``$ATTATTR_CHROMIUM``, ``/usr/bin/chromium``, then ``$PATH``."""
    env = os.environ.get("ATTATTR_CHROMIUM")
    if env and os.path.exists(env):
        return env
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name) if not name.startswith("/") else (name if os.path.exists(name) else None)
        if p:
            return p
    return None


_DEFAULT_WAIT = (
    "() => { const v = document.querySelectorAll('script[type=\"" + WIDGET_VIEW_MIME + "\"]').length;"
    " const r = document.querySelectorAll('.jupyter-widgets, .widget-subarea > *').length;"
    " const b = document.querySelectorAll('.bk-Figure, .bk-Column, .bk-Row, .bk-GridBox, .bk-Canvas').length;"
    " return (v === 0 || r > 0) && (b > 0 || !window.Bokeh) ; }"
)


def screenshot(html: str | os.PathLike, png: str | os.PathLike, *, width: int = 1100, height: int = 800,
               selector: str | None = None, wait_for: str | None = None, timeout: float = 60.0,
               full_page: bool = True) -> pathlib.Path:
    """Open a local HTML file in headless Chromium (all network blocked) and save a PNG.

    ``wait_for``: a JS predicate (``"() => …"``) to wait for before the shot (default: widgets/Bokeh
    mounted, then two animation frames). ``selector``: shoot only that element. Uses playwright with the
    system Chromium (nothing is downloaded); raises :class:`ExportError` if neither is available.
    """
    src = pathlib.Path(html).resolve()
    from .engine.validate import output_path

    out = output_path(png, "png")  # checked before the browser starts
    exe = find_chromium()
    if exe is None:
        raise ExportError("screenshot needs Chromium: `apt-get install chromium` (or set ATTATTR_CHROMIUM)")
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        raise ExportError("screenshot needs playwright (pip install playwright; no browser download "
                          "needed, the system Chromium is used)")

    def shoot() -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.route(re.compile(r"^(?!(file|data|blob|about):)"), lambda r: r.abort())
                page.goto(src.as_uri())
                page.wait_for_function(wait_for or _DEFAULT_WAIT, timeout=timeout * 1000)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                if selector:
                    shot = page.locator(selector).first.screenshot()
                else:
                    shot = page.screenshot(full_page=full_page)
                from .engine.results import atomic_write_bytes

                atomic_write_bytes(out, shot)  # a failed shot keeps the previous PNG
            finally:
                browser.close()

    # playwright's sync API refuses to run on a thread with a running asyncio loop (a Jupyter kernel, or
    # another sync playwright session): run it on a fresh thread.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            shoot()
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            errors.append(e)

    t = threading.Thread(target=target, name="attattr-screenshot", daemon=True)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out
