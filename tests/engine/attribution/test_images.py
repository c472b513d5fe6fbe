"""Image classifiers (issue 23): AttAttr over a vision transformer's patches, checked per entry against an
independent reference — an attention function of this test's own, registered through transformers'
AttentionInterface, that forms P explicitly and differentiates F with autograd w.r.t. α·P — for tiny ViT and DeiT
(with its distillation token) models built from configs in float64; the inputs it accepts, the errors it gives
(each naming the fix), the model left untouched, and the result's picture saved and checked on load.

Tested families: ViTForImageClassification, DeiTForImageClassification, DeiTForImageClassificationWithTeacher,
Dinov2ForImageClassification (also with its 4 register tokens), CLIPForImageClassification (the vision tower of CLIP with a linear head) and
SiglipForImageClassification (no [CLS]: patches only, pooled by an attention head outside the interface); and
CLIP / SigLIP zero-shot (zero_shot_classifier), F from the full image–text forward."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import transformers as T

import attattr_widgets as aw
from attattr_widgets.engine.errors import ArgumentError, ResultFileError
from attattr_widgets.engine.results import ImageGrid

SIDE, PATCH = 16, 4
STEPS = 8
REF_IMPL = "attattr_test_image_reference"

FAMILIES = {
    "vit": (T.ViTConfig, T.ViTForImageClassification, ["[CLS]"]),
    "deit": (T.DeiTConfig, T.DeiTForImageClassification, ["[CLS]", "[DIST]"]),
    "deit-teacher": (T.DeiTConfig, T.DeiTForImageClassificationWithTeacher, ["[CLS]", "[DIST]"]),
    "dinov2": (T.Dinov2Config, T.Dinov2ForImageClassification, ["[CLS]"]),
    "dinov2-registers": (T.Dinov2WithRegistersConfig, T.Dinov2WithRegistersForImageClassification,
                         ["[CLS]", "[REG0]", "[REG1]", "[REG2]", "[REG3]"]),
    "clip": (T.CLIPConfig, T.CLIPForImageClassification, ["[CLS]"]),
    "siglip": (T.SiglipConfig, T.SiglipForImageClassification, []),
}


def make_image_model(family: str, layers: int = 2, heads: int = 2, seed: int = 0):
    """A tiny float64 image classifier with every embedding drawn at random (transformers initialises the
    [CLS] / [DIST] tokens and positions to zero, which leaves LayerNorm near-singular at α = 0)."""
    Cfg, Cls, _ = FAMILIES[family]
    torch.manual_seed(seed)
    tower = dict(image_size=SIDE, patch_size=PATCH, num_channels=3, hidden_size=16, num_hidden_layers=layers,
                 num_attention_heads=heads, intermediate_size=32)
    if family in ("clip", "siglip"):  # a vision tower and a text tower; the classifier runs the vision tower only
        text = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                    bos_token_id=0, eos_token_id=1, pad_token_id=1)
        tower = dict(vision_config=tower, text_config=text)
    cfg = Cfg(**tower, num_labels=3, id2label={0: "cat", 1: "dog", 2: "bird"},
              label2id={"cat": 0, "dog": 1, "bird": 2})
    model = Cls(cfg).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "token" in name or "position" in name or "class_embedding" in name:
                p.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def processor():
    return T.ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


@pytest.fixture(scope="module")
def picture():
    """A 20 × 24 RGB picture (the processor resizes it to 16 × 16)."""
    return (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)


# ---- the independent reference ------------------------------------------------------------------------------


class _Ref:
    """What the reference attention does: ``layers`` maps each vision attention module (by id) to its layer, as
    recorded on a first forward; at layer ``layer`` it uses X = α·P as the probabilities, X a fresh autograd leaf.
    Other attention modules (a text tower's) compute their own P."""

    layers: dict[int, int] = {}
    record: list[int] | None = None
    layer: int | None = None
    row: int = 0
    alpha: float = 1.0
    P: torch.Tensor | None = None
    X: torch.Tensor | None = None


def _reference_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention with explicit probabilities P = softmax(Q Kᵀ · scaling + mask), written for this test."""
    if key.shape[1] != query.shape[1]:  # grouped-query attention (a VLM's language model)
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    scores = torch.matmul(query, key.transpose(-1, -2)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    elif attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    elif kwargs.get("is_causal", getattr(module, "is_causal", False)) and query.shape[-2] > 1:
        causal = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    P = torch.softmax(scores, dim=-1)
    if _Ref.record is not None:
        _Ref.record.append(id(module))
    elif _Ref.layer is not None and _Ref.layers.get(id(module)) == _Ref.layer:
        r = _Ref.row  # the batch row whose P is scaled (the others compute their own)
        _Ref.P = P[r : r + 1].detach()
        _Ref.X = (_Ref.alpha * _Ref.P).requires_grad_(True)
        P = torch.cat([P[:r], _Ref.X, P[r + 1 :]])
    return torch.matmul(P, value).transpose(1, 2).contiguous(), P


T.AttentionInterface.register(REF_IMPL, _reference_attention)


def reference_attattr(model, record, score, steps: int = STEPS, exclude=lambda copy: (), row: int = 0):
    """``(scores [L, H, n, n], attention [L, H, n, n])``: Attr_l = P_l ⊙ Σ_k w_k ∂F/∂X |_(X = α_k P_l), F =
    ``score(copy)`` on a deep copy of ``model`` running the reference attention, Gauss–Legendre nodes on [0, 1]
    (numpy's), every other layer computing its own P. ``record(copy)`` runs the attributed tower once to record
    its attention modules in call order (the layers), less those among ``exclude(copy)``'s modules; ``row``: the
    batch row of that tower whose P is scaled (a text tower reading K prompts at once)."""
    _Ref.row = row
    ref = copy.deepcopy(model)
    ref.set_attn_implementation(REF_IMPL)
    _Ref.record = []
    with torch.no_grad():
        record(ref)
    left_out = {id(m) for m in exclude(ref)}
    order = [m for m in dict.fromkeys(_Ref.record) if m not in left_out]
    _Ref.layers, _Ref.record = {m: i for i, m in enumerate(order)}, None
    x, w = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (x + 1) / 2, w / 2
    scores, attention = [], []
    for layer in range(len(_Ref.layers)):
        grad = 0
        for a, wk in zip(alphas, weights):
            _Ref.layer, _Ref.alpha = layer, float(a)
            (g,) = torch.autograd.grad(score(ref), _Ref.X)
            grad = grad + wk * g[0]
        scores.append((_Ref.P[0] * grad).numpy())
        attention.append(_Ref.P[0].numpy())
    _Ref.layer = None
    return np.stack(scores), np.stack(attention)


def classifier_reference(model, pixel_values, target):
    """:func:`reference_attattr` of an image classifier: F = softmax(logits)[target]."""
    return reference_attattr(model, lambda m: m(pixel_values=pixel_values),
                             lambda m: torch.softmax(m(pixel_values=pixel_values).logits, -1)[0, target])


def _state(model):
    return {"impl": model.config._attn_implementation, "training": [m.training for m in model.modules()],
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "params": [p.detach().clone() for p in model.parameters()],
            "modules": [(n, id(m), type(m)) for n, m in model.named_modules()],
            "attrs": [sorted(vars(m)) for m in model.modules()]}


# ---- equality with the reference ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_image_attattr_equals_the_reference_per_entry_and_leaves_the_model_alone(family, processor, picture):
    model = make_image_model(family)
    before = _state(model)
    got = aw.attribute(model, processor, picture, rule="gauss-legendre", steps=STEPS)
    after = _state(model)
    for a, b in zip(before.pop("params"), after.pop("params"), strict=True):
        assert torch.equal(a, b)
    assert before == after
    pv = processor(images=picture, return_tensors="pt")["pixel_values"].double()
    with torch.no_grad():
        logits = model(pixel_values=pv).logits[0]
    assert got.target == int(logits.argmax()) and got.target_label == ["cat", "dog", "bird"][got.target]
    assert got.prob == pytest.approx(float(torch.softmax(logits, -1).max()), abs=1e-12)
    scores, attention = classifier_reference(model, pv, got.target)
    assert got.scores.dtype == np.float64 and got.scores.shape == scores.shape
    assert np.abs(scores).max() > 1e-6  # a map worth comparing
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6, atol=1e-6 * np.abs(scores).max())
    np.testing.assert_allclose(got.attention, attention, rtol=1e-6, atol=1e-12)
    assert float(np.max(got.completeness)) < 1e-4  # 8 Gauss–Legendre nodes on a smooth tiny model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tokens_and_the_patch_grid(family, processor, picture):
    model = make_image_model(family, layers=1)
    streamed = []
    got = aw.attribute(model, processor, picture, steps=2, progress=streamed.append)
    assert streamed and all(r.image is got.image for r in streamed)  # each layer carries the picture (encoded once)
    prefix = FAMILIES[family][2]
    rows = cols = SIDE // PATCH
    assert got.tokens == prefix + [f"({r},{c})" for r in range(rows) for c in range(cols)]
    img = got.image
    assert isinstance(img, ImageGrid)
    assert (img.grid, img.first_patch, img.patch_size) == ((rows, cols), len(prefix), PATCH)
    assert img.first_patch + img.num_patches == got.num_tokens and got.tokens[img.token_of(1, 2)] == "(1,2)"
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (SIDE, SIDE, 3)
    # the picture as the model saw it: the processor's resize of the input, normalisation undone
    from PIL import Image

    seen = np.asarray(Image.fromarray(picture).resize((SIDE, SIDE), Image.BILINEAR))
    assert np.abs(img.pixels.astype(int) - seen.astype(int)).max() <= 1
    assert got.text is None and got.text_pair is None
    np.testing.assert_array_equal(img.patch_values(got.scores[0, 0, 0]),
                                  got.scores[0, 0, 0, len(prefix):].reshape(rows, cols))


def test_every_form_of_the_image_gives_the_same_result(processor, picture, tmp_path):
    from PIL import Image

    model = make_image_model("vit", layers=1)
    want = aw.attribute(model, processor, picture, steps=3)
    path = tmp_path / "picture.png"
    Image.fromarray(picture).save(path)
    pv = processor(images=picture, return_tensors="pt")["pixel_values"]
    for image in (Image.fromarray(picture), Image.fromarray(picture).convert("RGBA"), str(path), path, pv,
                  pv.numpy(), torch.as_tensor(picture), picture.astype(np.float32)):
        got = aw.attribute(model, processor, image, steps=3)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-13)
        np.testing.assert_array_equal(got.image.pixels, want.image.pixels)


def test_a_large_picture_is_kept_at_most_224_pixels_a_side(processor):
    model = make_image_model("vit", layers=1)
    big = T.ViTImageProcessorPil(size={"height": SIDE, "width": SIDE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    got = aw.attribute(model, big, np.zeros((300, 500, 3), np.uint8), steps=2)
    assert got.image.pixels.shape == (SIDE, SIDE, 3)  # as the model saw it (16 × 16), not the 300 × 500 input
    from attattr_widgets.engine.model.image import _picture

    shrunk = _picture(torch.zeros(3, 300, 450), processor)
    assert shrunk.shape == (149, 224, 3)
    raw = T.ViTImageProcessorPil(do_rescale=False, do_normalize=False)  # values stay 0..255
    assert _picture(torch.full((3, 2, 2), 200.0), raw).max() == 200


def test_target_by_class_name_and_top_k_options(processor, picture):
    from attattr_widgets.engine.model.predict import target_options

    model = make_image_model("vit", layers=1)
    got = aw.attribute(model, processor, picture, target="bird", steps=2)
    assert (got.target, got.target_label) == (2, "bird")
    opts = target_options(model, processor, picture, k=2)
    assert opts["kind"] == "class" and len(opts["options"]) == 2
    probs = [o["prob"] for o in opts["options"]]
    assert probs == sorted(probs, reverse=True) and opts["options"][0]["id"] == opts["pred"]


# ---- CLIP / SigLIP zero-shot ---------------------------------------------------------------------------------

LABELS = ["cat", "dog", "bird"]


def make_image_text_model(family: str, seed: int = 0):
    """A tiny float64 CLIPModel / SiglipModel (vision: 2 layers over 4 × 4 patches; text: the test tokenizer's
    vocabulary) with random positions and class embedding."""
    from conftest import make_tokenizer

    Cfg, Cls = {"clip": (T.CLIPConfig, T.CLIPModel), "siglip": (T.SiglipConfig, T.SiglipModel)}[family]
    torch.manual_seed(seed)
    vision = dict(image_size=SIDE, patch_size=PATCH, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32)
    text = dict(vocab_size=len(make_tokenizer()), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=16, bos_token_id=2, eos_token_id=3, pad_token_id=0)
    extra = {"projection_dim": 8} if family == "clip" else {}
    model = Cls(Cfg(vision_config=vision, text_config=text, **extra)).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "position" in name or "class_embedding" in name:
                p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_zero_shot_equals_the_reference_through_the_full_model(family, processor, picture):
    """F is the full image–text forward's softmax over the label prompts (logits_per_image, text tower
    included); the attribution over the vision tower's patches equals the reference per entry."""
    from conftest import make_tokenizer

    from attattr_widgets.engine.model.zero_shot import zero_shot_classifier

    model, tok = make_image_text_model(family), make_tokenizer()
    before = _state(model)
    clf = zero_shot_classifier(model, processor, LABELS, tokenizer=tok)
    got = aw.attribute(clf, processor, picture, target="dog", rule="gauss-legendre", steps=STEPS)
    after = _state(model)
    for a, b in zip(before.pop("params"), after.pop("params"), strict=True):
        assert torch.equal(a, b)
    assert before == after
    prompts = tok([f"a photo of a {x}." for x in LABELS], padding="max_length" if family == "siglip" else True,
                  return_tensors="pt")
    text = {"input_ids": prompts["input_ids"]}
    if family == "clip":
        text["attention_mask"] = prompts["attention_mask"]
    pv = processor(images=picture, return_tensors="pt")["pixel_values"].double()

    def score(m):
        return torch.softmax(m(**text, pixel_values=pv).logits_per_image, -1)[0, 1]

    with torch.no_grad():
        assert got.prob == pytest.approx(float(score(model)), abs=1e-12)
    assert (got.target, got.target_label, got.label_names) == (1, "dog", LABELS)
    assert got.tokens[: got.image.first_patch] == (["[CLS]"] if family == "clip" else [])
    scores, attention = reference_attattr(model, lambda m: m.get_image_features(pixel_values=pv), score)
    assert np.abs(scores).max() > 1e-6
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6, atol=1e-6 * np.abs(scores).max())
    np.testing.assert_allclose(got.attention, attention, rtol=1e-6, atol=1e-12)


