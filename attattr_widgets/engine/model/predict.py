"""Batched prediction: examples encoded once (:class:`EncodedSet`) and predicted under stacked head masks —
the one batched forward of the engine (accuracy, pruning, effectiveness, triggers and the widgets' top-k)."""
from __future__ import annotations

import threading

import numpy as np
import torch

from .. import validate
from ..errors import AttAttrError, TargetError, check_cancel
from ..intercept.controller import controller_for
from ..progress import Progress
from .checks import check_model_and_tokenizer
from .encode import collate
from .examples import Example, as_examples, check_labels, encode_examples
from .kinds import CLASSIFIER, is_decoder_classifier, model_kind, num_outputs, prediction_logits

# rows × padded length per forward when several head masks are stacked into one batch
_ROW_TOKENS = 8192


class EncodedSet:
    """Examples encoded once for repeated evaluation: length-sorted batches, padded per batch.

    ``labels`` [N] int (-1 where an example has none), ``lengths`` [N]. Decoder classifiers without a pad id
    are evaluated one example at a time (unpadded; their pooling looks for the pad id).
    """

    def __init__(self, model, tokenizer, examples, *, max_length: int | None = None, truncation: bool = True):
        check_model_and_tokenizer(model, tokenizer)
        self.model, self.tokenizer = model, tokenizer
        self.items: list[Example] = as_examples(examples)
        self.kind = model_kind(model)
        check_labels(self.items, *num_outputs(model, self.kind))
        max_length = validate.max_length(max_length)
        self.ctrl = controller_for(model)
        self.L, self.H = self.ctrl.num_layers, self.ctrl.num_heads
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.encs = encode_examples(model, tokenizer, self.items, max_length=max_length, truncation=truncation)
        self.lengths = np.array([len(e) for e in self.encs])
        self.labels = np.array([-1 if ex.label is None else int(ex.label) for ex in self.items])
        self.decoder_cls = self.kind == CLASSIFIER and is_decoder_classifier(model)
        cfg_pad = getattr(model.config, "pad_token_id", None)
        self.unpadded = self.decoder_cls and cfg_pad is None
        if self.decoder_cls and cfg_pad is not None:
            self.pad_id = int(cfg_pad)  # the classifier pools the last token that is not config.pad_token_id
        else:
            self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.order = np.argsort(self.lengths, kind="stable")

    def __len__(self) -> int:
        return len(self.items)

    def need_labels(self, what: str) -> None:
        if (self.labels < 0).any():
            missing = int((self.labels < 0).sum())
            raise TargetError(f"{what} needs a 'label' in every example ({missing} have none)")
        if self.kind == CLASSIFIER:
            C = int(getattr(self.model.config, "num_labels", 0) or 0)
            if C and self.labels.max() >= C:
                raise TargetError(f"label {int(self.labels.max())} is out of range: the model has {C} classes")

    def batches(self, batch_size: int):
        """Yield ``(idx [b], inputs, last [b], mask [b, T])`` for length-sorted batches."""
        bs = 1 if self.unpadded else validate.batch_size(batch_size, allow_none=False)
        for s in range(0, len(self.order), bs):
            idx = self.order[s : s + bs]
            encs = [self.encs[i] for i in idx]
            inputs = collate(encs, self.pad_id, self.device)
            last = torch.tensor([len(e) - 1 for e in encs], device=self.device)
            yield idx, inputs, last, inputs["attention_mask"]

    def logits(self, out_logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return prediction_logits(self.kind, out_logits, last)

    def net(self):
        """The engine's private copy of the model to run these examples on (eval mode, own config — with a
        placeholder pad id for unpadded decoder classifiers —, parameters that do not require grad); the
        user's model is never run nor written."""
        return self.ctrl.private(pad_placeholder=self.unpadded)


def predict_masked(
    data: EncodedSet,
    keep: np.ndarray | torch.Tensor,
    *,
    per_example: bool = False,
    batch_size: int = 32,
    row_tokens: int = _ROW_TOKENS,
    progress=None,
    cancel: threading.Event | None = None,
    desc: str = "evaluating",
) -> np.ndarray:
    """Predicted class (or next token) of every example under K head masks: ``[K, N]`` int.

    ``keep``: ``[K, L, H]`` (1 = keep, 0 = prune; the same K masks for every example) or, with
    ``per_example=True``, ``[N, K, L, H]`` (example-specific masks, the effectiveness analysis). The masks of a
    batch are stacked as per-row ``(rows, H)`` head masks, so one forward evaluates up to
    ``row_tokens // (b·T)`` masks for b padded examples of length T.
    """
    keep = torch.as_tensor(np.asarray(keep, dtype=np.float32))
    N = len(data)
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
    preds = np.zeros((K, N), dtype=np.int64)
    net = data.net()
    with Progress(progress, N * K, desc) as prog, torch.no_grad():
        for idx, inputs, last, _ in data.batches(batch_size):
            b, T = inputs["input_ids"].shape
            kc = int(max(1, min(K, row_tokens // max(1, b * T))))
            idx_t = torch.as_tensor(idx, device=data.device)
            for k0 in range(0, K, kc):
                check_cancel(cancel)
                ks = slice(k0, min(K, k0 + kc))
                kk = ks.stop - ks.start
                if per_example:
                    m = keep[idx_t][:, ks].reshape(b * kk, data.L, data.H)
                else:
                    m = keep[ks].repeat(b, 1, 1)  # row i*kk + j  ↔  example i, mask j
                rows = {k: v.repeat_interleave(kk, 0) for k, v in inputs.items()}
                head_mask = {l: m[:, l] for l in range(data.L) if bool((m[:, l] != 1).any())}
                with data.ctrl.session(head_mask=head_mask):
                    out = net(**rows).logits
                pred = data.logits(out, last.repeat_interleave(kk, 0)).argmax(-1).view(b, kk)
                preds[ks.start : ks.stop, idx] = pred.T.cpu().numpy()
                prog.update(b * kk)
    return preds


def masked_accuracy(data: EncodedSet, keep, *, per_example: bool = False, **kw) -> np.ndarray:
    """Accuracy against the gold labels under each of K head masks: ``[K]`` (see :func:`predict_masked`)."""
    data.need_labels("accuracy")
    preds = predict_masked(data, keep, per_example=per_example, **kw)
    return (preds == data.labels[None, :]).mean(1)
