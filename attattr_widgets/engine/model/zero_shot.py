"""CLIP / SigLIP zero-shot classification as an image classifier: F = the probability of one text label among the
given labels, attributed over the vision tower's patches.

:func:`zero_shot_classifier` embeds the K label prompts once (on a private eval copy of the model, without grad)
and returns a :class:`ZeroShotForImageClassification`: ``pixel_values`` → logits ``[B, K]``, exactly the model's
own ``logits_per_image`` against those prompts (CLIP: ``exp(logit_scale) · cos``; SigLIP: ``exp(logit_scale) · cos
+ logit_bias``; the softmax over the K labels is F). It shares the user's modules and parameters and changes
none of them; :func:`~..attribution.api.attribute` takes it like any ``*ForImageClassification``
(:class:`~.adapters.ImageClassifierAdapter`): ``attribute(zero_shot_classifier(clip, processor, labels),
processor, image, target="a dog")``. The text tower is not attributed (its embeddings are constants here).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ArgumentError
from ..intercept.shadow import private_copy
from .wrappers import check_unwrapped

__all__ = ["ZeroShotForImageClassification", "zero_shot_classifier"]


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
        cfg = copy.deepcopy(getattr(model.config, "vision_config", None) or model.config)
        cfg.num_labels = len(labels)
        cfg.id2label = {i: str(name) for i, name in enumerate(labels)}
        cfg.label2id = {str(name): i for i, name in enumerate(labels)}
        name = getattr(model.config, "_name_or_path", "") or type(model).__name__
        cfg._name_or_path = f"{name} (zero-shot, {len(labels)} labels)"
        self.config = cfg

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


def _embeddings(out) -> torch.Tensor:
    """``get_*_features`` output → ``[N, D]`` (a tensor, or a model output's ``pooler_output``)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output
