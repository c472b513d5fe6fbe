"""The model-adapter seam (engine/model/adapters.py): selection per model family, the refusals with their
messages, targets and labels, attention sites, and an adapter of a kind registered by the test that the engine
(attribution, batched prediction) follows without knowing it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as T

import attattr_widgets as aw
from attattr_widgets.engine.attribution import scores
from attattr_widgets.engine.errors import NoClassificationHeadError, TargetError, UnsupportedModelError
from attattr_widgets.engine.intercept.controller import controller_for
from attattr_widgets.engine.model.adapters import (
    AttentionSite,
    CausalLMAdapter,
    SequenceClassifierAdapter,
    TaskAdapter,
    adapter_class,
    adapter_for,
    register_adapter,
    unregister_adapter,
)
from attattr_widgets.engine.model.predict import EncodedSet, predict_masked

from conftest import FAMILIES, make_model

TEXT = "the movie was great"
DECODERS = ("gpt2", "llama", "qwen2", "falcon", "falcon-alibi")


@pytest.mark.parametrize("family", FAMILIES + ("modernbert",))
def test_a_sequence_classifier_of_every_family_gets_the_classifier_adapter(family):
    model = make_model(family, "cls", layers=2, heads=4)
    a = adapter_for(model)
    assert type(a) is SequenceClassifierAdapter and a.model is model
    assert (a.name, a.target_kind, a.classifies) == ("classifier", "class", True)
    assert a.num_outputs() == (3, "classes")
    assert a.label_names() == ["LABEL_0", "LABEL_1", "LABEL_2"]
    # decoder heads pool the last token that is not the pad id: their examples run unpadded
    assert a.unpadded is (family in DECODERS)


@pytest.mark.parametrize("family", DECODERS)
def test_a_causal_lm_of_every_decoder_family_gets_the_next_token_adapter(family):
    model = make_model(family, "lm", layers=2, heads=4)
    a = adapter_for(model)
    assert type(a) is CausalLMAdapter
    assert (a.name, a.target_kind, a.classifies, a.unpadded) == ("causal-lm", "next-token", False, False)
    assert a.num_outputs() == (100, "tokens in the vocabulary")
    assert a.label_names() is None
    assert a.private_config() is None


def test_a_decoder_classifier_without_a_pad_id_gets_a_placeholder_only_on_the_engines_copy():
    model = make_model("gpt2", "cls", layers=1)
    model.config.pad_token_id = None
    a = adapter_for(model)
    assert a.private_config() == {"pad_token_id": -1}
    assert a.pad_id(aw_tokenizer()) == 0  # the tokenizer's [PAD]
    model.config.pad_token_id = 7
    assert a.pad_id(aw_tokenizer()) == 7 and a.private_config() is None  # pools by the config's pad id


def aw_tokenizer():
    from conftest import make_tokenizer

    return make_tokenizer()


def _bert_cfg():
    return T.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                        vocab_size=100, max_position_embeddings=32)


def test_unsupported_heads_are_refused_with_the_head_and_the_fix():
    model = T.BertForTokenClassification(_bert_cfg())
    with pytest.raises(UnsupportedModelError) as info:
        adapter_for(model)
    assert str(info.value) == (
        "BertForTokenClassification has a head for token classification (one prediction per token), which "
        "attattr-widgets does not attribute: load the checkpoint with AutoModelForSequenceClassification (one "
        "class per input) or AutoModelForCausalLM (next-token targets) instead")


def test_a_model_without_text_input_is_refused_naming_what_it_takes():
    model = T.ViTModel(T.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, image_size=32, patch_size=16))
    with pytest.raises(UnsupportedModelError) as info:
        adapter_for(model)
    assert str(info.value) == ("ViTModel takes no text input (its forward takes pixel_values): attattr-widgets "
                               "attributes text models (a classifier or a causal LM over input_ids) and image "
                               "classifiers (*ForImageClassification over pixel_values)")


def test_a_bare_encoder_has_no_head_to_attribute():
    with pytest.raises(NoClassificationHeadError) as info:
        adapter_for(T.BertModel(_bert_cfg()))
    assert str(info.value) == (
        "BertModel has no classification head and no language-model head, so there is no prediction to "
        "attribute. Load it with AutoModelForSequenceClassification.from_pretrained(...) (a fine-tuned "
        "classifier) or AutoModelForCausalLM.from_pretrained(...) (next-token targets).")


def test_targets_resolve_through_the_adapter_with_the_kinds_messages(tokenizer):
    cls = adapter_for(make_model("bert", "cls", layers=1))
    logits = torch.tensor([0.1, 2.0, -1.0])
    assert cls.resolve_target(tokenizer, "pred", logits) == 1
    assert cls.resolve_target(tokenizer, "label_2", logits) == 2  # class names, case-insensitive
    assert cls.resolve_target(tokenizer, "gold", logits, gold=0) == 0
    with pytest.raises(TargetError, match=r"target 3 is out of range: the model has 3 classes \(0..2\)"):
        cls.resolve_target(tokenizer, 3, logits)
    with pytest.raises(TargetError, match="unknown class 'happy'"):
        cls.resolve_target(tokenizer, "happy", logits)
    with pytest.raises(TargetError, match='target="gold" needs a gold label'):
        cls.resolve_target(tokenizer, "gold", logits)
    assert cls.target_label(tokenizer, 2) == "LABEL_2"

    lm = adapter_for(make_model("gpt2", "lm", layers=1))
    vocab = torch.zeros(100)
    paris = tokenizer.convert_tokens_to_ids("paris")
    assert lm.resolve_target(tokenizer, "paris", vocab) == paris
    assert lm.target_label(tokenizer, paris) == tokenizer.decode([paris])
    with pytest.raises(TargetError, match="out of range: the model has 100 tokens in the vocabulary"):
        lm.resolve_target(tokenizer, 100, vocab)
    with pytest.raises(TargetError, match="a next-token target must be one token"):
        lm.resolve_target(tokenizer, "paris france", vocab)


def test_target_options_and_default_query_come_from_the_adapter(tokenizer):
    p = np.array([0.1, 0.6, 0.3])
    cls = adapter_for(make_model("bert", "cls", layers=1))
    assert [o["label"] for o in cls.target_options(tokenizer, p, k=1)] == ["LABEL_0", "LABEL_1", "LABEL_2"]
    lm = adapter_for(make_model("gpt2", "lm", layers=1))
    assert [o["id"] for o in lm.target_options(tokenizer, p, k=2)] == [1, 2]
    assert adapter_class("class").default_query(5) == 0
    assert adapter_class("next-token").default_query(5) == 4
    assert adapter_class("next-token").default_query(0) == -1


def test_text_models_have_one_square_self_attention_site():
    model = make_model("llama", "lm", layers=3, heads=4)
    (site,) = adapter_for(model).attention_sites(controller_for(model))
    assert site == AttentionSite("self", "input", "input", 3, 4) and site.square
    assert site.map_shape(7) == (4, 7, 7)


def test_a_cross_attention_site_is_rectangular():
    cross = AttentionSite("cross", rows="target", cols="source", num_layers=2, num_heads=8)
    assert not cross.square
    assert cross.map_shape(3, 5) == (8, 3, 5)
    with pytest.raises(ValueError, match="pass n_cols"):
        cross.map_shape(3)


def test_register_adapter_takes_only_complete_adapter_classes():
    with pytest.raises(TypeError, match="TaskAdapter subclass"):
        register_adapter(object)

    class Nameless(TaskAdapter):
        pass

    with pytest.raises(TypeError, match="a name and a target_kind"):
        register_adapter(Nameless)


# ------------------------------------------------------------------------------------------------------------
# a kind the engine has never heard of: F read at the FIRST position of a causal LM, with a score of the test's


class FirstTokenAdapter(CausalLMAdapter):
    """Next-token logits at position 0 (the prediction after the first token)."""

    name = "first-token-test"
    target_kind = "first-token"

    @classmethod
    def matches(cls, model):
        return getattr(model.config, "attattr_test_task", None) == "first-token"

    def logits(self, net, inputs, last):
        return self.prediction_logits(net(**inputs).logits, torch.zeros_like(last))

    def prediction_logits(self, logits, last):
        return logits[:, 0]

    def target_label(self, tokenizer, target):
        return f"<first {target}>"

    @classmethod
    def default_query(cls, num_tokens):
        return 0 if num_tokens else -1


def _centred(logits, targets):
    """The target's logit minus the mean logit (invariant to a constant shift of the logits)."""
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.mean(-1)


