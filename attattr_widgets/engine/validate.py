"""Argument checks for the public functions, written once.

Every checker takes the value and the argument's name, returns the value normalised (a plain ``int``, a
``list[int]``, a float array, …) and raises :class:`~attattr_widgets.engine.errors.ArgumentError` (a
``ValueError`` *and* a ``TypeError``) whose message names the argument, shows the value and says what to pass
instead. Nothing is coerced silently: ``1.7`` is not an integer, ``True`` is not a count, ``-1`` is not a class,
a string is not a list of words.

This module is torch-free except :func:`device` (which imports torch when called).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .errors import ArgumentError

__all__ = [
    "MAX_STEPS",
    "attribution",
    "batch_size",
    "callback",
    "cancel_event",
    "choice",
    "device",
    "flag",
    "fractions",
    "integer",
    "label",
    "layer_list",
    "max_length",
    "memory_budget",
    "number",
    "output_path",
    "progress",
    "show",
    "steps",
    "word_list",
]

#: Most integration points accepted for one layer. Gauss–Legendre with 6 nodes already reaches ~1e-5; the node
#: computation alone is O(steps²) memory, and every node is a backward pass.
MAX_STEPS = 1024


def show(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of a user value for error messages."""
    try:
        r = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 1] + "…"


def _scalar(value: Any) -> Any:
    """0-d numpy arrays / torch tensors → their Python scalar; everything else unchanged."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        try:
            return value.item()
        except Exception:  # noqa: BLE001
            return value
    return value


def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
            fix: str = "") -> int:
    """``value`` as an ``int``: ints, numpy integers and integral floats (``2.0``) pass; bools, ``1.7``, NaN,
    strings and everything else raise. ``minimum``/``maximum`` are inclusive."""
    v = _scalar(value)
    hint = f" ({fix})" if fix else ""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ArgumentError(f"{name} must be an integer, got {show(value)} ({type(value).__name__}){hint}")
    if not isinstance(v, numbers.Integral):
        if not math.isfinite(float(v)) or not float(v).is_integer():
            raise ArgumentError(f"{name} must be a whole number, got {show(value)}: it is not rounded for you"
                                f"{hint}")
    i = int(v)
    if minimum is not None and i < minimum:
        raise ArgumentError(f"{name} must be >= {minimum}, got {show(value)}{hint}")
    if maximum is not None and i > maximum:
        raise ArgumentError(f"{name} must be <= {maximum}, got {show(value)}{hint}")
    return i


def number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
           fix: str = "") -> float:
    """``value`` as a finite ``float`` (bools and strings refused); bounds inclusive."""
    v = _scalar(value)
    hint = f" ({fix})" if fix else ""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ArgumentError(f"{name} must be a finite number, got {show(value)}{hint}")
    f = float(v)
    if (minimum is not None and f < minimum) or (maximum is not None and f > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise ArgumentError(f"{name} must lie in [{lo}, {hi}], got {show(value)}{hint}")
    return f


def flag(value: Any, name: str) -> bool:
    """A bool (``numpy.bool_`` too); ``"yes"``, ``1`` or None are refused rather than read as truthy."""
    v = _scalar(value)
    if not isinstance(v, (bool, np.bool_)):
        raise ArgumentError(f"{name} must be True or False, got {show(value)}")
    return bool(v)


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (strings), else an error listing them."""
    opts = list(options)
    if not isinstance(value, str) or value not in opts:
        raise ArgumentError(f"{name}={show(value)} is not one of: {', '.join(repr(o) for o in opts)}")
    return value


def batch_size(value: Any, name: str = "batch_size", *, allow_none: bool = True) -> int | None:
    """A positive number of examples per forward (None: the function's default)."""
    if value is None and allow_none:
        return None
    return integer(value, name, minimum=1, fix="the number of examples per forward, e.g. 8")


def max_length(value: Any, name: str = "max_length") -> int | None:
    """None (the model's positions) or a positive token count."""
    if value is None:
        return None
    return integer(value, name, minimum=1, fix="a token count such as 128, or None for the model's limit")


