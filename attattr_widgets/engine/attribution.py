"""Self-Attention Attribution: integrated gradients over each layer's attention probabilities.

For layer l with attention probabilities A (all heads at once), target score F and the zero baseline,

    Attr_l = A ⊙ ∫_0^1 ∂F(α A) / ∂A dα  ≈  A ⊙ Σ_k w_k ∂F/∂(α_k A) |_(α_k A)

where only layer l's probabilities are replaced by α A; every other layer recomputes its own attention.
Each entry (h, i, j) says how much "query token i attends to key token j in head h" contributes to F.

How this is fast (measured against the paper's algorithm in bench/RESULTS.md):

* **prefix caching** — blocks below layer l run once per example (their output does not depend on α) and are
  skipped while the α rows of layer l run, so the cost meets the m-step lower bound;
* **Gauss–Legendre nodes** — 6 nodes give ~1e-5 completeness error where the paper's left Riemann sum with
  m = 20 gives ~1e-1;
* frozen parameters (no weight gradients), unpadded single examples, α chunks sized to a memory budget,
  fp32 on CPU and bf16/fp16 autocast with fp32 accumulation on GPUs.

``method="naive"`` runs the paper's algorithm (every α row recomputes the whole network), for reference and
benchmarks.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .errors import AttAttrError, AttributionOutOfMemoryError, TargetError, check_cancel
from .hooks import AttnController, controller_for
from .inputs import (
    CLASSIFIER,
    Encoded,
    collate,
    encode,
    is_decoder_classifier,
    label_names,
    model_kind,
    prediction_logits,
    resolve_target,
)
from .quadrature import quadrature
from .results import Attribution, LayerResult

SCORES = ("prob", "logprob", "logit")
METHODS = ("prefix", "naive")
_FORMAT_VERSION = 1



# ------------------------------------------------------------------------------------------------------------
# model preparation


@contextlib.contextmanager
def prepared(model: nn.Module, kind: str, rows_need_pad: bool):
    """Context: eval(), frozen parameters, and a pad id for decoder classifiers, all restored afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    cfg = model.config
    pad_before = getattr(cfg, "pad_token_id", None)
    fake_pad = kind == CLASSIFIER and pad_before is None and not rows_need_pad
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        if fake_pad:  # decoder classifiers refuse batches without a pad id; -1 never occurs in input_ids
            cfg.pad_token_id = -1
        yield
    finally:
        if fake_pad:
            cfg.pad_token_id = pad_before
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


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
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def _bytes_per_row(model: nn.Module, ctrl: AttnController, seq: int, layers_above: int, itemsize: int) -> int:
    cfg = model.config
    d = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 768)
    ff = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * d)
    per_layer = 5 * ctrl.num_heads * seq * seq + 12 * seq * d + 3 * seq * ff
    return max(1, layers_above * per_layer * itemsize)


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    return 2 << 30


# ------------------------------------------------------------------------------------------------------------
# the runner: one batch of encoded examples


