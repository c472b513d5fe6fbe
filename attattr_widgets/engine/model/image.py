"""Encoding one image for a vision transformer: a picture (PIL image, H×W×3 array, file path) or ready
``pixel_values`` → an :class:`~.encode.Encoded` with ``pixel_values``, one display token per model token
(``[CLS]``, DeiT's ``[DIST]``, then ``"(r,c)"`` per patch, row-major) and the :class:`~..results.image.ImageGrid`
(patch grid + a small copy of the picture as the model saw it)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import validate
from ..errors import ArgumentError
from ..results.image import MAX_PIXELS_SIDE, ImageGrid, patch_token
from .encode import Encoded

__all__ = ["check_processor", "encode_image", "prefix_tokens", "vision_config"]

#: Learned tokens an embedding module puts before the patches, in order: attribute name → display token (ViT,
#: DeiT, DINOv2: ``cls_token``; CLIP: ``class_embedding``; DeiT: ``distillation_token``; DINOv2 with registers:
#: ``register_tokens`` (1, R, d), shown as ``[REG0]`` … ``[REG{R-1}]``).
PREFIX_TOKENS = {"cls_token": "[CLS]", "class_embedding": "[CLS]", "distillation_token": "[DIST]",
                 "register_tokens": "[REG]"}

PROCESSOR_FIX = ("pass the model's image processor, e.g. AutoImageProcessor.from_pretrained(<the model's name or "
                 "folder>)")


def vision_config(model: nn.Module):
    """The config that describes the pixels (``image_size``, ``patch_size``, ``num_channels``)."""
    cfg = model.config
    return getattr(cfg, "vision_config", None) or cfg


def prefix_tokens(model: nn.Module) -> list[str]:
    """Display tokens of the learned tokens before the patches, in order (``[CLS]``; DeiT: ``[CLS]``, ``[DIST]``;
    SigLIP: none), read from the model's embedding module (the first module with a patch embedding)."""
    emb = next((m for m in model.modules() if hasattr(m, "patch_embeddings") or hasattr(m, "patch_embedding")),
               None)
    out: list[str] = []
    for attr, name in PREFIX_TOKENS.items():
        t = getattr(emb, attr, None)
        if isinstance(t, torch.Tensor):
            k = int(t.shape[-2]) if t.dim() == 3 else 1  # (1, k, d) tokens; CLIP's class_embedding is (d,)
            out += [name] if k == 1 else [f"{name[:-1]}{i}]" for i in range(k)]
    return out


def check_processor(processor) -> None:
    """An image processor: callable, not a text tokenizer (:class:`ArgumentError` naming the fix)."""
    if processor is None or not callable(processor):
        raise ArgumentError(f"an image model needs its image processor: {PROCESSOR_FIX}; got "
                            f"{type(processor).__name__}")
    if hasattr(processor, "convert_ids_to_tokens") and not hasattr(processor, "image_processor"):
        raise ArgumentError(f"{type(processor).__name__} is a text tokenizer, but this is an image model: "
                            f"{PROCESSOR_FIX}")