def test_zero_shot_text_side_equals_the_reference_through_the_full_model(processor, picture):
    """The prompt of one label attributed in the text tower: F is the full CLIP forward's softmax over all the
    prompts (image tower included); the reference scales the attention of that prompt's row only."""
    from conftest import make_tokenizer

    from attattr_widgets.engine.model.zero_shot import zero_shot_text_classifier

    model, tok = make_image_text_model("clip"), make_tokenizer()
    before = _state(model)
    clf = zero_shot_text_classifier(model, processor, picture, LABELS, "dog", tokenizer=tok)
    got = aw.attribute(clf, tok, "a photo of a dog.", target="dog", rule="gauss-legendre", steps=STEPS)
    after = _state(model)
    for a, b in zip(before.pop("params"), after.pop("params"), strict=True):
        assert torch.equal(a, b)
    assert before == after
    prompts = tok([f"a photo of a {x}." for x in LABELS], padding=True, return_tensors="pt")
    assert got.tokens == tok.convert_ids_to_tokens(prompts["input_ids"][1])  # one length: no padding anywhere
    pv = processor(images=picture, return_tensors="pt")["pixel_values"].double()

    def score(m):
        return torch.softmax(m(**prompts, pixel_values=pv).logits_per_image, -1)[0, 1]

    with torch.no_grad():
        assert got.prob == pytest.approx(float(score(model)), abs=1e-12)
    assert got.image is None and (got.target, got.target_label) == (1, "dog")
    scores, attention = reference_attattr(model, lambda m: m.get_text_features(**prompts), score, row=1)
    assert np.abs(scores).max() > 1e-6
    np.testing.assert_allclose(got.scores, scores, rtol=1e-6, atol=1e-6 * np.abs(scores).max())
    np.testing.assert_allclose(got.attention, attention, rtol=1e-6, atol=1e-12)
    with pytest.raises(ArgumentError, match="not one of the labels"):
        zero_shot_text_classifier(model, processor, picture, LABELS, "fish", tokenizer=tok)
    with pytest.raises(ArgumentError, match="SigLIP"):
        zero_shot_text_classifier(make_image_text_model("siglip"), processor, picture, LABELS, 0, tokenizer=tok)


