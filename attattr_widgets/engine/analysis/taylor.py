"""Gradient-based head importance: head-mask gradients and the two Taylor methods.

* ``"taylor"`` — Michel, Levy & Neubig (2019): I_h = E_x |∂L(x)/∂ξ_h|, the gradient of the cross-entropy loss
  of the target label with respect to a head-mask variable ξ_h (= 1) that multiplies the head's attention
  probabilities, taken per example (one mask row per example) then averaged, and L2-normalised within each
  layer (Michel's ``exponent=2`` layer normalisation). Σ_ij A ⊙ ∂L/∂A = ∂L/∂ξ_h, so this is also the paper's
  E_x|A_h^T ∂L/∂A_h| form. Examples with a ``target`` answer (a causal LM): L = −Σ_t log p(y_t | prompt, y_<t),
  the answer's teacher-forced cross-entropy.
* ``"taylor-authors"`` — what the AttAttr repository's ``prune_head_with_taylor.py`` computes: the
  backpropagated scalar is the **sum of the logits** of the batch (the variable named ``loss`` there holds the
  logits — a quirk; it is label-agnostic and, for two classes, nearly cancels), and per head the score is
  Σ_examples Σ_query tokens |⟨ctx_i, ∂S/∂ctx_i⟩| = Σ |Σ_j A_ij ∂S/∂A_ij| (absolute value per query token),
  then L2-normalised within each layer. Their per-layer token-count divisors (another quirk) cancel in the
  layer-wise normalisation, so we divide by the number of examples.

Both run one backward per length-sorted, padded batch, on a frozen copy of the model (the gradient is with
respect to the masks / taps only); one step per batch.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .. import validate
from ..backends.dispatch import iter_sharded
from ..errors import TargetError, check_cancel
from ..model.predict import EncodedSet
from ..progress import Progress
from .protocol import ImportanceRequest, ImportanceStep

__all__ = ["head_mask_gradients", "normalize_by_layer", "taylor_authors_steps", "taylor_steps"]


def _targets(data: EncodedSet, idx, logits: torch.Tensor, target) -> torch.Tensor:
    if target == "gold":
        return torch.as_tensor(data.labels[idx], device=logits.device)
    if target == "pred":
        return logits.detach().argmax(-1)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        validate.label(target, "target", logits.shape[-1])
        return torch.full((logits.shape[0],), int(target), device=logits.device, dtype=torch.long)
    raise TargetError(f"target must be 'gold', 'pred' or a class index, not {target!r}")


def _answer_targets(data: EncodedSet, idx, target, device) -> torch.Tensor:
    """The answers of the batch ``idx`` ([b, A], -1 = none): examples with answers are scored on their answer."""
    if target != "gold":
        raise TargetError(f"examples with a 'target' answer are scored on that answer: use target='gold', not "
                          f"{target!r}")
    return data.answer_ids[torch.as_tensor(idx)].to(device)


def _iter_head_mask_gradients(data: EncodedSet, target, batch_size: int, cancel):
    """Yield ``(idx [b], grads [b, L, H] float64)`` per length-sorted batch: signed ∂L/∂ξ of each example."""
    net = data.net()  # the private copy: parameters that do not require grad, the gradient is w.r.t. ξ only
    for idx, inputs, last, _ in data.batches(batch_size):
        check_cancel(cancel)
        b = len(idx)
        xi = {l: torch.ones(b, data.H, device=data.device, dtype=data.dtype, requires_grad=True) for l in range(data.L)}
        with torch.enable_grad(), data.ctrl.session(head_mask=xi):
            logits = data.logits(net(**inputs).logits, last)
            if data.answers:  # L = −Σ_t log p(y_t | prompt, y_<t) of each example's answer
                y = _answer_targets(data, idx, target, logits.device)
                logits, y = logits.flatten(0, 1), y.flatten()
            else:
                y = _targets(data, idx, logits, target)
            loss = F.cross_entropy(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits,
                                   y, reduction="sum", ignore_index=-1)
            grads = torch.autograd.grad(loss, [xi[l] for l in range(data.L)])
        yield idx, torch.stack(grads, 1).double().cpu().numpy()


def head_mask_gradients(
    model,
    tokenizer,
    examples,
    *,
    target="gold",
    batch_size: int = 32,
    max_length: int | None = None,
    progress=None,
    cancel: threading.Event | None = None,
) -> np.ndarray:
    """Signed ∂L(x)/∂ξ_{l,h} per example: ``[N, L, H]`` in example order (float64).

    L is the cross-entropy of ``target`` (``"gold"`` label, ``"pred"`` predicted class, or a class index);
    ξ_{l,h} = 1 multiplies head (l, h)'s attention probabilities (one mask row per example, so every row's
    gradient is its own example's).
    """
    data = EncodedSet(model, tokenizer, examples, max_length=max_length)
    if target == "gold":
        data.need_labels('target="gold"')
    out = np.zeros((len(data), data.L, data.H), dtype=np.float64)
    with Progress(progress, len(data), "head-mask gradients") as prog:
        for idx, g in _iter_head_mask_gradients(data, target, batch_size, cancel):
            out[idx] = g
            prog.update(len(idx))
    return out


def _iter_authors_taylor(data: EncodedSet, batch_size, cancel):
    """Yield ``(idx [b], per-example Σ_i |Σ_j A_ij ∂(Σ logits)/∂A_ij| [b, L, H] float64)`` per batch."""
    layers = range(data.L)
    net = data.net()  # the private copy: the gradient is w.r.t. the taps only
    for idx, inputs, last, amask in data.batches(batch_size):
        check_cancel(cancel)
        with torch.enable_grad(), data.ctrl.session(tap_layers=layers, record=True) as ctrl:
            logits = data.logits(net(**inputs).logits, last)
            S = logits.sum()  # the authors' backpropagated quantity: the sum of the logits (quirk)
            grads = torch.autograd.grad(S, [ctrl.leaves[l] for l in layers])
            attn = dict(ctrl.attn)
        q = amask.to(torch.float64)[:, None, :]  # real query rows
        per_ex = torch.zeros(len(idx), data.L, data.H, dtype=torch.float64)
        for l in layers:
            per_tok = (attn[l].double() * grads[l].double()).sum(-1).abs()  # (b, H, T) = |<ctx_i, dS/dctx_i>|
            per_ex[:, l] = (per_tok * q).sum(2).cpu()
        yield idx, per_ex.numpy()


def _taylor_pieces(model, tokenizer, items, *, offset, progress, cancel, batch_size, max_length, target, method):
    """Shard function: yields ``(index [b], per-example scores [b, L, H])`` per batch: |∂L/∂ξ| (``"taylor"``)
    or the authors' per-example sum (``"taylor-authors"``), before any normalisation."""
    data = EncodedSet(model, tokenizer, items, max_length=max_length)
    if method == "taylor" and target == "gold":
        data.need_labels('target="gold"')
    desc = "head-mask gradients" if method == "taylor" else "taylor (authors)"
    batches = (_iter_head_mask_gradients(data, target, batch_size, cancel) if method == "taylor"
               else _iter_authors_taylor(data, batch_size, cancel))
    with Progress(progress, len(data), desc) as prog:
        for idx, g in batches:
            prog.update(len(idx))
            yield offset + np.asarray(idx), (np.abs(g) if method == "taylor" else g)


