"""Head importance (paper §4.1, Fig 3): how much a fine-tuned model needs each of its L×H attention heads.

``head_importance(model, tokenizer, examples, method=...)`` returns an ``[L, H]`` float64 array, larger =
more important, for one of

* ``"attattr"`` — the paper's I_h = E_x[max_{i,j} Attr_h(A)]: for every example, the AttAttr scores of the
  **gold** label's probability (``target="gold"``, as the authors' ``prune_head_with_attr.py``), the signed
  maximum over the head's real token pairs, averaged over examples. (The authors sum over their 200 examples,
  which is 200 × this mean: the ranking is identical.) Quadrature: Gauss–Legendre with 6 nodes by default;
  ``rule="left", steps=20`` is the authors' setting.
* ``"attention"`` — the attention-score baseline: E_x[max_{i,j} A_h], the same reduction as ``"attattr"`` applied
  to the attention probabilities themselves, so the two differ only in A vs Attr. (The *mean* of a head's
  probabilities over its real query rows is 1/n for every head, because each row sums to 1, so "average
  attention" cannot rank heads; the maximum can.) Many heads have a max close to 1 (a token attending to
  [CLS]/[SEP] or to itself), so this baseline is coarse; that is part of the paper's point.
* ``"taylor"`` — Michel, Levy & Neubig (2019): I_h = E_x |∂L(x)/∂ξ_h|, the gradient of the cross-entropy loss
  of the target label with respect to a head-mask variable ξ_h (= 1) that multiplies the head's attention
  probabilities, taken per example (one mask row per example) then averaged, and L2-normalised within each
  layer (Michel's ``exponent=2`` layer normalisation). Σ_ij A ⊙ ∂L/∂A = ∂L/∂ξ_h, so this is also the paper's
  E_x|A_h^T ∂L/∂A_h| form.
* ``"taylor-authors"`` — what the AttAttr repository's ``prune_head_with_taylor.py`` computes: the
  backpropagated scalar is the **sum of the logits** of the batch (the variable named ``loss`` there holds the
  logits — a quirk; it is label-agnostic and, for two classes, nearly cancels), and per head the score is
  Σ_examples Σ_query tokens |⟨ctx_i, ∂S/∂ctx_i⟩| = Σ |Σ_j A_ij ∂S/∂A_ij| (absolute value per query token),
  then L2-normalised within each layer. Their per-layer token-count divisors (another quirk) cancel in the
  layer-wise normalisation, so we divide by the number of examples.
* ``"accuracy"`` — Michel et al.'s accuracy difference: accuracy of the full model minus accuracy with that
  head alone masked (L·H + 1 evaluations, batched with per-row head masks). On a few hundred examples many heads
  tie (often at 0); :func:`~attattr_widgets.engine.analysis.pruning.pruning_curve` breaks ties with a seeded random
  order rather than by layer.
* ``"random"`` — uniform random scores from ``numpy.random.default_rng(seed)`` (the control).

Evaluation forwards (everything but ``"attattr"``) pad per batch after sorting the examples by length and run
under ``torch.no_grad()`` except the two Taylor methods, which need one backward per batch. ``progress=True``
shows a tqdm bar; a callable is called as ``progress(done, total)``. ``cancel`` (a ``threading.Event``) stops
the run between batches with :class:`AttributionCancelled`.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import validate
from ..attribution.api import iter_attributions
from ..backends.dispatch import check_backend, iter_sharded, run_sharded
from ..errors import AttAttrError, TargetError, check_cancel
from ..intercept.controller import controller_for
from ..model.checks import check_model_and_tokenizer
from ..model.examples import as_examples, check_labels
from ..model.kinds import model_kind, num_outputs
from ..model.predict import EncodedSet, masked_accuracy, predict_masked
from ..progress import Progress
from ..results import HeadImportance

METHODS = ("attattr", "attention", "taylor", "taylor-authors", "accuracy", "random")

def _predict_part(model, tokenizer, items, *, offset, progress, cancel, keep, per_example, batch_size, max_length,
                  label, what):
    """Shard function (see :mod:`.backends`): :func:`predict_masked` on ``items`` (an :class:`EncodedSet` in
    process, examples on a worker): ``[K, n]``. Per-example masks are sliced at ``offset``."""
    data = items if isinstance(items, EncodedSet) else EncodedSet(model, tokenizer, items, max_length=max_length)
    data.need_labels(what)
    keep = np.asarray(keep)
    # a writable copy (arrays from Ray's object store are read-only); per-example masks: this shard's rows
    keep = np.array(keep[offset : offset + len(data)] if per_example else keep, dtype=np.float32)
    return predict_masked(data, keep, per_example=per_example, batch_size=batch_size, progress=progress,
                          cancel=cancel, desc=label)

def sharded_accuracy(backend, data: EncodedSet, keep, *, per_example: bool = False, batch_size: int = 32,
                     max_length: int | None = None, progress=None, cancel=None, desc: str = "evaluating",
                     what: str = "accuracy") -> np.ndarray:
    """:func:`masked_accuracy` in process (``backend=None``) or over shards of ``data``'s examples on a
    :class:`~attattr_widgets.engine.backends.ray.RayBackend` (the predictions are concatenated in example order):
    ``[K]``. ``max_length`` must be the one ``data`` was encoded with."""
    data.need_labels(what)
    K = int(np.shape(keep)[-3])
    parts = run_sharded(backend, _predict_part, data.model, data.tokenizer, data if backend is None else data.items,
                        progress=progress, cancel=cancel, desc=desc, units=K, keep=keep, per_example=per_example,
                        batch_size=batch_size, max_length=max_length, label=desc, what=what)
    preds = np.concatenate(parts, axis=1)
    return (preds == data.labels[None, :]).mean(1)

# ------------------------------------------------------------------------------------------------------------
# gradient-based baselines

def _check_target(target) -> None:
    """``"gold"``, ``"pred"``, a class index or (for ``"attattr"``) a class name; never a bool or a float."""
    if isinstance(target, bool) or not isinstance(target, (str, int, np.integer)):
        raise TargetError(f"target must be 'gold', 'pred' or a class index, got {validate.show(target)} "
                          f"({type(target).__name__})")

def _targets(data: EncodedSet, idx, logits: torch.Tensor, target) -> torch.Tensor:
    if target == "gold":
        return torch.as_tensor(data.labels[idx], device=logits.device)
    if target == "pred":
        return logits.detach().argmax(-1)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        validate.label(target, "target", logits.shape[-1])
        return torch.full((logits.shape[0],), int(target), device=logits.device, dtype=torch.long)
    raise TargetError(f"target must be 'gold', 'pred' or a class index, not {target!r}")

def _iter_head_mask_gradients(data: EncodedSet, target, batch_size: int, cancel):
    """Yield ``(idx [b], grads [b, L, H] float64)`` per length-sorted batch: signed ∂L/∂ξ of each example."""
    net = data.net()  # parameters that do not require grad: the gradient is w.r.t. ξ only
    for idx, inputs, last, _ in data.batches(batch_size):
        check_cancel(cancel)
        b = len(idx)
        xi = {l: torch.ones(b, data.H, device=data.device, dtype=data.dtype, requires_grad=True) for l in range(data.L)}
        with torch.enable_grad(), data.ctrl.session(head_mask=xi):
            logits = data.logits(net(**inputs).logits, last)
            y = _targets(data, idx, logits, target)
            loss = F.cross_entropy(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits,
                                   y, reduction="sum")
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
    _data: EncodedSet | None = None,
) -> np.ndarray:
    """Signed ∂L(x)/∂ξ_{l,h} per example: ``[N, L, H]`` in example order (float64).

    L is the cross-entropy of ``target`` (``"gold"`` label, ``"pred"`` predicted class, or a class index);
    ξ_{l,h} = 1 multiplies head (l, h)'s attention probabilities (one mask row per example, so every row's
    gradient is its own example's).
    """
    data = _data or EncodedSet(model, tokenizer, examples, max_length=max_length)
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
    net = data.net()  # the gradient is w.r.t. the taps only
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

def _attattr_pieces(model, tokenizer, items, *, offset, progress, cancel, target, rule, steps, batch_size,
                    max_length, reduce):
    """Shard function (see :mod:`.backends`): yields ``(index [1], head scores [1, L, H] float64)`` per example,
    ``index`` global (``offset`` + position)."""
    with Progress(progress, len(items), "attattr importance") as prog:
        stream = iter_attributions(
            model, tokenizer, items, target=target, rule=rule, steps=steps, batch_size=batch_size,
            cancel=cancel, max_length=max_length, truncation=True,
        )
        for n, attr in enumerate(stream):
            s = attr.head_scores(reduce).astype(np.float64)
            prog.update(1)
            check_cancel(cancel)
            yield np.array([offset + n]), s[None]

_REDUCERS = {"max": lambda t: t.amax((-1, -2)), "absmax": lambda t: t.abs().amax((-1, -2)),
             "sum": lambda t: t.sum((-1, -2))}

def _attention_pieces(model, tokenizer, items, *, offset, progress, cancel, batch_size, max_length, reduce):
    """Shard function: yields ``(index [b], reduced attention [b, L, H] float64)`` per length-sorted batch."""
    data = EncodedSet(model, tokenizer, items, max_length=max_length)
    red = _REDUCERS[reduce]
    net = data.net()
    with Progress(progress, len(data), "attention importance") as prog, torch.no_grad():
        for idx, inputs, last, amask in data.batches(batch_size):
            check_cancel(cancel)
            with data.ctrl.session(record=True) as c:
                net(**inputs)
                attn = dict(c.attn)
            m = amask.to(attn[0].dtype)
            valid = m[:, None, :, None] * m[:, None, None, :]  # real query rows × real keys
            per_ex = torch.stack([red(attn[l] * valid).double() for l in range(data.L)], 1).cpu()  # [b, L, H]
            prog.update(len(idx))
            yield offset + np.asarray(idx), per_ex.numpy()

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

# ------------------------------------------------------------------------------------------------------------
# public API

@dataclass
class ImportanceStep:
    """One update of a running head-importance estimate (what :func:`iter_head_importance` yields).

    ``estimate`` [L, H] float64 is the importance over the first ``done`` examples, computed exactly as the final
    one (same reduction and normalisation), so the last step's ``estimate`` *is* :func:`head_importance`'s
    result. ``example_index`` [b] (positions in ``examples``) and ``example_scores`` [b, L, H] are the examples
    this step added and their per-example head scores (``"attattr"``/``"attention"``: the reduced map;
    ``"taylor"``: |∂L/∂ξ|; ``"taylor-authors"``: the per-example sum before normalisation; empty for
    ``"accuracy"``/``"random"``). ``final`` marks the last step.
    """

    method: str
    done: int
    total: int
    estimate: np.ndarray
    example_index: np.ndarray
    example_scores: np.ndarray
    final: bool = False

def iter_head_importance(
    model,
    tokenizer,
    examples,
    *,
    method: str = "attattr",
    target="gold",
    rule: str = "gauss-legendre",
    steps: int = 6,
    batch_size: int | None = None,
    seed: int = 0,
    progress=None,
    cancel: threading.Event | None = None,
    reduce: str = "max",
    max_length: int | None = None,
    normalize: bool = True,
    backend=None,
) -> Iterator[ImportanceStep]:
    """:func:`head_importance` as a stream: one :class:`ImportanceStep` per example (``"attattr"``) or per batch
    (``"attention"``, the Taylor methods), a single final step for ``"accuracy"`` and ``"random"``.
    :func:`head_importance` returns the last step's ``estimate``, so both are equal by construction. Same
    arguments as :func:`head_importance`."""
    if method not in METHODS:
        raise AttAttrError(f"unknown importance method {method!r}: choose one of {', '.join(METHODS)}")
    if reduce not in ("max", "absmax", "sum"):
        raise AttAttrError(f"unknown reduce {reduce!r}: choose 'max', 'absmax' or 'sum'")
    steps = validate.steps(steps)
    batch_size = validate.batch_size(batch_size)
    seed = validate.integer(seed, "seed", minimum=0)
    validate.progress(progress)
    validate.cancel_event(cancel)
    max_length = validate.max_length(max_length)
    _check_target(target)
    check_backend(backend)
    check_model_and_tokenizer(model, tokenizer)  # wrappers, class names and unsupported heads, at once
    ctrl = controller_for(model)
    L, H = ctrl.num_layers, ctrl.num_heads
    none_idx, none_scores = np.zeros(0, dtype=np.int64), np.zeros((0, L, H))
    if method == "random":
        n = 0 if examples is None else len(as_examples(examples))
        yield ImportanceStep(method, n, n, np.random.default_rng(seed).random((L, H)), none_idx, none_scores, True)
        return
    if method == "attattr":
        items = as_examples(examples)
        check_labels(items, *num_outputs(model, model_kind(model)))
        N = len(items)
        total = np.zeros((L, H), dtype=np.float64)
        for idx, s in iter_sharded(backend, _attattr_pieces, model, tokenizer, items, progress=progress,
                                   cancel=cancel, desc="attattr importance", multiple=batch_size or 1,
                                   target=target, rule=rule, steps=steps, batch_size=batch_size,
                                   max_length=max_length, reduce=reduce):
            n = int(idx[0])
            total += s[0]
            yield ImportanceStep(method, n + 1, N, total / (N if n + 1 == N else n + 1), idx, s, n + 1 == N)
        return

    bs = 32 if batch_size is None else int(batch_size)
    items = as_examples(examples)
    N = len(items)
    shard = dict(progress=progress, cancel=cancel, batch_size=bs, max_length=max_length)
    if method == "attention":
        total = torch.zeros(L, H, dtype=torch.float64)
        done = 0
        for idx, per_ex in iter_sharded(backend, _attention_pieces, model, tokenizer, items,
                                        desc="attention importance", reduce=reduce, **shard):
            total += torch.from_numpy(per_ex).sum(0)
            done += len(idx)
            yield ImportanceStep(method, done, N, (total / (N if done == N else done)).numpy(), idx, per_ex,
                                 done == N)
        return
    if method in ("taylor", "taylor-authors"):
        per = np.zeros((N, L, H), dtype=np.float64)
        seen = np.zeros(N, dtype=bool)
        done = 0
        for idx, g in iter_sharded(backend, _taylor_pieces, model, tokenizer, items, desc=method, target=target,
                                   method=method, **shard):
            per[idx] = g
            seen[idx] = True
            done += len(idx)
            imp = per[seen].mean(0) if done < N else per.mean(0)
            yield ImportanceStep(method, done, N, normalize_by_layer(imp) if normalize else imp, idx, g,
                                 done == N)
        return
    # accuracy difference
    data = EncodedSet(model, tokenizer, items, max_length=max_length)
    keep = np.ones((1 + L * H, L, H), dtype=np.float32)
    for k in range(L * H):
        keep[1 + k, k // H, k % H] = 0.0
    acc = sharded_accuracy(backend, data, keep, batch_size=bs, max_length=max_length, progress=progress,
                           cancel=cancel, desc="accuracy importance", what='method="accuracy"')
    yield ImportanceStep(method, N, N, (acc[0] - acc[1:]).reshape(L, H).astype(np.float64), none_idx,
                         none_scores, True)

def head_importance(
    model,
    tokenizer,
    examples,
    *,
    method: str = "attattr",
    target="gold",
    rule: str = "gauss-legendre",
    steps: int = 6,
    batch_size: int | None = None,
    seed: int = 0,
    progress=None,
    cancel: threading.Event | None = None,
    reduce: str = "max",
    max_length: int | None = None,
    normalize: bool = True,
    backend=None,
) -> np.ndarray:
    """Importance of every attention head, ``[L, H]`` float64 (larger = more important).

    Args:
        examples: dicts ``{"text", "text_pair"?, "label"}`` or a ``datasets.Dataset`` with those columns (the
            paper uses 200 held-out examples).
        method: ``"attattr"`` (paper), ``"attention"``, ``"taylor"``, ``"taylor-authors"``, ``"accuracy"``,
            ``"random"`` — see the module docstring for exactly what each computes.
        target: for ``"attattr"``/``"taylor"``: ``"gold"`` (paper; needs labels), ``"pred"`` or a class index.
        rule, steps: AttAttr quadrature (``"left"``, 20 = the authors' code).
        batch_size: examples per forward (default: the attribution engine's choice for ``"attattr"``, 32
            otherwise).
        seed: for ``"random"``.
        progress: ``True`` (tqdm), or ``callable(done, total)``; ``cancel``: ``threading.Event``.
        reduce: per-example head summary for ``"attattr"``/``"attention"`` (``"max"`` = paper).
        normalize: layer-wise L2 normalisation of the Taylor methods (Michel et al.; default True).
        backend: ``None`` (this process) or a :class:`~attattr_widgets.engine.backends.ray.RayBackend`: shards of
            the examples run on its workers; same result to float tolerance (see :mod:`.backends`).

    The last step of :func:`iter_head_importance` (the running estimate the widgets show).
    """
    step = None
    for step in iter_head_importance(
        model, tokenizer, examples, method=method, target=target, rule=rule, steps=steps, batch_size=batch_size,
        seed=seed, progress=progress, cancel=cancel, reduce=reduce, max_length=max_length, normalize=normalize,
        backend=backend,
    ):
        pass
    if step is None:  # no examples
        raise AttAttrError("no examples given: pass at least one {'text', 'label'} example")
    return HeadImportance(step.estimate, method=method, num_examples=step.done, target=str(target))

__all__ = [
    "METHODS",
    "EncodedSet",
    "ImportanceStep",
    "head_importance",
    "head_mask_gradients",
    "iter_head_importance",
    "masked_accuracy",
    "normalize_by_layer",
    "predict_masked",
    "sharded_accuracy",
]