def steps(value: Any, name: str = "steps", *, allow_auto: bool = True, maximum: int = MAX_STEPS) -> int | str:
    """Integration points per layer: ``1 .. MAX_STEPS``, or ``"auto"`` where the engine supports it."""
    if isinstance(value, str):
        if allow_auto and value == "auto":
            return value
        auto = " or 'auto'" if allow_auto else ""
        raise ArgumentError(f"{name} must be a positive integer{auto}, got {show(value)}")
    return integer(value, name, minimum=1, maximum=maximum,
                   fix="6 Gauss–Legendre nodes reach ~1e-5 completeness error; the paper's left rule uses 20"
                       + ("; steps='auto' picks the number per layer" if allow_auto else ""))


def memory_budget(value: Any, name: str = "memory_budget") -> int | None:
    """None (the engine's default) or a positive number of bytes (``2 << 30`` = 2 GiB; ``2e9`` is accepted)."""
    if value is None:
        return None
    return integer(value, name, minimum=1 << 20, fix="a number of bytes of at least 1 MiB, e.g. 2 << 30 for 2 GiB")


def callback(value: Any, name: str, signature: str) -> Callable | None:
    """None or a callable (``signature`` describes how it is called, for the message)."""
    if value is None or callable(value):
        return value
    raise ArgumentError(f"{name} must be None or a callable {signature}, got {show(value)}")


def progress(value: Any, name: str = "progress", signature: str = "progress(done, total)", *,
             allow_bool: bool = True):
    """None/False (silent), True (a tqdm bar, where supported) or a callable."""
    if allow_bool and isinstance(value, bool):
        return value
    if value is None or (callable(value) and not isinstance(value, bool)):
        return value
    also = ", True (a progress bar), False" if allow_bool else ""
    raise ArgumentError(f"{name} must be None{also} or a callable {signature}, got {show(value)}")


def cancel_event(value: Any, name: str = "cancel"):
    """None or an event with ``is_set()`` (``threading.Event``; set it from another thread to stop the run)."""
    if value is None:
        return None
    if isinstance(value, bool) or not callable(getattr(value, "is_set", None)):
        raise ArgumentError(f"{name} must be None or a threading.Event (call .set() on it to stop the run), "
                            f"got {show(value)}")
    return value


def layer_list(value: Any, num_layers: int, name: str = "layers") -> list[int]:
    """Model layer indices: None → all ``num_layers``; an int or a non-empty sequence of distinct ints in
    ``-num_layers .. num_layers-1`` (negative counts from the top) → a list of non-negative indices."""
    L = int(num_layers)
    if value is None:
        return list(range(L))
    if isinstance(value, (str, bytes)) or isinstance(value, bool):
        raise ArgumentError(f"{name} must be None (all layers), an int or a list of ints, got {show(value)}")
    items = [value] if isinstance(_scalar(value), numbers.Number) else value
    try:
        items = list(items)
    except TypeError:
        raise ArgumentError(f"{name} must be None (all layers), an int or a list of ints, got {show(value)}") from None
    if not items:
        raise ArgumentError(f"{name} is empty: pass at least one layer index (0..{L - 1}), or None for all {L}")
    out = []
    for x in items:
        i = integer(x, f"{name} entry", fix=f"layer indices 0..{L - 1}")
        if not -L <= i < L:
            raise ArgumentError(f"{name}: layer {i} does not exist, the model has {L} layers (0..{L - 1})")
        out.append(i % L)
    if len(set(out)) != len(out):
        raise ArgumentError(f"{name}={show(items)} repeats a layer: pass each layer once")
    return out


def fractions(value: Any, name: str = "fractions") -> np.ndarray | None:
    """None (the default grid) or a non-empty 1-D list of fractions in [0, 1] → float64 array, sorted ascending
    (a pruning curve is read left to right: its points, plots and ``area()`` follow increasing fractions)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or isinstance(_scalar(value), numbers.Number):
        raise ArgumentError(f"{name} must be a list of fractions of heads in [0, 1] such as [0, 0.5, 0.9], "
                            f"got {show(value)}")
    try:
        arr = np.asarray(list(value))
    except TypeError:
        raise ArgumentError(f"{name} must be a list of fractions in [0, 1], got {show(value)}") from None
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        raise ArgumentError(f"{name} must be a non-empty flat list of numbers in [0, 1], got {show(value)}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ArgumentError(f"{name} must lie in [0, 1] (0.3 = 30 % of the heads pruned), got {show(value)}")
    return np.sort(arr, kind="stable")


def word_list(value: Any, name: str) -> list[str]:
    """A collection of strings (None/empty: none). A single string is refused: ``"the"`` is not ``["the"]``."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        raise ArgumentError(f"{name} must be a list of words, got the single string {show(value)}: "
                            f"write {name}=[{value!r}] (a string would be read letter by letter)")
    try:
        items = list(value)
    except TypeError:
        raise ArgumentError(f"{name} must be a list of words, got {show(value)}") from None
    for w in items:
        if not isinstance(w, str):
            raise ArgumentError(f"{name} must hold strings, got {show(w)} ({type(w).__name__}) in it")
    return items


