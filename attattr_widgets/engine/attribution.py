"""Self-Attention Attribution: integrated gradients over each layer's attention probabilities.

For layer l with attention probabilities P (all heads), target score F and the zero baseline,

    Attr_l = P ⊙ ∫_0^1 ∂F(α P) / ∂P dα  ≈  P ⊙ Σ_k w_k ∂F/∂(α_k P) |_(α_k P)

where only layer l's probabilities are replaced by α P; every other layer recomputes its own attention. Entry
(h, i, j) says how much "query token i attends to key token j in head h" contributes to F.

**Output form** (engine-notes §7). Per head, layer l's output is out_l = P V, and scaling P by α scales out_l by
α while V does not depend on α. So with g(α) = ∂F/∂out_l at out_l = α·P V (shape [H, T, d]),

    ∂F/∂P |_(αP) = g(α) Vᵀ   ⇒   Attr_l = P ⊙ (Ḡ Vᵀ),   Ḡ = Σ_k w_k g(α_k).

Hence every layer runs the model's own fused attention (SDPA on CPU, flash/memory-efficient kernels on CUDA,
forward and backward); only a [rows, T, H, d] gradient is taken at layer l; P_l is formed once, without grad,
in row tiles; no [rows, H, T, T] tensor exists anywhere. The IG completeness sum needs no P at all:
Σ Attr_l = ⟨Ḡ, out_l⟩.

Cost: **prefix caching** — blocks below l run once (their output does not depend on α) through a shadow of the
model's module path (nothing of the user's model is swapped); **Gauss–Legendre** nodes, or ``steps="auto"``,
which raises the node count per layer until the completeness error is below ``tol``; α rows chunked to a memory
budget; causal LMs compute only the last position's logits.

The user's model is never changed: it keeps its attention implementation, mode and ``requires_grad`` flags
(gradients are taken w.r.t. the taps only), the run's state is tied to its thread (see :mod:`.hooks`), and the
model is never moved (``device=`` must be where the model is).

``method="naive"`` runs the paper's algorithm: every α row recomputes the whole network and the gradient is
taken w.r.t. the materialised probabilities of layer l (for reference and benchmarks).
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import validate
from .errors import AttAttrError, AttributionOutOfMemoryError, TargetError, check_cancel
from .hooks import AttnController, Captured, accepts, attention_probs, controller_for, prepared
from .inputs import (
    CAUSAL_LM,
    CLASSIFIER,
    Encoded,
    collate,
    encode,
    is_decoder_classifier,
    label_names,
    model_kind,
    num_outputs,
    prediction_logits,
    resolve_target,
)
from .quadrature import RULES, quadrature
from .results import Attribution, LayerResult, allocate_maps

SCORES = ("prob", "logprob", "logit")
METHODS = ("prefix", "naive")
#: Gauss–Legendre orders tried by ``steps="auto"`` (each layer starts at the order its predecessor needed).
AUTO_LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_MAPS_IN_MEMORY = 2 << 30  # store="auto": float32 maps up to 2 GiB, float16 up to 3x that, then ask for a path

__all__ = ["Attribution", "LayerResult", "attribute", "iter_attributions", "completeness_gap", "prepared"]


# ------------------------------------------------------------------------------------------------------------
# helpers


def _autocast(device: torch.device, precision: str):
    if device.type != "cuda" or precision in ("fp32", "model"):
        return contextlib.nullcontext()
    if precision == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast("cuda", dtype=dtype)


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


def _target_score(logits: torch.Tensor, targets: torch.Tensor, score: str, acc_dtype) -> torch.Tensor:
    logits = logits.to(acc_dtype)
    if score == "prob":
        vals = torch.softmax(logits, -1)
    elif score == "logprob":
        vals = torch.log_softmax(logits, -1)
    else:
        vals = logits
    return vals.gather(-1, targets.view(-1, 1)).squeeze(-1)


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


@dataclass
class _Quad:
    """The quadrature request: a fixed (rule, steps) or ``auto`` Gauss–Legendre with a tolerance."""

    rule: str
    steps: int | str
    tol: float
    max_steps: int

    @property
    def auto(self) -> bool:
        return self.steps == "auto"


# ------------------------------------------------------------------------------------------------------------
# one batch of encoded examples


class _Batch:
    """B right-padded examples: model inputs, lengths, last positions."""

    def __init__(self, encs: Sequence[Encoded], device, pad_id: int):
        self.lengths = [len(e) for e in encs]
        self.B, self.T = len(encs), max(self.lengths)
        self.inputs = collate(list(encs), pad_id, device)
        self.last = torch.tensor([n - 1 for n in self.lengths], device=device)

    def rows(self, k: int) -> dict[str, torch.Tensor]:
        return {key: v.repeat_interleave(k, 0) for key, v in self.inputs.items()}


class _Engine:
    """Runs AttAttr for batches of examples on one model (which it never changes)."""

    def __init__(self, model, tokenizer, *, quad: _Quad, score, method, device, precision, memory_budget, store):
        if score not in SCORES:
            raise AttAttrError(f"unknown score {score!r}: choose one of {', '.join(SCORES)}")
        if method not in METHODS:
            raise AttAttrError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        if quad.rule not in RULES:
            raise AttAttrError(f"unknown quadrature rule {quad.rule!r}: choose one of {', '.join(RULES)}")
        if quad.auto and quad.rule != "gauss-legendre":
            raise AttAttrError(f"steps='auto' adapts Gauss–Legendre nodes; rule={quad.rule!r} needs a fixed steps=")
        self.model, self.tokenizer = model, tokenizer
        self.kind = model_kind(model)
        self.ctrl: AttnController = controller_for(model)
        self.quad = quad
        self.score = score
        self.method = method
        self.prefix = method == "prefix" and self.ctrl.blocks is not None
        self.device = device
        self.precision = precision
        self.param_dtype = next(model.parameters()).dtype
        self.acc_dtype = torch.float64 if self.param_dtype == torch.float64 else torch.float32
        self.budget = memory_budget or _memory_budget(device)
        self.store = store
        self.eager = any(n == "eager" for n in self.ctrl.layout.impls)
        self.keep_last = self.kind == CAUSAL_LM and accepts(model, "logits_to_keep")
        self.decoder_cls = self.kind == CLASSIFIER and is_decoder_classifier(model)
        self._rows_cap: int | None = None
        self._start_rung = 0  # steps="auto": where the next layer starts on AUTO_LADDER

    # -- forwards -----------------------------------------------------------------------------------------------
    def _forward(self, net: nn.Module, inputs: dict, last: torch.Tensor) -> torch.Tensor:
        """Logits at each row's prediction position: [R, C] or [R, V]."""
        if self.keep_last and bool((last == last[0]).all()):
            out = net(**inputs, logits_to_keep=1).logits
            return out[:, -1]
        return prediction_logits(self.kind, net(**inputs).logits, last)

    def _net(self, layer: int | None = None, hidden: torch.Tensor | None = None, grab=(), store=None,
             frozen: bool = False):
        """The network one pass runs: a shadow of the model (blocks < layer skipped, block layer fed ``hidden``;
        ``frozen``: parameters that do not require grad, for the gradient passes) or the model itself; decoder
        classifiers get a placeholder pad id on the shadow's own config."""
        overrides = {"pad_token_id": -1} if self.decoder_cls and self.model.config.pad_token_id is None else None
        if hidden is not None or grab or overrides or frozen:
            return self.ctrl.shadow(start=layer or 0, hidden=hidden, grab=grab, store=store,
                                    config_overrides=overrides, frozen=frozen)
        return self.model

    def clean_forward(self, batch: _Batch, layers: list[int], cancel):
        """One no-grad pass: the captured attention inputs of ``layers``, block inputs (prefix) and logits."""
        hidden: dict[int, torch.Tensor] = {}
        grab = set(layers) if self.prefix else set()
        net = self._net(grab=grab, store=hidden)
        with torch.no_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            capture=layers, cancel=cancel
        ) as s:
            logits = self._forward(net, batch.inputs, batch.last)
        return s.captured, hidden, logits

    def zero_scores(self, batch: _Batch, layer: int, hidden, targets, cancel) -> torch.Tensor:
        """F with ``layer``'s attention output zeroed (α = 0), per example: [B]."""
        net = self._net(layer, hidden[layer]) if self.prefix else self._net()
        alpha = torch.zeros(batch.B, device=self.device)
        with torch.no_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha}, cancel=cancel
        ):
            logits = self._forward(net, batch.inputs, batch.last)
        return _target_score(logits, targets, self.score, self.acc_dtype)

    def _grad_chunk(self, batch: _Batch, layer: int, hidden, targets, alphas: torch.Tensor, cancel) -> torch.Tensor:
        """∂F/∂out_layer (output form) or ∂F/∂P_layer (naive) at the k nodes ``alphas``: [B, k, ...]."""
        B, k = batch.B, len(alphas)
        rows = batch.rows(k)
        alpha_rows = alphas.repeat(B)  # row r = b * k + j  ↔  example b, node j
        last = batch.last.repeat_interleave(k, 0)
        if self.prefix:
            net = self._net(layer, hidden[layer].repeat_interleave(k, 0), frozen=True)
        else:
            net = self._net(frozen=True)
        naive = self.method == "naive"
        with torch.enable_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha_rows}, cancel=cancel,
            **({"grad_layers": {layer}} if naive else {"out_taps": {layer}}),
        ) as s:
            logits = self._forward(net, rows, last)
            F = _target_score(logits, targets.repeat_interleave(k, 0), self.score, self.acc_dtype)
            (g,) = torch.autograd.grad(F.sum(), s.leaves[layer])
        return g.view(B, k, *g.shape[1:])

    def integrate(self, batch: _Batch, layer: int, hidden, targets, alphas, weights, cancel) -> torch.Tensor:
        """Σ_k w_k g(α_k) for every example: [B, T, H, d] (output form) or [B, H, T, T] (naive)."""
        m = len(alphas)
        itemsize = torch.finfo(self.param_dtype).bits // 8
        above = self.ctrl.num_layers - layer if self.prefix else self.ctrl.num_layers
        per_row = _bytes_per_row(self.model, batch.T, above, itemsize, self.eager or self.method == "naive")
        c = max(1, min(m, self.budget // (per_row * batch.B)))
        if self._rows_cap is not None:
            c = max(1, min(c, self._rows_cap // batch.B))
        a = torch.tensor(alphas, dtype=self.acc_dtype, device=self.device)
        w = torch.tensor(weights, dtype=self.acc_dtype, device=self.device)
        acc = None
        start = 0
        while start < m:
            check_cancel(cancel)
            idx = slice(start, min(m, start + c))
            k = idx.stop - idx.start
            try:
                g = self._grad_chunk(batch, layer, hidden, targets, a[idx], cancel)
                g = (g.to(self.acc_dtype) * w[idx].view(1, -1, *([1] * (g.dim() - 2)))).sum(1)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                if not _is_oom(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if k == 1:
                    raise _oom_error(f"attributing layer {layer} even one integration point at a time",
                                     batch.T, exc) from exc
                c = max(1, k // 2)
                self._rows_cap = c * batch.B
                continue
            acc = g if acc is None else acc + g
            start = idx.stop
        return acc

    def layer_maps(self, c: Captured, grad_sum: torch.Tensor, b: int, n: int, out_scores, out_attn, cancel) -> float:
        """Write example b's [H, n, n] attribution and attention into the stores; returns Σ Attr.

        Output form: Attr = P ⊙ (Ḡ Vᵀ), P formed in row tiles of at most ~64 MiB."""
        H = c.query.shape[1]
        V = c.values()[b : b + 1, :, :n]  # (1, H, n, d)
        cb = Captured(
            query=c.query[b : b + 1, :, :n], key=c.key[b : b + 1, :, :n], value=c.value[b : b + 1, :, :n],
            mask=None if c.mask is None else c.mask[b : b + 1] if c.mask.shape[0] > 1 else c.mask,
            causal=c.causal, scaling=c.scaling, softcap=c.softcap,
            position_bias=None if c.position_bias is None else (
                c.position_bias[b : b + 1] if c.position_bias.shape[0] > 1 else c.position_bias),
        )
        if cb.mask is not None:
            cb.mask = cb.mask[..., :n, :n] if cb.mask.shape[-2] > 1 else cb.mask[..., :n]
        if cb.position_bias is not None:
            cb.position_bias = cb.position_bias[..., :n, :n]
        tile = max(1, min(n, (64 << 20) // max(1, 4 * H * n * 3)))
        total = 0.0
        for r0 in range(0, n, tile):
            check_cancel(cancel)
            rows = slice(r0, min(n, r0 + tile))
            P = attention_probs(cb, rows, dtype=self.acc_dtype)[0]  # (H, t, n)
            if self.method == "naive":
                G = grad_sum[b, :, rows, :n]
            else:
                Gb = grad_sum[b, rows].permute(1, 0, 2).to(self.acc_dtype)  # (H, t, d)
                G = torch.matmul(Gb, V[0].to(self.acc_dtype).transpose(-1, -2))  # (H, t, n)
            attr = P * G
            total += float(attr.sum())
            out_scores[:, rows] = attr.cpu().numpy()
            out_attn[:, rows] = P.cpu().numpy()
        return total

    # -- one layer, with fixed or adaptive nodes --------------------------------------------------------------
    def _layer(self, batch, layer, hidden, targets, F_clean, zero, captured, cancel):
        """Ḡ for one layer and the nodes used: (grad_sum, steps, converged, relative errors [B])."""
        q = self.quad
        delta = (F_clean - zero).to(self.acc_dtype)
        out = captured.get(layer)

        if not q.auto:
            alphas, weights = quadrature(q.rule, q.steps)
            g = self.integrate(batch, layer, hidden, targets, alphas, weights, cancel)
            return g, int(q.steps), True
        ladder = [s for s in AUTO_LADDER if s <= q.max_steps] or [q.max_steps]
        rung = min(self._start_rung, len(ladder) - 1)
        floor = 32 * torch.finfo(self.acc_dtype).eps * (F_clean.abs() + zero.abs()).to(self.acc_dtype)
        allowed = q.tol * delta.abs() + floor
        # Σ Attr = ⟨Ḡ, P V⟩ (output form) or ⟨Ḡ_P, P⟩ (naive): the clean output / P of this layer
        ref = (out.out if self.method != "naive" else attention_probs(out)).to(self.acc_dtype)
        errors: list[float] = []
        while True:
            steps = ladder[rung]
            alphas, weights = quadrature("gauss-legendre", steps)
            g = self.integrate(batch, layer, hidden, targets, alphas, weights, cancel)
            gap = ((g * ref).flatten(1).sum(1) - delta).abs()
            ok = bool((gap <= allowed).all())
            worst = float((gap / allowed.clamp_min(1e-300)).max())
            errors.append(worst)
            stalled = len(errors) >= 3 and errors[-1] > 0.5 * errors[-3]  # not converging (e.g. a sink layer)
            if ok or rung == len(ladder) - 1 or stalled:
                # next layer starts here, one rung lower when this one was far inside the tolerance
                self._start_rung = max(0, rung - 1) if ok and worst < 0.02 else rung
                return g, steps, ok
            rung += 1

    # -- one batch, all layers ------------------------------------------------------------------------------
    def run(self, encs, examples_meta, layers, target_specs, golds, progress, cancel) -> list[Attribution]:
        B = len(encs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = _Batch(encs, self.device, pad_id)
        H = self.ctrl.num_heads
        store = _choose_store(self.store, len(layers), H, batch.T, B)
        with prepared(self.model, self.kind, rows_need_pad=True):
            try:
                captured, hidden, clean_logits = self.clean_forward(batch, layers, cancel)
            except Exception as exc:
                if _is_oom(exc):
                    raise _oom_error("in the clean forward pass", batch.T, exc) from exc
                raise
            targets = torch.tensor(
                [
                    resolve_target(self.model, self.tokenizer, self.kind, spec, clean_logits[b].float(), gold)
                    for b, (spec, gold) in enumerate(zip(target_specs, golds))
                ],
                device=self.device,
            )
            F_clean = _target_score(clean_logits, targets, self.score, self.acc_dtype)
            map_dtype = np.float64 if self.acc_dtype == torch.float64 else np.float32
            maps = [allocate_maps(len(layers), H, batch.lengths[b], _store_for(store, b, B), map_dtype)
                    for b in range(B)]
            per_ex: list[list[LayerResult]] = [[] for _ in range(B)]
            for index, layer in enumerate(layers):
                try:
                    zero = self.zero_scores(batch, layer, hidden, targets, cancel)
                    grad_sum, steps, converged = self._layer(
                        batch, layer, hidden, targets, F_clean, zero, captured, cancel)
                    sums = [self.layer_maps(captured[layer], grad_sum, b, batch.lengths[b], maps[b][0][index],
                                            maps[b][1][index], cancel) for b in range(B)]
                except Exception as exc:
                    if _is_oom(exc) and not isinstance(exc, AttributionOutOfMemoryError):
                        raise _oom_error(f"attributing layer {layer}", batch.T, exc) from exc
                    raise
                del grad_sum
                captured.pop(layer, None)
                hidden.pop(layer, None)
                for b in range(B):
                    delta = float(F_clean[b] - zero[b])
                    err = abs(sums[b] - delta) / abs(delta) if delta != 0 else 0.0
                    finite = bool(np.isfinite(sums[b]) and np.isfinite(delta)
                                  and np.isfinite(maps[b][1][index]).all())  # Σ scores finite ⇔ no inf/NaN in them
                    r = LayerResult(
                        layer=layer, index=index, total=len(layers), tokens=list(encs[b].tokens),
                        scores=maps[b][0][index], attention=maps[b][1][index], zero_prob=float(zero[b]),
                        completeness=err, target=int(targets[b]), prob=float(F_clean[b]), steps=steps,
                        converged=converged, nonfinite=not finite,
                    )
                    per_ex[b].append(r)
                    if progress is not None:
                        progress(r)
        names = label_names(self.model) if self.kind == CLASSIFIER else None
        model_name = str(getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__)
        results = []
        for b in range(B):
            t = int(targets[b])
            text, text_pair = examples_meta[b]
            scores, attention, where = maps[b]
            rs = per_ex[b]
            results.append(Attribution(
                scores=scores, attention=attention, tokens=list(encs[b].tokens),
                token_type_ids=np.asarray(encs[b].segments, dtype=np.int64), target=t,
                target_label=(names[t] if names else self.tokenizer.decode([t])), prob=float(F_clean[b]),
                layer_zero_probs=np.asarray([r.zero_prob for r in rs], np.float64),
                completeness=np.asarray([r.completeness for r in rs], np.float64), layers=list(layers),
                num_layers=self.ctrl.num_layers, rule=self.quad.rule, steps=self.quad.steps, score=self.score,
                text=text, text_pair=text_pair, model_name=model_name,
                target_kind="class" if self.kind == CLASSIFIER else "next-token", label_names=names,
                truncated=encs[b].truncated, gold=None if golds[b] is None else int(golds[b]),
                extra={"method": self.method}, layer_steps=[r.steps for r in rs],
                converged=[r.converged for r in rs], tol=self.quad.tol if self.quad.auto else None, store=where,
                nonfinite=[r.layer for r in rs if r.nonfinite],
            ))
        return results


def _store_for(store, b: int, B: int):
    if isinstance(store, str) and store in ("memory", "fp16"):
        return store
    return store if B == 1 else f"{store}/{b}"


# ------------------------------------------------------------------------------------------------------------
# public API


PRECISIONS = ("auto", "fp32", "bf16", "fp16", "model")


def _quad(rule, steps, tol, max_steps) -> _Quad:
    steps = validate.steps(steps)
    tol = validate.number(tol, "tol", minimum=0.0, fix="a relative completeness error such as 1e-3")
    max_steps = validate.integer(max_steps, "max_steps", minimum=1, maximum=validate.MAX_STEPS,
                                 fix="the node cap for steps='auto', e.g. 32")
    return _Quad(rule=rule, steps=steps, tol=float(tol), max_steps=int(max_steps))


def attribute(
    model: nn.Module,
    tokenizer,
    text: str,
    text_pair: str | None = None,
    *,
    target="pred",
    layers: Iterable[int] | int | None = None,
    rule: str = "gauss-legendre",
    steps: int | str = "auto",
    tol: float = 1e-3,
    max_steps: int = 32,
    device=None,
    progress: Callable[[LayerResult], None] | None = None,
    cancel: threading.Event | None = None,
    max_length: int | None = None,
    truncation: bool = False,
    score: str = "prob",
    gold: int | None = None,
    method: str = "prefix",
    precision: str = "auto",
    memory_budget: int | None = None,
    store="auto",
) -> Attribution:
    """Attribute one example's prediction to every attention link of every (selected) layer.

    Args:
        model: a transformers classifier (``*ForSequenceClassification``) or causal LM whose attention routes
            through ``AttentionInterface`` (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT, ModernBERT, GPT-2, Llama,
            Qwen2, …). It is never changed, and forwards of it in other threads are unaffected.
        text, text_pair: the input (a sentence, or a premise/hypothesis pair).
        target: ``"pred"`` (the predicted class / next token, the paper's default), ``"gold"`` (with ``gold``),
            a class index or name, or for language models a next-token id or single-token string (``" Paris"``).
        layers: layer indices to compute (default: all).
        rule, steps: quadrature. ``steps="auto"`` (default) raises the number of Gauss–Legendre nodes per layer
            (2, 3, 4, 6, 8, …, at most ``max_steps``) until the IG completeness error is below ``tol`` (relative,
            with a floor at the float precision); ``layer_steps`` and ``converged`` report what each layer used.
            A fixed ``steps=6`` is the previous default; ``rule="left", steps=20`` is the authors' code.
        progress: called once per finished layer with a :class:`LayerResult` (what the widgets stream).
        cancel: a ``threading.Event``; setting it stops the run within one block's forward or backward with
            :class:`AttributionCancelled`.
        max_length, truncation: inputs longer than the model's positions raise unless ``truncation=True``.
        score: F is the target's ``"prob"`` (paper), ``"logprob"`` or ``"logit"``.
        method: ``"prefix"`` (fast, default) or ``"naive"`` (the paper's algorithm; same numbers, slower).
        precision: ``"auto"`` = model dtype on CPU, bf16/fp16 autocast with fp32 accumulation on CUDA.
        memory_budget: bytes of activations per chunk of integration rows (default: 2 GiB on CPU, 60 % of free
            memory on CUDA); out-of-memory halves the chunk, then raises :class:`AttributionOutOfMemoryError`.
        store: where the [L, H, n, n] maps are kept: ``"auto"`` (float32 in memory up to 2 GiB, float16 up to
            6 GiB), ``"memory"``, ``"fp16"`` or a folder path (memory-mapped float32 files).

    Returns: an :class:`Attribution` (scores [L, H, n, n], attention, tokens, completeness, layer_steps, …).
    """
    quad = _quad(rule, steps, tol, max_steps)
    eng = _Engine(
        model, tokenizer, quad=quad, score=score, method=method, device=_resolve_device(model, device),
        precision=validate.choice(precision, "precision", PRECISIONS),
        memory_budget=validate.memory_budget(memory_budget), store=store,
    )
    layer_list = validate.layer_list(layers, eng.ctrl.num_layers)
    progress = validate.callback(progress, "progress", "progress(layer_result)")
    cancel = validate.cancel_event(cancel)
    truncation = validate.flag(truncation, "truncation")
    if gold is not None:
        n, what = num_outputs(model, eng.kind)
        gold = validate.label(gold, "gold", n, what=what)
    enc = encode(model, tokenizer, text, text_pair, max_length=max_length, truncation=truncation)
    return eng.run([enc], [(text, text_pair)], layer_list, [target], [gold], progress, cancel)[0]


def iter_attributions(
    model: nn.Module,
    tokenizer,
    examples,
    *,
    target="gold",
    layers: Iterable[int] | int | None = None,
    rule: str = "gauss-legendre",
    steps: int | str = "auto",
    tol: float = 1e-3,
    max_steps: int = 32,
    batch_size: int | None = None,
    device=None,
    cancel: threading.Event | None = None,
    max_length: int | None = None,
    truncation: bool = True,
    score: str = "prob",
    method: str = "prefix",
    precision: str = "auto",
    memory_budget: int | None = None,
    store="auto",
    backend=None,
) -> Iterator[Attribution]:
    """Attribute many examples (dataset-level work), yielding one :class:`Attribution` per example, in order.

    ``examples``: dicts ``{"text", "text_pair"?, "label"?}``, a ``datasets.Dataset``, a DataFrame or a dict of
    columns. ``target="gold"`` attributes each example's label (the paper's head-importance setting); ``"pred"``
    the prediction. Examples are batched ``batch_size`` at a time (default: 1 on CPU, where unpadded single
    examples are fastest; 8 on GPUs), right-padded, and every result is cropped to the example's real tokens.
    Long examples are truncated to the model's positions by default (flagged ``truncated``).
    ``backend``: None (this process) or a :class:`~attattr_widgets.engine.backends.RayBackend`, which attributes
    shards of the examples on its workers and yields them here in example order.
    """
    if backend is not None:
        from .backends import iter_attributions_on

        yield from iter_attributions_on(
            backend, model, tokenizer, examples, target=target, layers=layers, rule=rule, steps=steps, tol=tol,
            max_steps=max_steps, batch_size=batch_size, device=device, cancel=cancel, max_length=max_length,
            truncation=truncation, score=score, method=method, precision=precision, memory_budget=memory_budget,
            store=store)
        return
    from .examples import as_examples, check_labels

    items = as_examples(examples)
    quad = _quad(rule, steps, tol, max_steps)
    eng = _Engine(
        model, tokenizer, quad=quad, score=score, method=method, device=_resolve_device(model, device),
        precision=validate.choice(precision, "precision", PRECISIONS),
        memory_budget=validate.memory_budget(memory_budget), store=store,
    )
    check_labels(items, *num_outputs(model, eng.kind))
    truncation = validate.flag(truncation, "truncation")
    layer_list = validate.layer_list(layers, eng.ctrl.num_layers)
    batch_size = validate.batch_size(batch_size)
    cancel = validate.cancel_event(cancel)
    if batch_size is None:
        batch_size = 8 if eng.device.type == "cuda" else 1
    if eng.decoder_cls:
        batch_size = 1  # decoder heads pool the last non-pad token by pad id: keep examples unpadded
    if target == "gold" and any(ex.label is None for ex in items):
        raise TargetError('target="gold" needs a "label" in every example; use target="pred" for unlabelled data')
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        encs = [encode(model, tokenizer, ex.text, ex.text_pair, max_length=max_length, truncation=truncation)
                for ex in chunk]
        yield from eng.run(
            encs, [(ex.text, ex.text_pair) for ex in chunk], layer_list, [target] * len(chunk),
            [ex.label for ex in chunk], None, cancel,
        )


def completeness_gap(attr: Attribution) -> np.ndarray:
    """Absolute IG completeness gap per layer: |Σ scores − (prob − zero_prob)|, [L]."""
    sums = attr.scores.reshape(attr.scores.shape[0], -1).astype(np.float64).sum(-1)
    return np.abs(sums - (attr.prob - attr.layer_zero_probs))
