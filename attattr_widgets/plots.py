"""Bokeh figures for AttAttr results: pruning curves, head-importance correlation, effectiveness (paper Fig 2),
and an encoder–decoder's cross-attention alignment (attention vs attribution, answer rows × source columns).

Every function here is pure: it takes plain data (engine result objects, dicts or arrays) and returns a Bokeh
layout, so it can be tested without a browser. Rendering is offline: :func:`save_html` writes a self-contained
file with Bokeh's INLINE resources, :func:`show` uses ``jupyter_bokeh`` in JupyterLab / Notebook 7.

Inputs are duck-typed. A *pruning curve* is any object or mapping with

* ``method`` (str), ``fractions`` ([K] fraction of heads pruned), ``accuracy`` ([K]),
* optionally ``pruned`` (K entries, each an ``[L, H]`` boolean mask or a list of ``(layer, head)`` pairs).

``attattr_widgets.engine.analysis.pruning.PruningCurve`` is one of them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "alignment_plot",
    "bokeh_widget",
    "correlation_plot",
    "effectiveness_plot",
    "pearson_r",
    "pruning_plot",
    "save_html",
    "show",
    "to_html_string",
]

TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
# Category10 without importing bokeh.palettes at module import time (kept in sync by a test).
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
ATTRIBUTION_COLOR = "#1f77b4"   # blue, as in the paper's Fig 2
ATTENTION_COLOR = "#d62728"     # red


# --------------------------------------------------------------------------------------------------------
# input normalisation
# --------------------------------------------------------------------------------------------------------
def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """First present attribute / key among ``names`` (objects and mappings alike)."""
    for n in names:
        if isinstance(obj, Mapping):
            if n in obj:
                return obj[n]
        elif hasattr(obj, n):
            return getattr(obj, n)
    return default


def _is_curve(obj: Any) -> bool:
    return _get(obj, "accuracy") is not None and _get(obj, "fractions", "fraction") is not None


def _as_curves(curves: Any) -> list[Any]:
    """Accept one curve, a sequence of curves, or a mapping ``{method: curve}``."""
    if _is_curve(curves):
        return [curves]
    if isinstance(curves, Mapping):
        out = []
        for name, c in curves.items():
            if not _is_curve(c):
                raise TypeError(f"pruning_plot: value for {name!r} is not a pruning curve "
                                "(needs .fractions and .accuracy)")
            if _get(c, "method") is None:
                c = {"method": str(name), "fractions": _get(c, "fractions", "fraction"),
                     "accuracy": _get(c, "accuracy"), "pruned": _get(c, "pruned")}
            out.append(c)
        return out
    if isinstance(curves, Iterable) and not isinstance(curves, (str, bytes)):
        out = list(curves)
        for c in out:
            if not _is_curve(c):
                raise TypeError(f"pruning_plot: {type(c).__name__} is not a pruning curve "
                                "(needs .method, .fractions and .accuracy)")
        return out
    raise TypeError("pruning_plot expects a PruningCurve, a list of them, or a dict {method: curve}; "
                    f"got {type(curves).__name__}")


def _count_pruned(entry: Any) -> int | None:
    """Number of pruned heads in one ``pruned`` entry: an [L, H] bool mask or a list of (layer, head)."""
    if entry is None:
        return None
    try:
        a = np.asarray(entry)
    except (ValueError, TypeError):  # ragged -> list of pairs
        return len(list(entry))
    if a.dtype == bool:
        return int(a.sum())
    if a.ndim == 2 and a.shape[1] == 2 and np.issubdtype(a.dtype, np.integer):
        return int(a.shape[0])
    if a.size == 0:
        return 0
    if a.ndim == 2:  # float / int 0-1 mask
        return int((a != 0).sum())
    return len(entry)


def _short_heads(entry: Any, limit: int = 8) -> str:
    """A short text listing of pruned heads for a tooltip ("L0H3, L1H0, … (+5)")."""
    if entry is None:
        return ""
    a = np.asarray(entry)
    if a.dtype == bool and a.ndim == 2:
        pairs = [tuple(map(int, p)) for p in np.argwhere(a)]
    else:
        try:
            pairs = [(int(p[0]), int(p[1])) for p in entry]
        except (TypeError, ValueError, IndexError):
            return ""
    txt = ", ".join(f"L{l}H{h}" for l, h in pairs[:limit])
    if len(pairs) > limit:
        txt += f", … (+{len(pairs) - limit})"
    return txt


def _xy(curve: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(_get(curve, "fractions", "fraction"), dtype=float).ravel()
    y = np.asarray(_get(curve, "accuracy"), dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pruning curve {_get(curve, 'method')!r}: fractions has {x.size} points but accuracy "
                         f"has {y.size}; they must match")
    return x, y


# --------------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------------
def pruning_plot(curves: Any, *, title: str = "Accuracy vs. fraction of heads pruned",
                 width: int = 620, height: int = 380, baseline: float | None = None,
                 percent: bool = False):
    """Several pruning curves (one per method) in one figure.

    ``curves``: a PruningCurve-like object, a list of them, or ``{method: curve}``. Hover shows method,
    fraction pruned, heads pruned and accuracy; clicking a legend entry hides that curve; the toolbar's save
    tool exports a PNG. ``baseline`` draws a dotted horizontal line (e.g. the unpruned accuracy).
    Returns a ``bokeh.plotting.figure``.
    """
    from bokeh.models import ColumnDataSource, HoverTool, Span
    from bokeh.plotting import figure

    items = _as_curves(curves)
    if not items:
        raise ValueError("pruning_plot: no curves given")
    p = figure(width=width, height=height, title=title, tools=TOOLS,
               x_axis_label="fraction of heads pruned", y_axis_label="accuracy",
               x_range=(-0.02, 1.02))
    renderers = []
    has_heads = has_counts = False
    names = [str(_get(c, "method", "name", default=f"curve {i}")) for i, c in enumerate(items)]
    dup = {n for n in names if names.count(n) > 1}
    for i, c in enumerate(items):
        x, y = _xy(c)
        method = names[i]
        order = _get(c, "order")
        largest = order is not None and _order_kind(order, strict=False) == "largest-first"
        if method in dup and order is not None:
            method = f"{method} ({order})"
        pruned = _get(c, "pruned")
        n_pruned = [None] * len(x)
        heads_txt = [""] * len(x)
        if pruned is not None:
            pruned = list(pruned)
            if len(pruned) == len(x):
                n_pruned = [_count_pruned(e) for e in pruned]
                heads_txt = [_short_heads(e) for e in pruned]
        n_col = ["?" if n is None else str(n) for n in n_pruned]
        has_heads = has_heads or any(heads_txt)
        has_counts = has_counts or any(n is not None for n in n_pruned)
        src = ColumnDataSource({
            "x": x, "y": y * (100.0 if percent else 1.0),
            "method": [method] * len(x),  # Bokeh draws (label, "@field") tooltips as text: no escaping here
            "n_pruned": n_col, "heads": heads_txt,
        })
        base = names[i]
        color = _PALETTE[list(dict.fromkeys(names)).index(base) % len(_PALETTE)]
        dash = "dashed" if largest or i >= len(_PALETTE) else "solid"
        line = p.line("x", "y", source=src, color=color, line_width=2, line_dash=dash,
                      legend_label=method, name=f"curve:{method}")
        dots = p.scatter("x", "y", source=src, color=color, size=6, legend_label=method)
        renderers.extend([line, dots])
    tips = [("method", "@method"), ("pruned", "@x{0.0%}"),
            ("accuracy", "@y{0.0}%" if percent else "@y{0.000}")]
    if has_counts:
        tips.insert(2, ("heads pruned", "@n_pruned"))
    if has_heads:
        tips.append(("pruned heads", "@heads"))
    p.add_tools(HoverTool(renderers=renderers[1::2], tooltips=tips, mode="mouse"))
    if baseline is not None:
        p.add_layout(Span(location=baseline * (100.0 if percent else 1.0), dimension="width",
                          line_dash="dotted", line_color="gray"))
    if percent:
        p.yaxis.axis_label = "accuracy (%)"
    p.xaxis.formatter = _percent_formatter()
    p.legend.click_policy = "hide"
    p.legend.location = "bottom_left"
    p.toolbar.logo = None
    return p


def _percent_formatter():
    from bokeh.models import NumeralTickFormatter
    return NumeralTickFormatter(format="0%")


def pearson_r(a: Any, b: Any) -> float:
    """Pearson correlation of two equally-sized arrays (flattened); NaN if either is constant."""
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pearson_r: sizes differ ({x.size} vs {y.size})")
    if x.size < 2:
        return float("nan")
    xm, ym = x - x.mean(), y - y.mean()
    den = math.sqrt(float((xm * xm).sum()) * float((ym * ym).sum()))
    return float((xm * ym).sum() / den) if den > 0 else float("nan")


def _heads_grid(imp: Any, num_heads: int | None, name: str) -> np.ndarray:
    a = np.asarray(imp, dtype=float)
    if a.ndim == 2:
        return a
    if a.ndim == 1:
        if num_heads is None:
            return a[None, :]
        if a.size % num_heads:
            raise ValueError(f"correlation_plot: {name} has {a.size} values, not a multiple of "
                             f"num_heads={num_heads}")
        return a.reshape(-1, num_heads)
    raise ValueError(f"correlation_plot: {name} must be [layers, heads] (or flat with num_heads=); "
                     f"got shape {a.shape}")


def correlation_plot(imp_a: Any, imp_b: Any = None, labels: Sequence[str] = ("task A", "task B"), *,
                     num_heads: int | None = None, title: str | None = None,
                     width: int = 460, height: int = 420, fit: bool = True):
    """Scatter of per-head importance of two tasks (one dot per head), Pearson r in the title.

    ``imp_a``/``imp_b``: ``[L, H]`` arrays (or flat ``[L*H]`` with ``num_heads=``), or ``imp_a`` alone an
    ``engine.analysis.pruning.Correlation`` (``head_correlation()`` result); ``labels``: the two task names (axis
    labels). Hover shows layer, head and both values; dots are coloured by layer. The figure's
    ``tags[0]["pearson_r"]`` holds r.
    """
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure
    from bokeh.transform import linear_cmap

    if imp_b is None and all(_get(imp_a, k) is not None for k in ("x", "y", "layer", "head")):
        corr = imp_a                                   # engine.analysis.pruning.Correlation (or a dict like it)
        layer_ids = np.asarray(_get(corr, "layer"), int)
        head_ids = np.asarray(_get(corr, "head"), int)
        grid = np.full((layer_ids.max() + 1, head_ids.max() + 1), np.nan)
        a, b = grid.copy(), grid.copy()
        a[layer_ids, head_ids] = np.asarray(_get(corr, "x"), float)
        b[layer_ids, head_ids] = np.asarray(_get(corr, "y"), float)
        if labels == ("task A", "task B") and _get(corr, "labels") is not None:
            labels = tuple(_get(corr, "labels"))
    elif imp_b is None:
        raise TypeError("correlation_plot needs two importance grids, or one Correlation result")
    else:
        a = _heads_grid(imp_a, num_heads, "imp_a")
        b = _heads_grid(imp_b, num_heads, "imp_b")
    if a.shape != b.shape:
        raise ValueError(f"correlation_plot: shapes differ {a.shape} vs {b.shape}")
    if len(labels) != 2:
        raise ValueError("correlation_plot: labels must be two task names, e.g. ('MNLI', 'RTE')")
    la, lb = (str(s) for s in labels)
    L, H = a.shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    ok = np.isfinite(a) & np.isfinite(b)
    layer, head, a, b = layer[ok], head[ok], a[ok], b[ok]
    r = pearson_r(a, b)
    r_txt = "n/a" if math.isnan(r) else f"{r:.3f}"
    if title is None:
        title = f"Head importance: {la} vs {lb} (Pearson r = {r_txt})"
    else:
        title = f"{title} (Pearson r = {r_txt})"
    src = ColumnDataSource({
        "a": a.ravel(), "b": b.ravel(), "layer": layer.ravel(), "head": head.ravel(),
        "name": [f"L{l}H{h}" for l, h in zip(layer.ravel(), head.ravel())],
    })
    p = figure(width=width, height=height, title=title, tools=TOOLS,
               x_axis_label=f"importance ({la})", y_axis_label=f"importance ({lb})")
    pal = _layer_palette(L)
    sc = p.scatter("a", "b", source=src, size=8, alpha=0.8, line_color="white",
                   fill_color=linear_cmap("layer", pal, 0, max(L - 1, 1)) if L > 1 else pal[0],
                   name="heads")
    if fit and a.size >= 2 and not math.isnan(r):
        k, c0 = np.polyfit(a.ravel(), b.ravel(), 1)
        xs = np.array([a.min(), a.max()])
        p.line(xs, k * xs + c0, line_dash="dashed", color="gray", legend_label=f"fit (r = {r_txt})")
        p.legend.location = "top_left"
        p.legend.click_policy = "hide"
    p.add_tools(HoverTool(renderers=[sc], tooltips=[
        ("head", "layer @layer, head @head"), (la, "@a{0.0000}"), (lb, "@b{0.0000}")]))
    p.toolbar.logo = None
    p.title.text_font_size = "11pt"
    # keep r for tests/reports
    p.tags = [{"pearson_r": r}]
    return p


def _layer_palette(n: int) -> list[str]:
    from bokeh.palettes import Viridis256
    if n <= 1:
        return [Viridis256[0]]
    return [Viridis256[round(i * 255 / (n - 1))] for i in range(n)]


# --- effectiveness (paper Fig 2) -------------------------------------------------------------------------
_SMALL = ("small", "asc", "low", "least", "bottom", "min")
_LARGE = ("large", "desc", "high", "most", "top", "max", "big")


def _order_kind(order: Any, strict: bool = True) -> str | None:
    s = str(order).lower()
    if any(k in s for k in _SMALL):
        return "smallest-first"
    if any(k in s for k in _LARGE):
        return "largest-first"
    if not strict:
        return None
    raise ValueError(f"effectiveness_plot: cannot tell pruning order from {order!r}; use 'smallest-first' "
                     "or 'largest-first'")


def _crit_color(crit: str, i: int) -> str:
    s = crit.lower()
    if s.startswith("attr"):
        return ATTRIBUTION_COLOR
    if s.startswith("att"):   # attention
        return ATTENTION_COLOR
    return _PALETTE[(i + 2) % len(_PALETTE)]


def _series_x(rec: Any, n: int, heads: Any) -> np.ndarray:
    x = _get(rec, "heads", "num_pruned", "heads_pruned", "x", "k")
    if x is None:
        x = heads
    if x is None:
        return np.arange(n, dtype=float)
    x = np.asarray(x, dtype=float).ravel()
    if x.size != n:
        raise ValueError(f"effectiveness_plot: {x.size} x values for {n} accuracy values")
    return x


def _effectiveness_series(result: Any, heads: Any = None) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Normalise to ``[(criterion, order, x, accuracy)]``."""
    out: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    # object/dict with .heads + .accuracy mapping  (e.g. an Effectiveness dataclass)
    acc = _get(result, "accuracy", "curves", "results")
    if acc is not None and isinstance(acc, Mapping):
        if heads is None:
            heads = _get(result, "heads", "num_pruned", "heads_pruned", "x")
        result = acc
    if isinstance(result, Mapping):
        for key, val in result.items():
            if isinstance(key, tuple) and len(key) == 2:
                crit, order = key
                ys = _get(val, "accuracy") if not isinstance(val, (list, tuple, np.ndarray)) else val
                ys = np.asarray(ys, dtype=float).ravel()
                out.append((str(crit), _order_kind(order), _series_x(val if isinstance(val, Mapping) else {},
                                                                       ys.size, heads), ys))
            elif isinstance(val, Mapping):
                for order, v in val.items():
                    ys = np.asarray(_get(v, "accuracy") if isinstance(v, Mapping) else v, dtype=float).ravel()
                    out.append((str(key), _order_kind(order),
                                _series_x(v if isinstance(v, Mapping) else {}, ys.size, heads), ys))
            elif key in ("heads", "num_pruned", "heads_pruned", "x"):
                continue
            else:
                raise TypeError(f"effectiveness_plot: value for {key!r} must map order -> accuracies")
    elif isinstance(result, Iterable) and not isinstance(result, (str, bytes)):
        for rec in result:
            crit = _get(rec, "criterion", "method", "score", "by")
            order = _get(rec, "order", "direction")
            ys = _get(rec, "accuracy")
            if crit is None or order is None or ys is None:
                raise TypeError("effectiveness_plot: each record needs criterion/method, order and accuracy")
            ys = np.asarray(ys, dtype=float).ravel()
            out.append((str(crit), _order_kind(order), _series_x(rec, ys.size, heads), ys))
    else:
        raise TypeError(f"effectiveness_plot: unsupported input {type(result).__name__}")
    if not out:
        raise ValueError("effectiveness_plot: no series")
    return out


