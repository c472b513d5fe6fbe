"""The encoder–decoder adapter (T5, BART, Marian, mBART, Pegasus, …): a source text in, an answer teacher-forced.

The answer is encoded the standard Hugging Face way: ``labels = tokenizer(text_target=answer)["input_ids"]``
(A tokens, the tokenizer's end-of-sequence included) and the decoder reads ``labels`` shifted right with
``decoder_start_token_id`` (the model's own ``prepare_decoder_input_ids_from_labels``). Decoder position i reads
``decoder_tokens[i]`` and predicts ``label_tokens[i]``. F is a function of all A predictions at once
(:func:`~..attribution.scores.continuation_score`: Σ label log-probabilities for ``score="logprob"``, the joint
probability for ``"prob"``).

Three attention sites (:class:`~.adapters.AttentionSite`): ``encoder`` self-attention (source × source),
``decoder`` self-attention (target × target, causal) and ``cross`` attention (target rows × source columns). The
engine's layer indices run over every attention module in call order; :meth:`Seq2SeqAdapter.site_layers` maps
each site's layers to them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ArgumentError, EmptyInputError, InputTooLongError, TargetError
from .adapters import AttentionSite, TaskAdapter, accepts, register_adapter
from .encode import Encoded, check_text, display_tokens, encode, max_positions
from ..results.seq2seq import SITE_NAMES
from .tokens import special_ids


@dataclass
class Answer:
    """A teacher-forced answer: ``labels`` and ``decoder_input_ids`` (1, A) long; ``label_tokens`` the A tokens
    predicted, ``decoder_tokens`` the A tokens the decoder reads (start token, then labels[:-1]); ``text``."""

    labels: torch.Tensor
    decoder_input_ids: torch.Tensor
    label_tokens: list[str]
    decoder_tokens: list[str]
    text: str

    def __len__(self) -> int:
        return int(self.labels.shape[1])


def _seq2seq_class_names() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES as names

    return set(names.values())


@register_adapter
class Seq2SeqAdapter(TaskAdapter):
    """A text encoder–decoder with a language-model head (``AutoModelForSeq2SeqLM``): F read from the ``[R, A, V]``
    logits of the A teacher-forced answer positions."""

    name = "seq2seq"
    target_kind = "answer"
    output_noun = "tokens in the vocabulary"
    default_score = "logprob"

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return (bool(getattr(model.config, "is_encoder_decoder", False))
                and type(model).__name__ in _seq2seq_class_names()
                and accepts(model, "input_ids") and accepts(model, "decoder_input_ids"))

    @property
    def unpadded(self) -> bool:
        return True

    def encode(self, tokenizer, text: str, text_pair: str | None = None, *, max_length: int | None = None,
               truncation: bool = False) -> Encoded:
        """The source, unpadded (no token types: encoder–decoders take none)."""
        if text_pair is not None:
            self.check_text_pair(tokenizer)
        enc = encode(self.model, tokenizer, text, max_length=max_length, truncation=truncation)
        enc.token_type_ids = None
        return enc

    def check_text_pair(self, tokenizer) -> None:
        raise ArgumentError(
            "text_pair does not apply to an encoder-decoder: pass the source as text (e.g. the sentence to "
            "translate, with any task prefix such as 'translate English to German: ') and the answer to "
            "attribute as target= (e.g. target='Das Haus ist klein.')")

    def encode_answer(self, tokenizer, target) -> Answer:
        """``target`` (the answer: a non-empty string, or a list of token ids) → the teacher-forced
        :class:`Answer`. Raises :class:`TargetError` for anything else."""
        if isinstance(target, str):
            if target in ("pred", "gold"):
                raise TargetError(
                    f"target={target!r}: an encoder-decoder attributes an answer; pass it as a string "
                    f"(target='Das Haus ist klein.') or as a list of token ids, or let the model write it with "
                    f"generate=N")
            check_text(target, "target")
            ids = list(tokenizer(text_target=target)["input_ids"])
            if not [i for i in ids if i not in special_ids(tokenizer)]:
                raise EmptyInputError(f"the answer {target!r} gives no token but the tokenizer's special ones: pass "
                                      f"an answer with words in it")
            text = target
        elif isinstance(target, (list, tuple, np.ndarray, torch.Tensor)):
            arr = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
            if arr.ndim != 1 or not len(arr) or arr.dtype.kind not in "iu":
                raise TargetError(f"target token ids must be a non-empty flat list of ints, got {arr.tolist()!r:.80}")
            ids = [int(i) for i in arr]
            text = str(tokenizer.decode(ids, skip_special_tokens=True))
        else:
            raise TargetError(f"target must be the answer (a non-empty string or a list of token ids) for an "
                              f"encoder-decoder, not {type(target).__name__}")
        V = self.num_outputs()[0]
        bad = [i for i in ids if i < 0 or (V is not None and i >= V)]
        if bad:
            raise TargetError(f"answer token ids {bad[:5]} are outside the model's vocabulary (0..{V - 1})")
        limit = max_positions(self.model, tokenizer)
        if len(ids) > limit:
            raise InputTooLongError(f"the answer is {len(ids)} tokens but the model reads at most {limit}: pass a "
                                    f"shorter answer")
        device = next(self.model.parameters()).device
        labels = torch.tensor([ids], dtype=torch.long, device=device)
        dec = self.decoder_inputs(labels)
        return Answer(labels=labels, decoder_input_ids=dec, label_tokens=display_tokens(tokenizer, ids),
                      decoder_tokens=display_tokens(tokenizer, dec[0].tolist()), text=text)

    def decoder_inputs(self, labels: torch.Tensor) -> torch.Tensor:
        """``labels`` (B, A) shifted right with ``decoder_start_token_id``: the model's own
        ``prepare_decoder_input_ids_from_labels`` where it has one (T5, BART, Marian, …), else the same shift here
        (M2M100, Blenderbot)."""
        prepare = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
        if prepare is not None:
            return prepare(labels=labels)
        cfg = self.model.config
        start = getattr(cfg, "decoder_start_token_id", None)
        if start is None:
            raise TargetError(f"{type(self.model).__name__} has no config.decoder_start_token_id: set it (the id the "
                              f"decoder starts from) to teacher-force an answer")
        out = labels.new_full(labels.shape, int(start))
        out[:, 1:] = labels[:, :-1]
        return out

    def num_outputs(self) -> tuple[int | None, str]:
        n = getattr(self.model.config, "vocab_size", None)
        return (int(n) if n else None), self.output_noun

    def prediction_logits(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return logits  # [R, A, V]: every answer position

    def attention_sites(self, ctrl) -> tuple[AttentionSite, ...]:
        """``encoder`` [L_enc, H, n_src, n_src], ``decoder`` [L_dec, H, n_tgt, n_tgt], ``cross`` [L_dec, H, n_tgt,
        n_src]."""
        lay = ctrl.layout
        layers = self.site_layers(ctrl)
        roles = {"encoder": ("source", "source"), "decoder": ("target", "target"), "cross": ("target", "source")}
        return tuple(AttentionSite(name, *roles[name], len(layers[name]), int(lay.heads[layers[name][0]]))
                     for name in SITE_NAMES if layers[name])

    @staticmethod
    def site_layers(ctrl) -> dict[str, list[int]]:
        """Each site's layers as the engine's (call-order) layer indices."""
        roles = ctrl.layout.roles or []
        return {name: [i for i, r in enumerate(roles) if r == name] for name in SITE_NAMES}

    def check_dataset_level(self, what: str) -> None:
        raise ArgumentError(
            f"{what} works on single-stack models (classifiers, causal LMs); {type(self.model).__name__} is an "
            f"encoder-decoder: explain one answer with attribute(model, tokenizer, source, target=answer)")
