"""The public attribution functions: :func:`attribute` (one example) and :func:`iter_attributions` (many, in
process or as shards on a backend, yielded in example order)."""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator

import numpy as np
from torch import nn

from .. import validate
from ..backends.dispatch import check_backend, iter_sharded
from ..errors import ArgumentError, AttAttrError, InputTooLongError, TargetError
from ..model.adapters import CausalLMAdapter, ContinuationAdapter, ImagePromptAdapter, adapter_for
from ..model.checks import check_model_and_tokenizer
from ..model.encode import max_positions
from ..model.examples import answers_of, as_examples, check_labels, encode_examples
from ..model.seq2seq import Seq2SeqAdapter
from ..results import Attribution, LayerResult, Seq2SeqAttribution
from .engine import _Engine
from .options import AttributionOptions
from .seq2seq import _Seq2SeqEngine

#: the most tokens ``attribute(..., generate=N)`` decodes
MAX_GENERATE = 1024


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
    score: str | None = None,
    gold: int | None = None,
    method: str = "prefix",
    precision: str = "auto",
    memory_budget: int | None = None,
    store="auto",
    generate: int | None = None,
    per_token: bool = False,
) -> Attribution | Seq2SeqAttribution:
    """Attribute one example's prediction to every attention link of every (selected) layer.

    Args:
        model: a transformers classifier (``*ForSequenceClassification``), causal LM, text encoder–decoder
            (``AutoModelForSeq2SeqLM``: T5, BART, Marian, …) or image classifier (``*ForImageClassification``: ViT,
            DeiT) whose attention routes through ``AttentionInterface`` (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT,
            ModernBERT, GPT-2, Llama, Qwen2, ViT, DeiT, …). It is never changed, and forwards of it in other
            threads are unaffected.
        tokenizer: the model's tokenizer; for an image classifier its image processor (``AutoImageProcessor``).
        text, text_pair: the input (a sentence, or a premise/hypothesis pair); an encoder–decoder's source. Image
            classifiers: ``text`` is the image — a PIL image, an H×W×3 array (0..255), a path to an image file, or
            the processor's ``pixel_values`` (1, C, H, W) — and the result's tokens are ``[CLS]`` (DeiT: ``[CLS]``,
            ``[DIST]``) then one ``"(r,c)"`` per patch, row-major, with ``Attribution.image`` (:class:`ImageGrid`:
            patch grid, index of the first patch, patch size, a ≤ 224 px uint8 copy of the picture as the model
            saw it).
        target: ``"pred"`` (the predicted class / next token, the paper's default), ``"gold"`` (with ``gold``),
            a class index or name, or for language models a next-token id or single-token string (``" Paris"``).
            Encoder–decoders: the answer (a string, teacher-forced as ``labels = tokenizer(text_target=answer)``
            with the decoder reading the labels shifted right, or a list of label ids); the result is then a
            :class:`Seq2SeqAttribution` (``res.encoder``, ``res.decoder``, ``res.cross``).
        layers: layer indices to compute (default: all); for an encoder–decoder, index i selects layer i of every
            site that has one.
            For a causal LM, a string of several tokens (``" Paris, a city"``) or a list of token ids is an
            **answer**, teacher-forced: the input is the prompt's ids followed by the answer's ids (the answer
            tokenized without special tokens — leading spaces matter for byte-level tokenizers: ``" Paris"`` is
            not ``"Paris"``), F the answer's score (``score="logprob"`` by default: Σ_t log p(y_t | prompt,
            y_<t); ``"prob"``: its joint probability; ``"logit"``: Σ_t logit(y_t)); the result's ``tokens`` cover
            prompt and answer, ``answer_start`` marks the first answer token, ``target_kind="continuation"``.
        generate: for a causal LM (an encoder–decoder: see below), decode up to ``generate`` tokens greedily after ``text`` (the model's
            generation config otherwise: end-of-sequence ids, repetition penalty; sampling turned off), on the
            engine's private copy of the model (the model, its config and generation config are not written),
            stopping after an end-of-sequence token (kept in the answer), then attribute that answer as above
            (leave ``target`` at ``"pred"``).
        per_token: with an answer, also attribute each answer token t's own F_t = log p(y_t | prompt, y_<t)
            (``result.per_token[t]``; ``progress`` streams them with ``answer_token=t``). They run in the same
            batch as the whole answer and share its passes — one forward per node, then one backward per answer
            token — and its quadrature nodes, so for ``"logprob"``/``"logit"`` Σ_t of their maps equals the whole
            answer's map (cost: bench/RESULTS.md, "Generated answers"). Causal LMs only.
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
        score: F is the target's ``"prob"`` (paper; the default for a class or next token), ``"logprob"`` (the
            default for answers: Σ of the answer tokens' log-probabilities; ``"prob"``: their joint probability)
            or ``"logit"``.
        method: ``"prefix"`` (fast, default) or ``"naive"`` (the paper's algorithm; same numbers, slower).
        precision: ``"auto"`` = model dtype on CPU, bf16/fp16 autocast with fp32 accumulation on CUDA.
        memory_budget: bytes of activations per chunk of integration rows (default: 2 GiB on CPU, 60 % of free
            memory on CUDA); out-of-memory halves the chunk, then raises :class:`AttributionOutOfMemoryError`.
        generate: for an encoder–decoder, decode up to ``generate`` tokens greedily from the source on the
            engine's private copy (the model's generation config otherwise, sampling off; neither the model nor
            its configs are written), the end-of-sequence token kept, then attribute that answer (leave
            ``target`` at ``"pred"``).
        store: where the [L, H, n, n] maps are kept: ``"auto"`` (float32 in memory up to 2 GiB, float16 up to
            6 GiB), ``"memory"``, ``"fp16"`` or a folder path (memory-mapped float32 files).

    Returns: an :class:`Attribution` (scores [L, H, n, n], attention, tokens, completeness, layer_steps, …), or
    for an encoder–decoder a :class:`Seq2SeqAttribution`.
    """
    eng = _engine_for(model, tokenizer, AttributionOptions.from_arguments(locals()))
    progress = validate.callback(progress, "progress", "progress(layer_result)")
    cancel = validate.cancel_event(cancel)
    if isinstance(eng, _Seq2SeqEngine):
        if gold is not None:
            raise ArgumentError("gold does not apply to an encoder-decoder: its target is the answer (target=...)")
        if per_token:
            raise ArgumentError("per_token=True is for causal language models; an encoder-decoder's maps already "
                                "have one row per answer token (res.decoder, res.cross): leave per_token=False")
        enc = eng.adapter.encode(tokenizer, text, text_pair, max_length=eng.options.max_length,
                                 truncation=eng.options.truncation)
        if generate is not None:
            if not (isinstance(target, str) and target == "pred"):
                raise ArgumentError(f"pass either generate= (the model writes the answer) or target={target!r} "
                                    f"(you give it), not both")
            generate = validate.integer(generate, "generate", minimum=1, maximum=MAX_GENERATE,
                                        fix="the most answer tokens to decode, e.g. 16")
            _check_room(0, generate, max_positions(model, tokenizer), None)  # A answer tokens fill A decoder positions
            target = eng.generate(enc, generate, cancel)
        answer = eng.adapter.encode_answer(tokenizer, target)
        return eng.run_answer(enc, text, answer, progress, cancel)
    layer_list = eng.options.layer_list(eng.site.num_layers)
    if gold is not None:
        n, what = eng.adapter.num_outputs()
        gold = validate.label(gold, "gold", n, what=what)
    per_token = validate.flag(per_token, "per_token")
    # answers (several tokens, generate=) are a text causal LM's; a vision-language prompt explains one next token
    answers = isinstance(eng.adapter, CausalLMAdapter) and not isinstance(eng.adapter, ImagePromptAdapter)
    if generate is not None:
        generate = validate.integer(generate, "generate", minimum=1, maximum=MAX_GENERATE,
                                    fix="the most answer tokens to decode, e.g. 8")
        if not answers:
            raise ArgumentError(f"generate= needs a text causal language model or an encoder-decoder; "
                                f"{type(model).__name__} is a "
                                f"{eng.adapter.name} model: leave generate=None")
        if not (isinstance(target, str) and target == "pred"):
            raise ArgumentError(f"pass either generate= (the model writes the answer) or target={target!r} (you "
                                f"give it), not both")
    cont = answers and (generate is not None or eng.adapter.is_continuation(tokenizer, target))
    if per_token and not cont:
        raise ArgumentError("per_token=True needs an answer of several tokens: pass target=' Paris, a city' (or a "
                            "list of token ids) or generate=N to a causal language model")
    kw = {"max_length": eng.options.max_length, "truncation": eng.options.truncation}
    if not cont:
        enc = eng.adapter.encode(tokenizer, text, text_pair, **kw)
        meta = (text, text_pair) if enc.image is None else (None, None)  # an image is kept as enc.image's picture
        return eng.run([enc], [meta], layer_list, [target], [gold], progress, cancel)[0]
    if text_pair is not None:
        eng.adapter.check_text_pair(tokenizer)
    cont_adapter = ContinuationAdapter(model)
    if generate is not None:
        prompt = cont_adapter.encode(tokenizer, text, **kw)
        _check_room(prompt.input_ids.shape[1], generate, max_positions(model, tokenizer), eng.options.max_length)
        target = eng.generate(prompt, generate, cancel)
    enc = cont_adapter.encode_answer(tokenizer, text, cont_adapter.answer_ids(tokenizer, target), **kw)
    return eng.run([enc], [(text, None)], layer_list, [None], [None], progress, cancel, per_token=per_token)[0]