def effectiveness_plot(result: Any, heads: Any = None, *, baseline: float | None = None,
                       title: str = "Pruning heads in every layer: attribution vs. attention",
                       width: int = 620, height: int = 380):
    """Paper Fig 2: accuracy vs. number of heads pruned in every layer.

    Blue = heads ranked by attribution score, red = by attention score; solid = smallest-first (least
    important pruned first), dashed = largest-first. ``result`` may be

    * ``{"attribution": {"smallest-first": [...], "largest-first": [...]}, "attention": {...}}``
      (x from ``heads=`` or 0..K-1),
    * ``{("attribution", "smallest-first"): [...], ...}``,
    * an object / dict with ``heads`` and ``accuracy`` being one of the mappings above,
    * a list of records with ``criterion`` (or ``method``), ``order``, ``accuracy`` and optional ``heads``.
    """
    from bokeh.models import ColumnDataSource, HoverTool, Span
    from bokeh.plotting import figure

    series = _effectiveness_series(result, heads)
    if baseline is None and not isinstance(result, (Mapping, list, tuple)):
        fa = _get(result, "full_accuracy")
        baseline = float(fa) if fa is not None and np.isfinite(fa) else None
    p = figure(width=width, height=height, title=title, tools=TOOLS,
               x_axis_label="heads pruned in every layer", y_axis_label="accuracy")
    crits: list[str] = []
    rends = []
    for crit, order, x, y in series:
        if crit not in crits:
            crits.append(crit)
        color = _crit_color(crit, crits.index(crit))
        dash = "solid" if order == "smallest-first" else "dashed"
        label = f"{crit}, {order}"
        src = ColumnDataSource({"x": x, "y": y, "label": [label] * len(x)})  # tooltips are text (see above)
        p.line("x", "y", source=src, color=color, line_dash=dash, line_width=2, legend_label=label,
               name=f"{crit}:{order}")
        rends.append(p.scatter("x", "y", source=src, color=color, size=6, legend_label=label,
                               marker="circle" if order == "smallest-first" else "triangle"))
    p.add_tools(HoverTool(renderers=rends, tooltips=[("series", "@label"), ("heads pruned / layer", "@x"),
                                                     ("accuracy", "@y{0.000}")]))
    if baseline is not None:
        p.add_layout(Span(location=baseline, dimension="width", line_dash="dotted", line_color="gray"))
    xs = sorted({float(v) for _, _, x, _ in series for v in x})
    if len(xs) <= 25 and all(v.is_integer() for v in xs):
        from bokeh.models import FixedTicker
        p.xaxis.ticker = FixedTicker(ticks=xs)
    p.legend.click_policy = "hide"
    p.legend.location = "bottom_left"
    p.toolbar.logo = None
    return p


