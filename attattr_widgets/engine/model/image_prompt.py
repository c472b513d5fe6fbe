"""Vision–language prompts (LLaVA family): the next token of a prompt that holds an image, attributed over the
language model's attention, with the image tokens mapped back onto the picture's patches.

:func:`image_prompt` computes the image features once (vision tower + projector, on a private eval copy of the
model, without grad) and returns an :class:`ImagePromptForCausalLM`: ``input_ids`` (with the processor's image
placeholder tokens) → the model's own next-token logits, the fixed features spliced in where the placeholders are
(transformers' ``mm_encoder_outputs``), so only the language model runs and is attributed (the vision tower is
not: its features are constants here). It shares the user's modules and changes none of them.
:class:`~.adapters.ImagePromptAdapter` encodes a prompt with the model's processor, names each image token by its
patch ``"(r,c)"`` and records the :class:`~..results.image.ImageGrid` (``first_patch``: the first image token)::

    lm = image_prompt(llava, processor, picture)
    attr = attribute(lm, processor, "USER: <image>\\nWhat is in the picture? ASSISTANT:", target=" cat")
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ArgumentError
from ..intercept.shadow import private_copy
from ..results.image import ImageGrid
from .adapters import accepts
from .image import encode_image
from .wrappers import check_unwrapped

__all__ = ["ImagePromptForCausalLM", "image_prompt"]


class ImagePromptForCausalLM(nn.Module):
    """A vision–language model with one fixed image, as a causal LM over prompts.

    ``model``: the user's model (``LlavaForConditionalGeneration`` or one with the same ``mm_encoder_outputs``
    API; shared, never changed); ``features``: its ``get_image_features`` output for the image (N image tokens);
    ``image``: the picture as given (the processor expands the placeholder with it); ``grid``: the patch grid and
    picture (``first_patch`` is set per prompt); ``image_token_id``: the placeholder id."""

    def __init__(self, model: nn.Module, features, image, grid: ImageGrid, image_token_id: int, extra: int):
        super().__init__()
        self.model = model
        self.features = features
        self.image = image
        self.grid = grid
        self.image_token_id = int(image_token_id)
        self.extra = int(extra)  # image tokens before the patches (a kept vision [CLS]: 1)
        self.config = model.config

    @property
    def num_image_tokens(self) -> int:
        return int(self.features.pooler_output[0].shape[0])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, logits_to_keep=0,
                **kwargs):
        """``input_ids`` (B, T) with N placeholders in every row (or in none: text only) → the model's output
        (``logits`` [B, T or kept, V])."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        image = None
        if bool((input_ids == self.image_token_id).any()):
            rows = [self.features.pooler_output[0]] * input_ids.shape[0]
            image = {"image": BaseModelOutputWithPooling(pooler_output=rows)}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, mm_encoder_outputs=image,
                          logits_to_keep=logits_to_keep)


def image_prompt(model: nn.Module, processor, image) -> ImagePromptForCausalLM:
    """``model`` (a LLaVA-family ``*ForConditionalGeneration``) with ``image`` fixed, as a causal LM for
    :func:`~..attribution.api.attribute` (see the module doc). ``processor``: the model's processor (its tokenizer
    and image processor, e.g. ``AutoProcessor.from_pretrained(...)``); ``image``: a PIL image, an H×W×3 array or a
    path. Raises :class:`ArgumentError` naming the fix for a model without that API or whose image tokens are not
    one per patch (pooled or tiled projectors)."""
    check_unwrapped(model)
    cfg = model.config
    token_id = getattr(cfg, "image_token_id", None)
    if token_id is None:
        token_id = getattr(cfg, "image_token_index", None)
    takes = accepts(model, "mm_encoder_outputs")
    if not (hasattr(model, "get_image_features") and token_id is not None and takes):
        raise ArgumentError(
            f"{type(model).__name__} is not a LLaVA-family vision–language model (get_image_features, "
            f"config.image_token_id and forward(mm_encoder_outputs=...)): load it with "
            f"LlavaForConditionalGeneration.from_pretrained(...), or attribute an image classifier directly")
    if getattr(processor, "tokenizer", None) is None or getattr(processor, "image_processor", None) is None:
        raise ArgumentError("image_prompt needs the model's processor, which holds its tokenizer and image "
                            "processor: AutoProcessor.from_pretrained(<the model's name or folder>)")
    enc = encode_image(model, processor.image_processor, image)
    kwargs = {k: getattr(cfg, k) for k in ("vision_feature_layer", "vision_feature_select_strategy")
              if getattr(cfg, k, None) is not None}
    with torch.no_grad():
        features = private_copy(model).get_image_features(pixel_values=enc.inputs["pixel_values"], **kwargs)
    n = int(features.pooler_output[0].shape[0])
    grid, patches = enc.image, enc.image.num_patches
    if n not in (patches, patches + 1):
        raise ArgumentError(
            f"{type(model).__name__} turns the image into {n} tokens, not one per patch of its {grid.grid[0]} × "
            f"{grid.grid[1]} grid: its projector pools or tiles the image, which attattr-widgets cannot map back "
            f"onto the picture (supported: LLaVA-1.5-style linear/MLP projectors)")
    return ImagePromptForCausalLM(model, features, image, grid, token_id, extra=n - patches)


