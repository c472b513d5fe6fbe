"""Adversarial triggers from attribution (Hao et al., AAAI 2021, §"Adversarial Attack").

A fine-tuned model often leans on a few token-to-token links.  :func:`mine_triggers` finds, in each example, the
links with the largest attribution and turns their tokens into an input-agnostic *trigger pattern*;
:func:`evaluate_trigger` inserts a pattern into other examples at the same relative position and segment and
reports the per-gold-class accuracy before and after (a white-box, non-targeted attack found without search).

Pipeline (the authors' ``run_adver_connection.py`` / ``run_adver_evaluate.py``, seven steps):

1. optionally skip short examples (``min_tokens``; the authors use 15 on SST-2);
2. attribute the **predicted** class of each example over every (selected) layer and head, and find the single
   (layer, head) matrix holding the largest attribution entry;
3. take its ``top_pairs`` largest entries (i1, j1) = v1 >= (i2, j2) = v2 >= …; the pattern score is v1 + v2 + …;
4. sort all patterns by score, highest first;
5. keep patterns with score >= ``min_score`` (0.02);
6. trigger tokens = the tokens at i1, j1, plus those of every further pair with v_k / v1 >= ``ratio`` (0.2);
   positions are de-duplicated and special tokens ([CLS], [SEP], …) dropped, so ``top_pairs=2`` gives at most 4
   WordPieces.  ``blacklist`` drops whole patterns that contain a listed token (the paper removes patterns with
   obviously polar words on SST-2 using a sentiment lexicon, a manual step in the original);
7. insertion (:func:`insert_trigger`): each trigger WordPiece goes into the segment it came from (premise /
   hypothesis; a single-sentence target takes everything in its only segment) at the same *relative* position.

Choices and departures, documented:

* **Insertion as WordPiece ids**, like the paper: the trigger's token ids are spliced into the target's encoded
  ids (no detokenise/retokenise round trip, so ``##`` pieces and byte-level pieces stay exactly as mined).
* **Relative position** r = k / (m − 1) for the k-th (0-based) of the m content tokens of the source segment
  (special tokens excluded; r = 0 when m = 1), and the trigger lands at content index
  q = floor(r · (m' + t − 1) + 1/2) of the target segment grown to m' + t tokens (t = trigger tokens going into
  that segment).  First stays first and last stays last.  The authors' code uses (k + 1) / m and
  ``round((m' + t) · r)`` (a one-slot shift to the right near the start of a segment).  Collisions move to the
  next free slot (then the previous one at the end), as in the code.
* **Truncation**: if the result is longer than the model accepts, non-trigger content tokens are removed from the
  end of the longest segment (the code truncates the pair to 128 tokens the same way, longest first).
* **Accuracy** is per gold class over the examples given (the paper: the full dev set, each class separately);
  ``examples`` need labels.
* IG quadrature: the engine's default Gauss–Legendre rule (``steps`` nodes) instead of the authors' left Riemann
  sum with m = 64; only the arg-max link and its neighbours are used, which a few nodes already rank correctly.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .. import validate
from ..errors import ArgumentError, AttAttrError, UnsupportedModelError, check_cancel
from ..backends.dispatch import check_backend, iter_sharded
from ..model.examples import as_examples, check_labels, encode_examples, Example
from ..results import TriggerPattern, TriggerResult
from ..model.adapters import adapter_for
from ..model.checks import check_model_and_tokenizer
from ..model.encode import check_token_ids, display_tokens, Encoded, max_positions
from ..model.predict import EncodedSet, predict
from ..model.tokens import special_ids

__all__ = [
    "TriggerPattern",
    "TriggerResult",
    "evaluate_trigger",
    "evaluate_triggers",
    "insert_trigger",
    "iter_evaluate_triggers",
    "iter_mine_triggers",
    "mine_triggers",
    "top_triggers",
]

Progress = Callable[[int, int], None]



# ------------------------------------------------------------------------------------------------------------
# helpers


def _content(ids: Sequence[int], segments: Sequence[int], special: frozenset[int]) -> dict[int, list[int]]:
    """Segment -> positions of its non-special tokens, in order."""
    out: dict[int, list[int]] = {}
    for p, (i, s) in enumerate(zip(ids, segments)):
        if int(i) not in special:
            out.setdefault(int(s), []).append(p)
    return out


def _relative(pos: int, content: list[int]) -> float:
    k = content.index(pos)
    return k / (len(content) - 1) if len(content) > 1 else 0.0


def _check_progress(progress, done, total):
    if progress is not None:
        progress(done, total)


# ------------------------------------------------------------------------------------------------------------
# insertion


def insert_trigger(tokenizer, text: str, text_pair: str | None = None, *, pattern: TriggerPattern | dict,
                   model: nn.Module | None = None, max_length: int | None = None) -> Encoded:
    """Encode ``text`` (and ``text_pair``) with the trigger WordPieces of ``pattern`` spliced in.

    Each trigger token goes into its source segment (clamped to the target's last segment, so a pair pattern on
    a single sentence puts everything in it) at content index ``floor(r · (m' + t − 1) + 1/2)``; see the module
    docstring.  Returns an :class:`~attattr_widgets.engine.model.encode.Encoded` whose ``truncated`` flag says whether
    content had to be removed to fit ``max_length`` / the model's positions (``model`` optional: without it no
    length limit applies and ``token_type_ids`` are kept whenever the tokenizer makes them).
    """
    if isinstance(pattern, dict):
        pattern = TriggerPattern.from_dict(pattern)
    if model is not None:
        check_token_ids(model, tokenizer, [int(t) for t in pattern.token_ids])  # a pattern mined on another model
        enc = adapter_for(model).encode(tokenizer, text, text_pair, max_length=max_length, truncation=True)
        limit = max_positions(model, tokenizer)
        keep_tti = enc.token_type_ids is not None
    else:
        kw = {"return_tensors": "pt", "return_token_type_ids": True}
        raw = tokenizer(text, text_pair, **kw) if text_pair is not None else tokenizer(text, **kw)
        ids0 = raw["input_ids"][0].tolist()
        tti0 = raw.get("token_type_ids")
        segs = tti0[0].tolist() if tti0 is not None else [0] * len(ids0)
        enc = Encoded(raw["input_ids"], torch.ones_like(raw["input_ids"]), tti0, display_tokens(tokenizer, ids0),
                      [int(s) for s in segs], False)
        limit = 1 << 30
        keep_tti = tti0 is not None
    if max_length is not None:
        limit = min(limit, int(max_length))
    ids = enc.input_ids[0].tolist()
    segments = list(enc.segments)
    tti = enc.token_type_ids[0].tolist() if enc.token_type_ids is not None else list(segments)
    special = special_ids(tokenizer)
    content = _content(ids, segments, special)
    seg_list = sorted(set(segments))
    last_seg = max(content) if content else seg_list[-1]

    # trigger tokens per target segment, in (relative position, source position) order
    want: dict[int, list[tuple[float, int, int]]] = {}
    for tid, s, r, p in zip(pattern.token_ids, pattern.segments, pattern.relative, pattern.positions):
        s = int(s) if int(s) in seg_list else last_seg
        want.setdefault(s, []).append((float(r), int(p), int(tid)))

    new_content: dict[int, list[tuple[int, bool]]] = {}  # segment -> [(id, is_trigger)]
    for s in seg_list:
        orig = [(ids[p], False) for p in content.get(s, [])]
        trig = sorted(want.get(s, []))
        if not trig:
            new_content[s] = orig
            continue
        N = len(orig) + len(trig)
        slots: list[tuple[int, bool] | None] = [None] * N
        for r, _, tid in trig:
            q = min(N - 1, max(0, math.floor(r * (N - 1) + 0.5)))
            up = q
            while up < N and slots[up] is not None:
                up += 1
            if up == N:
                up = q
                while slots[up] is not None:
                    up -= 1
            slots[up] = (tid, True)
        it = iter(orig)
        new_content[s] = [x if x is not None else next(it) for x in slots]

    # truncate longest segment first, never removing trigger tokens
    n_special = len(ids) - sum(len(v) for v in content.values())
    total = n_special + sum(len(v) for v in new_content.values())
    truncated = enc.truncated
    while total > limit:
        s = max(new_content, key=lambda s: sum(1 for _, t in new_content[s] if not t))
        seq = new_content[s]
        drop = max((i for i, (_, t) in enumerate(seq) if not t), default=None)
        if drop is None:
            raise AttAttrError(f"the trigger alone does not fit the model's {limit} positions")
        del seq[drop]
        total -= 1
        truncated = True

    # rebuild: each segment's content replaces the span of its original content tokens
    out_ids, out_seg, out_tti = [], [], []
    emitted: set[int] = set()
    seg_tti = {s: tti[segments.index(s)] for s in seg_list}
    first_content = {s: v[0] for s, v in content.items() if v}
    for p, (i, s) in enumerate(zip(ids, segments)):
        if int(i) in special:
            # a segment without content tokens gets its trigger before its closing special token
            if s not in emitted and s not in first_content and new_content.get(s) and p == max(
                q for q, x in enumerate(segments) if x == s
            ):
                for tid, _ in new_content[s]:
                    out_ids.append(tid), out_seg.append(s), out_tti.append(seg_tti[s])
                emitted.add(s)
            out_ids.append(i), out_seg.append(s), out_tti.append(tti[p])
            continue
        if s in emitted:
            continue
        for tid, _ in new_content[s]:
            out_ids.append(tid), out_seg.append(s), out_tti.append(seg_tti[s])
        emitted.add(s)
    t_ids = torch.tensor([out_ids], dtype=torch.long)
    return Encoded(
        input_ids=t_ids,
        attention_mask=torch.ones_like(t_ids),
        token_type_ids=torch.tensor([out_tti], dtype=torch.long) if keep_tti else None,
        tokens=display_tokens(tokenizer, out_ids),
        segments=out_seg,
        truncated=truncated,
    )


# ------------------------------------------------------------------------------------------------------------
# mining


def _pattern_from(attr, enc: Encoded, special: frozenset[int], index: int, ex: Example, *, top_pairs: int,
                  ratio: float) -> TriggerPattern | None:
    scores = np.asarray(attr.scores)
    _L, H, n, _ = scores.shape
    flat = int(np.argmax(scores.reshape(-1)))
    li, h = divmod(flat // (n * n), H)
    mat = scores[li, h]
    k = min(int(top_pairs), n * n)
    order = np.argsort(-mat.reshape(-1), kind="stable")[:k]
    vals = mat.reshape(-1)[order]
    ids = enc.input_ids[0].tolist()
    v1 = float(vals[0])
    pairs, positions = [], []
    for rank, (o, v) in enumerate(zip(order.tolist(), vals.tolist())):
        i, j = divmod(o, n)
        used = rank == 0 or (v1 > 0 and v / v1 >= ratio)
        pairs.append({"query": i, "key": j, "query_token": attr.tokens[i], "key_token": attr.tokens[j],
                      "value": float(v), "used": bool(used)})
        if used:
            positions += [i, j]
    positions = sorted({p for p in positions if ids[p] not in special})
    if not positions:
        return None
    content = _content(ids, enc.segments, special)
    segs = [int(enc.segments[p]) for p in positions]
    names = attr.label_names
    return TriggerPattern(
        tokens=[attr.tokens[p] for p in positions],
        token_ids=[int(ids[p]) for p in positions],
        positions=positions,
        segments=segs,
        relative=[_relative(p, content[s]) for p, s in zip(positions, segs)],
        score=float(vals.sum()),
        layer=int(attr.layers[li]),
        head=int(h),
        pairs=pairs,
        pred=int(attr.target),
        pred_label=str(names[attr.target]) if names else str(attr.target_label),
        gold=None if attr.gold is None else int(attr.gold),
        prob=float(attr.prob),
        example_index=int(index),
        text=ex.text,
        text_pair=ex.text_pair,
        source_tokens=list(attr.tokens),
    )


def iter_mine_triggers(
    model: nn.Module,
    tokenizer,
    examples,
    *,
    top_pairs: int = 2,
    ratio: float = 0.2,
    min_score: float = 0.02,
    min_tokens: int | None = None,
    blacklist: Iterable[str] = (),
    rule: str = "gauss-legendre",
    steps: int = 6,
    layers: Iterable[int] | None = None,
    batch_size: int | None = None,
    device=None,
    max_length: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    backend=None,
) -> Iterator[tuple[int, int, TriggerPattern | None]]:
    """:func:`mine_triggers` as a stream: ``(done, total, pattern)`` after each attributed example, ``pattern``
    None when that example gave none (too short, below ``min_score``, blacklisted). :func:`mine_triggers` sorts
    what this yields, so both give the same patterns. Same arguments as :func:`mine_triggers`."""
    top_pairs = validate.integer(top_pairs, "top_pairs", minimum=1, fix="the authors use 2")
    ratio = validate.number(ratio, "ratio", minimum=0.0, maximum=1.0, fix="the authors use 0.2")
    min_score = validate.number(min_score, "min_score", fix="the authors use 0.02")
    if min_tokens is not None:
        min_tokens = validate.integer(min_tokens, "min_tokens", minimum=0, fix="the authors use 15 on SST-2")
    banned = {b.lower().removeprefix("##") for b in validate.word_list(blacklist, "blacklist")}
    steps = validate.steps(steps)
    batch_size = validate.batch_size(batch_size)
    max_length = validate.max_length(max_length)
    validate.callback(progress, "progress", "progress(done, total)")
    validate.cancel_event(cancel)
    check_backend(backend)
    check_model_and_tokenizer(model, tokenizer)
    items = as_examples(examples)
    total = len(items)
    keep: list[tuple[int, Example, Encoded]] = []
    for idx, (ex, enc) in enumerate(zip(items, encode_examples(adapter_for(model), tokenizer, items,
                                                              max_length=max_length, truncation=True))):
        if min_tokens is None or len(enc) >= min_tokens:
            keep.append((idx, ex, enc))
    done = total - len(keep)
    _check_progress(progress, done, total)
    if keep:
        skipped = done
        shard_progress = None if progress is None else (lambda d, _t: progress(skipped + d, total))
        for pat in iter_sharded(
            backend, _mine_pieces, model, tokenizer, [ex for _, ex, _ in keep], progress=shard_progress,
            cancel=cancel, desc="mining triggers", multiple=batch_size or 1,
            indices=[i for i, _, _ in keep], encs=[e for _, _, e in keep], top_pairs=top_pairs, ratio=ratio,
            layers=layers, rule=rule, steps=steps, batch_size=batch_size, device=device, max_length=max_length,
        ):
            done += 1
            if pat is not None and (pat.score < min_score or (banned and any(
                    t.lower().removeprefix("##").strip() in banned for t in pat.tokens))):
                pat = None
            yield done, total, pat


def _mine_pieces(model, tokenizer, items, *, offset, progress, cancel, indices, encs, top_pairs, ratio, layers,
                 rule, steps, batch_size, device, max_length):
    """Shard function (see :mod:`.backends`): yields each example's pattern (or None), in order; ``indices`` /
    ``encs``: the global example index and encoding of every example of the run (sliced at ``offset``)."""
    from ..attribution.api import iter_attributions

    special = special_ids(tokenizer)
    encs = encs[offset : offset + len(items)]
    stream = iter_attributions(
        model, tokenizer, items, target="pred", layers=layers, rule=rule, steps=steps,
        batch_size=batch_size, device=device, cancel=cancel, max_length=max_length, truncation=True,
    )
    for n, (ex, enc, attr) in enumerate(zip(items, encs, stream)):
        check_cancel(cancel)
        idx = indices[offset + n]
        if attr.num_tokens != len(enc):
            raise AttAttrError(f"example {idx}: attribution has {attr.num_tokens} tokens, encoding {len(enc)}")
        pat = _pattern_from(attr, enc, special, idx, ex, top_pairs=top_pairs, ratio=ratio)
        _check_progress(progress, n + 1, len(items))
        yield pat


def mine_triggers(
    model: nn.Module,
    tokenizer,
    examples,
    *,
    top_pairs: int = 2,
    ratio: float = 0.2,
    min_score: float = 0.02,
    min_tokens: int | None = None,
    blacklist: Iterable[str] = (),
    rule: str = "gauss-legendre",
    steps: int = 6,
    layers: Iterable[int] | None = None,
    batch_size: int | None = None,
    device=None,
    max_length: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    backend=None,
) -> list[TriggerPattern]:
    """Mine one trigger pattern per example (steps 1–7 of the module docstring).

    Args:
        examples: dicts ``{"text", "text_pair"?, "label"?}`` or a ``datasets.Dataset`` (labels optional: the
            attributed class is always the prediction; ``gold`` is recorded when present).
        top_pairs, ratio, min_score: the authors' 2, 0.2 and 0.02.
        min_tokens: skip examples with fewer tokens (specials included; the authors use 15 on SST-2).
        blacklist: token strings (case-insensitive, ``##`` ignored); patterns containing one are dropped.
        rule, steps, layers, batch_size, device, max_length: passed to
            :func:`~attattr_widgets.engine.attribution.iter_attributions` (``layers`` restricts the search for the
            largest entry to those layers — faster, and reported in each pattern's ``layer``).
        progress: ``progress(done, total)`` after each example; cancel: a ``threading.Event`` (raises
            :class:`AttributionCancelled`).
        backend: ``None`` (this process) or a :class:`~attattr_widgets.engine.backends.ray.RayBackend` (shards of
            the examples are attributed on its workers; the same patterns in the same order).

    Returns: patterns sorted by score (highest first), one per example at most.
    """
    patterns = [pat for _, _, pat in iter_mine_triggers(
        model, tokenizer, examples, top_pairs=top_pairs, ratio=ratio, min_score=min_score, min_tokens=min_tokens,
        blacklist=blacklist, rule=rule, steps=steps, layers=layers, batch_size=batch_size, device=device,
        max_length=max_length, progress=progress, cancel=cancel, backend=backend,
    ) if pat is not None]
    patterns.sort(key=lambda p: -p.score)
    return patterns


def top_triggers(patterns: Sequence[TriggerPattern], per_class: int = 3, *, distinct: bool = True
                 ) -> dict[str, list[TriggerPattern]]:
    """The ``per_class`` best patterns per predicted class (the paper's Table 1), keyed by class name in class
    order.  ``distinct`` skips a pattern whose trigger (segment, token) sequence a better one already has."""
    groups: dict[int, tuple[str, list[TriggerPattern]]] = {}
    seen: dict[int, set] = {}
    for p in sorted(patterns, key=lambda p: -p.score):
        _name, lst = groups.setdefault(p.pred, (p.pred_label, []))
        if len(lst) >= per_class:
            continue
        if distinct:
            if p.key in seen.setdefault(p.pred, set()):
                continue
            seen[p.pred].add(p.key)
        lst.append(p)
    return {groups[c][0]: groups[c][1] for c in sorted(groups)}


# ------------------------------------------------------------------------------------------------------------
# evaluation


def iter_evaluate_triggers(
    model: nn.Module,
    tokenizer,
    examples,
    patterns: Sequence[TriggerPattern | dict],
    *,
    batch_size: int = 32,
    device=None,
    max_length: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    backend=None,
) -> Iterator[TriggerResult]:
    """:func:`evaluate_triggers` as a stream: one :class:`TriggerResult` per pattern, in order (the clean
    examples are predicted once, first)."""
    batch_size = validate.batch_size(batch_size, allow_none=False)
    max_length = validate.max_length(max_length)
    validate.callback(progress, "progress", "progress(done, total)")
    validate.cancel_event(cancel)
    check_model_and_tokenizer(model, tokenizer)
    adapter = adapter_for(model)
    if not adapter.classifies:
        raise UnsupportedModelError(f"evaluating a trigger needs a sequence classifier (accuracy per gold class); "
                                    f"{type(model).__name__} is a language model")
    items = as_examples(examples)
    if any(ex.label is None for ex in items):
        raise AttAttrError("evaluating a trigger needs a gold 'label' in every example")
    check_labels(items, *adapter.num_outputs())
    if isinstance(patterns, (TriggerPattern, dict)):
        raise ArgumentError("patterns must be a list of patterns: for one pattern use evaluate_trigger(..., "
                            "pattern) or pass [pattern]")
    pats = [TriggerPattern.from_dict(p) if isinstance(p, dict) else p for p in patterns]
    for i, p in enumerate(pats):
        if not isinstance(p, TriggerPattern):
            raise ArgumentError(f"patterns[{i}] is a {type(p).__name__}: pass TriggerPattern objects (from "
                                f"mine_triggers) or their to_dict()")
    dev = next(model.parameters()).device
    want = validate.device(device)
    if want is not None and (want.type, want.index or 0) != (dev.type, dev.index or 0):
        raise ArgumentError(f"device={device!r} but the model is on {dev}: move the model yourself "
                            f"(model.to({str(want)!r})) or leave device=None; the model is never moved for you")
    check_backend(backend)
    names = adapter.label_names() or []
    gold = np.array([ex.label for ex in items])
    N, P = len(items), len(pats)
    before = np.zeros(N, dtype=np.int64)
    after = np.zeros((P, N), dtype=np.int64)
    truncated = np.zeros((P, N), dtype=bool)
    covered = np.zeros(1 + P, dtype=np.int64)  # examples predicted: clean, then per pattern
    nxt = 0
    for p, off, preds, trunc in iter_sharded(backend, _evaluate_pieces, model, tokenizer, items, progress=progress,
                                             cancel=cancel, desc="evaluating triggers", units=1 + P, patterns=pats,
                                             batch_size=batch_size, max_length=max_length):
        sl = slice(off, off + len(preds))
        if p < 0:
            before[sl] = preds
        else:
            after[p, sl], truncated[p, sl] = preds, trunc
        covered[p + 1] += len(preds)
        while nxt < P and covered[0] == N and covered[nxt + 1] == N:  # pattern nxt is complete
            yield _trigger_result(pats[nxt], gold, before, after[nxt], int(truncated[nxt].sum()), names)
            nxt += 1


def _evaluate_pieces(model, tokenizer, items, *, offset, progress, cancel, patterns, batch_size, max_length):
    """Shard function (see :mod:`.backends`): yields ``(-1, offset, clean predictions [n], None)`` then
    ``(p, offset, predictions with pattern p inserted [n], truncated [n] bool)`` for each pattern."""
    total = len(items) * (1 + len(patterns))

    def part(k: int):  # progress of prediction k (0 = clean) as a share of the shard's total
        return None if progress is None else (lambda d, _t: progress(k * len(items) + d, total))

    def predictions(k: int, encs) -> np.ndarray:
        data = EncodedSet(model, tokenizer, None, encodings=encs)  # predictions need no labels
        return predict(data, batch_size=batch_size, progress=part(k), cancel=cancel, desc="evaluating triggers")

    clean = encode_examples(adapter_for(model), tokenizer, items, offset=offset, max_length=max_length,
                            truncation=True)
    yield -1, offset, predictions(0, clean), None
    for p, pat in enumerate(patterns):
        encs = [insert_trigger(tokenizer, ex.text, ex.text_pair, pattern=pat, model=model, max_length=max_length)
                for ex in items]
        yield p, offset, predictions(p + 1, encs), np.array([e.truncated for e in encs], dtype=bool)


def _trigger_result(pat, gold, before, after, truncated: int, names) -> TriggerResult:
    per_class = []
    for c in sorted(set(gold.tolist())):
        sel = gold == c
        b, a = float((before[sel] == c).mean()), float((after[sel] == c).mean())
        per_class.append({"label": int(c), "name": names[c] if c < len(names) else str(c),
                          "n": int(sel.sum()), "before": b, "after": a, "drop": b - a})
    return TriggerResult(
        pattern=pat, per_class=per_class, overall_before=float((before == gold).mean()),
        overall_after=float((after == gold).mean()), flip_rate=float((before != after).mean()),
        n=len(gold), truncated=truncated,
    )


def evaluate_triggers(
    model: nn.Module,
    tokenizer,
    examples,
    patterns: Sequence[TriggerPattern | dict],
    *,
    batch_size: int = 32,
    device=None,
    max_length: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    backend=None,
) -> list[TriggerResult]:
    """:func:`evaluate_trigger` for several patterns, predicting the clean examples only once."""
    return list(iter_evaluate_triggers(model, tokenizer, examples, patterns, batch_size=batch_size, device=device,
                                       max_length=max_length, progress=progress, cancel=cancel, backend=backend))


def evaluate_trigger(
    model: nn.Module,
    tokenizer,
    examples,
    pattern: TriggerPattern | dict,
    *,
    batch_size: int = 32,
    device=None,
    max_length: int | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    backend=None,
) -> TriggerResult:
    """Per-gold-class accuracy of ``model`` on ``examples`` before and after inserting ``pattern``'s trigger
    WordPieces at the same relative position and segment (:func:`insert_trigger`).  ``examples`` need labels;
    single sentences and sentence pairs both work.  Batched (``batch_size``, right-padded, length-sorted),
    ``progress(done, total)`` per batch, ``cancel`` a ``threading.Event``."""
    return evaluate_triggers(model, tokenizer, examples, [pattern], batch_size=batch_size, device=device,
                             max_length=max_length, progress=progress, cancel=cancel, backend=backend)[0]
