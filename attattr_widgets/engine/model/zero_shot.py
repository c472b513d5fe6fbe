"""CLIP / SigLIP zero-shot classification as an image classifier: F = the probability of one text label among the
given labels, attributed over the vision tower's patches.

:func:`zero_shot_classifier` embeds the K label prompts once (on a private eval copy of the model, without grad)
and returns a :class:`ZeroShotForImageClassification`: ``pixel_values`` → logits ``[B, K]``, exactly the model's
own ``logits_per_image`` against those prompts (CLIP: ``exp(logit_scale) · cos``; SigLIP: ``exp(logit_scale) · cos
+ logit_bias``; the softmax over the K labels is F). It shares the user's modules and parameters and changes
none of them; :func:`~..attribution.api.attribute` takes it like any ``*ForImageClassification``
(:class:`~.adapters.ImageClassifierAdapter`): ``attribute(zero_shot_classifier(clip, processor, labels),
processor, image, target="a dog")``. The text tower is not attributed there (its embeddings are constants).

The text side: :func:`zero_shot_text_classifier` fixes the image and the other labels' prompts and takes the prompt
of one label as the input (:class:`ZeroShotTextForSequenceClassification`, ``input_ids`` → the same logits
``[B, K]``), so the same F is attributed over that prompt's tokens in the text tower (CLIP; SigLIP's text tower
reads ``max_length`` padding, which the unpadded attribution cannot give it, and is refused).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ArgumentError
from ..intercept.shadow import private_copy
from .image import check_processor, encode_image
from .wrappers import check_unwrapped

__all__ = ["ZeroShotForImageClassification", "ZeroShotTextForSequenceClassification", "zero_shot_classifier",
           "zero_shot_text_classifier"]


class ZeroShotForImageClassification(nn.Module):
    """An image–text model (``CLIPModel``, ``SiglipModel``, …: ``get_image_features`` and ``logit_scale``) with K
    fixed text embeddings, as a classifier over K labels.

    ``model``: the user's model (shared, never changed); ``text_embeds``: ``[K, D]`` unit-norm label embeddings;
    ``labels``: the K label names (``config.id2label``). ``config``: a copy of the vision config with the labels,
    so the patch grid (``image_size``, ``patch_size``) and the attention implementation are the tower's."""

    def __init__(self, model: nn.Module, text_embeds: torch.Tensor, labels: Sequence[str]):
        super().__init__()
        self.model = model
        self.register_buffer("text_embeds", text_embeds.detach(), persistent=False)
        self.config = _labelled(getattr(model.config, "vision_config", None) or model.config, model, labels,
                                "image side")

    def forward(self, pixel_values: torch.Tensor, **kwargs):
        """``pixel_values`` (B, C, H, W) → ``ImageClassifierOutput(logits [B, K])``."""
        from transformers.modeling_outputs import ImageClassifierOutput

        out = self.model.get_image_features(pixel_values=pixel_values)
        image = _embeddings(out)
        image = image / image.norm(dim=-1, keepdim=True)
        logits = image @ self.text_embeds.to(image.dtype).T * self.model.logit_scale.exp()
        bias = getattr(self.model, "logit_bias", None)
        return ImageClassifierOutput(logits=logits if bias is None else logits + bias)


def zero_shot_classifier(model: nn.Module, processor, labels: Sequence[str], *,
                         template: str = "a photo of a {}.", tokenizer=None) -> ZeroShotForImageClassification:
    """A zero-shot classifier over ``labels`` from an image–text model (CLIP, SigLIP) and its processor.

    ``labels``: K ≥ 2 label names; each is embedded as ``template.format(label)`` by the text tower (``tokenizer``:
    the processor's own by default; SigLIP's prompts are padded to ``max_length``, as it was trained). Raises
    :class:`ArgumentError` naming the fix for a model without an image and a text tower, fewer than two or
    repeated labels, a template without ``{}``, or no tokenizer."""
    check_unwrapped(model)
    if not all(hasattr(model, a) for a in ("get_image_features", "get_text_features", "logit_scale")):
        raise ArgumentError(
            f"{type(model).__name__} is not an image–text model with an image and a text tower (CLIPModel, "
            f"SiglipModel, …): load it with AutoModel.from_pretrained(...), or attribute an image classifier "
            f"(*ForImageClassification) directly")
    if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) < 2:
        raise ArgumentError(f"labels must be a list of at least two label names, got {labels!r}")
    labels = [str(x) for x in labels]
    if len(set(labels)) != len(labels):
        raise ArgumentError(f"labels repeat a name: {labels}; pass each label once")
    if not isinstance(template, str) or "{}" not in template:
        raise ArgumentError(f"template must be a string with {{}} where the label goes (e.g. 'a photo of a {{}}.'), "
                            f"got {template!r}")
    tok = tokenizer if tokenizer is not None else getattr(processor, "tokenizer", None)
    if tok is None or not callable(tok):
        raise ArgumentError("the label prompts need the model's tokenizer: pass the model's processor "
                            "(AutoProcessor.from_pretrained(...), which holds both) or tokenizer=")
    siglip = str(getattr(model.config, "model_type", "")).startswith("siglip")
    enc = tok([template.format(x) for x in labels], padding="max_length" if siglip else True, return_tensors="pt")
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    if siglip:
        enc.pop("attention_mask", None)  # SigLIP reads its max_length padding as tokens (how it was trained)
    with torch.no_grad():
        text = _embeddings(private_copy(model).get_text_features(**enc))
    return ZeroShotForImageClassification(model, text / text.norm(dim=-1, keepdim=True), labels)


