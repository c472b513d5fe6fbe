"""Model adapters: one object per kind of task, chosen through a registry; nothing else branches on the kind.

An adapter knows, for one model, how an input is encoded, where the score F is read (the *prediction logits*;
what F is — ``"prob"``, ``"logprob"``, ``"logit"`` — is the score registry's, :mod:`..attribution.scores`), how a
target resolves and is labelled, the label names and number of outputs, which attention modules exist and the
shape of their maps (:class:`AttentionSite`), and the kind's run details (unpadded batches, pad ids,
``logits_to_keep``). Kinds: :class:`SequenceClassifierAdapter`, :class:`CausalLMAdapter` (and its
:class:`ContinuationAdapter` for answers), :class:`ImageClassifierAdapter` (pixels in), :class:`ImagePromptAdapter`
(vision–language prompts) and the encoder–decoder adapter :class:`~.seq2seq.Seq2SeqAdapter` (registered by
:mod:`.seq2seq`).

:func:`adapter_for` picks the adapter of a model: the most recently registered adapter class whose
:meth:`~TaskAdapter.matches` accepts it (:func:`register_adapter` adds one, so a new kind of task — a
continuation, an encoder–decoder, an image classifier — can claim models the built-in adapters refuse); when none
does, it raises the reason (an unsupported head, no text input, no head at all).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import (ArgumentError, InputTooLongError, NoClassificationHeadError, TargetError,
                      UnsupportedModelError)
from ..intercept.layout import discovered_outputs
from ..results.image import ImageGrid, patch_token
from .encode import Encoded, check_text, check_token_ids, display_tokens, encode, max_positions
from .image import check_processor, encode_image


@dataclass(frozen=True)
class AttentionSite:
    """One group of attention modules whose maps share a shape and token roles.

    ``name``: the group (``"self"`` today; an encoder–decoder has ``"encoder"``, ``"decoder"`` and ``"cross"``);
    ``rows`` / ``cols``: the role of the query rows and key columns (``"input"`` for self-attention over the
    input; a cross-attention group has ``rows="target"``, ``cols="source"``); ``num_layers`` L, ``num_heads`` H.
    A map of one layer is ``[H, n_rows, n_cols]`` (:meth:`map_shape`); the group's maps ``[L, H, n_rows, n_cols]``.
    """

    name: str
    rows: str
    cols: str
    num_layers: int
    num_heads: int

    @property
    def square(self) -> bool:
        """Rows and columns are the same tokens (self-attention)."""
        return self.rows == self.cols

    def map_shape(self, n_rows: int, n_cols: int | None = None) -> tuple[int, int, int]:
        """``(H, n_rows, n_cols)`` of one layer's map (``n_cols`` defaults to ``n_rows`` for square groups)."""
        if n_cols is None:
            if not self.square:
                raise ValueError(f"the {self.name} attention maps {self.rows} rows to {self.cols} columns: pass n_cols")
            n_cols = n_rows
        return (self.num_heads, int(n_rows), int(n_cols))


