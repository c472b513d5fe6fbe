"""The picture of an image attribution, as the views receive it, and images uploaded from the browser.

The engine's ``Attribution.image`` (image classifiers) holds ``grid`` (rows, cols) of patches, ``first_patch``
(the token index of patch (0, 0); patches follow row-major), ``patch_size`` (pixels of the model's input per patch
side) and ``pixels`` (uint8 [h, w, 3], a small copy of the picture the model saw). :func:`image_payload` turns it
into the ``image`` trait of the Explorer and the TreeView (js/shared/protocol.ts ``ImagePayload``): the pixels
travel as one binary buffer (``serialize.encode_array``), never as JSON lists.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["image_payload", "decode_upload", "MAX_UPLOAD_BYTES"]

MAX_UPLOAD_BYTES = 32 << 20  # an uploaded picture larger than this is refused (the browser sends it in one message)


def _field(info: Any, name: str) -> Any:
    return info.get(name) if isinstance(info, dict) else getattr(info, name, None)


def image_payload(info: Any) -> dict | None:
    """``Attribution.image`` (an object or a dict with ``grid``, ``first_patch``, ``patch_size``, ``pixels``) →
    the ``image`` trait ``{"pixels": uint8 [h, w, 3], "grid": [rows, cols], "first_patch": int,
    "patch_size": int}``; None → None. A grey picture [h, w] or [h, w, 1] is repeated to 3 channels, RGBA drops
    alpha. Raises ValueError naming the field that is malformed."""
    if info is None:
        return None
    pixels = _field(info, "pixels")
    grid = _field(info, "grid")
    if pixels is None or grid is None:
        raise ValueError("an attribution's image needs `pixels` (uint8 [h, w, 3]) and `grid` (rows, cols)")
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[:, :, None]
    if px.ndim != 3 or px.shape[2] not in (1, 3, 4) or px.shape[0] < 1 or px.shape[1] < 1:
        raise ValueError(f"image pixels must be [h, w, 3] (or grey [h, w]), got shape {tuple(np.shape(pixels))}")
    if px.dtype != np.uint8:
        if not np.issubdtype(px.dtype, np.number) or not np.isfinite(px).all():
            raise ValueError(f"image pixels must be finite numbers (uint8 0..255), got dtype {px.dtype}")
        px = np.clip(np.rint(px), 0, 255).astype(np.uint8)
    px = np.repeat(px, 3, axis=2) if px.shape[2] == 1 else px[:, :, :3]
    rows, cols = (int(x) for x in grid)
    if rows < 1 or cols < 1:
        raise ValueError(f"image grid must be (rows >= 1, cols >= 1), got {tuple(grid)}")
    first = int(_field(info, "first_patch") or 0)
    if first < 0:
        raise ValueError(f"image first_patch must be >= 0, got {first}")
    size = int(_field(info, "patch_size") or 0)
    return {"pixels": np.ascontiguousarray(px), "grid": [rows, cols], "first_patch": first, "patch_size": size}


def decode_upload(data: bytes) -> Any:
    """The bytes of an image file uploaded in the browser → an RGB PIL image. Raises ValueError (not an image /
    too large / Pillow missing) with the fix."""
    if not data:
        raise ValueError("the uploaded file is empty: choose an image file (PNG, JPEG, …)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the uploaded file has {len(data)} bytes, more than {MAX_UPLOAD_BYTES}: "
                         "shrink the picture first")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - Pillow comes with transformers' image extras
        raise ValueError("reading an uploaded image needs Pillow: pip install pillow") from exc
    try:
        img = Image.open(io.BytesIO(bytes(data)))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"the uploaded file is not an image Pillow can read ({exc}): "
                         "upload a PNG, JPEG, GIF or BMP file") from None
    return img.convert("RGB")
