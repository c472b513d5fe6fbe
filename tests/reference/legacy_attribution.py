"""The previous (v1) attribution engine — materialised probabilities in every layer, module swapping for the
prefix cache — kept verbatim (results as plain dicts in the model dtype) as an independent reference for the v2 engine and for
``bench/attribution.py``. It changes the model it runs on: always pass a deep copy.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from torch import nn

from attattr_widgets.engine.errors import AttAttrError, AttributionOutOfMemoryError, check_cancel
from attattr_widgets.engine.model.encode import collate, encode, Encoded
from attattr_widgets.engine.model.adapters import SequenceClassifierAdapter, adapter_for
from attattr_widgets.engine.quadrature import quadrature

from .legacy_hooks import AttnController, controller_for

SCORES = ("prob", "logprob", "logit")
METHODS = ("prefix", "naive")


@contextlib.contextmanager
def prepared(model: nn.Module, kind: str, rows_need_pad: bool):
    """Context: eval(), frozen parameters, and a pad id for decoder classifiers, all restored afterwards."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    cfg = model.config
    pad_before = getattr(cfg, "pad_token_id", None)
    fake_pad = kind == SequenceClassifierAdapter.name and pad_before is None and not rows_need_pad
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

    def __init__(self, model, ctrl, adapter, encs: Sequence[Encoded], device, pad_id: int):
        self.model, self.ctrl, self.adapter = model, ctrl, adapter
        self.lengths = [len(e) for e in encs]
        self.B, self.T = len(encs), max(self.lengths)
        self.inputs = collate(list(encs), pad_id, device)
        self.last = torch.tensor([n - 1 for n in self.lengths], device=device)

    def logits_at_target(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """[R, C] classifier logits, or [R, V] next-token logits at each row's last real position."""
        return self.adapter.prediction_logits(logits, last)

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
        self.adapter = adapter_for(model)
        self.kind = self.adapter.name
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
    def run(self, encs, examples_meta, layers, target_specs, golds, progress, cancel) -> list[dict]:
        B = len(encs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = _Batch(self.model, self.ctrl, self.adapter, encs, self.device, pad_id)
        with prepared(self.model, self.kind, rows_need_pad=B > 1):
            attn, hidden, clean_logits = self.clean_forward(batch)
            targets = torch.tensor(
                [
                    self.adapter.resolve_target(self.tokenizer, spec, clean_logits[b].float(), gold)
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
                    rec["scores"].append(s.cpu().numpy())
                    rec["attention"].append(attn[layer][b, :, :n, :n].cpu().numpy())
                    rec["zero"].append(float(zero[b]))
                    rec["comp"].append(err)
                    if progress is not None:
                        progress(
                            dict(
                                layer=layer, index=index, total=len(layers), tokens=encs[b].tokens,
                                scores=rec["scores"][-1], attention=rec["attention"][-1], zero_prob=float(zero[b]),
                                completeness=err, target=int(targets[b]), prob=float(F_clean[b]),
                            )
                        )
        names = self.adapter.label_names()
        results = []
        for b in range(B):
            t = int(targets[b])
            rec = per_ex[b]
            text, text_pair = examples_meta[b]
            results.append(
                dict(
                    scores=np.stack(rec["scores"]),
                    attention=np.stack(rec["attention"]),
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
                    target_kind=self.adapter.target_kind,
                    label_names=names,
                    truncated=encs[b].truncated,
                    gold=None if golds[b] is None else int(golds[b]),
                    extra={"method": self.method},
                )
            )
        return results




def legacy_attribute(model, tokenizer, text, text_pair=None, *, target="pred", layers=None, rule="gauss-legendre",
                     steps=6, score="prob", method="prefix", memory_budget=None) -> dict:
    """The v1 ``attribute``: a dict with ``scores``/``attention`` [L, H, n, n], ``completeness`` [L], ``target``,
    ``prob``, ``layer_zero_probs`` [L]."""
    eng = _Engine(model, tokenizer, rule=rule, steps=steps, score=score, method=method,
                  device=next(model.parameters()).device, precision="fp32", memory_budget=memory_budget)
    layer_list = eng.check_layers(layers)
    enc = encode(model, tokenizer, text, text_pair)
    return eng.run([enc], [(text, text_pair)], layer_list, [target], [None], None, None)[0]