class TaskAdapter:
    """What the engine asks of a model of one kind of task. Subclass, set the class attributes, implement
    :meth:`matches` and the methods that raise ``NotImplementedError``, then :func:`register_adapter`.

    Class attributes: ``name`` (registry key), ``target_kind`` (how targets are labelled in results:
    ``Attribution.target_kind``), ``output_noun`` (what an output index is, for messages), ``classifies`` (one
    class per input: accuracy per gold class, triggers), ``default_score`` (the score F when ``score=None``).
    """

    name: ClassVar[str] = ""
    default_score: ClassVar[str] = "prob"
    target_kind: ClassVar[str] = ""
    output_noun: ClassVar[str] = "outputs"
    classifies: ClassVar[bool] = False

    def __init__(self, model: nn.Module):
        self.model = model

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether this adapter attributes ``model``."""
        raise NotImplementedError

    # -- inputs ---------------------------------------------------------------------------------------------
    def encode(self, tokenizer, text: str, text_pair: str | None = None, *, max_length: int | None = None,
               truncation: bool = False) -> Encoded:
        """One example, unpadded (see :func:`.encode.encode`): ids, masks, display tokens, segments."""
        if text_pair is not None:
            check_text(text, "text")
            check_text(text_pair, "text_pair")
            self.check_text_pair(tokenizer)
        return encode(self.model, tokenizer, text, text_pair, max_length=max_length, truncation=truncation)

    def check_tokenizer(self, tokenizer) -> None:
        """Refuse what cannot encode this model's inputs (:class:`ArgumentError` naming the fix)."""
        if tokenizer is None or not callable(tokenizer):
            raise ArgumentError(f"tokenizer must be the model's tokenizer (e.g. AutoTokenizer.from_pretrained(...)), "
                                f"got {type(tokenizer).__name__}")

    def takes_pair(self, tokenizer) -> bool:
        """Whether a second text (``text_pair``) means something to the model (the Explorer's input bar)."""
        return False

    @property
    def unpadded(self) -> bool:
        """Examples run one at a time, unpadded (batch size 1)."""
        return False

    def pad_id(self, tokenizer) -> int:
        """The id that right-pads a batch of examples (0 where the tokenizer, or its pad id, is None)."""
        tok_pad = None if tokenizer is None else tokenizer.pad_token_id
        return tok_pad if tok_pad is not None else 0

    def private_config(self) -> dict | None:
        """Config entries the engine's private copy of the model sets on its own config (never on the user's:
        :meth:`~..intercept.controller.AttnController.private`), or None."""
        return None

    def check_text_pair(self, tokenizer) -> None:
        """Refuse a ``text_pair`` the model cannot read as a second segment (:class:`ArgumentError` naming the
        fix); :meth:`encode` asks before encoding a pair."""

    # -- outputs --------------------------------------------------------------------------------------------
    def num_outputs(self) -> tuple[int | None, str]:
        """``(how many targets, what they are)``; the count is None when the config does not say."""
        raise NotImplementedError

    def label_names(self) -> list[str] | None:
        """Readable names of the outputs, or None (targets are labelled by :meth:`target_label`)."""
        return None

    def prediction_logits(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Where F is read: the model's ``logits`` → ``[R, C]`` prediction logits (``last`` [R]: each row's last
        real position)."""
        raise NotImplementedError

    def logits(self, net: nn.Module, inputs: dict, last: torch.Tensor) -> torch.Tensor:
        """Run ``net`` (the model or the engine's copy of it) on ``inputs`` and return the prediction logits
        ``[R, C]``."""
        return self.prediction_logits(net(**inputs).logits, last)

    def resolve_target(self, tokenizer, target, logits: torch.Tensor, gold=None) -> int:
        """A user target → an output index. ``target``: ``"pred"`` (argmax of ``logits`` [C] — the paper's
        default), ``"gold"`` (needs ``gold``), an int, or a string (:meth:`target_from_string`)."""
        size = logits.shape[-1]
        if isinstance(target, str) and target == "pred":
            return int(logits.argmax(-1))
        if isinstance(target, str) and target == "gold":
            if gold is None:
                raise TargetError('target="gold" needs a gold label: pass the example label, or use target="pred"')
            target = gold
        if isinstance(target, (bool, np.bool_)) or (isinstance(target, (torch.Tensor, np.ndarray))
                                                    and target.dtype in (torch.bool, np.bool_)):
            raise TargetError(f"target must be 'pred', 'gold', an int or a string, not {target!r} (a bool is not a "
                              f"class index)")
        if isinstance(target, float) and target.is_integer():
            target = int(target)
        if isinstance(target, (int, np.integer)) or (isinstance(target, torch.Tensor) and target.numel() == 1
                                                     and not target.is_floating_point()):
            t = int(target)
            if not 0 <= t < size:
                raise TargetError(f"target {t} is out of range: the model has {size} {self.output_noun} "
                                  f"(0..{size - 1})")
            return t
        if isinstance(target, str):
            return self.target_from_string(tokenizer, target)
        raise TargetError(f"target must be 'pred', 'gold', an int or a string, not {type(target).__name__}")

    def target_from_string(self, tokenizer, target: str) -> int:
        """A target given as a string → an output index."""
        raise NotImplementedError

    def target_label(self, tokenizer, target: int) -> str:
        """How output ``target`` is shown (a class name, a decoded token)."""
        names = self.label_names()
        return names[target] if names and 0 <= target < len(names) else str(tokenizer.decode([int(target)]))

    def target_options(self, tokenizer, probs: np.ndarray, k: int) -> list[dict]:
        """What a target selector offers: ``[{"id", "label", "prob"}]`` from the output probabilities ``probs``."""
        raise NotImplementedError

    @classmethod
    def default_query(cls, num_tokens: int) -> int:
        """The query row a view opens on (-1 for no tokens)."""
        return 0 if num_tokens else -1

    def check_dataset_level(self, what: str) -> None:
        """Refuse ``what`` (a dataset-level analysis: head importance, pruning, triggers, ``iter_attributions``)
        for kinds it does not apply to (:class:`ArgumentError` naming the alternative); single-stack text models
        accept every analysis."""

    # -- attention ------------------------------------------------------------------------------------------
    def attention_sites(self, ctrl) -> tuple[AttentionSite, ...]:
        """The attention module groups of the model (``ctrl``: its controller, with ``num_layers`` and
        ``num_heads``). Text models: one square self-attention group over the input."""
        return (AttentionSite("self", "input", "input", int(ctrl.num_layers), int(ctrl.num_heads)),)


class SequenceClassifierAdapter(TaskAdapter):
    """A sequence-classification head: one prediction per input, F read from the class logits ``[R, C]``.

    Decoder classifiers (GPT-2, Llama, … ``ForSequenceClassification``) pool the last token that is not
    ``config.pad_token_id``: their examples run unpadded, and without a pad id the engine's copy gets a
    placeholder (-1, never in ``input_ids``)."""

    name = "classifier"
    target_kind = "class"
    output_noun = "classes"
    classifies = True

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        name = type(model).__name__
        return _refusal(model) is None and (name.endswith("ForSequenceClassification") or (
            hasattr(model, "classifier") and bool(getattr(model.config, "num_labels", 0))
            and not name.endswith("LMHeadModel")))

    def takes_pair(self, tokenizer) -> bool:
        # a second segment only means something to a model trained on pairs (token types, or [SEP]-joined)
        tv = int(getattr(self.model.config, "type_vocab_size", 0) or 0)
        return tv >= 2 or getattr(tokenizer, "sep_token", None) is not None

    @property
    def pools_by_pad(self) -> bool:
        """A decoder with a classification head: it pools the last non-pad token by pad id."""
        model = self.model
        base = getattr(model, getattr(model, "base_model_prefix", ""), None)
        return bool(getattr(model.config, "is_decoder", False)) or (
            base is not None and not hasattr(base, "encoder") and not hasattr(base, "embeddings"))

    @property
    def unpadded(self) -> bool:
        return self.pools_by_pad

    def pad_id(self, tokenizer) -> int:
        cfg_pad = getattr(self.model.config, "pad_token_id", None)
        if self.pools_by_pad and cfg_pad is not None:
            return int(cfg_pad)  # the classifier pools the last token that is not config.pad_token_id
        return super().pad_id(tokenizer)

    def private_config(self) -> dict | None:
        return {"pad_token_id": -1} if self.pools_by_pad and self.model.config.pad_token_id is None else None

    def check_text_pair(self, tokenizer) -> None:
        if self.pools_by_pad and getattr(tokenizer, "sep_token", None) is None:
            raise ArgumentError(
                f"text_pair: {type(self.model).__name__}'s tokenizer has no separator token, so the pair would be "
                f"glued to the text with nothing between them: join them yourself the way the model was trained "
                f"(e.g. text=premise + ' ' + hypothesis) and pass text_pair=None")

    def num_outputs(self) -> tuple[int | None, str]:
        n = getattr(self.model.config, "num_labels", None) or discovered_outputs(self.model)
        return (int(n) if n else None), self.output_noun

    def label_names(self) -> list[str] | None:
        """Class names: ``config.id2label`` (checked to name the head's outputs 0..C-1 by
        :func:`~.checks.check_model_and_tokenizer`), ``LABEL_i`` for a config without one (as many as the head's
        outputs, once the model is discovered); never tokenizer tokens."""
        cfg = self.model.config
        n = getattr(cfg, "num_labels", None) or discovered_outputs(self.model)
        id2label = getattr(cfg, "id2label", None) or {}
        if not n:
            return None
        return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]

    def target_label(self, tokenizer, target: int) -> str:
        names = self.label_names()
        return names[target] if names and 0 <= target < len(names) else f"LABEL_{int(target)}"

    def prediction_logits(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return logits

    def target_from_string(self, tokenizer, target: str) -> int:
        names = self.label_names() or []
        for i, name in enumerate(names):
            if name.lower() == target.lower():
                return i
        raise TargetError(f"unknown class {target!r}: the model's classes are {names}")

    def target_options(self, tokenizer, probs: np.ndarray, k: int) -> list[dict]:
        """Every class, in class order."""
        names = self.label_names() or [str(i) for i in range(len(probs))]
        return [{"id": i, "label": str(names[i]), "prob": float(probs[i])} for i in range(len(probs))]


class CausalLMAdapter(TaskAdapter):
    """A language-model head asked for the next token: F read from the ``[R, V]`` next-token logits at each
    row's last real position (only that position's logits computed where the model takes ``logits_to_keep``)."""

    name = "causal-lm"
    target_kind = "next-token"
    output_noun = "tokens in the vocabulary"

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.keep_last = accepts(model, "logits_to_keep")

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        name = type(model).__name__
        return _refusal(model) is None and (name.endswith("ForCausalLM") or name.endswith("LMHeadModel"))

    def check_text_pair(self, tokenizer) -> None:
        raise ArgumentError(
            "text_pair does not apply to a language model: it continues one text. Put the whole prompt in text "
            "(e.g. 'The capital of France is') and the answer to attribute in target= (e.g. target=' Paris')")

    def num_outputs(self) -> tuple[int | None, str]:
        cfg = self.model.config
        n = getattr(cfg, "vocab_size", None) or getattr(getattr(cfg, "get_text_config", lambda: cfg)(), "vocab_size", None)
        return (int(n) if n else None), self.output_noun

    def prediction_logits(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return logits[torch.arange(logits.shape[0], device=logits.device), last]

    def logits(self, net: nn.Module, inputs: dict, last: torch.Tensor) -> torch.Tensor:
        if self.keep_last and bool((last == last[0]).all()):
            return net(**inputs, logits_to_keep=1).logits[:, -1]
        return super().logits(net, inputs, last)

    def target_from_string(self, tokenizer, target: str) -> int:
        ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = tokenizer.convert_ids_to_tokens(ids)
            raise TargetError(
                f"target {target!r} is {len(ids)} tokens {pieces}: a next-token target must be one token — pass "
                f"its first piece or a token id (leading spaces matter for byte-level tokenizers)"
            )
        return int(ids[0])

    def target_options(self, tokenizer, probs: np.ndarray, k: int) -> list[dict]:
        """The ``k`` most probable next tokens (``label`` the token as text, e.g. ``" Paris"``), most probable first."""
        top = np.argsort(-probs, kind="stable")[: max(1, int(k))]
        return [{"id": int(i), "label": str(tokenizer.decode([int(i)])), "prob": float(probs[i])} for i in top]

    @classmethod
    def default_query(cls, num_tokens: int) -> int:
        return num_tokens - 1  # the position whose next token is the target

    def is_continuation(self, tokenizer, target) -> bool:
        """Whether ``target`` asks for a teacher-forced continuation (:class:`ContinuationAdapter`): a list or
        tuple of token ids, or a string of more than one token (``" Paris, a city"``)."""
        if isinstance(target, (list, tuple)):
            return True
        if isinstance(target, str) and target not in ("pred", "gold"):
            return len(tokenizer(target, add_special_tokens=False)["input_ids"]) > 1
        return False


class ContinuationAdapter(CausalLMAdapter):
    """A language-model head asked for a whole answer y_1..y_A after a prompt, teacher-forced.

    The input is the prompt's ids (as the tokenizer encodes the prompt, special tokens included) followed by the
    answer's ids (tokenized without special tokens); F reads the logits at the A positions that predict the answer
    tokens — position ``answer_start - 1 + t`` predicts answer token t — through
    :func:`~..attribution.scores.continuation_score` (``"logprob"``: Σ_t log p(y_t | prompt, y_<t), the default;
    ``"prob"``: the joint probability; ``"logit"``). Never chosen by :func:`adapter_for`: the engine takes it for a
    causal LM when the target is a continuation (:meth:`CausalLMAdapter.is_continuation`)."""

    name = "continuation"
    target_kind = "continuation"

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return False  # chosen by the target, not by the model

    def answer_ids(self, tokenizer, target) -> list[int]:
        """The answer's token ids: a string tokenized without special tokens (leading spaces matter for
        byte-level tokenizers: ``" Paris"`` and ``"Paris"`` are different tokens), or a list of ids, checked."""
        if isinstance(target, str):
            check_text(target, "target")
            ids = [int(i) for i in tokenizer(target, add_special_tokens=False)["input_ids"]]
        elif isinstance(target, (list, tuple)):
            ids = []
            for i in target:
                if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                    raise TargetError(f"a continuation target given as token ids must be a list of ints, got "
                                      f"{type(i).__name__} {i!r} in it")
                ids.append(int(i))
        else:
            raise TargetError(f"a continuation target is a string or a list of token ids, not {type(target).__name__}")
        if not ids:
            raise TargetError("the answer has no tokens: pass a non-empty target string or list of token ids")
        n, _ = self.num_outputs()
        bad = [i for i in ids if i < 0 or (n is not None and i >= n)]
        if bad:
            raise TargetError(f"answer token id {bad[0]} is out of range: the model has {n} {self.output_noun}")
        return ids

    def encode_answer(self, tokenizer, prompt: str, answer: list[int], *, max_length: int | None = None,
                      truncation: bool = False) -> Encoded:
        """The prompt encoded (:func:`.encode.encode`) with the answer ids appended: ``answer_start`` marks the
        first answer token. Too long: raises, or with ``truncation=True`` drops the prompt's first tokens
        (flagged ``truncated``)."""
        enc = encode(self.model, tokenizer, prompt, max_length=max_length, truncation=truncation)
        limit = max_positions(self.model, tokenizer)
        if max_length is not None:
            limit = min(limit, int(max_length))
        prompt_ids = enc.input_ids[0].tolist()
        tokens = list(enc.tokens)
        truncated = enc.truncated
        if len(prompt_ids) + len(answer) > limit:
            keep = limit - len(answer)
            if not truncation or keep < 1:
                raise InputTooLongError(
                    f"the prompt ({len(prompt_ids)} tokens) and the answer ({len(answer)} tokens) make "
                    f"{len(prompt_ids) + len(answer)} tokens but the model accepts at most {limit}: shorten them"
                    + (", or pass truncation=True to drop the prompt's first tokens" if keep >= 1 else ""))
            prompt_ids, tokens, truncated = prompt_ids[-keep:], tokens[-keep:], True
        check_token_ids(self.model, tokenizer, answer)
        ids = torch.tensor([prompt_ids + answer], dtype=torch.long)
        return Encoded(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=None,
                       tokens=tokens + display_tokens(tokenizer, answer), segments=[0] * ids.shape[1],
                       truncated=truncated, answer_start=len(prompt_ids))

    def logits(self, net: nn.Module, inputs: dict, last: torch.Tensor) -> torch.Tensor:
        """The logits that predict the answer tokens: ``[R, A, V]``; ``last`` here is ``[R, A]``, the positions
        that predict them (``answer_start - 1 + t``). Only the positions from the first of them on are computed
        where the model takes ``logits_to_keep``."""
        T = inputs["input_ids"].shape[1]
        if self.keep_last:
            keep = T - int(last.min())
            return self.prediction_logits(net(**inputs, logits_to_keep=keep).logits, last - (T - keep))
        return self.prediction_logits(net(**inputs).logits, last)

    @staticmethod
    def answer_positions(encs: Sequence[Encoded], device=None) -> torch.Tensor:
        """The positions that predict each example's answer tokens, ``answer_start - 1 + t``: [B, A] long (A the
        longest answer; a shorter answer's extra positions repeat its last one, to be given no weight)."""
        A = max(e.answer_len for e in encs)
        return torch.tensor([[min(e.answer_start - 1 + t, len(e) - 2) for t in range(A)] for e in encs],
                            device=device)

    @staticmethod
    def answer_targets(encs: Sequence[Encoded], answer_tokens: Sequence[int | None] | None = None,
                       device=None) -> torch.Tensor:
        """The answer ids each row counts, [B, A] long, -1 where it counts none (beyond a shorter answer; every
        token but t for a row of answer token t): ``answer_tokens[b]`` None (the whole answer) or t."""
        A = max(e.answer_len for e in encs)
        out = torch.full((len(encs), A), -1, dtype=torch.long)
        for b, e in enumerate(encs):
            ids = e.input_ids[0, e.answer_start:]
            t = None if answer_tokens is None else answer_tokens[b]
            if t is None:
                out[b, : len(ids)] = ids
            else:
                out[b, t] = ids[t]
        return out.to(device)

    def prediction_logits(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The model's ``logits`` [R, T, V] at the positions ``last`` [R, A] that predict the answer: [R, A, V]."""
        return logits[torch.arange(last.shape[0], device=last.device).unsqueeze(1), last]

    def target_label(self, tokenizer, target) -> str:
        """The answer (or one answer token) as text: ``target`` a token id or a list of them."""
        ids = [int(target)] if isinstance(target, (int, np.integer)) else [int(i) for i in target]
        return str(tokenizer.decode(ids))


class ImageClassifierAdapter(SequenceClassifierAdapter):
    """An image-classification head over a vision transformer (``*ForImageClassification``: ViT, DeiT with its
    distillation token, …): pixels in, one prediction per image, F read from the class logits ``[R, C]``.

    The "tokenizer" is the model's image processor and the "text" the image (:func:`.image.encode_image`: a PIL
    image, an H×W×3 array, a path or ``pixel_values``); tokens are ``[CLS]`` (DeiT: ``[CLS]``, ``[DIST]``) and one
    ``"(r,c)"`` per patch; :attr:`~.encode.Encoded.image` carries the patch grid and the picture."""

    name = "image-classifier"

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        name = type(model).__name__  # DeiT: also ...ForImageClassificationWithTeacher (mean of its two heads)
        return name.endswith(("ForImageClassification", "ForImageClassificationWithTeacher")) and accepts(
            model, "pixel_values")

    def check_tokenizer(self, tokenizer) -> None:
        check_processor(tokenizer)

    def encode(self, tokenizer, text, text_pair=None, *, max_length: int | None = None,
               truncation: bool = False) -> Encoded:
        """``text`` is the image (a PIL image, an H×W×3 array, a path or ``pixel_values``), ``tokenizer`` the
        image processor; ``max_length`` / ``truncation`` do not apply (an image keeps every patch)."""
        if text_pair is not None:
            self.check_text_pair(tokenizer)
        return encode_image(self.model, tokenizer, text)

    def takes_pair(self, tokenizer) -> bool:
        return False

    @property
    def pools_by_pad(self) -> bool:
        return False

    def pad_id(self, tokenizer) -> int:
        return 0  # nothing is padded: every image of a batch has the same patches

    def check_text_pair(self, tokenizer) -> None:
        raise ArgumentError("text_pair does not apply to an image classifier: pass one image and text_pair=None")

    def target_options(self, tokenizer, probs: np.ndarray, k: int) -> list[dict]:
        """The ``k`` most probable classes, most probable first (ImageNet heads have 1000)."""
        names = self.label_names() or [str(i) for i in range(len(probs))]
        top = np.argsort(-probs, kind="stable")[: max(1, int(k))]
        return [{"id": int(i), "label": str(names[i]), "prob": float(probs[i])} for i in top]


class ImagePromptAdapter(CausalLMAdapter):
    """A vision–language prompt (:class:`~.image_prompt.ImagePromptForCausalLM`: a LLaVA-family model with one
    fixed image): the next token, F read at the last position as for a causal LM. The "tokenizer" is the model's
    processor; a prompt holds its image placeholder once, which the processor expands into one token per image
    feature; those tokens are shown as their patches ``"(r,c)"`` (row-major; ``"[IMG]"`` first where the vision
    ``[CLS]`` is kept) and :attr:`~.encode.Encoded.image` records where they start."""

    name = "image-prompt"

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return type(model).__name__ == "ImagePromptForCausalLM" and hasattr(model, "features")

    @staticmethod
    def _tok(processor):
        return getattr(processor, "tokenizer", processor)

    def check_tokenizer(self, tokenizer) -> None:
        if getattr(tokenizer, "tokenizer", None) is None or not callable(tokenizer):
            raise ArgumentError(f"a vision–language prompt needs the model's processor (tokenizer and image "
                                f"processor): AutoProcessor.from_pretrained(<the model's name or folder>); got "
                                f"{type(tokenizer).__name__}")

    def encode(self, tokenizer, text: str, text_pair: str | None = None, *, max_length: int | None = None,
               truncation: bool = False) -> Encoded:
        """``text``: the prompt, with the processor's image placeholder (``processor.image_token``) once."""
        if text_pair is not None:
            self.check_text_pair(tokenizer)
        check_text(text, "text")
        lm, tok = self.model, self._tok(tokenizer)
        placeholder = getattr(tokenizer, "image_token", None) or tok.convert_ids_to_tokens(lm.image_token_id)
        if text.count(placeholder) != 1:
            raise ArgumentError(f"the prompt must hold the image placeholder {placeholder!r} exactly once (it has "
                                f"{text.count(placeholder)}): e.g. 'USER: {placeholder}\nWhat is shown? ASSISTANT:'")
        enc = tokenizer(images=lm.image, text=text, return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        where = [i for i, t in enumerate(ids) if t == lm.image_token_id]
        n = lm.num_image_tokens
        if len(where) != n or where != list(range(where[0], where[0] + n)):
            raise ArgumentError(f"the processor expanded the placeholder into {len(where)} image tokens but the "
                                f"model gives {n} image features: pass the processor saved with the model")
        check_token_ids(lm.model, tok, ids)
        tokens = display_tokens(tok, ids)
        grid = lm.grid
        names = ["[IMG]"] * lm.extra + [patch_token(r, c) for r in range(grid.grid[0]) for c in range(grid.grid[1])]
        tokens[where[0] : where[0] + n] = names
        image = ImageGrid(grid=grid.grid, first_patch=where[0] + lm.extra, patch_size=grid.patch_size,
                          pixels=grid.pixels)
        input_ids = enc["input_ids"]
        return Encoded(input_ids=input_ids, attention_mask=enc.get("attention_mask", torch.ones_like(input_ids)),
                       token_type_ids=None, tokens=tokens, segments=[0] * len(ids), truncated=False, image=image)

    def pad_id(self, tokenizer) -> int:
        return super().pad_id(self._tok(tokenizer))

    def target_from_string(self, tokenizer, target: str) -> int:
        return super().target_from_string(self._tok(tokenizer), target)

    def target_label(self, tokenizer, target: int) -> str:
        return super().target_label(self._tok(tokenizer), target)

    def target_options(self, tokenizer, probs: np.ndarray, k: int) -> list[dict]:
        return super().target_options(self._tok(tokenizer), probs, k)


# ------------------------------------------------------------------------------------------------------------
# the registry

_ADAPTERS: list[type[TaskAdapter]] = []


def register_adapter(cls: type[TaskAdapter]) -> type[TaskAdapter]:
    """Add an adapter class (usable as a decorator). The most recently registered class whose ``matches``
    accepts a model is the one :func:`adapter_for` returns; registering a class again moves it to the front."""
    if not (isinstance(cls, type) and issubclass(cls, TaskAdapter)) or not cls.name or not cls.target_kind:
        raise TypeError(f"register_adapter takes a TaskAdapter subclass with a name and a target_kind, got {cls!r}")
    unregister_adapter(cls)
    _ADAPTERS.append(cls)
    return cls


def unregister_adapter(cls: type[TaskAdapter]) -> None:
    """Remove an adapter class (no error when it is not registered)."""
    if cls in _ADAPTERS:
        _ADAPTERS.remove(cls)


register_adapter(ContinuationAdapter)  # never matches a model: found by its target_kind (adapter_class)
register_adapter(CausalLMAdapter)
register_adapter(SequenceClassifierAdapter)  # tried before the LM, as a classifier check preceded the LM check
register_adapter(ImageClassifierAdapter)
register_adapter(ImagePromptAdapter)


def adapter_for(model: nn.Module) -> TaskAdapter:
    """The adapter of ``model``.

    Raises :class:`UnsupportedModelError` for heads with no single prediction per input (token classification,
    multiple choice, QA, masked LM, …) and models without text input, :class:`NoClassificationHeadError` for a
    bare encoder/decoder."""
    for cls in reversed(_ADAPTERS):
        if cls.matches(model):
            return cls(model)
    reason = _refusal(model)
    if reason is not None:
        raise UnsupportedModelError(reason)
    name = type(model).__name__
    raise NoClassificationHeadError(
        f"{name} has no classification head and no language-model head, so there is no prediction to "
        f"attribute. Load it with AutoModelForSequenceClassification.from_pretrained(...) (a fine-tuned "
        f"classifier) or AutoModelForCausalLM.from_pretrained(...) (next-token targets)."
    )


def adapter_class(target_kind: str) -> type[TaskAdapter]:
    """The registered adapter class whose results carry ``target_kind`` (for results without a model, e.g.
    loaded from a file); unknown kinds get the classifier's."""
    for cls in reversed(_ADAPTERS):
        if cls.target_kind == target_kind:
            return cls
    return SequenceClassifierAdapter


def accepts(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (e.g. ``logits_to_keep``)."""
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


# Heads whose output is not one prediction per input: refused up front (their logits would be misread).
_UNSUPPORTED_HEADS = {
    "ForTokenClassification": "token classification (one prediction per token)",
    "ForMultipleChoice": "multiple choice (one score per choice, inputs shaped [batch, choices, tokens])",
    "ForQuestionAnswering": "extractive question answering (start/end scores per token)",
    "ForMaskedLM": "masked language modelling (one prediction per [MASK] position)",
    "ForObjectDetection": "object detection (pixel input)",
    "ForSemanticSegmentation": "segmentation (pixel input)",
    "ForAudioClassification": "audio classification (waveform input)",
    "ForSpeechSeq2Seq": "speech recognition (audio input)",
    "ForConditionalGeneration": "multimodal or speech generation (image or audio input)",
}

#: Whisper-style speech encoder-decoders are refused: their source is ~1,500 audio feature frames, not tokens.
SPEECH_REFUSAL = (
    "{name} is a speech encoder-decoder: its source is audio feature frames (input_features), not text tokens, "
    "which attattr-widgets does not attribute (its views, trees and exports are built on tokens, and a 30 s "
    "window gives 1,500 x 1,500 encoder maps per head). Text encoder-decoders (T5, BART, Marian, mBART, Pegasus: "
    "AutoModelForSeq2SeqLM) are attributed with attribute(model, tokenizer, source, target=answer)")


def _refusal(model: nn.Module) -> str | None:
    """Why the text adapters refuse ``model`` (an unsupported head, no text input), or None."""
    name = type(model).__name__
    if getattr(model.config, "is_encoder_decoder", False) and accepts(model, "input_features"):
        return SPEECH_REFUSAL.format(name=name)
    for suffix, what in _UNSUPPORTED_HEADS.items():
        if name.endswith(suffix):
            return (f"{name} has a head for {what}, which attattr-widgets does not attribute: load the checkpoint "
                    f"with AutoModelForSequenceClassification (one class per input) or AutoModelForCausalLM "
                    f"(next-token targets) instead")
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - C-implemented forwards
        return None
    other = [k for k in params if k in ("pixel_values", "input_values", "input_features")]
    if "input_ids" not in params and (other or not any(p.kind is p.VAR_KEYWORD for p in params.values())):
        takes = ", ".join(other or list(params)[:3])
        return (f"{name} takes no text input (its forward takes {takes}): attattr-widgets attributes text models "
                f"(a classifier or a causal LM over input_ids) and image classifiers (*ForImageClassification "
                f"over pixel_values)")
    return None
