"""Static, script-free snapshots of the views: the ``text/html`` every view puts in its mimebundle beside the
widget view, so that hosts without a live widget manager (nbconvert, nbviewer, GitHub, a notebook saved without
widget state, VS Code after reopening) show what the view showed instead of ``<… object at 0x…>``.

``snapshot_html(widget) -> str`` dispatches on the view class. Each snapshot is drawn from the widget's synced
traits only (what the live view draws at that moment): HTML for text (header, sentence, tables) and inline SVG
for the graphics (head grid, tree, curves); heatmaps are PNG images (one pixel per token pair, scaled up with
``image-rendering: pixelated``) inside the SVG, so a 500-token map stays a few kB instead of 250k ``<rect>``.
Colours come from ``palette.json``, which ``js/shared/color.ts`` builds its scales from, so the static and live
views agree (light theme: a static page cannot follow the host's theme). Every string that comes from the user
or the tokenizer is escaped (``html.escape``, lone surrogates replaced); no script, no event handler, no
external URL is ever written.

There is no ``image/png`` of the whole view: text cannot be rasterised without a browser, and every host that
falls back from the widget view takes ``text/html`` first (``widget.to_png(path)`` renders one in Chromium).
"""
from __future__ import annotations

import base64
import html as _html
import json
import math
import pathlib
import struct
import zlib
from typing import Any

import numpy as np

PALETTE: dict = json.loads((pathlib.Path(__file__).with_name("palette.json")).read_text(encoding="utf-8"))

_BG = np.array(PALETTE["light"]["bg"], dtype=np.float64)
_FG = "rgb({},{},{})".format(*PALETTE["light"]["fg"])
_ANSWER = "rgb({},{},{})".format(*PALETTE["answer"]["light"])  # an explained answer's tokens
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
MAX_LABELLED_TOKENS = 48  # heatmap axes carry token labels up to this many tokens (as the live view at 100%)
TREE_WIDTH = 1100.0  # px: wider trees get narrower columns (the host would scale the SVG down otherwise)
MAX_MAP_SIDE = 256  # longer inputs: a map is pooled in k×k blocks (the value of largest |v| kept) to this side