def normalize_by_layer(imp: np.ndarray, exponent: float = 2.0) -> np.ndarray:
    """Michel et al.'s layer-wise normalisation: each layer's row divided by its L^exponent norm."""
    imp = np.asarray(imp, dtype=np.float64)
    norm = np.power(np.power(np.abs(imp), exponent).sum(-1, keepdims=True), 1.0 / exponent)
    return imp / (norm + 1e-20)


def _gradient_steps(req: ImportanceRequest, method: str) -> Iterator[ImportanceStep]:
    """Either Taylor method: per-example scores from :func:`_taylor_pieces`, averaged over the examples seen so
    far and (``normalize``) L2-normalised within each layer."""
    N = len(req.items)
    per = np.zeros((N, req.L, req.H), dtype=np.float64)
    seen = np.zeros(N, dtype=bool)
    done = 0
    for idx, g in iter_sharded(req.backend, _taylor_pieces, req.model, req.tokenizer, req.items,
                               progress=req.progress, cancel=req.cancel, desc=method, target=req.target,
                               method=method, batch_size=req.eval_batch_size, max_length=req.max_length):
        per[idx] = g
        seen[idx] = True
        done += len(idx)
        imp = per[seen].mean(0) if done < N else per.mean(0)
        yield ImportanceStep(req.method, done, N, normalize_by_layer(imp) if req.normalize else imp, idx, g,
                             done == N)


def taylor_steps(req: ImportanceRequest) -> Iterator[ImportanceStep]:
    """The ``"taylor"`` method (Michel et al.): one step per batch."""
    return _gradient_steps(req, "taylor")


def taylor_authors_steps(req: ImportanceRequest) -> Iterator[ImportanceStep]:
    """The ``"taylor-authors"`` method (the AttAttr repository's script): one step per batch."""
    return _gradient_steps(req, "taylor-authors")
