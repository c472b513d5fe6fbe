"""The public attribution functions: :func:`attribute` (one example) and :func:`iter_attributions` (many, in
process or as shards on a backend, yielded in example order)."""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator

import numpy as np
from torch import nn

from .. import validate
from ..backends.dispatch import check_backend, iter_sharded
from ..errors import AttAttrError, TargetError
from ..model.examples import as_examples, check_labels, encode_examples
from ..results import Attribution, LayerResult
from .engine import _Engine
from .options import AttributionOptions


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
        rule, steps: quadrature. ``steps="auto"`` (default): an adaptive composite Simpson–Boole rule on nested
            dyadic panels of [0, 1] (α = 0, ½, 1 first — α = 1 for every layer from one backward of the clean
            pass; then the panel with the largest error estimate is halved, two new nodes each time, none ever
            discarded) until the IG completeness error is below ``tol`` (relative, with a floor at the float
            precision), at most ``max_steps`` nodes per layer (≥ 3); ``layer_steps``, ``converged`` and
            ``layer_panels`` report what each layer used.
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
    eng = _Engine(model, tokenizer, AttributionOptions.from_arguments(locals()))
    layer_list = eng.options.layer_list(eng.site.num_layers)
    progress = validate.callback(progress, "progress", "progress(layer_result)")
    cancel = validate.cancel_event(cancel)
    if gold is not None:
        n, what = eng.adapter.num_outputs()
        gold = validate.label(gold, "gold", n, what=what)
    enc = eng.adapter.encode(tokenizer, text, text_pair, max_length=eng.options.max_length,
                             truncation=eng.options.truncation)
    return eng.run([enc], [(text, text_pair)], layer_list, [eng.options.target], [gold], progress, cancel)[0]

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
    ``backend``: None (this process) or a :class:`~attattr_widgets.engine.backends.ray.RayBackend`, which attributes
    shards of the examples on its workers and yields them here in example order.
    """
    options = AttributionOptions.from_arguments(locals())
    if backend is not None:
        yield from _iter_on(backend, model, tokenizer, examples, options, progress=None, cancel=cancel)
        return
    yield from _iter_here(model, tokenizer, as_examples(examples), options, cancel)

def _iter_here(model, tokenizer, items, options: AttributionOptions, cancel) -> Iterator[Attribution]:
    """:func:`iter_attributions` in this process, on normalised examples."""
    eng = _Engine(model, tokenizer, options)
    check_labels(items, *eng.adapter.num_outputs())
    layer_list = options.layer_list(eng.site.num_layers)
    cancel = validate.cancel_event(cancel)
    batch_size = options.batch_size
    if batch_size is None:
        batch_size = 8 if eng.device.type == "cuda" else 1
    if eng.adapter.unpadded:
        batch_size = 1  # e.g. decoder heads pool the last non-pad token by pad id: keep examples unpadded
    target = options.target
    if target == "gold" and any(ex.label is None for ex in items):
        raise TargetError('target="gold" needs a "label" in every example; use target="pred" for unlabelled data')
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        encs = encode_examples(eng.adapter, tokenizer, chunk, offset=start, max_length=options.max_length,
                               truncation=options.truncation)
        yield from eng.run(
            encs, [(ex.text, ex.text_pair) for ex in chunk], layer_list, [target] * len(chunk),
            [ex.label for ex in chunk], None, cancel,
        )

def completeness_gap(attr: Attribution) -> np.ndarray:
    """Absolute IG completeness gap per layer: |Σ scores − (prob − zero_prob)|, [L]."""
    sums = attr.scores.reshape(attr.scores.shape[0], -1).astype(np.float64).sum(-1)
    return np.abs(sums - (attr.prob - attr.layer_zero_probs))

# ------------------------------------------------------------------------------------------------------------
# many examples on a backend

def _attribution_part(model, tokenizer, items, *, offset, progress, cancel, options: AttributionOptions) -> list:
    """Shard function: the shard's :class:`Attribution` objects, in order (progress: one unit per example)."""
    out = []
    for attr in _iter_here(model, tokenizer, items, options, cancel):
        out.append(attr)
        if progress is not None:
            progress(len(out), len(items))
    return out

def iter_attributions_on(backend, model, tokenizer, examples, *, progress=None, cancel=None, **kw):
    """``iter_attributions(..., backend=backend)``: shards of ``examples`` attributed on the workers, yielded in
    example order (a shard's results arrive together). ``kw``: :func:`iter_attributions`' arguments except
    ``device`` (each worker uses its own) and a file ``store`` (maps come back in memory).
    ``progress(done, total)``: examples finished across the workers."""
    defaults = {"target": "gold", "truncation": True}  # iter_attributions' defaults where attribute's differ
    options = AttributionOptions.from_kwargs(**{**defaults, **kw})
    yield from _iter_on(backend, model, tokenizer, examples, options, progress=progress, cancel=cancel)

def _iter_on(backend, model, tokenizer, examples, options: AttributionOptions, *, progress, cancel):
    check_backend(backend)
    if backend is None:
        raise AttAttrError("iter_attributions_on needs a backend; use iter_attributions for this process")
    if options.device is not None:
        raise AttAttrError("device= does not apply with a backend: each worker runs on its own device "
                           "(num_gpus_per_worker); leave device=None")
    store = options.store
    if store not in ("auto", "memory", "fp16"):
        raise AttAttrError(f"store={store!r} is a file on the worker; with a backend use 'memory', 'fp16' or 'auto'")
    items = as_examples(examples)
    if options.target == "gold" and any(ex.label is None for ex in items):
        raise TargetError('target="gold" needs a "label" in every example; use target="pred" for unlabelled data')
    for part in iter_sharded(backend, _attribution_part, model, tokenizer, items, progress=progress, cancel=cancel,
                             desc="attributing", multiple=options.batch_size or 1, options=options):
        yield from part