def test_zero_shot_refuses_what_it_cannot_use_naming_the_fix(processor):
    from conftest import make_tokenizer

    from attattr_widgets.engine.model.zero_shot import zero_shot_classifier

    model, tok = make_image_text_model("clip"), make_tokenizer()
    for kwargs, words in [
        (dict(labels=["cat"]), "at least two"),
        (dict(labels="cat"), "at least two"),
        (dict(labels=["cat", "cat"]), "repeat"),
        (dict(labels=LABELS, template="a photo"), r"\{\}"),
        (dict(labels=LABELS, tokenizer=None), r"AutoProcessor\.from_pretrained"),
    ]:
        kwargs = {"tokenizer": tok, **kwargs}
        with pytest.raises(ArgumentError, match=words):
            zero_shot_classifier(model, processor, **kwargs)
    with pytest.raises(ArgumentError, match="image–text model"):
        zero_shot_classifier(make_image_model("vit", layers=1), processor, LABELS, tokenizer=tok)


# ---- bad input names the fix --------------------------------------------------------------------------------


@pytest.mark.parametrize("image, words", [
    (np.zeros((16, 16), np.uint8), r"grayscale.*np\.stack"),
    (np.zeros((16, 16, 4), np.uint8), r"H×W×3"),
    (np.zeros((3, 16, 16), np.float32), r"channels-first.*transpose\(1, 2, 0\)"),
    (np.zeros((2, 3, 16, 16), np.float32), r"2 images.*one image at a time"),
    (np.zeros((1, 3, 32, 32), np.float32), r"\(1, 3, 16, 16\).*pass the picture itself"),
    (np.full((16, 16, 3), np.nan), r"finite"),
    ("no/such/picture.png", r"does not exist"),
    ("the movie was great", r"does not exist"),
    (12, r"PIL image, an H×W×3 array, a path"),
])
def test_bad_images_are_refused_naming_the_fix(image, words, processor):
    model = make_image_model("vit", layers=1)
    with pytest.raises(ArgumentError, match=words):
        aw.attribute(model, processor, image, steps=2)


