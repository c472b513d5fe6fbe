"""The attribution engine against independent references: default logits, a naive paper-style implementation
written here, finite differences of F along α, and the integrated-gradients completeness identity."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import FAMILIES, make_model, make_tokenizer

import attattr_widgets as aw
from attattr_widgets.engine.hooks import controller_for
from attattr_widgets.engine.quadrature import quadrature

CASES = [(f, "cls") for f in FAMILIES if f != "qwen2"] + [("gpt2", "lm"), ("llama", "lm"), ("qwen2", "lm")]
TEXT, PAIR = "the movie was not very good", "i love it"


def _inputs(tok, head):
    return tok(TEXT, PAIR, return_tensors="pt") if head == "cls" else tok(TEXT, return_tensors="pt")


@pytest.mark.parametrize("family,head", CASES)
def test_injection_reproduces_default_logits(family, head, tokenizer):
    model = make_model(family, head)
    batch = tokenizer([TEXT, "a dog"], ["i love it", "the cat sat on the mat"] if head == "cls" else None,
                      return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = model(**batch).logits  # the model's default (SDPA) implementation
        ctrl = controller_for(model)
        assert model.config._attn_implementation == "attattr"
        plain = model(**batch).logits
        with ctrl.session(alpha={1: torch.ones(2)}, head_mask={0: torch.ones(ctrl.num_heads)}, record=True):
            same = model(**batch).logits
    mask = batch["attention_mask"].bool()
    if head == "lm":  # padded positions of a causal LM are not comparable
        ref, plain, same = ref[mask], plain[mask], same[mask]
    assert (plain - ref).abs().max() <= 1e-5
    assert (same - ref).abs().max() <= 1e-5
    assert len(ctrl.attn) == ctrl.num_layers
    assert ctrl.attn[0].shape[:2] == (2, ctrl.num_heads)


@pytest.mark.parametrize("family", ["bert", "distilbert", "gpt2", "llama", "albert"])
def test_per_row_alpha_and_head_mask_equal_separate_runs(family, tokenizer):
    model = make_model(family, "cls")
    ctrl = controller_for(model)
    enc = tokenizer(TEXT, return_tensors="pt")
    alphas = torch.tensor([0.0, 0.25, 0.7, 1.0])
    keep = torch.tensor([[1.0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 0], [1, 1, 0, 1]])
    rows = {k: v.repeat(4, 1) for k, v in enc.items()}
    with torch.no_grad(), ctrl.session(alpha={1: alphas}, head_mask={2: keep}):
        together = model(**rows).logits
    for r in range(4):
        with torch.no_grad(), ctrl.session(alpha={1: alphas[r : r + 1]}, head_mask={2: keep[r]}):
            alone = model(**enc).logits
        assert torch.allclose(together[r], alone[0], atol=1e-6)


def naive_attattr(model, tokenizer, text, text_pair, layer, target, rule, steps):
    """The paper's algorithm, written independently: for each α, a full batch-1 forward with layer `layer`'s
    probabilities replaced by α·A (a hook on its attention module's output), then ∂F/∂(αA)."""
    ctrl = controller_for(model)
    enc = tokenizer(text, text_pair, return_tensors="pt") if text_pair else tokenizer(text, return_tensors="pt")
    with torch.no_grad(), ctrl.session(record=True):
        model(**enc)
        A = ctrl.attn[layer].clone()
    alphas, weights = quadrature(rule, steps)
    total = torch.zeros_like(A)
    for a, w in zip(alphas, weights):
        with ctrl.session(alpha={layer: torch.tensor([a], dtype=A.dtype)}, grad_layers={layer}):
            logits = model(**enc).logits
            if logits.dim() == 3:
                logits = logits[:, -1]
            F = torch.softmax(logits, -1)[0, target]
            (g,) = torch.autograd.grad(F, ctrl.leaves[layer])
        total += w * g
    return (A * total)[0].numpy()


@pytest.mark.parametrize("family,head", [("bert", "cls"), ("distilbert", "cls"), ("gpt2", "lm"), ("llama", "lm"),
                                         ("albert", "cls"), ("roberta", "cls")])
def test_prefix_cached_equals_naive_reference(family, head, tokenizer):
    model = make_model(family, head, dtype=torch.float64)
    for p in model.parameters():
        p.requires_grad_(False)
    pair = PAIR if head == "cls" else None
    attr = aw.attribute(model, tokenizer, TEXT, pair, rule="left", steps=5)
    for layer in range(model.config.num_hidden_layers if hasattr(model.config, "num_hidden_layers") else 3):
        ref = naive_attattr(model, tokenizer, TEXT, pair, layer, attr.target, "left", 5)
        np.testing.assert_allclose(attr.scores[layer], ref, rtol=2e-6, atol=1e-12)  # float32 storage
    if family != "albert":  # ALBERT shares one module for all layers: no prefix to cache
        assert attr.extra["method"] == "prefix"


def test_prefix_caching_skips_lower_blocks(tokenizer):
    model = make_model("bert", "cls", layers=4)
    controller_for(model)  # its discovery forward is not part of the count
    calls = [0] * 4
    for i, block in enumerate(model.bert.encoder.layer):
        block.register_forward_hook(lambda *a, i=i: calls.__setitem__(i, calls[i] + 1))
    aw.attribute(model, tokenizer, TEXT, layers=[3], steps=4)
    # clean forward (1) + zeroed-layer forward... of block 3 only + one α chunk: blocks 0..2 run only once
    assert calls[:3] == [1, 1, 1]
    assert calls[3] >= 2


def test_gradient_matches_finite_differences_along_alpha(tokenizer):
    """Σ A ⊙ ∂F/∂(αA) at α equals dF(αA)/dα, estimated by central differences."""
    model = make_model("bert", "cls", dtype=torch.float64)
    ctrl = controller_for(model)
    enc = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad(), ctrl.session(record=True):
        target = int(model(**enc).logits.argmax())
        A = ctrl.attn[1]

    def F(a):
        with torch.no_grad(), ctrl.session(alpha={1: torch.tensor([a], dtype=torch.float64)}):
            return float(torch.softmax(model(**enc).logits, -1)[0, target])

    for a in (0.0, 0.3, 0.8):
        with ctrl.session(alpha={1: torch.tensor([a], dtype=torch.float64)}, grad_layers={1}):
            Fv = torch.softmax(model(**enc).logits, -1)[0, target]
            (g,) = torch.autograd.grad(Fv, ctrl.leaves[1])
        analytic = float((A * g).sum())
        h = 1e-5
        numeric = (F(a + h) - F(a - h)) / (2 * h)
        assert abs(analytic - numeric) <= 1e-7 + 1e-5 * abs(numeric)


# ---- a small model trained here, so the α-integrand is not nearly linear (random weights are too easy) ----

POS, NEG = ["great", "good", "fun", "best", "love"], ["bad", "awful", "boring", "worst", "hate"]
FILL = ["the", "movie", "film", "plot", "was", "is", "a", "story", "and", "but", "really", "it"]


def _synthetic(n, rng):
    """Label 1 when positive words outnumber negative ones; 10% label noise keeps the softmax unsaturated."""
    texts, labels = [], []
    for _ in range(n):
        k = rng.integers(4, 10)
        words = list(rng.choice(FILL, size=k))
        p, q = rng.integers(0, 3), rng.integers(0, 3)
        while p == q:
            q = rng.integers(0, 3)
        for w in list(rng.choice(POS, size=p)) + list(rng.choice(NEG, size=q)):
            words.insert(int(rng.integers(0, len(words) + 1)), w)
        y = int(p > q)
        if rng.random() < 0.1:
            y = 1 - y
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tok = make_tokenizer()
    model = make_model("bert", "cls", layers=2, heads=4, hidden=32, num_labels=2)
    model.train()
    texts, labels = _synthetic(512, rng)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        idx = rng.choice(len(texts), size=32)
        batch = tok([texts[i] for i in idx], return_tensors="pt", padding=True)
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([labels[i] for i in idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test_texts, test_labels = _synthetic(200, rng)
    with torch.no_grad():
        pred = model(**tok(test_texts, return_tensors="pt", padding=True)).logits.argmax(-1)
    acc = (pred == torch.tensor(test_labels)).float().mean().item()
    assert acc > 0.75, f"the test model did not learn its task (accuracy {acc:.2f})"
    return model.double(), tok, test_texts


def test_gauss_legendre_completeness_on_trained_model(trained):
    model, tok, texts = trained
    errors = []
    for text in texts[:3]:
        attr = aw.attribute(model, tok, text, rule="gauss-legendre", steps=6)
        delta = attr.prob - attr.layer_zero_probs
        assert np.all(np.abs(delta) > 1e-6), "the trained model is saturated; completeness would be ill-posed"
        errors.append(attr.completeness)
        # completeness recomputed here from the raw arrays, not from the engine's diagnostic
        sums = attr.scores.reshape(len(attr.layers), -1).sum(-1)
        # (scores are stored in float32, so the recomputed sums carry ~1e-7 relative rounding)
        np.testing.assert_allclose(np.abs(sums - delta) / np.abs(delta), attr.completeness, rtol=0, atol=1e-6)
    assert np.max(errors) <= 1e-3


@pytest.mark.parametrize("rule", ["left", "right", "midpoint", "gauss-legendre"])
def test_completeness_error_decreases_with_steps(trained, rule):
    model, tok, texts = trained
    text = texts[0]
    steps = [1, 2, 4, 8] if rule == "gauss-legendre" else [2, 4, 8, 16]
    errs = [np.median(aw.attribute(model, tok, text, rule=rule, steps=m).completeness) for m in steps]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs


# ---- API behaviour -------------------------------------------------------------------------------------------


def test_layers_subset_progress_and_targets(tokenizer):
    model = make_model("bert", "cls", num_labels=3)
    model.config.id2label = {0: "neg", 1: "neu", 2: "pos"}
    model.config.label2id = {"neg": 0, "neu": 1, "pos": 2}
    full = aw.attribute(model, tokenizer, TEXT, PAIR, steps=3)
    seen = []
    part = aw.attribute(model, tokenizer, TEXT, PAIR, steps=3, layers=[2, 0], progress=seen.append)
    assert part.layers == [2, 0] and [r.layer for r in seen] == [2, 0] and seen[0].total == 2
    np.testing.assert_allclose(part.scores[0], full.scores[2], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(seen[1].scores, part.scores[1])
    assert full.tokens[0] == "[CLS]" and full.token_type_ids[-1] == 1 and full.token_type_ids[1] == 0
    by_name = aw.attribute(model, tokenizer, TEXT, steps=2, target="pos", layers=[0])
    by_int = aw.attribute(model, tokenizer, TEXT, steps=2, target=2, layers=[0])
    assert by_name.target == by_int.target == 2 and by_name.target_label == "pos"
    np.testing.assert_array_equal(by_name.scores, by_int.scores)


def test_next_token_target_by_string(tokenizer):
    model = make_model("gpt2", "lm")
    attr = aw.attribute(model, tokenizer, "the capital of france is", target="paris", steps=2, layers=[0])
    assert attr.target == tokenizer.convert_tokens_to_ids("paris") and attr.target_kind == "next-token"
    with pytest.raises(aw.TargetError, match="tokens"):
        aw.attribute(model, tokenizer, "the capital", target="paris france", steps=2)


def test_save_load_round_trip(tmp_path, tokenizer):
    model = make_model("bert", "cls")
    attr = aw.attribute(model, tokenizer, TEXT, PAIR, steps=2, layers=[1, 2])
    back = aw.Attribution.load(attr.save(tmp_path / "a.npz"))
    for name in ("scores", "attention", "token_type_ids", "layer_zero_probs", "completeness"):
        np.testing.assert_array_equal(getattr(back, name), getattr(attr, name))
        assert getattr(back, name).dtype == getattr(attr, name).dtype
    for name in ("tokens", "target", "target_label", "prob", "layers", "rule", "steps", "text", "text_pair",
                 "label_names", "num_layers", "extra"):
        assert getattr(back, name) == getattr(attr, name), name


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_batched_attributions_equal_single_examples(family, tokenizer):
    model = make_model(family, "cls")
    examples = [{"text": "a dog", "label": 0}, {"text": TEXT, "text_pair": PAIR, "label": 2},
                {"text": "the cat sat on the mat", "label": 1}]
    batched = list(aw.iter_attributions(model, tokenizer, examples, batch_size=3, steps=3))
    for ex, got in zip(examples, batched):
        ref = aw.attribute(model, tokenizer, ex["text"], ex.get("text_pair"), target=ex["label"], steps=3)
        assert got.tokens == ref.tokens and got.target == ex["label"]
        np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(got.head_scores(), ref.head_scores(), rtol=1e-4, atol=1e-7)


def test_cancel_stops_the_run(tokenizer):
    model = make_model("bert", "cls")
    cancel = threading.Event()

    seen = []

    def stop_after_first(result):
        seen.append(result.layer)
        cancel.set()

    with pytest.raises(aw.AttributionCancelled):
        aw.attribute(model, tokenizer, TEXT, steps=2, progress=stop_after_first, cancel=cancel)
    assert seen == [0]  # stopped before layer 1 started
    assert all(p.requires_grad for p in model.parameters()) and not model.training  # state restored


def test_parameters_and_mode_are_restored(tokenizer):
    model = make_model("bert", "cls")
    model.train()
    aw.attribute(model, tokenizer, TEXT, steps=2, layers=[0])
    assert model.training and all(p.requires_grad for p in model.parameters())


# ---- bad input ----------------------------------------------------------------------------------------------


def test_empty_text(tokenizer):
    model = make_model("bert", "cls")
    for bad in ("", "   "):
        with pytest.raises(aw.EmptyInputError, match="empty"):
            aw.attribute(model, tokenizer, bad)
    with pytest.raises(aw.EmptyInputError, match="text_pair"):
        aw.attribute(model, tokenizer, TEXT, "")


def test_too_long_input_errors_or_truncates(tokenizer):
    model = make_model("bert", "cls")  # 64 positions
    long_text = " ".join(["good"] * 100)
    with pytest.raises(aw.InputTooLongError, match="truncation=True"):
        aw.attribute(model, tokenizer, long_text)
    attr = aw.attribute(model, tokenizer, long_text, truncation=True, steps=1, layers=[0])
    assert attr.truncated and attr.num_tokens == 64


def test_target_out_of_range(tokenizer):
    model = make_model("bert", "cls", num_labels=3)
    with pytest.raises(aw.TargetError, match="out of range"):
        aw.attribute(model, tokenizer, TEXT, target=3)
    with pytest.raises(aw.TargetError, match="gold"):
        aw.attribute(model, tokenizer, TEXT, target="gold")
    with pytest.raises(aw.TargetError, match="unknown class"):
        aw.attribute(model, tokenizer, TEXT, target="nonsense")
    with pytest.raises(aw.AttAttrError, match="layers"):
        aw.attribute(model, tokenizer, TEXT, layers=[7])


def test_model_without_head(tokenizer):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64)).eval()
    with pytest.raises(aw.NoClassificationHeadError, match="AutoModelForSequenceClassification"):
        aw.attribute(model, tokenizer, TEXT)


@pytest.mark.parametrize("name", ["deberta-v2", "xlnet", "falcon"])
def test_unsupported_architectures_raise(name, tokenizer):
    import transformers as T

    cfg = {
        "deberta-v2": lambda: T.DebertaV2Config(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                num_attention_heads=4, intermediate_size=64),
        "xlnet": lambda: T.XLNetConfig(vocab_size=100, d_model=32, n_layer=2, n_head=4, d_inner=64),
        "falcon": lambda: T.FalconConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
    }[name]()
    model = T.AutoModelForSequenceClassification.from_config(cfg).eval()
    with pytest.raises(aw.UnsupportedModelError, match="Supported"):
        aw.attribute(model, tokenizer, TEXT)


def test_unknown_rule_and_steps(tokenizer):
    model = make_model("bert", "cls")
    with pytest.raises(aw.AttAttrError, match="gauss-legendre"):
        aw.attribute(model, tokenizer, TEXT, rule="simpson")
    with pytest.raises(aw.AttAttrError, match="steps"):
        aw.attribute(model, tokenizer, TEXT, steps=0)


# ---- attention-function details: softcap, position_bias, boolean masks ------------------------------------


def test_gemma2_softcap_and_sliding_window_match_eager(tokenizer):
    import transformers as T

    torch.manual_seed(0)
    cfg = T.Gemma2Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                         attn_logit_softcapping=5.0, sliding_window=4, pad_token_id=0)
    model = T.Gemma2ForCausalLM(cfg).eval()
    enc = tokenizer(TEXT, return_tensors="pt")
    enc.pop("token_type_ids")
    with torch.no_grad():
        ref = model(**enc).logits  # Gemma2 defaults to eager
        controller_for(model)
        ours = model(**enc).logits
    assert (ours - ref).abs().max() <= 1e-5
    attr = aw.attribute(model, tokenizer, TEXT, steps=2, layers=[1])
    assert np.isfinite(attr.scores).all()


def test_t5_position_bias_matches_eager():
    """Encoder–decoders are refused for attribution, but the attention function itself handles T5's bias."""
    import transformers as T

    from attattr_widgets.engine.hooks import register_attention

    torch.manual_seed(0)
    cfg = T.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0)
    model = T.T5ForConditionalGeneration(cfg).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 1]])
    dec = torch.tensor([[0, 5, 6]])
    with torch.no_grad():
        model.set_attn_implementation("eager")
        ref = model(input_ids=ids, decoder_input_ids=dec).logits
        register_attention()
        model.set_attn_implementation("attattr")
        ours = model(input_ids=ids, decoder_input_ids=dec).logits
    assert (ours - ref).abs().max() <= 1e-5
    with pytest.raises(aw.UnsupportedModelError, match="encoder-decoder"):
        controller_for(model)


