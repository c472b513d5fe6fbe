"""Resources of one run: device, autocast precision, memory budget per chunk of α rows, out-of-memory errors and
where the [L, H, n, n] maps are stored."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .. import validate
from ..errors import AttAttrError, AttributionOutOfMemoryError

_MAPS_IN_MEMORY = 2 << 30  # store="auto": float32 maps up to 2 GiB, float16 up to 3x that, then ask for a path


PRECISIONS = ("auto", "fp32", "bf16", "fp16", "model")


def _autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype the forwards are autocast to (CUDA bf16/fp16), None where they run in the model's dtype."""
    if device.type != "cuda" or precision in ("fp32", "model"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _autocast(device: torch.device, precision: str):
    dtype = _autocast_dtype(device, precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in msg or "can't allocate memory" in msg
    )


def _oom_error(what: str, T: int, exc: BaseException) -> AttributionOutOfMemoryError:
    return AttributionOutOfMemoryError(
        f"out of memory {what} for a {T}-token input: use a shorter text (truncation=True with max_length), "
        f"fewer layers (layers=[...]), a smaller memory_budget, store='fp16' or store='<folder>' for the maps, "
        f"or a device with more memory"
    ).with_traceback(exc.__traceback__)


def _bytes_per_row(model: nn.Module, T: int, layers_above: int, itemsize: int, eager: bool) -> int:
    """Activation bytes one α row keeps for the backward through ``layers_above`` blocks (fused attention:
    no T² term; eager attention materialises probabilities in every block)."""
    cfg = model.config
    d = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 768)
    ff = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * d)
    H = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 12)
    per_layer = 16 * T * d + 4 * T * ff + (3 * H * T * T if eager else 0)
    return max(1, layers_above * per_layer * itemsize)


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    return 2 << 30


def _resolve_device(model: nn.Module, device) -> torch.device:
    here = next(model.parameters()).device
    device = validate.device(device)
    if device is None:
        return here
    if device.type != here.type or (device.index is not None and here.index is not None and device.index != here.index):
        raise AttAttrError(
            f"device={str(device)!r} but the model is on {str(here)!r}: attattr-widgets never moves your model; "
            f"move it yourself (model.to({str(device)!r})) or leave device=None"
        )
    return here


def _choose_store(store, L: int, H: int, n: int, B: int):
    if store != "auto":
        return store
    need = 2 * L * H * n * n * 4 * B
    if need <= _MAPS_IN_MEMORY:
        return "memory"
    if need // 2 <= 3 * _MAPS_IN_MEMORY:
        return "fp16"
    raise AttributionOutOfMemoryError(
        f"the attribution and attention maps of {L} layers x {H} heads x {n}² tokens need {need / 2**30:.1f} GiB "
        f"(float32): pass store='<folder>' to keep them in memory-mapped files there, store='fp16' to halve "
        f"them in memory, or fewer layers (layers=[...])"
    )


def _store_for(store, b: int, B: int):
    if isinstance(store, str) and store in ("memory", "fp16"):
        return store
    return store if B == 1 else f"{store}/{b}"