def test_a_file_that_is_not_an_image(tmp_path, processor):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(ArgumentError, match="not an image file"):
        aw.attribute(make_image_model("vit", layers=1), processor, bad, steps=2)


def test_a_missing_processor_or_a_text_tokenizer_is_refused_naming_the_processor(picture):
    model = make_image_model("vit", layers=1)
    with pytest.raises(ArgumentError, match=r"AutoImageProcessor\.from_pretrained"):
        aw.attribute(model, None, picture, steps=2)
    from conftest import make_tokenizer

    with pytest.raises(ArgumentError, match=r"text tokenizer.*AutoImageProcessor"):
        aw.attribute(model, make_tokenizer(), picture, steps=2)


def test_dataset_level_runs_refuse_images_naming_attribute(processor, picture):
    from PIL import Image

    model = make_image_model("vit", layers=1)
    for examples in ([{"image": picture, "label": 1}], [{"text": picture, "label": 1}],
                     [{"text": Image.fromarray(picture)}]):
        with pytest.raises(ArgumentError, match=r"example 0 is an image.*attribute\(model, processor, image\)"):
            list(aw.iter_attributions(model, processor, examples))
    with pytest.raises(ArgumentError, match="example 0 is an image"):
        aw.head_importance(model, processor, [{"image": picture, "label": 1}], method="attention")