@pytest.fixture
def first_token():
    register_adapter(FirstTokenAdapter)
    scores.register_score("centred-logit", _centred)
    model = make_model("gpt2", "lm", layers=2, heads=2, dtype=torch.float64)
    model.config.attattr_test_task = "first-token"
    try:
        yield model
    finally:
        unregister_adapter(FirstTokenAdapter)
        scores.unregister_score("centred-logit")


def test_the_engine_attributes_a_registered_kind_only_through_its_adapter(first_token, tokenizer):
    model = first_token
    assert type(adapter_for(model)) is FirstTokenAdapter
    attr = aw.attribute(model, tokenizer, TEXT, score="centred-logit", steps="auto", tol=1e-6, max_steps=64)
    enc = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        first = model(**enc).logits[0, 0].double()
    t = int(first.argmax())
    assert attr.target == t and attr.target_kind == "first-token" and attr.target_label == f"<first {t}>"
    assert attr.label_names is None
    assert attr.prob == pytest.approx(float(first[t] - first.mean()), rel=1e-9)
    # causal attention: position 0 sees only token 0, so every link but (0, 0) contributes nothing
    assert np.all(attr.scores[:, :, 1:, :] == 0) and np.all(attr.scores[:, :, 0, 1:] == 0)
    assert np.abs(attr.scores[:, :, 0, 0]).sum() > 0
    assert np.all(np.asarray(attr.completeness) < 1e-6)
    # without the registration the same model is an ordinary causal LM again
    unregister_adapter(FirstTokenAdapter)
    assert type(adapter_for(model)) is CausalLMAdapter


