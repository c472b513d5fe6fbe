"""The engine's one batched prediction: encoded sets from examples or from encodings, plain and masked forwards,
one input's probabilities — each against a direct forward of the model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PAIRS, SINGLES, make_model, make_tokenizer

from attattr_widgets.engine.errors import AttAttrError
from attattr_widgets.engine.model.encode import encode
from attattr_widgets.engine.model.examples import Example, as_examples
from attattr_widgets.engine.model.predict import (
    EncodedSet, predict, predict_encoded, predict_masked, probabilities, target_options,
)

EXS = SINGLES + PAIRS


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def _direct_logits(model, enc):
    """Independent reference: the model called on one unpadded encoding, as a user would."""
    with torch.no_grad():
        return model(**enc.model_inputs()).logits[0]


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_plain_predictions_equal_direct_forwards(tok, family):
    model = make_model(family, seed=3)
    encs = [encode(model, tok, e["text"], e.get("text_pair")) for e in EXS]
    ref = [int(_direct_logits(model, e).argmax(-1)) for e in encs]
    from_examples = predict(EncodedSet(model, tok, EXS), batch_size=3)
    from_encodings = predict(EncodedSet(model, tok, None, encodings=encs), batch_size=3)
    assert from_examples.tolist() == ref and from_encodings.tolist() == ref
    # no mask = all-ones masks
    assert predict_masked(EncodedSet(model, tok, EXS), np.ones((1, 3, 4)), batch_size=3)[0].tolist() == ref


def test_causal_lm_predicts_the_next_token(tok):
    model = make_model("llama", head="lm", seed=4)
    encs = [encode(model, tok, e["text"]) for e in SINGLES]
    ref = [int(_direct_logits(model, e)[-1].argmax(-1)) for e in encs]
    assert predict(EncodedSet(model, tok, SINGLES), batch_size=2).tolist() == ref


def test_probabilities_and_target_options(tok):
    model = make_model("bert", seed=5)
    enc = encode(model, tok, "the movie was great fun")
    ref = torch.softmax(_direct_logits(model, enc).double(), -1).numpy()
    np.testing.assert_allclose(probabilities(model, enc), ref, rtol=1e-12, atol=0)
    out = predict_encoded(model, enc)
    assert out["pred"] == int(ref.argmax()) and out["probs"] == pytest.approx(ref.tolist())
    opts = target_options(model, tok, "the movie was great fun")
    assert opts["kind"] == "class" and [o["prob"] for o in opts["options"]] == pytest.approx(ref.tolist())
    lm = make_model("gpt2", head="lm", seed=6)
    p = probabilities(lm, encode(lm, tok, "the cat sat on the"))
    top = target_options(lm, tok, "the cat sat on the", k=3)
    assert [o["id"] for o in top["options"]] == np.argsort(-p, kind="stable")[:3].tolist()


def test_the_users_model_is_left_as_it_was(tok):
    model = make_model("bert", seed=7).train()
    predict(EncodedSet(model, tok, EXS))
    assert model.training


def test_encodings_must_match_the_examples(tok):
    model = make_model("bert")
    encs = [encode(model, tok, e["text"]) for e in SINGLES]
    with pytest.raises(AttAttrError, match="5 encodings for 2 examples"):
        EncodedSet(model, tok, SINGLES[:2], encodings=encs)
    with pytest.raises(AttAttrError, match="no encodings"):
        EncodedSet(model, tok, None, encodings=[])
    with pytest.raises(AttAttrError, match="use predict"):
        predict_masked(EncodedSet(model, tok, SINGLES), None)


def test_a_normalised_list_is_taken_as_it_is():
    items = as_examples(EXS)
    assert all(type(x) is Example for x in items)
    assert as_examples(items) is items  # normalised once: no second pass over the examples
    with pytest.raises(AttAttrError, match="examples is None"):
        as_examples(None)