def test_a_text_pair_is_refused(processor, picture):
    with pytest.raises(ArgumentError, match="text_pair does not apply to an image classifier"):
        aw.attribute(make_image_model("vit", layers=1), processor, picture, "a caption", steps=2)


# ---- the result file ----------------------------------------------------------------------------------------


def _saved_meta(result, tmp_path):
    path = result.save(tmp_path / "image.npz")
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    return json.loads(str(arrays.pop("__meta__"))), arrays


def test_save_load_round_trips_the_picture_and_the_grid(processor, picture, tmp_path):
    got = aw.attribute(make_image_model("deit", layers=1), processor, picture, steps=2)
    back = aw.Attribution.load(got.save(tmp_path / "a.npz"))
    assert (back.image.grid, back.image.first_patch, back.image.patch_size) == ((4, 4), 2, PATCH)
    np.testing.assert_array_equal(back.image.pixels, got.image.pixels)
    assert back.image.pixels.dtype == np.uint8 and back.tokens == got.tokens
    np.testing.assert_array_equal(back.scores, got.scores)


@pytest.mark.parametrize("edit, words", [
    (lambda img: img.update(grid=[5, 4]), r"2 token\(s\) before a 5 × 4 patch grid, which needs 22 tokens, but "
                                          r"there are 18"),
    (lambda img: img.update(first_patch=3), r"3 token\(s\) before a 4 × 4 patch grid"),
    (lambda img: img.update(grid=[4]), r"not \(rows, cols\)"),
    (lambda img: img.update(pixels=[[[0, 0]]]), r"expected \[h, w, 3\]"),
    (lambda img: img.update(pixels=[[[0, 0, 300]]]), r"0\.\.255"),
    (lambda img: img.update(pixels=np.zeros((225, 2, 3), int).tolist()), r"sides ≤ 224"),
    (lambda img: img.update(extra=1), r"unknown field"),
])
def test_a_file_whose_picture_does_not_fit_its_tokens_is_refused(edit, words, processor, picture, tmp_path):
    got = aw.attribute(make_image_model("deit", layers=1), processor, picture, steps=2)
    meta, arrays = _saved_meta(got, tmp_path)
    edit(meta["fields"]["image"])
    path = tmp_path / "crafted.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, __meta__=np.array(json.dumps(meta)))
    with pytest.raises(ResultFileError, match=words):
        aw.Attribution.load(path)