# --------------------------------------------------------------------------------------------------------
# encoder-decoder alignment
# --------------------------------------------------------------------------------------------------------
def alignment_plot(result: Any, *, layer: int | None = None, head: int | None = None, cell: int = 26,
                   title: str | None = None):
    """The cross-attention alignment of an encoder–decoder answer: attention and attribution side by side, rows
    the answer tokens (row i predicts ``label_tokens[i]``, reading ``decoder_tokens[i]``), columns the source
    tokens.

    ``result``: a :class:`~attattr_widgets.engine.results.Seq2SeqAttribution` (its ``cross`` site, [L, H, n_tgt,
    n_src]). ``layer`` (a cross-attention layer of ``result.cross.layers``) and ``head``: one map; None sums that
    axis. ``cell``: pixels per cell. Attention is drawn on a sequential scale from 0, attribution on a diverging
    scale symmetric about 0; hover shows both tokens and both values. The figures' ``tags[0]`` hold the matrix
    drawn (``{"what", "values" [n_tgt, n_src]}``).
    """
    from bokeh.layouts import row
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.palettes import RdBu11, Blues256
    from bokeh.plotting import figure
    from bokeh.transform import linear_cmap

    cross = _get(result, "cross")
    if cross is None or np.ndim(_get(cross, "scores")) != 4:
        raise TypeError(f"alignment_plot takes an encoder-decoder's result (attribute(model, tokenizer, source, "
                        f"target=answer)), got {type(result).__name__}")
    scores, attn = np.asarray(cross.scores, np.float64), np.asarray(cross.attention, np.float64)
    layers = list(cross.layers)
    if layer is not None:
        if layer not in layers:
            raise ValueError(f"alignment_plot: layer {layer} was not attributed; the cross-attention layers are "
                             f"{layers}")
        scores, attn = scores[[layers.index(layer)]], attn[[layers.index(layer)]]
    if head is not None:
        if not 0 <= int(head) < scores.shape[1]:
            raise ValueError(f"alignment_plot: head {head} is out of range (0..{scores.shape[1] - 1})")
        scores, attn = scores[:, [int(head)]], attn[:, [int(head)]]
    scores, attn = scores.sum((0, 1)), attn.sum((0, 1))
    rows, cols = list(_get(result, "label_tokens")), list(cross.col_tokens)
    reads = list(cross.row_tokens)
    n_r, n_c = scores.shape
    where = (f"layer {layer}" if layer is not None else "all layers") + " · " + (
        f"head {head}" if head is not None else "all heads")
    ii, jj = np.meshgrid(np.arange(n_r), np.arange(n_c), indexing="ij")
    src = ColumnDataSource({
        "x": jj.ravel(), "y": ii.ravel(), "attention": attn.ravel(), "attribution": scores.ravel(),
        "answer": [rows[i] for i in ii.ravel()], "reads": [reads[i] for i in ii.ravel()],
        "source": [cols[j] for j in jj.ravel()],
    })
    lim = float(np.abs(scores).max()) or 1.0
    figs = []
    for what, values, cmap in (
            ("attention", attn, linear_cmap("attention", Blues256[::-1], 0.0, float(attn.max()) or 1.0)),
            ("attribution", scores, linear_cmap("attribution", list(RdBu11[::-1]), -lim, lim))):
        p = figure(width=max(220, cell * n_c + 120), height=max(180, cell * n_r + 110), tools=TOOLS,
                   title=f"cross-{what} ({where})" if title is None else f"{title}: {what}",
                   x_range=(-0.5, n_c - 0.5), y_range=(n_r - 0.5, -0.5), x_axis_label="source",
                   y_axis_label="answer")
        r = p.rect("x", "y", 1, 1, source=src, fill_color=cmap, line_color=None)
        p.xaxis.ticker = list(range(n_c))
        p.xaxis.major_label_overrides = {j: t for j, t in enumerate(cols)}
        p.xaxis.major_label_orientation = 0.9
        p.yaxis.ticker = list(range(n_r))
        p.yaxis.major_label_overrides = {i: t for i, t in enumerate(rows)}
        p.grid.visible = False
        p.add_tools(HoverTool(renderers=[r], tooltips=[
            ("answer", "@answer (reads @reads)"), ("source", "@source"), ("attention", "@attention{0.0000}"),
            ("attribution", "@attribution{0.00000}")]))
        p.toolbar.logo = None
        p.tags = [{"what": what, "values": values}]
        figs.append(p)
    return row(*figs)