def test_batched_prediction_reads_a_registered_kind_where_its_adapter_says(first_token, tokenizer):
    model = first_token
    data = EncodedSet(model, tokenizer, [{"text": TEXT}, {"text": "a cat sat"}])
    preds = predict_masked(data, np.ones((1, 2, 2)))
    with torch.no_grad():
        want = [int(model(**tokenizer(t, return_tensors="pt")).logits[0, 0].argmax()) for t in (TEXT, "a cat sat")]
    assert preds[0].tolist() == want


def test_scores_are_a_registry_with_the_choices_in_the_message():
    assert scores.score_names()[:3] == ("prob", "logprob", "logit")
    with pytest.raises(aw.AttAttrError, match="unknown score 'margin': choose one of prob, logprob, logit"):
        scores.check_score("margin")
    scores.register_score("margin", _centred)
    try:
        assert "margin" in scores.score_names()
        logits = torch.tensor([[1.0, 3.0, 2.0]])
        assert scores.target_score(logits, torch.tensor([1]), "margin", torch.float64).item() == pytest.approx(1.0)
        assert scores.target_score(logits, torch.tensor([1]), "prob", torch.float64).item() == pytest.approx(
            float(torch.softmax(logits.double(), -1)[0, 1]))
    finally:
        scores.unregister_score("margin")
    with pytest.raises(aw.AttAttrError, match="register_score takes a name and a function"):
        scores.register_score("", _centred)