class _Batch:
    """B right-padded examples with their clean forward (attention, block inputs, targets)."""

    def __init__(self, model, ctrl, kind, encs: Sequence[Encoded], device, pad_id: int):
        self.model, self.ctrl, self.kind = model, ctrl, kind
        self.lengths = [len(e) for e in encs]
        self.B, self.T = len(encs), max(self.lengths)
        self.inputs = collate(list(encs), pad_id, device)
        self.last = torch.tensor([n - 1 for n in self.lengths], device=device)

    def logits_at_target(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """[R, C] classifier logits, or [R, V] next-token logits at each row's last real position."""
        return prediction_logits(self.kind, logits, last)

    def rows(self, c: int) -> dict[str, torch.Tensor]:
        return {k: v.repeat_interleave(c, 0) for k, v in self.inputs.items()}


def _target_score(logits: torch.Tensor, targets: torch.Tensor, score: str, acc_dtype) -> torch.Tensor:
    logits = logits.to(acc_dtype)
    if score == "prob":
        vals = torch.softmax(logits, -1)
    elif score == "logprob":
        vals = torch.log_softmax(logits, -1)
    else:
        vals = logits
    return vals.gather(-1, targets.view(-1, 1)).squeeze(-1)


class _Engine:
    """Runs AttAttr for batches of examples on one prepared model."""

    def __init__(self, model, tokenizer, *, rule, steps, score, method, device, precision, memory_budget):
        if score not in SCORES:
            raise AttAttrError(f"unknown score {score!r}: choose one of {', '.join(SCORES)}")
        if method not in METHODS:
            raise AttAttrError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        self.model, self.tokenizer = model, tokenizer
        self.kind = model_kind(model)
        self.ctrl = controller_for(model)
        self.alphas, self.weights = quadrature(rule, steps)
        self.rule, self.steps, self.score = rule, int(steps), score
        self.method = "prefix" if (method == "prefix" and self.ctrl.blocks is not None) else "naive"
        self.device = device
        self.precision = precision
        self.param_dtype = next(model.parameters()).dtype
        self.acc_dtype = torch.float64 if self.param_dtype == torch.float64 else torch.float32
        self.budget = memory_budget or _memory_budget(device)
        self._rows_cap: int | None = None

    def check_layers(self, layers) -> list[int]:
        L = self.ctrl.num_layers
        if layers is None:
            return list(range(L))
        if isinstance(layers, int):
            layers = [layers]
        out = []
        for layer in layers:
            if not isinstance(layer, (int, np.integer)) or not -L <= layer < L:
                raise AttAttrError(f"layer {layer!r} does not exist: the model has {L} layers (0..{L - 1})")
            out.append(int(layer) % L)
        if len(set(out)) != len(out):
            raise AttAttrError(f"layers {list(layers)} repeat a layer: pass each layer once")
        return out

    # -- passes ---------------------------------------------------------------------------------------------
    def clean_forward(self, batch: _Batch):
        """Clean attention [L] of (B, H, T, T), block inputs [L] of (B, T, d) and logits at the target."""
        ctrl = self.ctrl
        hidden: dict[int, torch.Tensor] = {}
        handles = []
        if ctrl.blocks is not None:
            for i, block in enumerate(ctrl.blocks):

                def grab(module, args, kwargs, i=i):
                    hidden[i] = (args[0] if args else kwargs["hidden_states"]).detach()

                handles.append(block.register_forward_pre_hook(grab, with_kwargs=True))
        try:
            with torch.no_grad(), _autocast(self.device, self.precision), ctrl.session(record=True):
                logits = self.model(**batch.inputs).logits
                attn = dict(ctrl.attn)
        finally:
            for h in handles:
                h.remove()
        return attn, hidden, batch.logits_at_target(logits, batch.last)

    def zero_layer_scores(self, batch: _Batch, layer: int, hidden, targets) -> torch.Tensor:
        """F with ``layer``'s attention zeroed, per example: [B]."""
        cached = (layer, hidden[layer]) if self.method == "prefix" else None
        alpha = torch.zeros(batch.B, device=self.device)
        with torch.no_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha}, cached_inputs=cached
        ):
            logits = self.model(**batch.inputs).logits
        return _target_score(batch.logits_at_target(logits, batch.last), targets, self.score, self.acc_dtype)

    def integrate(self, batch: _Batch, layer: int, hidden, targets, cancel) -> torch.Tensor:
        """Σ_k w_k ∂F/∂(α_k A_layer) for every example: (B, H, T, T) in the accumulation dtype."""
        m = len(self.alphas)
        itemsize = torch.finfo(self.param_dtype).bits // 8
        per_row = _bytes_per_row(self.model, self.ctrl, batch.T, self.ctrl.num_layers - layer, itemsize)
        if self.method == "naive":
            per_row = _bytes_per_row(self.model, self.ctrl, batch.T, self.ctrl.num_layers, itemsize)
        c = max(1, min(m, self.budget // (per_row * batch.B)))
        if self._rows_cap is not None:
            c = max(1, min(c, self._rows_cap // batch.B))
        alphas = torch.tensor(self.alphas, dtype=self.acc_dtype, device=self.device)
        weights = torch.tensor(self.weights, dtype=self.acc_dtype, device=self.device)
        acc = None
        start = 0
        while start < m:
            check_cancel(cancel)
            idx = slice(start, min(m, start + c))
            k = idx.stop - idx.start
            try:
                g = self._grad_chunk(batch, layer, hidden, targets, alphas[idx], k)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                if not _is_oom(exc):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if k == 1:
                    raise AttributionOutOfMemoryError(
                        f"out of memory attributing layer {layer} of a {batch.T}-token input even one integration "
                        f"point at a time: use a shorter text (truncation=True with max_length), fewer layers "
                        f"(layers=[...]), or a device with more memory"
                    ) from exc
                c = max(1, k // 2)
                self._rows_cap = c * batch.B
                continue
            g = (g.to(self.acc_dtype) * weights[idx].view(1, -1, 1, 1, 1)).sum(1)
            acc = g if acc is None else acc + g
            start = idx.stop
        return acc

    def _grad_chunk(self, batch: _Batch, layer, hidden, targets, alphas, k: int) -> torch.Tensor:
        B = batch.B
        rows = batch.rows(k)
        alpha_rows = alphas.repeat(B)  # row r = b * k + j  ↔  example b, node j
        cached = (layer, hidden[layer].repeat_interleave(k, 0)) if self.method == "prefix" else None
        with torch.enable_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha_rows}, grad_layers={layer}, cached_inputs=cached
        ) as ctrl:
            logits = self.model(**rows).logits
            logits = batch.logits_at_target(logits, batch.last.repeat_interleave(k, 0))
            F = _target_score(logits, targets.repeat_interleave(k, 0), self.score, self.acc_dtype)
            (g,) = torch.autograd.grad(F.sum(), ctrl.leaves[layer])
        return g.view(B, k, *g.shape[1:])

    # -- one batch, all layers ------------------------------------------------------------------------------
    def run(self, encs, examples_meta, layers, target_specs, golds, progress, cancel) -> list[Attribution]:
        B = len(encs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = _Batch(self.model, self.ctrl, self.kind, encs, self.device, pad_id)
        with prepared(self.model, self.kind, rows_need_pad=B > 1):
            attn, hidden, clean_logits = self.clean_forward(batch)
            targets = torch.tensor(
                [
                    resolve_target(self.model, self.tokenizer, self.kind, spec, clean_logits[b].float(), gold)
                    for b, (spec, gold) in enumerate(zip(target_specs, golds))
                ],
                device=self.device,
            )
            F_clean = _target_score(clean_logits, targets, self.score, self.acc_dtype)
            per_ex: list[dict] = [dict(scores=[], attention=[], zero=[], comp=[]) for _ in range(B)]
            for index, layer in enumerate(layers):
                zero = self.zero_layer_scores(batch, layer, hidden, targets)
                grad_sum = self.integrate(batch, layer, hidden, targets, cancel)
                A = attn[layer].to(self.acc_dtype)
                attr = A * grad_sum
                for b in range(B):
                    n = batch.lengths[b]
                    s = attr[b, :, :n, :n]
                    delta = float(F_clean[b] - zero[b])
                    err = abs(float(s.sum()) - delta) / abs(delta) if delta != 0 else 0.0
                    rec = per_ex[b]
                    rec["scores"].append(s.float().cpu().numpy())
                    rec["attention"].append(attn[layer][b, :, :n, :n].float().cpu().numpy())
                    rec["zero"].append(float(zero[b]))
                    rec["comp"].append(err)
                    if progress is not None:
                        progress(
                            LayerResult(
                                layer=layer, index=index, total=len(layers), tokens=encs[b].tokens,
                                scores=rec["scores"][-1], attention=rec["attention"][-1], zero_prob=float(zero[b]),
                                completeness=err, target=int(targets[b]), prob=float(F_clean[b]),
                            )
                        )
        names = label_names(self.model) if self.kind == CLASSIFIER else None
        results = []
        for b in range(B):
            t = int(targets[b])
            rec = per_ex[b]
            text, text_pair = examples_meta[b]
            results.append(
                Attribution(
                    scores=np.stack(rec["scores"]).astype(np.float32),
                    attention=np.stack(rec["attention"]).astype(np.float32),
                    tokens=list(encs[b].tokens),
                    token_type_ids=np.asarray(encs[b].segments, dtype=np.int64),
                    target=t,
                    target_label=(names[t] if names else self.tokenizer.decode([t])),
                    prob=float(F_clean[b]),
                    layer_zero_probs=np.asarray(rec["zero"], dtype=np.float64),
                    completeness=np.asarray(rec["comp"], dtype=np.float64),
                    layers=list(layers),
                    num_layers=self.ctrl.num_layers,
                    rule=self.rule,
                    steps=self.steps,
                    score=self.score,
                    text=text,
                    text_pair=text_pair,
                    model_name=str(getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__),
                    target_kind="class" if self.kind == CLASSIFIER else "next-token",
                    label_names=names,
                    truncated=encs[b].truncated,
                    gold=None if golds[b] is None else int(golds[b]),
                    extra={"method": self.method},
                )
            )
        return results


def _resolve_device(model: nn.Module, device) -> torch.device:
    if device is None:
        return next(model.parameters()).device
    device = torch.device(device)
    if next(model.parameters()).device != device:
        model.to(device)
    return device


# ------------------------------------------------------------------------------------------------------------
# public API


def attribute(
    model: nn.Module,
    tokenizer,
    text: str,
    text_pair: str | None = None,
    *,
    target="pred",
    layers: Iterable[int] | int | None = None,
    rule: str = "gauss-legendre",
    steps: int = 6,
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
) -> Attribution:
    """Attribute one example's prediction to every attention link of every (selected) layer.

    Args:
        model: a transformers classifier (``*ForSequenceClassification``) or causal LM whose attention routes
            through ``AttentionInterface`` (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT, GPT-2, Llama, Qwen2, …).
        text, text_pair: the input (a sentence, or a premise/hypothesis pair).
        target: ``"pred"`` (the predicted class / next token, the paper's default), ``"gold"`` (with ``gold``),
            a class index or name, or for language models a next-token id or single-token string (``" Paris"``).
        layers: layer indices to compute (default: all).
        rule, steps: quadrature (``"gauss-legendre"`` 6 nodes by default; ``"left"`` with 20 = the authors' code).
        progress: called once per finished layer with a :class:`LayerResult` (what the widgets stream).
        cancel: a ``threading.Event``; setting it stops the run at the next integration chunk with
            :class:`AttributionCancelled`.
        max_length, truncation: inputs longer than the model's positions raise unless ``truncation=True``.
        score: F is the target's ``"prob"`` (paper), ``"logprob"`` or ``"logit"``.
        method: ``"prefix"`` (fast, default) or ``"naive"`` (the paper's algorithm; same numbers, slower).
        precision: ``"auto"`` = model dtype on CPU, bf16/fp16 autocast with fp32 accumulation on CUDA.

    Returns: an :class:`Attribution` (scores [L, H, n, n], attention, tokens, completeness, …).
    """
    eng = _Engine(
        model, tokenizer, rule=rule, steps=steps, score=score, method=method,
        device=_resolve_device(model, device), precision=precision, memory_budget=memory_budget,
    )
    layer_list = eng.check_layers(layers)
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
    steps: int = 6,
    batch_size: int | None = None,
    device=None,
    cancel: threading.Event | None = None,
    max_length: int | None = None,
    truncation: bool = True,
    score: str = "prob",
    method: str = "prefix",
    precision: str = "auto",
    memory_budget: int | None = None,
) -> Iterator[Attribution]:
    """Attribute many examples (dataset-level work), yielding one :class:`Attribution` per example, in order.

    ``examples``: dicts ``{"text", "text_pair"?, "label"?}`` or a ``datasets.Dataset`` with those columns.
    ``target="gold"`` attributes each example's label (the paper's head-importance setting); ``"pred"`` the
    prediction. Examples are batched ``batch_size`` at a time (default: 1 on CPU, where unpadded single
    examples are fastest; 8 on GPUs), right-padded, and every result is cropped to the example's real tokens.
    Long examples are truncated to the model's positions by default (flagged ``truncated``).
    """
    from .examples import as_examples

    items = as_examples(examples)
    eng = _Engine(
        model, tokenizer, rule=rule, steps=steps, score=score, method=method,
        device=_resolve_device(model, device), precision=precision, memory_budget=memory_budget,
    )
    layer_list = eng.check_layers(layers)
    if batch_size is None:
        batch_size = 8 if eng.device.type == "cuda" else 1
    if eng.kind == CLASSIFIER and is_decoder_classifier(model):
        batch_size = 1  # decoder heads pool the last non-pad token by pad id: keep examples unpadded
    for start in range(0, len(items), max(1, int(batch_size))):
        chunk = items[start : start + batch_size]
        encs = [encode(model, tokenizer, ex.text, ex.text_pair, max_length=max_length, truncation=truncation) for ex in chunk]
        if target == "gold" and any(ex.label is None for ex in chunk):
            raise TargetError('target="gold" needs a "label" in every example; use target="pred" for unlabelled data')
        yield from eng.run(
            encs, [(ex.text, ex.text_pair) for ex in chunk], layer_list, [target] * len(chunk),
            [ex.label for ex in chunk], None, cancel,
        )


def completeness_gap(attr: Attribution) -> np.ndarray:
    """Absolute IG completeness gap per layer: |Σ scores − (prob − zero_prob)|, [L]."""
    sums = attr.scores.reshape(attr.scores.shape[0], -1).astype(np.float64).sum(-1)
    return np.abs(sums - (attr.prob - attr.layer_zero_probs))


__all__ = ["Attribution", "LayerResult", "attribute", "iter_attributions", "completeness_gap"]
