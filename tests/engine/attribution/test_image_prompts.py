"""Vision–language prompts (issue 23, LLaVA family): the next token of a prompt holding an image, attributed over
the language model's layers, checked per entry (fp64) against the reference attention of test_images.py through the
full LLaVA forward (vision tower, projector and language model, pixels in); the image tokens named by their
patches, the model left untouched (no hook leaks onto it), and errors naming the fix."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as T
from conftest import make_tokenizer
from test_images import SIDE, PATCH, STEPS, _state, make_image_model, reference_attattr

import attattr_widgets as aw
from attattr_widgets.engine.errors import ArgumentError, TargetError
from attattr_widgets.engine.model.image_prompt import image_prompt

PROMPT = "the movie <image> was"


def make_llava(strategy: str = "default", seed: int = 0):
    """A tiny float64 LLaVA (CLIP vision tower over 4 × 4 patches, 2-layer Llama with GQA) and its processor."""
    tok = make_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    images = T.CLIPImageProcessorPil(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE})
    processor = T.LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=PATCH, image_token="<image>",
                                 vision_feature_select_strategy=strategy, num_additional_image_tokens=1)
    cfg = T.LlavaConfig(
        vision_config=T.CLIPVisionConfig(image_size=SIDE, patch_size=PATCH, hidden_size=16, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=32),
        text_config=T.LlamaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  num_key_value_heads=1, intermediate_size=32, max_position_embeddings=64),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy=strategy)
    torch.manual_seed(seed)
    model = T.LlavaForConditionalGeneration(cfg).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "position" in name or "class_embedding" in name:
                p.normal_(0, 0.5)
    return model, processor


@pytest.fixture(scope="module")
def picture():
    return (np.random.default_rng(1).random((20, 24, 3)) * 255).astype(np.uint8)


def _hooks(model):
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]


@pytest.mark.parametrize("strategy", ["default", "full"])
def test_image_prompt_equals_the_reference_through_the_full_model(strategy, picture, tmp_path):
    model, processor = make_llava(strategy)
    before, hooks = _state(model), _hooks(model)
    lm = image_prompt(model, processor, picture)
    got = aw.attribute(lm, processor, PROMPT, target="pred", rule="gauss-legendre", steps=STEPS)
    after = _state(model)
    for a, b in zip(before.pop("params"), after.pop("params"), strict=True):
        assert torch.equal(a, b)
    assert before == after and _hooks(model) == hooks  # nothing registered on the user's modules
    enc = processor(images=picture, text=PROMPT, return_tensors="pt")
    inputs = {**enc, "pixel_values": enc["pixel_values"].double()}

    def score(m):
        return torch.softmax(m(**inputs).logits[0, -1], -1)[got.target]

    with torch.no_grad():
        probs = torch.softmax(model(**inputs).logits[0, -1], -1)
    assert got.target == int(probs.argmax()) and got.prob == pytest.approx(float(probs.max()), abs=1e-12)
    assert got.target_kind == "next-token"
    # the image tokens are named by their patches, between the text tokens
    extra = 1 if strategy == "full" else 0
    first = got.tokens.index("movie") + 1
    assert got.tokens[first : first + extra] == ["[IMG]"] * extra
    assert got.tokens[first + extra : first + extra + 16] == [f"({r},{c})" for r in range(4) for c in range(4)]
    assert got.tokens[first + extra + 16] == "was"
    assert (got.image.grid, got.image.first_patch, got.image.patch_size) == ((4, 4), first + extra, PATCH)
    # the language model's layers: the vision tower runs with its own P (its features are constants here)
    scores, attention = reference_attattr(model, lambda m: m(**inputs), score,
                                          exclude=lambda m: m.model.vision_tower.modules())
    assert scores.shape[0] == 2 and np.abs(scores).max() > 1e-6
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6, atol=1e-6 * np.abs(scores).max())
    np.testing.assert_allclose(got.attention, attention, rtol=1e-6, atol=1e-12)
    back = aw.Attribution.load(got.save(tmp_path / "prompt.npz"))
    assert back.image.first_patch == got.image.first_patch and back.tokens == got.tokens
    from attattr_widgets.engine.model.predict import target_options

    opts = target_options(lm, processor, PROMPT, k=3)  # the Explorer's target selector
    assert opts["kind"] == "next-token" and opts["pred"] == got.target and len(opts["options"]) == 3
    assert opts["options"][0]["prob"] == pytest.approx(got.prob, abs=1e-9)


def test_image_prompt_explains_one_next_token_not_answers(picture):
    """Answers (issue 21) are a text causal LM's: a vision-language prompt refuses generate=, per_token and
    targets of several tokens, naming what it takes."""
    model, processor = make_llava()
    lm = image_prompt(model, processor, picture)
    with pytest.raises(ArgumentError, match=r"generate= needs a text causal language model"):
        aw.attribute(lm, processor, PROMPT, generate=2, steps=2)
    with pytest.raises(ArgumentError, match=r"per_token=True needs an answer"):
        aw.attribute(lm, processor, PROMPT, target=[3, 4], per_token=True, steps=2)
    with pytest.raises(TargetError, match=r"not list"):
        aw.attribute(lm, processor, PROMPT, target=[3, 4], steps=2)
    with pytest.raises(TargetError, match=r"must be one token"):
        aw.attribute(lm, processor, PROMPT, target=" the movie was", steps=2)


def test_image_prompt_errors_name_the_fix(picture):
    model, processor = make_llava()
    lm = image_prompt(model, processor, picture)
    with pytest.raises(ArgumentError, match=r"image placeholder '<image>' exactly once"):
        aw.attribute(lm, processor, "the movie was", steps=2)
    with pytest.raises(ArgumentError, match=r"exactly once \(it has 2\)"):
        aw.attribute(lm, processor, "<image> the <image>", steps=2)
    with pytest.raises(ArgumentError, match=r"AutoProcessor\.from_pretrained"):
        aw.attribute(lm, processor.tokenizer, PROMPT, steps=2)
    with pytest.raises(ArgumentError, match="LLaVA-family"):
        image_prompt(make_image_model("vit", layers=1), processor, picture)
    with pytest.raises(ArgumentError, match=r"AutoProcessor\.from_pretrained"):
        image_prompt(model, processor.image_processor, picture)
    with pytest.raises(ArgumentError, match="grayscale"):
        image_prompt(model, processor, np.zeros((16, 16), np.uint8))