def test_boolean_and_additive_masks_agree():
    from attattr_widgets.engine.hooks import attattr_attention_forward

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8) for _ in range(3))
    keep = torch.rand(2, 1, 5, 5) > 0.3
    keep[..., 0] = True
    additive = torch.zeros(2, 1, 5, 5).masked_fill(~keep, torch.finfo(torch.float32).min)
    module = torch.nn.Module()
    out_b, p_b = attattr_attention_forward(module, q, k, v, keep)
    out_a, p_a = attattr_attention_forward(module, q, k, v, additive)
    assert torch.allclose(p_b, p_a) and torch.allclose(out_b, out_a)
    assert (p_b.masked_select(~keep.expand_as(p_b)) == 0).all()


# ---- memory: chunking and out-of-memory recovery ------------------------------------------------------------


def test_tiny_memory_budget_gives_identical_results(tokenizer):
    model = make_model("bert", "cls", dtype=torch.float64)
    big = aw.attribute(model, tokenizer, TEXT, steps=5)
    small = aw.attribute(model, tokenizer, TEXT, steps=5, memory_budget=1)  # one α row per chunk
    np.testing.assert_allclose(small.scores, big.scores, rtol=1e-10, atol=1e-15)


def test_out_of_memory_halves_the_chunk_then_reports_clearly(tokenizer, monkeypatch):
    from attattr_widgets.engine import attribution as engine

    model = make_model("bert", "cls", dtype=torch.float64)
    ref = aw.attribute(model, tokenizer, TEXT, steps=4)
    real = engine._Engine._grad_chunk
    sizes = []

    def flaky(self, batch, layer, hidden, targets, alphas, k):
        sizes.append(k)
        if k > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batch, layer, hidden, targets, alphas, k)

    monkeypatch.setattr(engine._Engine, "_grad_chunk", flaky)
    got = aw.attribute(model, tokenizer, TEXT, steps=4)
    assert sizes[:3] == [4, 2, 1]
    np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-10, atol=1e-15)

    def always(self, *a):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(engine._Engine, "_grad_chunk", always)
    with pytest.raises(aw.AttributionOutOfMemoryError, match="shorter text"):
        aw.attribute(model, tokenizer, TEXT, steps=4)


def test_examples_from_a_datasets_dataset_and_bad_collections(tokenizer):
    from datasets import Dataset

    from attattr_widgets.engine.examples import Example, as_examples

    rows = {"text": ["a dog", TEXT], "text_pair": [None, PAIR], "label": [0, 2]}
    assert as_examples(Dataset.from_dict(rows)) == [Example("a dog", None, 0), Example(TEXT, PAIR, 2)]
    model = make_model("bert", "cls")
    got = list(aw.iter_attributions(model, tokenizer, Dataset.from_dict(rows), steps=2, layers=[0]))
    assert [a.target for a in got] == [0, 2] and got[1].text_pair == PAIR
    for bad, match in (([], "no examples"), ("a string", "not one string"), ([{"label": 1}], "no 'text'")):
        with pytest.raises(aw.AttAttrError, match=match):
            as_examples(bad)