class ZeroShotTextForSequenceClassification(nn.Module):
    """CLIP zero-shot seen from the text side: ``input_ids`` (the prompt of label ``label``) → logits ``[B, K]``,
    the model's ``logits_per_image`` with column ``label`` from the input prompt and the other columns from the
    fixed prompts ``text_embeds`` ``[K, D]`` against the fixed ``image_embeds`` ``[D]`` (unit norm). ``config``: a
    copy of the text config naming the labels."""

    def __init__(self, model: nn.Module, image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                 labels: Sequence[str], label: int):
        super().__init__()
        self.model = model
        self.register_buffer("image_embeds", image_embeds.detach(), persistent=False)
        self.register_buffer("text_embeds", text_embeds.detach(), persistent=False)
        self.label = int(label)
        self.config = _labelled(getattr(model.config, "text_config", None) or model.config, model, labels,
                                f"text side of {labels[self.label]!r}")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """``input_ids`` (B, T) → ``SequenceClassifierOutput(logits [B, K])``."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        text = _embeddings(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        text = text / text.norm(dim=-1, keepdim=True)
        image = self.image_embeds.to(text.dtype)
        fixed = (self.text_embeds.to(text.dtype) @ image).expand(text.shape[0], -1)
        cos = torch.cat([fixed[:, : self.label], (text @ image)[:, None], fixed[:, self.label + 1 :]], dim=-1)
        return SequenceClassifierOutput(logits=cos * self.model.logit_scale.exp())


def zero_shot_text_classifier(model: nn.Module, processor, image, labels: Sequence[str], label, *,
                              template: str = "a photo of a {}.", tokenizer=None
                              ) -> ZeroShotTextForSequenceClassification:
    """The text side of CLIP zero-shot: ``image`` and the other labels' prompts fixed, the prompt of ``label`` (a
    name among ``labels`` or its index) the input. ``attribute(clf, processor.tokenizer, template.format(label),
    target=label)`` attributes F = P(label | image) over that prompt's tokens (any wording of it may be passed:
    the other labels keep ``template``). Errors as :func:`zero_shot_classifier`, plus an unknown ``label`` and
    SigLIP (its text tower reads max_length padding)."""
    if str(getattr(model.config, "model_type", "")).startswith("siglip"):
        raise ArgumentError("SigLIP's text tower reads its prompts padded to max_length, which an attribution over "
                            "the prompt's own tokens cannot give it: attribute SigLIP's image side with "
                            "zero_shot_classifier, or the text side of a CLIP model")
    clf = zero_shot_classifier(model, processor, labels, template=template, tokenizer=tokenizer)
    names = list(clf.config.id2label.values())
    index = names.index(label) if label in names else label
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(names):
        raise ArgumentError(f"label {label!r} is not one of the labels {names}: pass one of them or its index")
    check_processor(processor)
    pixels = encode_image(model, getattr(processor, "image_processor", processor), image).inputs["pixel_values"]
    with torch.no_grad():
        img = _embeddings(private_copy(model).get_image_features(pixel_values=pixels))[0]
    return ZeroShotTextForSequenceClassification(model, img / img.norm(), clf.text_embeds, names, index)


def _labelled(config, model: nn.Module, labels: Sequence[str], what: str):
    """A copy of ``config`` naming ``labels`` (``num_labels``, ``id2label``, ``label2id``, ``_name_or_path``)."""
    cfg = copy.deepcopy(config)
    cfg.num_labels = len(labels)
    cfg.id2label = {i: str(name) for i, name in enumerate(labels)}
    cfg.label2id = {str(name): i for i, name in enumerate(labels)}
    name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    cfg._name_or_path = f"{name} (zero-shot, {what}, {len(labels)} labels)"
    return cfg


def _embeddings(out) -> torch.Tensor:
    """``get_*_features`` output → ``[N, D]`` (a tensor, or a model output's ``pooler_output``)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output