# --------------------------------------------------------------------------------------------------------
# colours (js/shared/color.ts, light theme)
# --------------------------------------------------------------------------------------------------------
def _ramp(stops: list, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear ramp through ``stops`` (k RGB rows) at t in [0, 1] (any shape) -> [..., 3] float."""
    st = np.asarray(stops, dtype=np.float64)
    x = np.clip(t, 0.0, 1.0) * (len(st) - 1)
    i = np.minimum(len(st) - 2, np.floor(x)).astype(int)
    f = (x - i)[..., None]
    return st[i] + (st[i + 1] - st[i]) * f


def diverging(t: Any) -> np.ndarray:
    """Signed diverging colour at t in [-1, 1] (non-finite -> 0), RGB floats [..., 3]; color.ts ``diverging``."""
    v = np.clip(np.nan_to_num(np.asarray(t, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
    neg = _ramp([_BG, *PALETTE["neg_light"][::-1]], -v)
    pos = _ramp([_BG, *PALETTE["pos_light"]], v)
    return np.where((v < 0)[..., None], neg, pos)


def sequential(t: Any) -> np.ndarray:
    """Sequential colour at t in [0, 1] (attention probabilities), RGB floats [..., 3]; color.ts ``sequential``."""
    v = np.clip(np.nan_to_num(np.asarray(t, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
    return _ramp([_BG, *PALETTE["seq_light"]], v)


def _signed_max(a: Any) -> float:
    """m of the symmetric domain [-m, m] (max |v| over finite values, 1 if none): color.ts ``signedScale``."""
    a = np.asarray(a, dtype=np.float64)
    fin = np.abs(a[np.isfinite(a)])
    m = float(fin.max()) if fin.size else 0.0
    return m or 1.0


def _pos_max(a: Any) -> float:
    a = np.asarray(a, dtype=np.float64)
    fin = a[np.isfinite(a) & (a > 0)]
    return float(fin.max()) if fin.size else 1.0


def _css(rgb: Any) -> str:
    r, g, b = (int(round(float(x))) for x in rgb)
    return f"rgb({r},{g},{b})"


def _text_on(rgb: Any) -> str:
    r, g, b = (float(x) for x in rgb)
    return "#111" if (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 > 0.55 else "#fff"


# --------------------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------------------
def esc(s: Any) -> str:
    """Escaped text for HTML/SVG content and attribute values (lone surrogates -> U+FFFD)."""
    from .widgets.serialize import valid_text

    return _html.escape(valid_text(str(s)), quote=True)


def display_token(tok: Any) -> str:
    """A token as the live views print it (js/shared/dom.ts ``displayToken``), not yet escaped."""
    t = str(tok if tok is not None else "")
    t = t.replace("\n", "↵").replace("\t", "⇥").replace("\r", "")
    t = "".join("�" if (ord(c) < 32 or ord(c) == 127) else c for c in t)
    if t[:1] in ("Ġ", "▁"):
        t = "·" + t[1:]
    return t or "∅"


def fmt(v: Any, digits: int = 3) -> str:
    """Compact number (js/shared/color.ts ``formatValue``)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    a = abs(v)
    s = f"{v:.{digits - 1}e}" if (a >= 1e4 or a < 1e-3) else f"{v:.{digits}g}"
    if "e" in s:
        mant, ex = s.split("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        s = f"{mant}e{int(ex)}"
    return s.replace("-", "−", 1) if s.startswith("-") else s


def _short(tok: Any, n: int = 14) -> str:
    t = display_token(tok)
    return t if len(t) <= n else t[: n - 1] + "…"


# --------------------------------------------------------------------------------------------------------
# PNG (numpy + zlib; no imaging library needed)
# --------------------------------------------------------------------------------------------------------
def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB image [h, w, 3] (uint8) as PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def pool_max_abs(a: np.ndarray, side: int = MAX_MAP_SIDE) -> tuple[np.ndarray, int]:
    """``a`` [r, c] pooled in k×k blocks (k = ceil(max(r, c) / side)) keeping each block's value of largest |v|
    (NaN-padded edges ignored), so a few strong links stay visible; returns (pooled, k)."""
    r, c = a.shape
    k = max(1, math.ceil(max(r, c) / side))
    if k == 1:
        return a, 1
    R, C = math.ceil(r / k) * k, math.ceil(c / k) * k
    pad = np.zeros((R, C), dtype=np.float64)
    pad[:r, :c] = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    blocks = pad.reshape(R // k, k, C // k, k).transpose(0, 2, 1, 3).reshape(R // k, C // k, k * k)
    idx = np.abs(blocks).argmax(-1)
    return np.take_along_axis(blocks, idx[..., None], -1)[..., 0], k


def heat_rgb(values: Any, kind: str) -> np.ndarray:
    """Colours of a map under the live view's default scale: ``"diverging"`` over [-max|v|, max|v|],
    ``"sequential"`` over [0, max v]; uint8 [rows, cols, 3]."""
    a = np.asarray(values, dtype=np.float64)
    rgb = diverging(a / _signed_max(a)) if kind == "diverging" else sequential(a / _pos_max(a))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------------
def _svg(w: float, h: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" '
            f'role="img" aria-label="{esc(label)}" style="{_FONT};font-size:11px;overflow:visible">'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, **attrs: Any) -> str:
    a = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{a}>{esc(s)}</text>'


def _legend(kind: str, hi: float, width: int = 120) -> str:
    """A small colour bar with its domain (``[-hi, hi]`` diverging, ``[0, hi]`` sequential)."""
    t = np.linspace(-1, 1, width) if kind == "diverging" else np.linspace(0, 1, width)
    rgb = np.clip(np.rint(diverging(t) if kind == "diverging" else sequential(t)), 0, 255).astype(np.uint8)
    img = _data_uri(np.repeat(rgb[None], 2, axis=0))
    lo = fmt(-hi) if kind == "diverging" else "0"
    body = [f'<image href="{img}" x="0" y="0" width="{width}" height="8" preserveAspectRatio="none" '
            'style="image-rendering:pixelated"/>',
            f'<rect x="0" y="0" width="{width}" height="8" fill="none" stroke="#bbb"/>',
            _text(0, 20, lo), _text(width, 20, fmt(hi), text_anchor="end")]
    if kind == "diverging":
        body.append(_text(width / 2, 20, "0", text_anchor="middle"))
    return _svg(width, 24, body, "colour scale")


def heatmap_svg(values: Any, kind: str, tokens: list[str], title: str, *, size: int = 260,
                query: int = -1, answer_start: int | None = None, col_tokens: list[str] | None = None) -> str:
    """One [n_rows, n_cols] map (rows = query ``tokens``, columns = key tokens: ``col_tokens``, default
    ``tokens``) as an SVG image with token axes; an explained answer (tokens from ``answer_start`` on) gets a line
    before it on both axes and its labels in the answer colour."""
    full = np.asarray(values, dtype=np.float64)
    n_r, n_c = full.shape
    cols = tokens if col_tokens is None else col_tokens
    a, k = pool_max_abs(full)
    labelled = max(n_r, n_c) <= MAX_LABELLED_TOKENS
    cell = max(size / max(a.shape), min(size / max(n_r, n_c, 1), 24.0))  # px per token (per block when pooled)
    fs = min(11.0, max(7.0, cell * 0.8))
    longest = max((len(_short(t)) for t in [*tokens[:n_r], *cols[:n_c]]), default=1)
    pad_l = pad_b = (longest * fs * 0.62 + 10) if labelled else 8.0
    w, h = a.shape[1] * cell, a.shape[0] * cell
    body = [_text(pad_l, 12, title, font_weight="600")]
    y0 = 20
    body.append(f'<image href="{_data_uri(heat_rgb(a, kind))}" x="{pad_l}" y="{y0}" width="{w:.1f}" height="{h:.1f}" '
                'preserveAspectRatio="none" style="image-rendering:pixelated"/>')
    body.append(f'<rect x="{pad_l}" y="{y0}" width="{w:.1f}" height="{h:.1f}" fill="none" stroke="#999"/>')
    if 0 <= query < n_r:
        body.append(f'<rect x="{pad_l}" y="{y0 + query // k * cell:.1f}" width="{w:.1f}" height="{cell:.1f}" '
                    'fill="none" stroke="#111" stroke-width="1.5"/>')
    ans = int(answer_start) if answer_start is not None and 0 < int(answer_start) < min(n_r, n_c) else None
    if ans is not None:  # prompt | answer boundary (at its pooled block when pooled)
        at = ans / k * cell
        line = f'stroke="{_ANSWER}" stroke-width="1.5"/>'
        body.append(f'<line data-answer="col" x1="{pad_l + at:.1f}" x2="{pad_l + at:.1f}" y1="{y0}" '
                    f'y2="{y0 + h + 3:.1f}" {line}')
        body.append(f'<line data-answer="row" x1="{pad_l - 3:.1f}" x2="{pad_l + w:.1f}" y1="{y0 + at:.1f}" '
                    f'y2="{y0 + at:.1f}" {line}')
    def colour(i: int) -> dict:
        return {"fill": _ANSWER} if ans is not None and i >= ans else {}

    if labelled:
        for i, t in enumerate(tokens[:n_r]):
            body.append(_text(pad_l - 4, y0 + (i + 0.5) * cell + fs / 3, _short(t), text_anchor="end",
                              font_size=f"{fs:.0f}", **colour(i)))
        for j, t in enumerate(cols[:n_c]):
            x, y = pad_l + (j + 0.5) * cell + fs / 3, y0 + h + 4
            body.append(_text(x, y, _short(t), text_anchor="end", font_size=f"{fs:.0f}",
                              transform=f"rotate(-90 {x:.1f} {y:.1f})", **colour(j)))
    else:
        pooled = f", {k}×{k} blocks (largest |value|)" if k > 1 else ""
        body.append(_text(pad_l, y0 + h + 14, f"{n_r} × {n_c} (rows: query, columns: key{pooled})",
                          fill="#555"))
    hi = _signed_max(full) if kind == "diverging" else _pos_max(full)
    return ('<div style="display:inline-block;vertical-align:top;margin:0 18px 8px 0">'
            + _svg(pad_l + w + 8, y0 + h + pad_b, body, title)
            + f'<div style="margin-left:{pad_l:.0f}px">{_legend(kind, hi)}</div></div>')


def _overlay_alpha(t: float) -> float:
    """Opacity of a patch's colour at ``t`` of the scale's maximum (as js/shared/image.ts ``overlayAlpha``)."""
    return 0.1 + 0.6 * min(1.0, abs(t)) if np.isfinite(t) else 0.1


def _image_box(image: dict, size: float) -> tuple[float, float]:
    """The drawn size (width, height) of an image payload's picture inside size × size, aspect kept."""
    h, w = np.asarray(image["pixels"]).shape[:2]
    k = size / max(h, w)
    return w * k, h * k


def patch_grid(row: Any, payload: dict) -> np.ndarray | None:
    """One attribution / attention row [n] (a query token to every key token) → its patch values [rows, cols]
    (row-major from ``first_patch``); None when the row is shorter than the patches it should cover."""
    rows, cols = payload["grid"]
    first = payload["first_patch"]
    r = np.asarray(row, dtype=np.float64).ravel()
    if r.size < first + rows * cols:
        return None
    return r[first:first + rows * cols].reshape(rows, cols)


def image_svg(image: dict, row: Any, kind: str, title: str, *, size: int = 240, query: int = -1) -> str:
    """The picture of an image attribution (``widgets/image.py`` payload) with one colour per patch: ``row`` [n]
    (a query token to every key token; None = the bare picture) on the shared palette, opacity by magnitude; the
    query's patch outlined dashed. Inline SVG, the picture as a PNG data URI (no network)."""
    rows, cols = image["grid"]
    w, h = _image_box(image, size)
    y0 = 20
    body = [_text(0, 12, title, font_weight="600"),
            f'<image href="{_data_uri(np.asarray(image["pixels"]))}" x="0" y="{y0}" width="{w:.1f}" height="{h:.1f}" '
            'preserveAspectRatio="none" style="image-rendering:pixelated"/>']
    vals = None if row is None else patch_grid(row, image)
    hi = 1.0
    if vals is not None:
        hi = _signed_max(vals) if kind == "diverging" else _pos_max(vals)
        cw, ch = w / cols, h / rows
        for r in range(rows):
            for c in range(cols):
                v = float(vals[r, c])
                if not np.isfinite(v):
                    continue
                t = v / hi
                rgb = diverging(t) if kind == "diverging" else sequential(max(t, 0.0))
                body.append(f'<rect x="{c * cw:.1f}" y="{y0 + r * ch:.1f}" width="{cw:.1f}" height="{ch:.1f}" '
                            f'fill="{_css(rgb)}" fill-opacity="{_overlay_alpha(t):.2f}">'
                            f'<title>{esc(f"patch ({r},{c}): {fmt(v)}")}</title></rect>')
        qp = query - int(image["first_patch"])
        if 0 <= qp < rows * cols:
            body.append(f'<rect x="{qp % cols * cw + 1:.1f}" y="{y0 + qp // cols * ch + 1:.1f}" width="{cw - 2:.1f}" '
                        f'height="{ch - 2:.1f}" fill="none" stroke="#b35900" stroke-width="2" stroke-dasharray="3 2"/>')
    body.append(f'<rect x="0" y="{y0}" width="{w:.1f}" height="{h:.1f}" fill="none" stroke="#999"/>')
    legend = f'<div>{_legend(kind, hi)}</div>' if vals is not None else ""
    return ('<div style="display:inline-block;vertical-align:top;margin:0 18px 8px 0">'
            + _svg(w + 2, y0 + h + 4, body, title) + legend + "</div>")


def _box(inner: str, cls: str, label: str) -> str:
    return (f'<div class="attattr-static {cls}" role="figure" aria-label="{esc(label)}" '
            f'style="{_FONT};font-size:13px;color:{_FG};background:#fff;border:1px solid #d0d7de;border-radius:6px;'
            'padding:10px 12px;max-width:100%;overflow-x:auto;line-height:1.35">' + inner
            + '<div style="margin-top:6px;color:#6a737d;font-size:11px">Static snapshot (attattr-widgets): '
              'run the notebook for the interactive view.</div></div>')


def _status(state: str, error: str = "", done: int | None = None, total: int | None = None) -> str:
    if state == "running":
        prog = f" ({done}/{total})" if total else ""
        return f'<div style="color:#9a6700">Running{prog}: this snapshot shows the part computed so far.</div>'
    if state == "cancelled":
        return '<div style="color:#9a6700">Stopped: partial result.</div>'
    if state == "error":
        return f'<div style="color:#a94442">Error: {esc(error)}</div>'
    return ""


# --------------------------------------------------------------------------------------------------------
# Explorer
# --------------------------------------------------------------------------------------------------------
def _grid_svg(hs: np.ndarray, layers: list[int], selected: list[int], title: str) -> str:
    """The layer×head grid: one cell per head coloured by its score (signed, one scale for all heads)."""
    L, H = hs.shape
    cell = max(8.0, min(22.0, 320.0 / max(H, 1)))
    pad_l, pad_t = 40, 30
    m = _signed_max(hs)
    body = [_text(0, 12, title, font_weight="600"),
            _text(pad_l + H * cell / 2, 26, "head", text_anchor="middle", fill="#555")]
    for li in range(L):
        y = pad_t + li * cell
        lab = layers[li] if li < len(layers) else li
        body.append(_text(pad_l - 4, y + cell * 0.7, f"L{lab}", text_anchor="end", font_size="10"))
        for h in range(H):
            v = hs[li, h]
            fill = _css(diverging(v / m)) if np.isfinite(v) else "#f3f3f3"
            tip = f"layer {lab} head {h}: {fmt(v)}" if np.isfinite(v) else f"layer {lab} head {h}: not computed"
            body.append(f'<rect x="{pad_l + h * cell:.1f}" y="{y:.1f}" width="{cell - 1:.1f}" height="{cell - 1:.1f}" '
                        f'fill="{fill}"><title>{esc(tip)}</title></rect>')
    if len(selected) == 2 and 0 <= selected[0] < L and 0 <= selected[1] < H:
        body.append(f'<rect x="{pad_l + selected[1] * cell - 1:.1f}" y="{pad_t + selected[0] * cell - 1:.1f}" '
                    f'width="{cell + 1:.1f}" height="{cell + 1:.1f}" fill="none" stroke="#111" stroke-width="2"/>')
    return ('<div style="display:inline-block;vertical-align:top;margin:0 18px 8px 0">'
            + _svg(pad_l + H * cell + 4, pad_t + L * cell + 4, body, title)
            + f'<div style="margin-left:{pad_l}px">{_legend("diverging", m)}</div></div>')


def sentence_html(tokens: list[str], row: Any, query: int, title: str, answer_start: int | None = None,
                  answer_token: int | None = None) -> str:
    """The tokens as chips coloured by one signed attribution row (None: uncoloured); the query token outlined;
    an explained answer's tokens (from ``answer_start`` on) underlined after a gap, answer token
    ``answer_token`` (whose own maps are shown) underlined thicker."""
    r = None if row is None else np.asarray(row, dtype=np.float64)
    m = _signed_max(r) if r is not None else 1.0
    chips = []
    for i, t in enumerate(tokens):
        style = "display:inline-block;margin:2px 2px;padding:1px 4px;border-radius:3px;white-space:pre"
        tip = f"#{i}"
        if r is not None and i < len(r):
            c = diverging(r[i] / m)
            style += f";background:{_css(c)};color:{_text_on(c)}"
            tip += f": {fmt(r[i])}"
        if i == query:
            style += ";outline:2px solid #111"
        if answer_start is not None and i >= answer_start:
            thick = answer_token is not None and i == answer_start + answer_token
            style += f";box-shadow:inset 0 -{4 if thick else 2}px 0 {_ANSWER}"
            style += ";margin-left:14px" if i == answer_start else ""
        chips.append(f'<span style="{style}" title="{esc(tip)}">{esc(display_token(t))}</span>')
    legend = f'<div style="margin-top:4px">{_legend("diverging", m)}</div>' if r is not None else ""
    return (f'<div style="margin:6px 0"><div style="font-weight:600;margin-bottom:2px">{esc(title)}</div>'
            f'<div style="line-height:1.9">{"".join(chips)}</div>{legend}</div>')


_SITE_TITLES = {"encoder": "encoder self-attention (source × source)",
                "decoder": "decoder self-attention (answer × answer)",
                "cross": "cross-attention (answer rows × source columns)"}


def explorer_html(w: Any) -> str:
    meta = dict(w.meta or {})
    tokens = [str(t) for t in (w.tokens or [])]
    state, error = str(w.state), str(w.error or "")
    if state == "empty" or (not tokens and state != "error"):
        hint = ("" if state == "running" else
                "<div>Nothing explained yet: call <code>explain(text)</code>.</div>")
        return _box('<div style="font-weight:600">AttAttr Explorer</div>' + hint
                    + _status(state, error, w.layers_done, w.layers_total), "attattr-static-explorer",
                    "AttAttr Explorer")
    label = meta.get("target_label") or (f"class {meta['target']}" if "target" in meta else "")
    start, t = meta.get("answer_start"), meta.get("answer_token")
    kind = "next token" if meta.get("target_kind") == "next-token" else "target"
    if start is not None:
        label, kind = (meta.get("answer") or label, "answer") if t is None else (label, f"answer token {int(t)}")
    site = str(getattr(w, "site", "") or "")
    if site:  # an encoder–decoder: the answer, and the site shown
        label, kind = meta.get("answer") or label, "answer"
    cols = [str(c) for c in (getattr(w, "col_tokens", None) or [])] or None
    prob = meta.get("prob")
    head = ['<span style="font-weight:600">AttAttr Explorer</span>']
    if meta.get("model_name"):
        head.append(f'<span style="color:#555">{esc(meta["model_name"])}</span>')
    if label:
        head.append(f'<span>{kind} <b>{esc(display_token(label))}</b></span>')
    if prob is not None:
        head.append(f"<span>{'log p' if meta.get('score') == 'logprob' else 'p'} = <b>{esc(fmt(prob))}</b></span>")
    if site:
        head.append(f'<span>attention site <b>{esc(_SITE_TITLES.get(site, site))}</b></span>')
    parts = [f'<div style="display:flex;gap:14px;flex-wrap:wrap;align-items:baseline">{"".join(head)}</div>',
             _status(state, error, w.layers_done, w.layers_total)]
    text = meta.get("text") or meta.get("image_name")
    if text:
        pair = meta.get("text_pair")
        parts.append(f'<div style="color:#555;margin:2px 0 6px">{esc(text)}'
                     + (f' <span style="color:#999">‖</span> {esc(pair)}' if pair else "") + "</div>")
    if meta.get("nonfinite"):
        parts.append(f'<div style="color:#a94442">Non-finite values in layers {esc(meta["nonfinite"])}</div>')
    hs = w.head_scores
    sel = [int(x) for x in (w.selected or [])]
    layers = [int(x) for x in meta.get("layers") or []]
    figs = []
    if hs is not None and np.asarray(hs).ndim == 2 and np.asarray(hs).size:
        figs.append(_grid_svg(np.asarray(hs, dtype=np.float64), layers, sel, "Heads (max attribution)"))
    hd = w.head if isinstance(w.head, dict) else None
    row = None
    if hd is not None and hd.get("attribution") is not None:
        li, h = int(hd.get("layer", -1)), int(hd.get("head", -1))
        lab = layers[li] if 0 <= li < len(layers) else li
        attr = np.asarray(hd["attribution"], dtype=np.float64)
        att = np.asarray(hd["attention"], dtype=np.float64)
        q = int(w.query)
        figs.append(heatmap_svg(att, "sequential", tokens, f"Attention · layer {lab} head {h}", query=q,
                                answer_start=start, col_tokens=cols))
        figs.append(heatmap_svg(attr, "diverging", tokens, f"Attribution · layer {lab} head {h}", query=q,
                                answer_start=start, col_tokens=cols))
        if 0 <= q < attr.shape[0]:
            row = attr[q]
    parts.append('<div style="margin-top:6px">' + "".join(figs) + "</div>")
    image = getattr(w, "image", None)
    if isinstance(image, dict):
        q = int(w.query)
        who = f"“{display_token(tokens[q])}”" if 0 <= q < len(tokens) else "the query"
        att_row = None
        if hd is not None and row is not None:
            att_row = np.asarray(hd["attention"], dtype=np.float64)[q]
        parts.append('<div style="margin-top:6px">'
                     + image_svg(image, row, "diverging", f"Attribution from {who} to each patch", query=q)
                     + image_svg(image, att_row, "sequential", f"Attention from {who} to each patch", query=q)
                     + "</div>")
    q = int(w.query)
    title = (f"Tokens coloured by the attribution of query “{display_token(tokens[q])}” (#{q})"
             if row is not None and 0 <= q < len(tokens) else "Tokens")
    first = int(image["first_patch"]) if isinstance(image, dict) else 0
    if cols is not None:  # rectangular maps: the row tokens, then the column tokens coloured by the query row
        parts.append(sentence_html(tokens, None, q, "Row tokens (answer)", None, None))
        parts.append(sentence_html(cols, row if row is not None and len(row) == len(cols) else None, -1,
                                   title.replace("Tokens coloured", "Column tokens (source) coloured"), None, None))
    elif not isinstance(image, dict) or len(tokens) > first + image["grid"][0] * image["grid"][1]:
        # an image classifier's tokens are its patches (the pictures above show them); a prompt keeps its words
        parts.append(sentence_html(tokens, row, q, title, start, t))
    return _box("".join(parts), "attattr-static-explorer", "AttAttr Explorer")


# --------------------------------------------------------------------------------------------------------
# TreeView
# --------------------------------------------------------------------------------------------------------
#: node outline per side of an encoder–decoder's tree across source and answer (js/tree/tree-view.ts SIDE_COLORS)
_SIDE_STROKE = {"source": "#1f77b4", "answer": "#c2185b"}


def tree_html(w: Any) -> str:
    tree = dict(w.tree or {})
    nodes, edges = list(tree.get("nodes") or []), list(tree.get("edges") or [])
    title = str(w.title or "") or "Attribution tree"
    hdr = (f'<div style="font-weight:600">{esc(title)}</div>'
           f'<div style="color:#555">threshold {esc(fmt(w.threshold))} · {len(nodes)} nodes · {len(edges)} edges'
           + (f' · <span style="color:{_SIDE_STROKE["source"]}">source</span> / '
              f'<span style="color:{_SIDE_STROKE["answer"]}">answer</span>' if tree.get("sides") else "")
           + '</div>'
           + _status(str(w.state), str(w.error or "")))
    if not nodes:
        return _box(hdr + "<div>No tree to show.</div>", "attattr-static-tree", title)
    by_index = {int(nd["index"]): nd for nd in nodes}
    # x: token position; y: layer (the root above the last layer, leaves at the bottom)
    layers_used = sorted({int(nd.get("layer", 0)) for nd in nodes}, reverse=True)
    row_of = {lay: i for i, lay in enumerate(layers_used)}
    # one column per node in token order, at most TREE_WIDTH px wide; narrow columns stagger odd ones down by
    # half a row so neighbouring labels get two columns of room
    cols = sorted(by_index)
    col_of = {idx: i for i, idx in enumerate(cols)}
    col_w = max(28.0, min(74.0, TREE_WIDTH / max(len(cols), 1)))
    stagger = 24.0 if col_w < 74.0 else 0.0
    row_h, pad = 54.0 + stagger, 30.0
    W, H = pad * 2 + col_w * len(cols), pad * 2 + row_h * max(len(layers_used) - 1, 0) + stagger + 20
    pos = {idx: (pad + (col_of[idx] + 0.5) * col_w,
                 pad + row_of[int(nd.get("layer", 0))] * row_h + (stagger if col_of[idx] % 2 else 0.0))
           for idx, nd in by_index.items()}
    label_chars = max(3, min(10, int((col_w * (2 if stagger else 1) - 12) / 7)))
    # an explained answer (causal LM): its tokens in the answer colour, a line before its first column
    ans = getattr(w, "answer_start", None)
    ans = int(ans) if ans is not None and not tree.get("sides") else None
    m = _signed_max([float(e.get("score", 0.0)) for e in edges]) if edges else 1.0
    body = []
    if ans is not None and cols[0] < ans <= cols[-1]:
        x = pad + next(k for k, idx in enumerate(cols) if idx >= ans) * col_w
        body.append(f'<line data-answer="boundary" x1="{x:.1f}" x2="{x:.1f}" y1="{pad - 20:.1f}" y2="{H - 4:.1f}" '
                    f'stroke="{_ANSWER}" stroke-width="1.5"><title>the answer starts here</title></line>')
    for e in edges:
        p, c = int(e["parent"]), int(e["child"])
        if p not in pos or c not in pos:
            continue
        (x1, y1), (x2, y2) = pos[p], pos[c]
        sc = float(e.get("score", 0.0))
        tip = "layer {}: {}".format(e.get("layer"), fmt(sc))
        col = _css(diverging(0.35 + 0.65 * abs(sc) / m) if sc >= 0 else diverging(-0.35 - 0.65 * abs(sc) / m))
        body.append(f'<line x1="{x1:.1f}" y1="{y1 + 9:.1f}" x2="{x2:.1f}" y2="{y2 - 9:.1f}" stroke="{col}" '
                    f'stroke-width="{1.5 + 3 * abs(sc) / m:.1f}"><title>{esc(tip)}</title></line>')
    for idx, nd in by_index.items():
        x, y = pos[idx]
        lab = _short(nd.get("token", ""), label_chars)
        wbox = max(24.0, 7.0 * len(lab) + 10)
        answer = {"fill": _ANSWER} if ans is not None and idx >= ans else {}
        stroke = answer.get("fill") or _SIDE_STROKE.get(str(nd.get("side", "")), "#8c959f")  # by side / answer
        body.append(f'<rect x="{x - wbox / 2:.1f}" y="{y - 9:.1f}" width="{wbox:.1f}" height="18" rx="4" '
                    f'fill="#f6f8fa" stroke="{stroke}"/>')
        body.append(_text(x, y + 4, lab, text_anchor="middle", **answer))
    image = getattr(w, "image", None)
    on_image = _tree_on_image(image, edges, m) if isinstance(image, dict) else ""
    return _box(hdr + on_image + _svg(W, H, body, title), "attattr-static-tree", title)


def _tree_on_image(image: dict, edges: list, m: float, size: int = 260) -> str:
    """The tree on the picture: edges between patch centres (non-patch tokens such as [CLS] in a band above)."""
    rows, cols = image["grid"]
    first = int(image["first_patch"])
    w, h = _image_box(image, size)
    band = 30.0

    def point(t: int) -> tuple[float, float]:
        p = t - first
        if 0 <= p < rows * cols:
            return (p % cols + 0.5) * w / cols, band + (p // cols + 0.5) * h / rows
        return (min(t, first - 1) + 0.5) * w / max(first, 1), band / 2

    body = [f'<image href="{_data_uri(np.asarray(image["pixels"]))}" x="0" y="{band}" width="{w:.1f}" '
            f'height="{h:.1f}" preserveAspectRatio="none" style="image-rendering:pixelated"/>',
            f'<rect x="0" y="{band}" width="{w:.1f}" height="{h:.1f}" fill="none" stroke="#999"/>']
    for e in edges:
        (x1, y1), (x2, y2) = point(int(e["parent"])), point(int(e["child"]))
        sc = float(e.get("score", 0.0))
        col = _css(diverging(0.35 + 0.65 * abs(sc) / m) if sc >= 0 else diverging(-0.35 - 0.65 * abs(sc) / m))
        tip = "#{} → #{} · layer {}: {}".format(e["parent"], e["child"], e.get("layer"), fmt(sc))
        body.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{col}" '
                    f'stroke-width="{1.5 + 3 * abs(sc) / m:.1f}"><title>{esc(tip)}</title></line>'
                    f'<circle cx="{x2:.1f}" cy="{y2:.1f}" r="2.5" fill="{col}"/>')
    return ('<div style="display:inline-block;vertical-align:top;margin:6px 18px 8px 0">'
            + _svg(w + 2, band + h + 2, body, "attribution tree on the image") + "</div>")


# --------------------------------------------------------------------------------------------------------
# HeadsView
# --------------------------------------------------------------------------------------------------------
def curves_svg(series: list[tuple[str, list[float], list[float]]], title: str, xlabel: str, ylabel: str,
               *, width: int = 500, height: int = 240) -> str:
    """Line chart of ``(name, xs, ys)`` series (NaN = not computed yet), colours from palette ``series``."""
    pl, pr, pt, pb = 46, 180, 22, 34
    xs_all = [x for _, xs, _ in series for x in xs if np.isfinite(x)]
    ys_all = [y for _, _, ys in series for y in ys if np.isfinite(y)]
    x0, x1 = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    y0, y1 = (min(ys_all + [0.0]), max(ys_all + [1.0])) if ys_all else (0.0, 1.0)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    sx = lambda x: pl + (x - x0) / (x1 - x0) * (width - pl - pr)  # noqa: E731
    sy = lambda y: height - pb - (y - y0) / (y1 - y0) * (height - pt - pb)  # noqa: E731
    body = [_text(pl, 12, title, font_weight="600"),
            f'<rect x="{pl}" y="{pt}" width="{width - pl - pr}" height="{height - pt - pb}" fill="none" stroke="#ccc"/>']
    for v in np.linspace(y0, y1, 5):
        body.append(_text(pl - 4, sy(v) + 3, fmt(v, 2), text_anchor="end", fill="#555", font_size="10"))
    for v in np.linspace(x0, x1, 5):
        body.append(_text(sx(v), height - pb + 13, fmt(v, 2), text_anchor="middle", fill="#555", font_size="10"))
    body.append(_text(pl + (width - pl - pr) / 2, height - 4, xlabel, text_anchor="middle", fill="#555"))
    body.append(_text(10, pt + (height - pt - pb) / 2, ylabel, text_anchor="middle", fill="#555",
                      transform=f"rotate(-90 10 {pt + (height - pt - pb) / 2:.1f})"))
    colors = PALETTE["series"]
    for k, (name, xs, ys) in enumerate(series):
        col = colors[k % len(colors)]
        pts = [(sx(x), sy(y)) for x, y in zip(xs, ys) if np.isfinite(x) and np.isfinite(y)]
        if len(pts) > 1:
            body.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="'
                        + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        body.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{col}"/>' for a, b in pts)
        ly = pt + 8 + 16 * k
        body.append(f'<line x1="{width - pr + 10}" y1="{ly}" x2="{width - pr + 26}" y2="{ly}" stroke="{col}" '
                    'stroke-width="2"/>')
        body.append(_text(width - pr + 30, ly + 4, _short(name, 26)))
    return '<div style="display:inline-block;vertical-align:top;margin:0 18px 8px 0">' + \
        _svg(width, height, body, title) + "</div>"


def heads_html(w: Any) -> str:
    meta = dict(w.meta or {})
    parts = ['<div style="font-weight:600">AttAttr heads'
             + (f' · <span style="font-weight:400;color:#555">{esc(meta["model_name"])}</span>'
                if meta.get("model_name") else "") + "</div>"]
    prog = dict(w.progress or {})
    parts.append(_status(str(w.state), str(w.error or "")))
    if prog:
        parts.append('<div style="color:#555">' + " · ".join(
            f"{esc(k)} {int(v.get('done', 0))}/{int(v.get('total', 0))}" for k, v in prog.items()
            if isinstance(v, dict)) + "</div>")
    figs = []
    sel = [int(x) for x in (w.selected or [])]
    for method, grid in dict(w.importance or {}).items():
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim == 2 and g.size:
            figs.append(_grid_svg(g, list(range(g.shape[0])), sel, f"Importance · {method}"))
    if figs:
        parts.append("<div>" + "".join(figs) + "</div>")
    series = []
    for c in list(w.curves or []):
        acc = np.asarray(c.get("accuracy", []), dtype=np.float64)
        fr = [float(f) for f in c.get("fractions", [])]
        series.append((str(c.get("method", "")), fr, [float(a) for a in acc]))
    charts = []
    if series:
        charts.append(curves_svg(series, "Accuracy vs. fraction of heads pruned", "fraction pruned", "accuracy"))
    eff = dict(w.effectiveness or {})
    eff_series = _effectiveness_series(eff)
    if eff_series:
        charts.append(curves_svg(eff_series, "Effectiveness: accuracy vs. heads pruned per layer",
                                 "heads pruned in every layer", "accuracy"))
    if charts:
        parts.append("<div>" + "".join(charts) + "</div>")
    if not figs and not charts:
        parts.append("<div>Nothing computed yet: call <code>run()</code>.</div>")
    return _box("".join(parts), "attattr-static-heads", "AttAttr heads")


def _effectiveness_series(eff: dict) -> list[tuple[str, list[float], list[float]]]:
    """One series per (criterion, order) of an ``Effectiveness.to_dict()`` record: accuracy [K] over ``heads`` [K]
    (heads pruned in every layer); None / missing points are NaN (not computed yet)."""
    heads = [float(h) for h in eff.get("heads") or []]
    out = []
    for crit, by_order in dict(eff.get("accuracy") or {}).items():
        for order, ys in dict(by_order or {}).items():
            vals = [float("nan") if y is None else float(y) for y in ys]
            out.append((f"{crit}, {order}", heads[:len(vals)], vals[:len(heads)]))
    return out


# --------------------------------------------------------------------------------------------------------
# TriggersView
# --------------------------------------------------------------------------------------------------------
def triggers_html(w: Any) -> str:
    meta = dict(w.meta or {})
    rows = list(w.patterns or [])
    parts = ['<div style="font-weight:600">AttAttr trigger patterns'
             + (f' · <span style="font-weight:400;color:#555">{esc(meta["model_name"])}</span>'
                if meta.get("model_name") else "") + "</div>", _status(str(w.state), str(w.error or ""))]
    if not rows:
        parts.append("<div>No patterns mined yet: call <code>run()</code>.</div>")
        return _box("".join(parts), "attattr-static-triggers", "AttAttr trigger patterns")
    th = "padding:3px 8px;text-align:left;border-bottom:1px solid #d0d7de"
    td = "padding:3px 8px;border-bottom:1px solid #eee;vertical-align:top"
    head = "".join(f'<th style="{th}">{h}</th>' for h in
                   ("#", "pattern", "score", "head", "prediction", "accuracy before → after", "flip rate"))
    body = []
    sel = int(w.selected)
    for r in rows:
        rel = np.asarray(r.get("relative", []), dtype=np.float64)
        m = _signed_max(rel) if rel.size else 1.0
        toks = []
        for i, t in enumerate(r.get("tokens", [])):
            c = diverging(rel[i] / m) if i < rel.size else _BG
            toks.append(f'<span style="display:inline-block;margin:1px;padding:0 3px;border-radius:3px;'
                        f'white-space:pre;background:{_css(c)};color:{_text_on(c)}">{esc(display_token(t))}</span>')
        ev = r.get("evaluated")
        acc = (f"{fmt(r.get('overall_before'))} → {fmt(r.get('overall_after'))}" if ev else "not evaluated")
        flip = fmt(r.get("flip_rate")) if ev else "–"
        style = ' style="background:#fff8c5"' if int(r.get("id", -2)) == sel else ""
        body.append(f"<tr{style}>" + "".join(f'<td style="{td}">{c}</td>' for c in (
            esc(r.get("id")), "".join(toks), esc(fmt(r.get("score"))),
            esc(f"L{r.get('layer')} H{r.get('head')}"), esc(display_token(r.get("pred_label", ""))),
            esc(acc), esc(flip))) + "</tr>")
    parts.append(f'<table style="border-collapse:collapse;margin-top:6px;font-size:12px"><thead><tr>{head}</tr>'
                 f'</thead><tbody>{"".join(body)}</tbody></table>')
    return _box("".join(parts), "attattr-static-triggers", "AttAttr trigger patterns")


# --------------------------------------------------------------------------------------------------------
def snapshot_html(widget: Any) -> str | None:
    """The static HTML of an attattr view as it is now (by its class or a base class named Explorer, TreeView,
    HeadsView or TriggersView), or None for other widgets."""
    for cls in type(widget).__mro__:
        fn = RENDERERS.get(cls.__name__)
        if fn is not None and cls.__module__.startswith("attattr_widgets.widgets."):
            return fn(widget)
    return None


RENDERERS = {"Explorer": explorer_html, "TreeView": tree_html, "HeadsView": heads_html,
             "TriggersView": triggers_html}
