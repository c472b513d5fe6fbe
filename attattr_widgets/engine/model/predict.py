"""Batched prediction, the engine's one forward for predictions: examples encoded once (:class:`EncodedSet`) and
run in length-sorted, padded batches, optionally under stacked head masks (:func:`batched_forward`).

Everything that predicts goes through it: accuracy under head masks (importance, pruning, effectiveness:
:func:`predict_masked`), triggers (:func:`predict`, on encodings with the trigger spliced in) and one input's class
probabilities / top-k next tokens (:func:`probabilities`, :func:`target_options`). Every forward runs under
``torch.no_grad()`` on the engine's private copy of the model (:meth:`EncodedSet.net`: eval mode, its own config),
so the user's model is never run nor written.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch

from .. import validate
from ..errors import AttAttrError, TargetError, check_cancel
from ..intercept.controller import AttnController, controller_for
from ..intercept.shadow import private_copy
from ..progress import Progress
from .adapters import ContinuationAdapter, adapter_for
from .checks import check_model_and_tokenizer
from .encode import Encoded, collate
from .examples import Example, answers_of, as_examples, check_labels, encode_examples
from .wrappers import check_unwrapped

__all__ = ["EncodedSet", "batched_forward", "predict", "predict_encoded", "predict_masked",
           "probabilities", "target_options"]

# rows × padded length per forward when several head masks are stacked into one batch
_ROW_TOKENS = 8192


class EncodedSet:
    """Examples encoded once for repeated evaluation: length-sorted batches, padded per batch.

    ``examples``: anything :func:`~attattr_widgets.engine.model.examples.as_examples` accepts (an already
    normalised ``list[Example]`` is taken as it is). ``encodings``: the inputs already encoded, one
    :class:`~attattr_widgets.engine.model.encode.Encoded` each (e.g. with a trigger spliced in), used instead of
    encoding ``examples``, which then only give the labels and may be None (``tokenizer`` only gives the pad id
    and may be None too).

    ``labels`` [N] int (-1 where an example has none), ``lengths`` [N]. Examples with a ``target`` answer (a
    causal LM; ``answers`` True) are encoded prompt + answer; their prediction logits are the ``[b, A, V]`` logits
    that predict the answer tokens and ``answer_ids`` [N, A] holds the answers (-1 beyond a shorter one). Where the adapter asks for it (decoder
    classifiers without a pad id: their pooling looks for the pad id) examples are evaluated one at a time.
    ``ctrl`` (and ``L``, ``H``) are looked up on first use: a plain prediction needs no attention controller.
    """

    def __init__(self, model, tokenizer, examples=None, *, max_length: int | None = None, truncation: bool = True,
                 encodings: Sequence[Encoded] | None = None):
        if tokenizer is None:
            check_unwrapped(model)  # encodings given: there is no tokenizer to check
        else:
            check_model_and_tokenizer(model, tokenizer)
        adapter_for(model).check_dataset_level("this analysis (head importance, pruning, triggers, predictions)")
        self.model, self.tokenizer = model, tokenizer
        given = examples is not None or encodings is None
        self.items: list[Example] | None = as_examples(examples) if given else None
        self.adapter = adapter_for(model)
        self.answers = answers_of(self.items) if self.items else all(e.answer_start is not None
                                                                      for e in encodings or [])
        if self.items is not None:
            check_labels(self.items, *self.adapter.num_outputs())
        if encodings is None:
            max_length = validate.max_length(max_length)
            self.encs = encode_examples(self.adapter, tokenizer, self.items, max_length=max_length,
                                        truncation=truncation)
        else:
            self.encs = list(encodings)
            if not self.encs:
                raise AttAttrError("no encodings given: pass at least one encoded input")
            if self.items is not None and len(self.items) != len(self.encs):
                raise AttAttrError(f"{len(self.encs)} encodings for {len(self.items)} examples: pass one each")
        if self.answers:  # encode_examples refused answers unless the model is a causal LM
            self.adapter = ContinuationAdapter(model)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.lengths = np.array([len(e) for e in self.encs])
        self.labels = (np.full(len(self.encs), -1) if self.items is None else
                       np.array([-1 if ex.label is None else int(ex.label) for ex in self.items]))
        # one example at a time only where the adapter's pooling needs it and no pad id lets batches pad
        self.unpadded = self.adapter.unpadded and getattr(model.config, "pad_token_id", None) is None
        self.pad_id = self.adapter.pad_id(tokenizer)
        self.order = np.argsort(self.lengths, kind="stable")
        self.answer_ids = ContinuationAdapter.answer_targets(self.encs) if self.answers else None

    @cached_property
    def ctrl(self) -> AttnController:
        return controller_for(self.model)

    @property
    def L(self) -> int:
        return self.ctrl.num_layers

    @property
    def H(self) -> int:
        return self.ctrl.num_heads

    def __len__(self) -> int:
        return len(self.encs)

    def need_labels(self, what: str) -> None:
        """Raise unless every example has a label of the model (examples with answers need none: the answer is
        what they are evaluated on)."""
        if self.answers:
            return
        if (self.labels < 0).any():
            missing = int((self.labels < 0).sum())
            raise TargetError(f"{what} needs a 'label' in every example ({missing} have none)")
        C, noun = self.adapter.num_outputs()
        if C and self.labels.max() >= C:
            raise TargetError(f"label {int(self.labels.max())} is out of range: the model has {C} {noun}")

    def batches(self, batch_size: int):
        """Yield ``(idx [b], inputs, last, mask [b, T])`` for length-sorted batches: ``last`` [b] each row's last
        real position, or with answers the [b, A] positions that predict them."""
        bs = 1 if self.unpadded else validate.batch_size(batch_size, allow_none=False)
        for s in range(0, len(self.order), bs):
            idx = self.order[s : s + bs]
            encs = [self.encs[i] for i in idx]
            inputs = collate(encs, self.pad_id, self.device)
            if self.answers:
                last = ContinuationAdapter.answer_positions(encs, self.device)
            else:
                last = torch.tensor([len(e) - 1 for e in encs], device=self.device)
            mask = inputs.get("attention_mask")
            if mask is None:  # no per-token input (an image): every token is real
                mask = torch.ones(len(encs), max(len(e) for e in encs), dtype=torch.long, device=self.device)
            yield idx, inputs, last, mask

    def logits(self, out_logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return self.adapter.prediction_logits(out_logits, last)

    def net(self, masked: bool = True):
        """The engine's private copy of the model to run these examples on (eval mode, own config — with the
        adapter's :meth:`~.adapters.TaskAdapter.private_config`, e.g. a placeholder pad id for decoder
        classifiers without one —, parameters that do not require grad); the user's model is never run nor
        written. ``masked=False``: for a plain forward (no head mask), which needs no attention controller."""
        overrides = self.adapter.private_config()
        if masked:
            return self.ctrl.private(config_overrides=overrides)
        return private_copy(self.model, config_overrides=overrides)


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


def answer_metrics(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Teacher-forced answer metrics per row, ``[rows, 2]`` float64: (exact match — 1.0 when every answer token
    is the arg-max of the logits predicting it, given the true prefix —, the mean log-probability per answer
    token (1/A) Σ_t log p(y_t | prompt, y_<t), in nats). ``logits`` [rows, A, V], ``ids`` [rows, A] (-1: none)."""
    real = ids >= 0
    y = ids.clamp(min=0)
    hit = ((logits.argmax(-1) == y) | ~real).all(-1)
    lp = torch.log_softmax(logits.double(), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    mean_lp = torch.where(real, lp, torch.zeros_like(lp)).sum(-1) / real.sum(-1)
    return torch.stack([hit.double(), mean_lp], -1)


def batched_forward(
    data: EncodedSet,
    keep: np.ndarray | torch.Tensor | None = None,
    *,
    read: Callable[..., torch.Tensor] | None = None,
    per_example: bool = False,
    batch_size: int = 32,
    row_tokens: int = _ROW_TOKENS,
    progress=None,
    cancel: threading.Event | None = None,
    desc: str = "evaluating",
) -> np.ndarray:
    """The engine's one batched forward for predictions: ``read(prediction logits [rows, C])`` of every example
    under K head masks, ``[K, N, ...]`` (``read`` gives ``[rows, ...]``; default: the arg-max, ``[K, N]`` int).
    Examples with answers: ``read(logits [rows, A, V], answer ids [rows, A])``; default :func:`answer_metrics`,
    ``[K, N, 2]`` (exact match, mean log-probability per answer token).

    The prediction logits are the classifier's ``[rows, C]`` or the causal LM's next-token ``[rows, V]`` at each
    row's last real position. ``keep``: None (a plain forward, K = 1, no head mask), ``[K, L, H]`` (1 = keep,
    0 = prune; the same K masks for every example) or, with ``per_example=True``, ``[N, K, L, H]``
    (example-specific masks, the effectiveness analysis). The masks of a batch are stacked as per-row
    ``(rows, H)`` head masks, so one forward evaluates up to ``row_tokens // (b·T)`` masks for b padded examples
    of length T. ``progress`` counts example × mask rows, ``cancel`` is checked before every forward.
    """
    N = len(data)
    if read is None:
        read = answer_metrics if data.answers else _argmax
    if keep is None:
        K = 1
    else:
        keep = torch.as_tensor(np.asarray(keep, dtype=np.float32))
        if per_example:
            if keep.dim() != 4 or keep.shape[0] != N:
                raise AttAttrError(f"per-example masks must be [N={N}, K, L, H], got {tuple(keep.shape)}")
            K = keep.shape[1]
        else:
            if keep.dim() != 3:
                raise AttAttrError(f"masks must be [K, L, H], got {tuple(keep.shape)}")
            K = keep.shape[0]
        if tuple(keep.shape[-2:]) != (data.L, data.H):
            raise AttAttrError(f"masks are for {tuple(keep.shape[-2:])} heads but the model has ({data.L}, {data.H})")
        keep = keep.to(device=data.device, dtype=data.dtype)
    out: np.ndarray | None = None
    net = data.net(masked=keep is not None)
    with Progress(progress, N * K, desc) as prog, torch.no_grad():
        for idx, inputs, last, mask in data.batches(batch_size):
            b, T = mask.shape
            kc = int(max(1, min(K, row_tokens // max(1, b * T))))
            idx_t = torch.as_tensor(idx, device=data.device)
            for k0 in range(0, K, kc):
                check_cancel(cancel)
                ks = slice(k0, min(K, k0 + kc))
                kk = ks.stop - ks.start
                if keep is None:
                    logits = net(**inputs).logits
                else:
                    if per_example:
                        m = keep[idx_t][:, ks].reshape(b * kk, data.L, data.H)
                    else:
                        m = keep[ks].repeat(b, 1, 1)  # row i*kk + j  ↔  example i, mask j
                    rows = {k: v.repeat_interleave(kk, 0) for k, v in inputs.items()}
                    head_mask = {l: m[:, l] for l in range(data.L) if bool((m[:, l] != 1).any())}
                    with data.ctrl.session(head_mask=head_mask):
                        logits = net(**rows).logits
                pl = data.logits(logits, last.repeat_interleave(kk, 0))
                if data.answers:
                    got = read(pl, data.answer_ids[idx].to(pl.device).repeat_interleave(kk, 0))
                else:
                    got = read(pl)
                got = got.cpu().numpy()
                got = got.reshape(b, kk, *got.shape[1:])
                if out is None:
                    out = np.zeros((K, N, *got.shape[2:]), dtype=got.dtype)
                out[ks.start : ks.stop, idx] = got.swapaxes(0, 1)
                prog.update(b * kk)
    return out


def predict_masked(data: EncodedSet, keep: np.ndarray | torch.Tensor, *, per_example: bool = False,
                   **kw) -> np.ndarray:
    """Predicted class (or next token) of every example under K head masks: ``[K, N]`` int.

    ``keep``: ``[K, L, H]`` (1 = keep, 0 = prune; the same K masks for every example) or, with
    ``per_example=True``, ``[N, K, L, H]`` (example-specific masks, the effectiveness analysis). ``kw``:
    ``batch_size``, ``row_tokens``, ``progress``, ``cancel``, ``desc`` of :func:`batched_forward`.
    """
    if keep is None:
        raise AttAttrError("masks must be [K, L, H], got None: use predict(data) for predictions without masks")
    return batched_forward(data, keep, per_example=per_example, **kw)


def predict(data: EncodedSet, *, batch_size: int = 32, progress=None, cancel: threading.Event | None = None,
            desc: str = "predicting") -> np.ndarray:
    """Predicted class (or next token) of every example of ``data``, no head masked: ``[N]`` int."""
    return batched_forward(data, batch_size=batch_size, progress=progress, cancel=cancel, desc=desc)[0]


# ------------------------------------------------------------------------------------------------------------
# one input (the Explorer's target selector, the TriggersView's "apply to my sentence")


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.double(), -1)


def probabilities(model: Any, enc: Encoded) -> np.ndarray:
    """Softmax of the prediction logits of one encoded input: [C] (classes) or [V] (next token), float64."""
    return batched_forward(EncodedSet(model, None, encodings=[enc]), read=_softmax)[0, 0]


def predict_encoded(model: Any, enc: Encoded) -> dict:
    """``{"pred", "label", "prob", "probs"}`` of one encoded input (classifier: class names; LM: top token)."""
    p = probabilities(model, enc)
    i = int(np.argmax(p))
    names = adapter_for(model).label_names()
    return {"pred": i, "label": names[i] if names else str(i), "prob": float(p[i]),
            "probs": [float(x) for x in p] if names else []}


def target_options(model: Any, tokenizer: Any, text: str, text_pair: str | None = None, *, k: int = 10,
                   max_length: int | None = None) -> dict:
    """What the target selector offers for one input.

    Classifiers: every class ``{"id", "label", "prob"}`` in class order. Causal LMs: the ``k`` most probable next
    tokens (``label`` = the token as text, e.g. ``" Paris"``), most probable first. ``pred`` is the arg-max id,
    ``kind`` ``"class"`` | ``"next-token"``.
    """
    check_model_and_tokenizer(model, tokenizer)
    adapter = adapter_for(model)
    enc = adapter.encode(tokenizer, text, text_pair, max_length=max_length, truncation=True)
    p = probabilities(model, enc)
    opts = adapter.target_options(tokenizer, p, k)
    return {"kind": adapter.target_kind, "pred": int(np.argmax(p)), "options": opts, "truncated": bool(enc.truncated)}
