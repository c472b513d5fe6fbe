"""Self-Attention Attribution: integrated gradients over each layer's attention probabilities.

For layer l with attention probabilities P (all heads), target score F and the zero baseline,

    Attr_l = P ⊙ ∫_0^1 ∂F(α P) / ∂P dα  ≈  P ⊙ Σ_k w_k ∂F/∂(α_k P) |_(α_k P)

where only layer l's probabilities are replaced by α P; every other layer recomputes its own attention. Entry
(h, i, j) says how much "query token i attends to key token j in head h" contributes to F.

**Output form** (derived here; the tests check it against ``method="naive"``, the paper's algorithm). Per
head, layer l's output is out_l = P V, and scaling P by α scales out_l by α while V does not depend on α. So with
g(α) = ∂F/∂out_l at out_l = α·P V (shape [H, T, d]),

    ∂F/∂P |_(αP) = g(α) Vᵀ   ⇒   Attr_l = P ⊙ (Ḡ Vᵀ),   Ḡ = Σ_k w_k g(α_k).

Hence every layer runs the model's own fused attention (SDPA on CPU, flash/memory-efficient kernels on CUDA,
forward and backward); only a [rows, T, H, d] gradient is taken at layer l; P_l is formed once, without grad,
in row tiles; no [rows, H, T, T] tensor exists anywhere. The IG completeness sum needs no P at all:
Σ Attr_l = ⟨Ḡ, out_l⟩.

Cost: **prefix caching** — blocks below l run once (their output does not depend on α) through a shadow of the
model's module path (nothing of the user's model is swapped); **Gauss–Legendre** nodes, or ``steps="auto"``: an
adaptive rule on nested dyadic panels (:class:`~..quadrature.AdaptiveSimpson`) that halves the panel with the
largest error estimate until the completeness error is below ``tol``, keeping every gradient it evaluated; α rows
chunked to a memory budget; causal LMs compute only the last position's logits.

The user's model is never changed: it keeps its attention implementation, mode and ``requires_grad`` flags
(gradients are taken w.r.t. the taps only), the run's state is tied to its thread (see
:mod:`..intercept.session`), and the model is never moved (``device=`` must be where the model is).

``method="naive"`` runs the paper's algorithm: every α row recomputes the whole network and the gradient is
taken w.r.t. the materialised probabilities of layer l (for reference and benchmarks).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from torch import nn

from ..errors import AttributionOutOfMemoryError, check_cancel
from ..intercept.controller import AttnController, controller_for
from ..intercept.probs import Captured, attention_probs
from ..model.adapters import adapter_for
from ..model.checks import check_model_and_tokenizer
from ..model.encode import Encoded, collate
from ..quadrature import AUTO_RULE, AdaptiveSimpson, quadrature
from ..results import Attribution, LayerResult, allocate_maps
from .budget import (_autocast, _autocast_dtype, _bytes_per_row, _choose_store, _is_oom, _memory_budget,
                     _oom_error, _resolve_device, _store_for)
from .options import AttributionOptions
from .scores import target_score

#: ΔF ≤ _RESOLVE · eps(forward dtype) · max(|F|, |F_zero|) is below what the forwards resolve (``unresolved``).
_RESOLVE = 8

#: The float floor of ``steps="auto"``'s completeness test is 32·eps·(|F| + |F0|) (the two scores' rounding). The
#: gradients carry more: on the float32 demo decoder (32 tokens, Gauss–Legendre 16, quadrature error negligible —
#: float64 gives 7.5e-6 on layer 15) rounding alone left 3.2e-5 ≈ 160·eps·F on layer 15 and 8e-6 on layer 5
#: (ΔF 5.4e-4). A layer is also **converged at the rounding floor** when, with at least FLOOR_NODES nodes, its
#: panels' error estimates add up to under a tenth of the allowed error (the quadrature has converged on the
#: values it sampled) and the gap is under ROUNDING·eps·(|F| + |F0|) (what the gradients' own rounding can leave,
#: which no node removes). In float64 that bound is ~1e-13 of F: it never decides there.
FLOOR_NODES = 9
ROUNDING = 1000


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

    def __init__(self, model, tokenizer, options: AttributionOptions):
        check_model_and_tokenizer(model, tokenizer)  # the one edge check: wrappers, tokenizer, class names
        self.device = _resolve_device(model, options.device)
        self.model, self.tokenizer = model, tokenizer
        self.adapter = adapter_for(model)
        self.ctrl: AttnController = controller_for(model)
        (self.site,) = self.adapter.attention_sites(self.ctrl)  # text models: one square self-attention group
        self.options = options
        self.quad = options.quad
        self.score = options.score
        self.method = options.method
        self.prefix = self.method == "prefix" and self.ctrl.blocks is not None
        self.precision = options.precision
        self.param_dtype = next(model.parameters()).dtype
        self.acc_dtype = torch.float64 if self.param_dtype == torch.float64 else torch.float32
        # the smallest ΔF the forwards resolve, relative to |F|: below it a layer's completeness is rounding noise
        self.resolution = _RESOLVE * torch.finfo(_autocast_dtype(self.device, self.precision) or self.param_dtype).eps
        self.budget = options.memory_budget or _memory_budget(self.device)
        self.store = options.store
        self.eager = any(n == "eager" for n in self.ctrl.layout.impls)
        self._rows_cap: int | None = None
        self._copy: nn.Module | None = None  # this run's private copy of the model (made once per batch)

    # -- forwards -----------------------------------------------------------------------------------------------
    def _net(self, layer: int | None = None, hidden: torch.Tensor | None = None, grab=(), store=None):
        """The network one pass runs: the engine's private copy of the model (eval mode, own config, parameters
        that do not require grad: gradients are w.r.t. the taps only), with blocks < layer skipped and block
        layer fed ``hidden``; that copy's own config takes the adapter's :meth:`~..model.adapters.TaskAdapter.private_config`
        (a placeholder pad id for decoder classifiers without one). The user's model is never run nor written by the engine."""
        if self._copy is None:
            self._copy = self.ctrl.private(config_overrides=self.adapter.private_config())
        return self.ctrl.shadow(start=layer or 0, hidden=hidden, grab=grab, store=store, base=self._copy)

    def clean_forward(self, batch: _Batch, layers: list[int], cancel, taps: bool = False):
        """One pass of the whole network: ``(captured, hidden, logits, leaves)`` — the captured attention inputs
        of ``layers``, block inputs (prefix) and logits [B, C]. Without ``taps`` a no-grad pass (``leaves`` None);
        with ``taps`` the pass keeps its graph and adds a zero tap to every layer's attention output
        (``leaves[l]`` [B, T, H, d]), so that one backward (:meth:`clean_grads`) gives every layer's gradient at
        α = 1 at once."""
        hidden: dict[int, torch.Tensor] = {}
        grab = set(layers) if self.prefix else set()
        net = self._net(grab=grab, store=hidden)
        with torch.enable_grad() if taps else torch.no_grad(), _autocast(self.device, self.precision), \
                self.ctrl.session(capture=layers, cancel=cancel, out_taps=set(layers) if taps else set()) as s:
            logits = self.adapter.logits(net, batch.inputs, batch.last)
        return s.captured, hidden, logits, (s.leaves if taps else None)

    def clean_grads(self, F_clean: torch.Tensor, leaves: dict, layers: list[int]) -> dict[int, torch.Tensor]:
        """g_l(1) = ∂F/∂out_l at α = 1 for every layer of ``layers`` from ONE backward of the clean pass (the taps
        of :meth:`clean_forward`; at α = 1 the network is the clean one, so this is the gradient a gradient pass
        of layer l would compute at α = 1): {layer: [B, T, H, d]} in the accumulation dtype."""
        grads = torch.autograd.grad(F_clean.sum(), [leaves[l] for l in layers])
        return {l: g.detach().to(self.acc_dtype) for l, g in zip(layers, grads)}

    def zero_scores(self, batch: _Batch, layer: int, hidden, targets, cancel) -> torch.Tensor:
        """F with ``layer``'s attention output zeroed (α = 0), per example: [B]."""
        net = self._net(layer, hidden[layer]) if self.prefix else self._net()
        alpha = torch.zeros(batch.B, device=self.device)
        with torch.no_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha}, cancel=cancel
        ):
            logits = self.adapter.logits(net, batch.inputs, batch.last)
        return target_score(logits, targets, self.score, self.acc_dtype)

    def _grad_chunk(self, batch: _Batch, layer: int, hidden, targets, alphas: torch.Tensor, cancel):
        """``(g, F)`` at the k nodes ``alphas``: g = ∂F/∂out_layer (output form) or ∂F/∂P_layer (naive)
        [B, k, ...], F the target score of each row [B, k] (at α = 0 it is the zero pass's F)."""
        B, k = batch.B, len(alphas)
        rows = batch.rows(k)
        alpha_rows = alphas.repeat(B)  # row r = b * k + j  ↔  example b, node j
        last = batch.last.repeat_interleave(k, 0)
        if self.prefix:
            net = self._net(layer, hidden[layer].repeat_interleave(k, 0))
        else:
            net = self._net()
        naive = self.method == "naive"
        with torch.enable_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha_rows}, cancel=cancel,
            **({"grad_layers": {layer}} if naive else {"out_taps": {layer}}),
        ) as s:
            logits = self.adapter.logits(net, rows, last)
            F = target_score(logits, targets.repeat_interleave(k, 0), self.score, self.acc_dtype)
            (g,) = torch.autograd.grad(F.sum(), s.leaves[layer])
        return g.view(B, k, *g.shape[1:]), F.detach().view(B, k)

    def _node_grads(self, batch: _Batch, layer: int, hidden, targets, alphas, cancel):
        """g(α) at the nodes ``alphas`` (float64 [m]), in chunks of rows sized to the memory budget: yields
        ``(slice of alphas, g [B, k, T, H, d] (output form) or [B, k, H, T, T] (naive), F [B, k])``.
        Out-of-memory halves the chunk (and caps later ones), down to one node."""
        m = len(alphas)
        itemsize = torch.finfo(self.param_dtype).bits // 8
        above = self.ctrl.num_layers - layer if self.prefix else self.ctrl.num_layers
        per_row = _bytes_per_row(self.model, batch.T, above, itemsize, self.eager or self.method == "naive")
        c = max(1, min(m, self.budget // (per_row * batch.B)))
        if self._rows_cap is not None:
            c = max(1, min(c, self._rows_cap // batch.B))
        a = torch.tensor(alphas, dtype=self.acc_dtype, device=self.device)
        start = 0
        while start < m:
            check_cancel(cancel)
            idx = slice(start, min(m, start + c))
            k = idx.stop - idx.start
            try:
                g, F = self._grad_chunk(batch, layer, hidden, targets, a[idx], cancel)
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
            yield idx, g, F
            start = idx.stop

    def integrate(self, batch: _Batch, layer: int, hidden, targets, alphas, weights, cancel) -> torch.Tensor:
        """Σ_k w_k g(α_k) for every example: [B, T, H, d] (output form) or [B, H, T, T] (naive)."""
        w = torch.tensor(weights, dtype=self.acc_dtype, device=self.device)
        acc = None
        for idx, g, _ in self._node_grads(batch, layer, hidden, targets, alphas, cancel):
            g = (g.to(self.acc_dtype) * w[idx].view(1, -1, *([1] * (g.dim() - 2)))).sum(1)
            acc = g if acc is None else acc + g
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
    def _layer(self, batch, layer, hidden, targets, F_clean, captured, g_one, cancel):
        """One layer's integral: ``(grad_sum, zero, nodes, converged, panels)`` — Ḡ = Σ_k w_k g(α_k); ``zero`` F
        at α = 0 per example [B]; ``nodes`` the gradients Ḡ is built from (every one evaluated for it, plus α = 1
        from the clean pass with ``steps="auto"``); ``panels`` the partition of [0, 1] that ``steps="auto"`` ended
        with (``[(lo, hi), …]``), else None.

        ``steps="auto"``: :class:`~..quadrature.AdaptiveSimpson`, starting from α = 0, ½, 1. Every node's gradient
        g(α_k) [B, …] is kept, and its scalar f(α_k) = ⟨g(α_k), P V⟩ (output form; ⟨g, P⟩ naive) is what
        Σ Attr integrates, with ∫ f dα = ΔF = F(1) − F(0) known. α = 1 costs no gradient pass of this layer's:
        it is ``g_one[layer]`` (the clean pass's backward, shared by all layers; absent: evaluated here), and the
        α = 0 row's F is F(0), so no zero pass runs. Accepted when, for every example,
        |Σ_k w_k f(α_k) − ΔF| ≤ tol·|ΔF| + 32·eps·(|F| + |F0|), or at the rounding floor (FLOOR_NODES,
        ROUNDING); otherwise the panel with the largest error estimate is halved (two new nodes; every earlier
        node keeps a weight), until ``max_steps`` nodes (not converged)."""
        q = self.quad
        if not q.auto:
            zero = self.zero_scores(batch, layer, hidden, targets, cancel)
            alphas, weights = quadrature(q.rule, q.steps)
            g = self.integrate(batch, layer, hidden, targets, alphas, weights, cancel)
            return g, zero, int(q.steps), True, None
        out = captured.get(layer)
        # Σ Attr = ⟨Ḡ, P V⟩ (output form) or ⟨Ḡ_P, P⟩ (naive): the clean output / P of this layer
        ref = (out.out if self.method != "naive" else attention_probs(out)).to(self.acc_dtype)
        rule = AdaptiveSimpson()
        grads: dict[float, torch.Tensor] = {}  # node -> g [B, ...]
        scores: dict[float, torch.Tensor] = {}  # node -> F [B]

        def keep(nodes, g):  # g [B, k, ...] at ``nodes``
            f = (g * ref.unsqueeze(1)).flatten(2).sum(-1)  # [B, k]
            for j, a in enumerate(nodes):
                grads[float(a)] = g[:, j]
            rule.record(nodes, f.T.cpu().double().numpy())

        if layer in g_one:
            keep([1.0], g_one.pop(layer).unsqueeze(1))
        new = rule.missing()
        while True:
            nodes = np.asarray(new, np.float64)
            for idx, g, F in self._node_grads(batch, layer, hidden, targets, nodes, cancel):
                keep(nodes[idx], g.to(self.acc_dtype))
                scores.update((float(a), F[:, j]) for j, a in enumerate(nodes[idx]))
            zero = scores[0.0]
            delta = (F_clean - zero).to(self.acc_dtype).cpu().double().numpy()
            scale = (F_clean.abs() + zero.abs()).to(self.acc_dtype).cpu().double().numpy()
            eps_f = torch.finfo(self.acc_dtype).eps * scale  # eps·(|F| + |F0|)
            allowed = q.tol * np.abs(delta) + 32 * eps_f
            gap = np.abs(rule.integral() - delta)
            ok = bool((gap <= allowed).all()) or (
                len(rule.alphas) >= FLOOR_NODES and bool((np.sum(rule.errors(), axis=0) <= 0.1 * allowed).all())
                and bool((gap <= ROUNDING * eps_f).all()))  # converged at the rounding floor
            if ok or len(rule.alphas) + 2 > q.max_steps:
                break
            new = rule.split(allowed)
        alphas, weights = rule.rule()
        g = sum(float(w) * grads[float(a)] for a, w in zip(alphas, weights))
        return g, zero, len(alphas), ok, list(rule.panels)

    # -- one batch, all layers ------------------------------------------------------------------------------
    def run(self, encs, examples_meta, layers, target_specs, golds, progress, cancel) -> list[Attribution]:
        B = len(encs)
        batch = _Batch(encs, self.device, self.adapter.pad_id(self.tokenizer))
        H = self.site.num_heads
        store = _choose_store(self.store, len(layers), H, batch.T, B)
        self._copy = None  # a fresh private copy per batch: the user's model as it is now
        # α = 1 for every layer from one backward of the clean pass, if its B rows of whole-network activations fit
        # the memory budget (else each layer evaluates α = 1 in its own chunked passes)
        itemsize = torch.finfo(self.param_dtype).bits // 8
        taps = self.quad.auto and self.method != "naive" and B * _bytes_per_row(
            self.model, batch.T, self.ctrl.num_layers, itemsize, self.eager) <= self.budget
        try:
            captured, hidden, clean_logits, leaves = self.clean_forward(batch, layers, cancel, taps=taps)
            targets = torch.tensor(
                [
                    self.adapter.resolve_target(self.tokenizer, spec, clean_logits[b].detach().float(), gold)
                    for b, (spec, gold) in enumerate(zip(target_specs, golds))
                ],
                device=self.device,
            )
            F_clean = target_score(clean_logits, targets, self.score, self.acc_dtype)
            g_one = self.clean_grads(F_clean, leaves, layers) if leaves is not None else {}
        except Exception as exc:
            if _is_oom(exc):
                raise _oom_error("in the clean forward pass", batch.T, exc) from exc
            raise
        F_clean, clean_logits = F_clean.detach(), None
        map_dtype = np.float64 if self.acc_dtype == torch.float64 else np.float32
        maps = [allocate_maps(len(layers), H, batch.lengths[b], _store_for(store, b, B), map_dtype)
                for b in range(B)]
        per_ex: list[list[LayerResult]] = [[] for _ in range(B)]
        for index, layer in enumerate(layers):
            try:
                grad_sum, zero, steps, converged, panels = self._layer(
                    batch, layer, hidden, targets, F_clean, captured, g_one, cancel)
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
                unresolved = abs(delta) <= self.resolution * max(abs(float(F_clean[b])), abs(float(zero[b])))
                finite = bool(np.isfinite(sums[b]) and np.isfinite(delta)
                              and np.isfinite(maps[b][1][index]).all())  # Σ scores finite ⇔ no inf/NaN in them
                r = LayerResult(
                    layer=layer, index=index, total=len(layers), tokens=list(encs[b].tokens),
                    scores=maps[b][0][index], attention=maps[b][1][index], zero_prob=float(zero[b]),
                    completeness=err, target=int(targets[b]), prob=float(F_clean[b]), steps=steps,
                    converged=converged, nonfinite=not finite, unresolved=unresolved, panels=panels,
                )
                per_ex[b].append(r)
                if progress is not None:
                    progress(r)
        names = self.adapter.label_names()
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
                target_label=self.adapter.target_label(self.tokenizer, t), prob=float(F_clean[b]),
                layer_zero_probs=np.asarray([r.zero_prob for r in rs], np.float64),
                completeness=np.asarray([r.completeness for r in rs], np.float64), layers=list(layers),
                num_layers=self.site.num_layers, rule=AUTO_RULE if self.quad.auto else self.quad.rule,
                steps=self.quad.steps, score=self.score,
                text=text, text_pair=text_pair, model_name=model_name,
                target_kind=self.adapter.target_kind, label_names=names,
                truncated=encs[b].truncated, gold=None if golds[b] is None else int(golds[b]),
                extra={"method": self.method}, layer_steps=[r.steps for r in rs],
                converged=[r.converged for r in rs], layer_panels=[r.panels for r in rs],
                tol=self.quad.tol if self.quad.auto else None, store=where,
                nonfinite=[r.layer for r in rs if r.nonfinite], unresolved=[r.layer for r in rs if r.unresolved],
            ))
        return results
