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

from ..errors import AttAttrError, AttributionOutOfMemoryError, check_cancel
from ..intercept.controller import AttnController, controller_for
from ..intercept.probs import Captured, attention_probs
from ..model.adapters import CausalLMAdapter, ContinuationAdapter, adapter_for
from ..model.checks import check_model_and_tokenizer
from ..model.encode import Encoded, collate
from ..model.generate import greedy_answer
from ..quadrature import AUTO_RULE, AdaptiveSimpson, quadrature
from ..results import Attribution, LayerResult, allocate_maps
from .budget import (_autocast, _autocast_dtype, _bytes_per_row, _choose_store, _is_oom, _memory_budget,
                     _oom_error, _resolve_device, _store_for)
from .options import AttributionOptions
from .scores import continuation_score, target_score

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
    """B right-padded rows: model inputs, lengths, and ``where`` F is read — each row's last real position [B],
    or for continuations (every row with an ``answer_start``) the positions that predict the answer tokens
    [B, A] (A the longest answer; a shorter answer's extra positions repeat its last one and carry no weight);
    ``positions``: the query lengths its attention modules may run over (the padded length T).

    ``slots``: rows that repeat one input with different F (an answer's whole row and its token rows), as
    ``slots[j]`` = the rows that are slot j of their input (slot 0: every input's first row, one per input;
    ``None`` where an input has fewer slots), or None when no row repeats another. The clean, zero and gradient
    passes then run each input once and read every slot's F from the same logits (one backward per slot:
    :meth:`_Engine._backward`)."""

    def __init__(self, encs: Sequence[Encoded], device, pad_id: int, slots: list[list[int | None]] | None = None):
        self.slots = slots
        # row r -> its input (index into slots[0]); None when no row repeats another
        self._input_of = None if slots is None else {
            r: u for slot in slots for u, r in enumerate(slot) if r is not None}
        self.lengths = [len(e) for e in encs]
        self.B, self.T = len(encs), max(self.lengths)
        self.positions = {self.T}
        self.inputs = collate(list(encs), pad_id, device)
        self.encs = list(encs)
        if encs[0].answer_start is not None:  # examples have answers, all or none (examples.answers_of)
            self.where = ContinuationAdapter.answer_positions(encs, device)
        else:
            self.where = torch.tensor([n - 1 for n in self.lengths], device=device)

    def rows(self, k: int, of: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The inputs of the rows ``of`` (default all), each repeated ``k`` times in a row."""
        return {key: (v if of is None else v[of]).repeat_interleave(k, 0) for key, v in self.inputs.items()}

    @property
    def inputs_once(self) -> torch.Tensor | None:
        """The first row of each input (``slots[0]``), or None when no row repeats another."""
        return None if self.slots is None else torch.tensor(self.slots[0], device=self.where.device)

    @property
    def num_inputs(self) -> int:
        """U: the distinct inputs, the rows each forward runs per node (B when no row repeats another)."""
        return self.B if self.slots is None else len(self.slots[0])

    def per_input(self, per_row: torch.Tensor) -> torch.Tensor:
        """A per-row tensor [B, ...] → one row per input [U, ...] (itself when no row repeats another)."""
        once = self.inputs_once
        return per_row if once is None else per_row[once]

    def input_of(self, r: int) -> int:
        """The input (index into ``slots[0]``) whose row ``r`` is; r itself when no row repeats another."""
        return r if self._input_of is None else self._input_of[r]

    def spread(self, per_input: torch.Tensor) -> torch.Tensor:
        """A per-input tensor [U, ...] (U = len(slots[0])) → per row [B, ...]."""
        index = torch.tensor([self.input_of(r) for r in range(self.B)], device=per_input.device)
        return per_input[index]


class _Engine:
    """Runs AttAttr for batches of examples on one model (which it never changes)."""

    def __init__(self, model, tokenizer, options: AttributionOptions):
        check_model_and_tokenizer(model, tokenizer)  # the one edge check: wrappers, tokenizer, class names
        self.device = _resolve_device(model, options.device)
        self.model, self.tokenizer = model, tokenizer
        self.adapter = adapter_for(model)
        self.ctrl: AttnController = controller_for(model)
        self.sites = self.adapter.attention_sites(self.ctrl)
        self.site = self.sites[0]  # single-stack text models: one square self-attention group
        self.options = options
        self.quad = options.quad
        self.score = options.score or self.adapter.default_score  # the current run's (run() sets it per batch)
        self.run_adapter = self.adapter  # the adapter of the current run: the model's, or its continuation's
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

    def F(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The score F of each row, [R]: ``targets`` [R] output indices (``logits`` [R, C]), or for continuations
        [R, A] answer ids with -1 where a row counts no token (``logits`` [R, A, V]; weights 1 where an id is
        given: :func:`~.scores.continuation_score`)."""
        if targets.dim() == 2:
            weights = (targets >= 0).to(self.acc_dtype)
            return continuation_score(logits, targets.clamp(min=0), weights, self.score, self.acc_dtype)
        return target_score(logits, targets, self.score, self.acc_dtype)

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
        of ``layers`` and block inputs (prefix), and the logits, for each input once (``_Batch.slots``: rows that
        repeat an input share its row; [U, ...], U = B when none does). Without ``taps`` a no-grad pass
        (``leaves`` None); with ``taps`` the pass keeps its graph and adds a zero tap to every layer's attention
        output (``leaves[l]`` [U, T, H, d]), so that one backward per slot (:meth:`clean_pass`) gives every
        layer's gradient at α = 1 at once."""
        hidden: dict[int, torch.Tensor] = {}
        grab = set(layers) if self.prefix else set()
        net = self._net(grab=grab, store=hidden)
        once = batch.inputs_once  # rows that repeat an input: captured and cached once per input
        where = batch.per_input(batch.where)
        with torch.enable_grad() if taps else torch.no_grad(), _autocast(self.device, self.precision), \
                self.ctrl.session(capture=layers, cancel=cancel, out_taps=set(layers) if taps else set()) as s:
            logits = self.run_adapter.logits(net, batch.rows(1, once), where)
        seen = {int(c.query.shape[2]) for c in s.captured.values()}
        if not seen <= batch.positions:
            raise AttAttrError(
                f"{type(self.model).__name__}'s attention ran over {sorted(seen)} positions but the input has "
                f"{'/'.join(map(str, sorted(batch.positions)))} tokens: the model adds or drops tokens its adapter "
                f"({type(self.adapter).__name__}) does not name, so maps would be misread")
        return s.captured, hidden, logits, (s.leaves if taps else None)

    def clean_pass(self, batch: _Batch, layers: list[int], cancel, targets_of):
        """The clean pass and what it gives every layer: ``(captured, hidden, targets, F_clean [B], g_one)`` —
        ``targets = targets_of(logits)`` (logits of each input, :meth:`clean_forward`), F of every row, and
        ``g_one`` {layer: g_l(1) = ∂F/∂out_l [B, T, H, d]} from ONE backward of the clean pass per slot (at α = 1
        the network is the clean one, so this is the gradient a gradient pass of layer l computes at α = 1).
        ``g_one`` is filled where :meth:`shares_alpha_one`; else it is empty and each layer evaluates α = 1 in its
        own chunked passes."""
        taps = self.shares_alpha_one(batch)
        try:
            captured, hidden, logits, leaves = self.clean_forward(batch, layers, cancel, taps=taps)
            targets = targets_of(logits)
            F, grads = self._backward(batch, logits, targets, 1, [leaves[l] for l in layers] if taps else [],
                                      cancel)
        except Exception as exc:
            if _is_oom(exc):
                raise _oom_error("in the clean forward pass", batch.T, exc) from exc
            raise
        return captured, hidden, targets, F[:, 0], {l: g[:, 0].to(self.acc_dtype) for l, g in zip(layers, grads)}

    def shares_alpha_one(self, batch: _Batch) -> bool:
        """Whether the clean pass gives every layer's α = 1 (:meth:`clean_pass`): ``steps="auto"`` in output form,
        when B rows of whole-network activations fit the memory budget (B ≥ U bounds the pass's U rows and the
        B rows of gradients kept)."""
        itemsize = torch.finfo(self.param_dtype).bits // 8
        return self.quad.auto and self.method != "naive" and batch.B * _bytes_per_row(
            self.model, batch.T, self.ctrl.num_layers, itemsize, self.eager) <= self.budget

    def _backward(self, batch: _Batch, logits: torch.Tensor, targets: torch.Tensor, k: int, leaves, cancel):
        """Every row's F and its gradients from one pass that ran each input k times (``logits`` of its rows,
        row u·k + j ↔ input u, node j): ``(F [B, k] detached, [∂F/∂leaf as [B, k, ...] for each of leaves])`` —
        no backward without ``leaves``. Rows that repeat an input (``_Batch.slots``) read their F from that
        input's logits, with one backward per slot through the same graph (a slot holds one row per input)."""
        B = batch.B
        if batch.slots is None:
            F = self.F(logits, targets.repeat_interleave(k, 0))
            grads = torch.autograd.grad(F.sum(), leaves) if leaves else ()
            return F.detach().view(B, k), [g.view(B, k, *g.shape[1:]) for g in grads]
        U = batch.num_inputs
        F_rows, out = None, []
        for j, slot in enumerate(batch.slots):
            check_cancel(cancel)
            t = torch.stack([targets[r] if r is not None else torch.full_like(targets[0], -1) for r in slot])
            F = self.F(logits, t.repeat_interleave(k, 0))
            grads = torch.autograd.grad(F.sum(), leaves, retain_graph=j < len(batch.slots) - 1) if leaves else ()
            if F_rows is None:
                F_rows, out = F.new_zeros((B, k)), [g.new_zeros((B, k, *g.shape[1:])) for g in grads]
            F = F.detach().view(U, k)
            for u, r in enumerate(slot):
                if r is not None:
                    F_rows[r] = F[u]
                    for o, g in zip(out, grads):
                        o[r] = g.view(U, k, *g.shape[1:])[u]
        return F_rows, out

    def zero_scores(self, batch: _Batch, layer: int, hidden, targets, cancel) -> torch.Tensor:
        """F with ``layer``'s attention output zeroed (α = 0), per example: [B]."""
        once = batch.inputs_once  # rows that repeat an input: run each input once
        net = self._net(layer, hidden[layer]) if self.prefix else self._net()  # hidden: per input
        alpha = torch.zeros(batch.num_inputs, device=self.device)
        with torch.no_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha}, cancel=cancel
        ):
            logits = self.run_adapter.logits(net, batch.rows(1, once), batch.per_input(batch.where))
        return self._backward(batch, logits, targets, 1, [], cancel)[0][:, 0]

    def _grad_chunk(self, batch: _Batch, layer: int, hidden, targets, alphas: torch.Tensor, cancel):
        """``(g, F)`` at the k nodes ``alphas``: g = ∂F/∂out_layer (output form) or ∂F/∂P_layer (naive)
        [B, k, ...], F the target score of each row [B, k] (at α = 0 it is the zero pass's F)."""
        k = len(alphas)
        rows = batch.rows(k, batch.inputs_once)  # rows that repeat an input (per-token rows): one forward each
        alpha_rows = alphas.repeat(batch.num_inputs)  # row r = u * k + j  ↔  input u, node j
        where = batch.per_input(batch.where).repeat_interleave(k, 0)
        if self.prefix:
            net = self._net(layer, hidden[layer].repeat_interleave(k, 0))  # hidden: per input
        else:
            net = self._net()
        naive = self.method == "naive"
        with torch.enable_grad(), _autocast(self.device, self.precision), self.ctrl.session(
            alpha={layer: alpha_rows}, cancel=cancel,
            **({"grad_layers": {layer}} if naive else {"out_taps": {layer}}),
        ) as s:
            logits = self.run_adapter.logits(net, rows, where)
            F, (g,) = self._backward(batch, logits, targets, k, [s.leaves[layer]], cancel)
        return g, F

    def _node_grads(self, batch: _Batch, layer: int, hidden, targets, alphas, cancel):
        """g(α) at the nodes ``alphas`` (float64 [m]), in chunks of rows sized to the memory budget: yields
        ``(slice of alphas, g [B, k, T, H, d] (output form) or [B, k, H, T, T] (naive), F [B, k])``.
        Out-of-memory halves the chunk (and caps later ones), down to one node."""
        m = len(alphas)
        itemsize = torch.finfo(self.param_dtype).bits // 8
        above = self.ctrl.num_layers - layer if self.prefix else self.ctrl.num_layers
        per_row = _bytes_per_row(self.model, batch.T, above, itemsize, self.eager or self.method == "naive")
        U = batch.num_inputs  # rows each forward runs per node
        c = max(1, min(m, self.budget // (per_row * U)))
        if self._rows_cap is not None:
            c = max(1, min(c, self._rows_cap // U))
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
                self._rows_cap = c * U
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

    def layer_maps(self, c: Captured, grad_sum: torch.Tensor, b: int, n: int, out_scores, out_attn, cancel,
                   n_cols: int | None = None, u: int | None = None) -> float:
        """Write row b's [H, n, n_cols] attribution and attention into the stores; returns Σ Attr. ``n``: the
        real query rows, ``n_cols``: the real key columns (default ``n``: self-attention over one input);
        ``u``: the row of ``c`` holding b's input (default b; rows that repeat an input share one captured row).

        Output form: Attr = P ⊙ (Ḡ Vᵀ), P formed in row tiles of at most ~64 MiB."""
        H = c.query.shape[1]
        m = n if n_cols is None else n_cols
        g, b = b, (b if u is None else u)  # g: the gradient's row; b: the captured row
        V = c.values()[b : b + 1, :, :m]  # (1, H, m, d)
        cb = Captured(
            query=c.query[b : b + 1, :, :n], key=c.key[b : b + 1, :, :m], value=c.value[b : b + 1, :, :m],
            mask=None if c.mask is None else c.mask[b : b + 1] if c.mask.shape[0] > 1 else c.mask,
            causal=c.causal, scaling=c.scaling, softcap=c.softcap,
            position_bias=None if c.position_bias is None else (
                c.position_bias[b : b + 1] if c.position_bias.shape[0] > 1 else c.position_bias),
        )
        if cb.mask is not None:
            cb.mask = cb.mask[..., :n, :m] if cb.mask.shape[-2] > 1 else cb.mask[..., :m]
        if cb.position_bias is not None:
            cb.position_bias = cb.position_bias[..., :n, :m]
        tile = max(1, min(n, (64 << 20) // max(1, 4 * H * m * 3)))
        total = 0.0
        for r0 in range(0, n, tile):
            check_cancel(cancel)
            rows = slice(r0, min(n, r0 + tile))
            P = attention_probs(cb, rows, dtype=self.acc_dtype)[0]  # (H, t, n)
            if self.method == "naive":
                G = grad_sum[g, :, rows, :m]
            else:
                Gb = grad_sum[g, rows].permute(1, 0, 2).to(self.acc_dtype)  # (H, t, d)
                G = torch.matmul(Gb, V[0].to(self.acc_dtype).transpose(-1, -2))  # (H, t, n)
            attr = P * G
            total += float(attr.sum())
            out_scores[:, rows] = attr.cpu().numpy()
            out_attn[:, rows] = P.cpu().numpy()
        return total

    def attribute_layer(self, batch, layer, hidden, targets, F_clean, captured, g_one, cancel, write, attention):
        """One layer for every row of ``batch``: F with the layer zeroed, Ḡ (:meth:`_layer`; ``g_one`` from
        :meth:`clean_pass`), and the maps, written by ``write(b, captured_layer, grad_sum) -> Σ Attr``;
        ``attention(b)`` reads row b's written attention.
        Returns ``(zero [B], nodes, converged, panels, [(completeness, unresolved, finite)] per row)``."""
        try:
            grad_sum, zero, steps, converged, panels = self._layer(
                batch, layer, hidden, targets, F_clean, captured, g_one, cancel)
            sums = [write(b, captured[layer], grad_sum) for b in range(batch.B)]
        except Exception as exc:
            if _is_oom(exc) and not isinstance(exc, AttributionOutOfMemoryError):
                raise _oom_error(f"attributing layer {layer}", batch.T, exc) from exc
            raise
        del grad_sum
        captured.pop(layer, None)
        hidden.pop(layer, None)
        checks = []
        for b in range(batch.B):
            delta = float(F_clean[b] - zero[b])
            err = abs(sums[b] - delta) / abs(delta) if delta != 0 else 0.0
            unresolved = abs(delta) <= self.resolution * max(abs(float(F_clean[b])), abs(float(zero[b])))
            finite = bool(np.isfinite(sums[b]) and np.isfinite(delta)
                          and np.isfinite(attention(b)).all())  # Σ scores finite ⇔ no inf/NaN in them
            checks.append((err, unresolved, finite))
        return zero, steps, converged, panels, checks

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
        if batch.slots is not None:  # captured once per input: the rows' copies
            ref = batch.spread(ref)
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

    def generate(self, enc: Encoded, max_new_tokens: int, cancel) -> list[int]:
        """The answer the model decodes greedily after the prompt ``enc``, on a private copy
        (:func:`~..model.generate.greedy_answer`)."""
        net = self.ctrl.private(config_overrides=self.adapter.private_config())
        return greedy_answer(net, self.model, enc, max_new_tokens, cancel)

    # -- one batch, all layers ------------------------------------------------------------------------------
    def use_continuation(self, continuation: bool) -> None:
        """Set the run's adapter and score: a causal LM's :class:`ContinuationAdapter` for answers (default score
        ``"logprob"``), else the model's adapter (default ``"prob"``)."""
        if continuation and not isinstance(self.adapter, CausalLMAdapter):
            raise AttAttrError(f"an answer target (a string of several tokens, a list of token ids, an example "
                               f"'target') needs a causal language model; {type(self.model).__name__} is a "
                               f"{self.adapter.name} model: pass one class or token as target")
        self.run_adapter = ContinuationAdapter(self.model) if continuation else self.adapter
        self.score = self.options.score or ("logprob" if continuation else "prob")

    def run(self, encs, examples_meta, layers, target_specs, golds, progress, cancel,
            per_token: bool = False) -> list[Attribution]:
        """Attribute a batch of examples at ``layers``: one :class:`Attribution` per example.

        Continuations (``encs`` with ``answer_start``): the row of each example's whole answer, and with
        ``per_token`` one more row per answer token t whose F is that token's log p(y_t | prompt, y_<t) alone —
        all rows in one batch (``_Batch.slots``): the clean, zero and gradient passes run each example once per
        node and read every row's F from the same logits (one backward per slot, the clean pass's shared α = 1
        included: :meth:`clean_pass`), the nodes of ``steps="auto"`` are
        shared, and Σ_t of the token rows' maps equals the whole answer's map at the same nodes (linearity of the
        integral). The token results are the whole result's ``per_token``."""
        cont = encs[0].answer_start is not None
        self.use_continuation(cont)
        rows = [(b, t) for b, e in enumerate(encs)
                for t in [None] + (list(range(e.answer_len)) if per_token and cont else [])]
        B = len(rows)
        slots = None
        if len(rows) > len(encs):  # per-token rows repeat their example: slot j = row j of each example
            first = [r for r, (_, t) in enumerate(rows) if t is None]
            G = max(e.answer_len for e in encs) + 1
            slots = [[r0 + j if j <= encs[b].answer_len else None for b, r0 in enumerate(first)] for j in range(G)]
        batch = _Batch([encs[b] for b, _ in rows], self.device, self.run_adapter.pad_id(self.tokenizer), slots)
        H = self.site.num_heads
        store = _choose_store(self.store, len(layers), H, batch.T, B)
        self._copy = None  # a fresh private copy per batch: the user's model as it is now

        def targets_of(logits):  # each example's target: [B] output indices, or [B, A] answer ids (-1: no token)
            if cont:
                return ContinuationAdapter.answer_targets(batch.encs, [t for _, t in rows], self.device)
            return torch.tensor([
                self.run_adapter.resolve_target(self.tokenizer, spec, logits[b].detach().float(), gold)
                for b, (spec, gold) in enumerate(zip(target_specs, golds))], device=self.device)

        captured, hidden, targets, F_clean, g_one = self.clean_pass(batch, layers, cancel, targets_of)
        map_dtype = np.float64 if self.acc_dtype == torch.float64 else np.float32
        maps = []
        for r, (b, t) in enumerate(rows):
            scores_, attention, where = allocate_maps(len(layers), H, batch.lengths[r], _store_for(store, r, B),
                                                      map_dtype)
            # a token row's attention is its example's: the whole-answer row's array (same P), written twice
            maps.append((scores_, attention if t is None else maps[r - 1 - t][1], where))
        per_row: list[list[LayerResult]] = [[] for _ in range(B)]
        for index, layer in enumerate(layers):
            zero, steps, converged, panels, checks = self.attribute_layer(
                batch, layer, hidden, targets, F_clean, captured, g_one, cancel,
                lambda r, cap, g: self.layer_maps(cap, g, r, batch.lengths[r], maps[r][0][index], maps[r][1][index],
                                                  cancel, u=batch.input_of(r)),
                lambda r: maps[r][1][index])
            for r, (b, t) in enumerate(rows):
                err, unresolved, finite = checks[r]
                res = LayerResult(
                    layer=layer, index=index, total=len(layers), tokens=list(encs[b].tokens),
                    scores=maps[r][0][index], attention=maps[r][1][index], zero_prob=float(zero[r]),
                    completeness=err, target=self._target_id(encs[b], targets[r], t), prob=float(F_clean[r]),
                    steps=steps, converged=converged, nonfinite=not finite, unresolved=unresolved, panels=panels,
                    answer_start=encs[b].answer_start, answer_token=t, image=encs[b].image,
                )
                per_row[r].append(res)
                if progress is not None:
                    progress(res)
        results: list[Attribution] = []
        for r, (b, t) in enumerate(rows):
            attr = self._result(encs[b], examples_meta[b], golds[b], layers, per_row[r], maps[r], t)
            if t is None:
                results.append(attr)
            else:
                results[-1].per_token = (results[-1].per_token or []) + [attr]
        return results

    @staticmethod
    def _target_id(enc: Encoded, target: torch.Tensor, answer_token: int | None) -> int:
        """``Attribution.target`` of a row: its output index, or for answers the id of its answer token (the
        first one for the whole answer)."""
        if enc.answer_start is None:
            return int(target)
        return int(enc.input_ids[0, enc.answer_start + (answer_token or 0)])

    def _result(self, enc: Encoded, meta, gold, layers, rs: list[LayerResult], maps, answer_token) -> Attribution:
        """One row's :class:`Attribution` from its streamed layers and its maps."""
        text, text_pair = meta
        scores, attention, where = maps
        t = rs[0].target
        if enc.answer_start is None:
            label = self.run_adapter.target_label(self.tokenizer, t)
        else:
            answer = enc.input_ids[0, enc.answer_start:].tolist()
            label = self.run_adapter.target_label(
                self.tokenizer, answer if answer_token is None else answer[answer_token])
        return Attribution(
            scores=scores, attention=attention, tokens=list(enc.tokens),
            token_type_ids=np.asarray(enc.segments, dtype=np.int64), target=t,
            target_label=label, prob=rs[0].prob,
            layer_zero_probs=np.asarray([r.zero_prob for r in rs], np.float64),
            completeness=np.asarray([r.completeness for r in rs], np.float64), layers=list(layers),
            num_layers=self.site.num_layers, rule=AUTO_RULE if self.quad.auto else self.quad.rule,
            steps=self.quad.steps, score=self.score,
            text=text, text_pair=text_pair,
            model_name=str(getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__),
            target_kind=self.run_adapter.target_kind, label_names=self.run_adapter.label_names(),
            truncated=enc.truncated, gold=None if gold is None else int(gold),
            extra={"method": self.method}, layer_steps=[r.steps for r in rs],
            converged=[r.converged for r in rs], layer_panels=[r.panels for r in rs],
            tol=self.quad.tol if self.quad.auto else None, store=where,
            nonfinite=[r.layer for r in rs if r.nonfinite], unresolved=[r.layer for r in rs if r.unresolved],
            answer_start=enc.answer_start, answer_token=answer_token, image=enc.image,
        )