def encode_image(model: nn.Module, processor, image) -> Encoded:
    """One image for ``model`` (batch of 1). ``image``: a PIL image, an ``H×W×3`` array (uint8 0..255; a float
    array is taken as 0..255 too, as image processors do), a path to an image file, or ``pixel_values``
    ``(1, C, H, W)`` already made by the processor. Raises :class:`ArgumentError` naming the fix for a missing
    processor, a grayscale / wrong-channel / batched array, an unreadable file or a size the model does not take."""
    check_processor(processor)
    cfg = vision_config(model)
    channels = int(getattr(cfg, "num_channels", 3) or 3)
    side = getattr(cfg, "image_size", None)
    patch = int(getattr(cfg, "patch_size", 0) or 0)
    if not patch:
        raise ArgumentError(f"{type(model).__name__}'s config has no patch_size: attattr-widgets attributes "
                            f"vision transformers that cut the image into square patches (ViT, DeiT, …)")
    pixel_values = _pixel_values(image, processor, channels)
    _, c, h, w = pixel_values.shape
    want = tuple(side) if isinstance(side, (list, tuple)) else (int(side), int(side)) if side else (h, w)
    if c != channels or (h, w) != want:
        raise ArgumentError(
            f"pixel_values of shape {tuple(pixel_values.shape)} do not fit {type(model).__name__}, which takes "
            f"(1, {channels}, {want[0]}, {want[1]}): pass the picture itself (a PIL image or an H×W×{channels} "
            f"array) so the model's processor resizes it, or the processor's own output")
    dtype = next(model.parameters()).dtype
    grid = (h // patch, w // patch)
    prefix = prefix_tokens(model)
    tokens = prefix + [patch_token(r, col) for r in range(grid[0]) for col in range(grid[1])]
    picture = ImageGrid(grid=grid, first_patch=len(prefix), patch_size=patch,
                        pixels=_picture(pixel_values[0], processor))
    return Encoded(input_ids=None, attention_mask=None, token_type_ids=None, tokens=tokens,
                   segments=[0] * len(tokens), truncated=False,
                   inputs={"pixel_values": pixel_values.to(dtype)}, image=picture)


def _pixel_values(image, processor, channels: int) -> torch.Tensor:
    """The processor's ``pixel_values`` (1, C, H, W) for ``image`` (or ``image`` itself when it already is)."""
    if isinstance(image, (str, os.PathLike)):
        image = _open(Path(image))
    if isinstance(image, (np.ndarray, torch.Tensor)):
        a = image
        shape = tuple(a.shape)
        if len(shape) == 4 and shape[1] == channels:
            if shape[0] != 1:
                raise ArgumentError(f"pixel_values hold {shape[0]} images: pass one image at a time "
                                    f"(pixel_values[i : i + 1])")
            return torch.as_tensor(a).float()
        if len(shape) == 2:
            raise ArgumentError(
                f"image is a {shape[0]}×{shape[1]} grayscale array but the model takes {channels} channels: pass "
                f"np.stack([image] * {channels}, axis=-1), or PIL.Image.fromarray(image).convert('RGB')")
        if len(shape) != 3 or shape[-1] != channels:
            hint = ("it looks channels-first: pass image.transpose(1, 2, 0)" if len(shape) == 3 and
                    shape[0] == channels else "pass an H×W×C picture, or the processor's pixel_values (1, C, H, W)")
            raise ArgumentError(f"image has shape {shape}, but the model takes H×W×{channels} pictures: {hint}")
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise ArgumentError(f"image holds {a.dtype} values that are not all finite numbers: pass pixel "
                                f"values 0..255")
        image = a
    elif not _is_pil(image):
        raise ArgumentError(f"image must be a PIL image, an H×W×{channels} array, a path to an image file or "
                            f"pixel_values (1, {channels}, H, W); got {validate.show(image)} ({type(image).__name__})")
    elif channels == 3 and image.mode != "RGB":
        image = image.convert("RGB")
    try:
        out = processor(images=image, return_tensors="pt")
    except Exception as exc:  # noqa: BLE001 - processors raise assorted errors for images they cannot read
        raise ArgumentError(f"the image processor ({type(processor).__name__}) could not read the image "
                            f"({type(exc).__name__}: {exc}): {PROCESSOR_FIX}") from exc
    pv = out.get("pixel_values") if hasattr(out, "get") else None
    if not isinstance(pv, torch.Tensor) or pv.dim() != 4:
        raise ArgumentError(f"{type(processor).__name__} gave no pixel_values tensor: {PROCESSOR_FIX}")
    return pv.float()


def _is_pil(image) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with transformers' vision extras
        return False
    return isinstance(image, Image.Image)


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ArgumentError(f"image file {str(path)!r} does not exist: pass the path of a picture (PNG, JPEG, …)")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise ArgumentError(f"{str(path)!r} is not an image file PIL can read ({exc}): pass a PNG or JPEG "
                            f"picture") from None


def _picture(pixel_values: torch.Tensor, processor) -> np.ndarray:
    """uint8 [h, w, 3] of one (C, H, W) ``pixel_values``: the processor's normalisation and rescaling undone,
    shrunk to at most :data:`MAX_PIXELS_SIDE` a side."""
    x = pixel_values.detach().double().cpu().numpy()
    proc = getattr(processor, "image_processor", processor)  # a multimodal processor's image part
    if getattr(proc, "do_normalize", False):
        mean = np.asarray(getattr(proc, "image_mean", 0.0), np.float64).reshape(-1, 1, 1)
        std = np.asarray(getattr(proc, "image_std", 1.0), np.float64).reshape(-1, 1, 1)
        x = x * std + mean
    # without rescaling, the processor's values are already 0..255
    factor = getattr(proc, "rescale_factor", 1 / 255) if getattr(proc, "do_rescale", True) else 1.0
    x = np.clip(np.rint(x / float(factor)), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    if x.shape[-1] != 3:
        x = np.repeat(x[..., :1], 3, axis=-1)
    h, w = x.shape[:2]
    if max(h, w) > MAX_PIXELS_SIDE:
        from PIL import Image

        scale = MAX_PIXELS_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        x = np.asarray(Image.fromarray(x).resize(size, Image.BILINEAR))
    return np.ascontiguousarray(x)