def _check_room(used: int, generate: int, limit: int, max_length: int | None) -> None:
    """Refuse ``generate=N`` before decoding when ``used`` positions (the prompt, or a decoder's start token) plus
    N answer tokens exceed what the model reads (``limit``, or ``max_length`` when smaller)."""
    if max_length is not None:
        limit = min(limit, int(max_length))
    if used + generate > limit:
        room = limit - used
        made = f"{generate} answer tokens after a {used}-token prompt make {used + generate}" if used else \
            f"an answer of {generate} tokens"
        raise InputTooLongError(
            f"generate={generate}: {made} but the model reads at most {limit} positions: "
            + (f"pass generate={room} or fewer" + (", or shorten the prompt" if used else "") if room >= 1
               else "shorten the prompt"))


def _engine_for(model, tokenizer, options: AttributionOptions) -> _Engine:
    """The engine of ``model``'s kind: :class:`_Seq2SeqEngine` for encoder–decoders, else :class:`_Engine`."""
    check_model_and_tokenizer(model, tokenizer)
    seq2seq = isinstance(adapter_for(model), Seq2SeqAdapter)
    return (_Seq2SeqEngine if seq2seq else _Engine)(model, tokenizer, options)


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
    score: str | None = None,
    method: str = "prefix",
    precision: str = "auto",
    memory_budget: int | None = None,
    store="auto",
    backend=None,
) -> Iterator[Attribution]:
    """Attribute many examples (dataset-level work), yielding one :class:`Attribution` per example, in order.

    ``examples``: dicts ``{"text", "text_pair"?, "label"?}``, a ``datasets.Dataset``, a DataFrame or a dict of
    columns. ``target="gold"`` attributes each example's label (the paper's head-importance setting); ``"pred"``
    the prediction. For a causal LM, examples ``{"text": prompt, "target": answer}`` are attributed on their
    answer, teacher-forced (as :func:`attribute` with an answer; ``score="logprob"`` by default), with
    ``target="gold"``. Examples are batched ``batch_size`` at a time (default: 1 on CPU, where unpadded single
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
    eng.adapter.check_dataset_level("iter_attributions")
    check_labels(items, *eng.adapter.num_outputs())
    layer_list = options.layer_list(eng.site.num_layers)
    cancel = validate.cancel_event(cancel)
    batch_size = options.batch_size
    if batch_size is None:
        batch_size = 8 if eng.device.type == "cuda" else 1
    if eng.adapter.unpadded:
        batch_size = 1  # e.g. decoder heads pool the last non-pad token by pad id: keep examples unpadded
    target = options.target
    _check_dataset_target(items, target)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        encs = encode_examples(eng.adapter, tokenizer, chunk, offset=start, max_length=options.max_length,
                               truncation=options.truncation)
        yield from eng.run(
            encs, [(ex.text, ex.text_pair) for ex in chunk], layer_list, [target] * len(chunk),
            [ex.label for ex in chunk], None, cancel,
        )

def _check_dataset_target(items, target) -> None:
    """``target`` of a dataset: examples with answers are attributed on their answer (``"gold"``); otherwise
    ``"gold"`` needs every label."""
    if answers_of(items):
        if not (isinstance(target, str) and target == "gold"):
            raise TargetError(f"examples with a 'target' answer are attributed on that answer: use target='gold' "
                              f"(the default), not {target!r}")
    elif isinstance(target, str) and target == "gold" and any(ex.label is None for ex in items):
        raise TargetError('target="gold" needs a "label" in every example; use target="pred" for unlabelled data')


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
    _check_dataset_target(items, options.target)
    for part in iter_sharded(backend, _attribution_part, model, tokenizer, items, progress=progress, cancel=cancel,
                             desc="attributing", multiple=options.batch_size or 1, options=options):
        yield from part