def label(value: Any, name: str, num_classes: int | None = None, *, what: str = "classes") -> int:
    """A class index: a whole number ``0 <= label < num_classes`` (``-1`` and ``1.7`` are refused)."""
    i = integer(value, name, fix="labels are class indices 0, 1, …")
    if i < 0:
        raise ArgumentError(f"{name} is {i}: labels are class indices 0, 1, … (some datasets use -1 for "
                            f"'no label': drop those examples or give them no label)")
    if num_classes is not None and i >= int(num_classes):
        raise ArgumentError(f"{name} is {i} but the model has {int(num_classes)} {what} (0..{int(num_classes) - 1})")
    return i


def single_site(value: Any, name: str = "attribution") -> None:
    """Refuse an encoder–decoder's result (three attention sites) where one square site is expected, naming
    ``as_attribution``."""
    if hasattr(value, "cross_scores") and hasattr(value, "as_attribution"):
        raise ArgumentError(f"{name} is an encoder-decoder's result (three attention sites); this takes one square "
                            f"site: pass res.as_attribution('encoder') or res.as_attribution('decoder') (the "
                            f"cross-attention maps are in res.cross)")


def attribution(value: Any, name: str = "attribution"):
    """An :class:`~attattr_widgets.engine.results.Attribution` (or an object with the same fields) whose maps,
    tokens and layers agree: ``scores``/``attention`` [L, H, n, n], n ``tokens``, L ``layers``."""
    single_site(value, name)
    if not all(hasattr(value, k) for k in ("scores", "attention", "tokens", "layers")):
        raise ArgumentError(f"{name} must be an Attribution (from attribute() or Attribution.load()), got "
                            f"{show(value)}")
    shape = tuple(np.shape(value.scores))
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ArgumentError(f"{name}.scores must have shape [layers, heads, n, n], got {list(shape)}")
    if tuple(np.shape(value.attention)) != shape:
        raise ArgumentError(f"{name}.attention has shape {list(np.shape(value.attention))}, scores {list(shape)}")
    if len(value.tokens) != shape[2]:
        raise ArgumentError(f"{name} has {len(value.tokens)} tokens but maps for {shape[2]}")
    if len(value.layers) != shape[0]:
        raise ArgumentError(f"{name}.layers lists {len(value.layers)} layers but the maps have {shape[0]}")
    return value


def output_path(value: Any, name: str = "path"):
    """A path a file can be written to: not a folder, in a folder that exists (or can be created) and is
    writable. Checked before a long computation, so it cannot fail at the end. Returns a ``pathlib.Path``;
    raises :class:`~attattr_widgets.engine.errors.OutputPathError`."""
    import os
    from pathlib import Path

    from .errors import OutputPathError

    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise OutputPathError(f"{name} must be a file path, got {show(value)}")
    p = Path(value).expanduser()
    if p.is_dir():
        raise OutputPathError(f"{name}={str(p)!r} is a folder: give a file name inside it, e.g. {str(p / 'out')!r}")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{name}={str(p)!r} exists and is not writable: choose another file or fix its "
                              f"permissions")
    folder = p.parent
    while not folder.exists():  # the nearest existing ancestor decides whether the folders can be created
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"{name}={str(p)!r}: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{name}={str(p)!r}: the folder {str(folder)!r} is not writable: choose another "
                              f"location")
    return p


def device(value: Any, name: str = "device"):
    """None or something ``torch.device`` understands (``"cpu"``, ``"cuda:0"``, an int, a device)."""
    if value is None:
        return None
    import torch

    if isinstance(value, bool):
        raise ArgumentError(f"{name} must be None, a device string such as 'cpu' or 'cuda:0', got {show(value)}")
    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ArgumentError(f"{name}={show(value)} is not a device: use None (where the model is), 'cpu' or "
                            f"'cuda:0' ({exc})") from None