# --------------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------------
def to_html_string(obj: Any, title: str = "AttAttr plot") -> str:
    """Standalone HTML text for a Bokeh layout with INLINE resources (no network needed to view it)."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE
    return file_html(obj, INLINE, title)


def save_html(obj: Any, path: Any, title: str = "AttAttr plot") -> str:
    """Write a self-contained HTML file (BokehJS inlined, zero network requests). Returns the path."""
    from .engine.results import atomic_write_text

    return str(atomic_write_text(path, to_html_string(obj, title)))  # a failed write keeps the previous file


_NOTEBOOK_READY = False


def show(obj: Any) -> None:
    """Display a Bokeh layout in JupyterLab 4 / Notebook 7 (offline BokehJS).

    Uses ``jupyter_bokeh.BokehModel`` (an ipywidget; Python callbacks work) when available, else
    ``bokeh.io.show`` after ``output_notebook(INLINE)``. Returns None, so a cell ending in ``plots.show(fig)``
    shows the plot once (a returned widget would be displayed a second time); for a handle to link Python
    callbacks, use :func:`bokeh_widget` and display it yourself.
    """
    from IPython.display import display

    w = bokeh_widget(obj)
    if w is not None:
        display(w)
        return None
    from bokeh.io import show as bk_show
    bk_show(obj)
    return None


def bokeh_widget(obj: Any) -> Any:
    """The layout as a ``jupyter_bokeh.BokehModel`` ipywidget (not displayed; inline BokehJS), or None when
    jupyter_bokeh is not installed (``pip install jupyter_bokeh``)."""
    global _NOTEBOOK_READY
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    if not _NOTEBOOK_READY:
        output_notebook(resources=INLINE, hide_banner=True)
        _NOTEBOOK_READY = True
    try:
        from jupyter_bokeh import BokehModel
    except ImportError:
        return None
    return BokehModel(obj)
