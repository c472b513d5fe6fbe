"""Bad input at the public functions: one case per kind, each asserting the error class AND that the message
names the argument (issue "Hardening"). Plus the accepted forms that used to fail (DataFrames, column dicts) and
the silent-wrong-result cases (-1 labels, 1.7 labels, ``truncated``)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import transformers as T
from conftest import PAIRS, SINGLES, make_model, make_tokenizer

import attattr_widgets as aw
from attattr_widgets.engine import validate
from attattr_widgets.engine.errors import (
    ArgumentError,
    AttAttrError,
    InputTooLongError,
    TargetError,
    UnsupportedModelError,
)
from attattr_widgets.engine.model.examples import as_examples
from attattr_widgets.engine.analysis.importance import head_importance
from attattr_widgets.engine.model.encode import encode
from attattr_widgets.engine.analysis.pruning import compare_pruning, effectiveness
from attattr_widgets.engine.results import TriggerPattern
from attattr_widgets.engine.analysis.tree import attribution_tree
from attattr_widgets.engine.analysis.triggers import evaluate_trigger, evaluate_triggers, mine_triggers


@pytest.fixture(scope="module")
def env():
    tok = make_tokenizer()
    model = make_model("bert", layers=2, heads=2, num_labels=3)
    lm = make_model("gpt2", "lm", layers=2, heads=2)
    attr = aw.attribute(model, tok, "the movie was great", steps=2)
    pat = TriggerPattern(tokens=["movie"], token_ids=tok.convert_tokens_to_ids(["movie"]), positions=[2],
                         segments=[0], relative=[0.5], score=0.5, layer=0, head=0, pairs=[], pred=0,
                         pred_label="LABEL_0", gold=None, prob=0.9, example_index=0, text="the movie")
    return {"tok": tok, "model": model, "lm": lm, "attr": attr, "pat": pat}


def _ex(label):
    return [{"text": "the movie was great", "label": 0}, {"text": "bad plot", "label": label}]


A = "the movie was great"
# (id, call(env), error class, words the message must contain)
CASES = [
    # attribute(): the edge of the engine
    ("layers-empty", lambda e: aw.attribute(e["model"], e["tok"], A, layers=[]), ArgumentError, "layers"),
    ("layers-missing", lambda e: aw.attribute(e["model"], e["tok"], A, layers=[7]), ArgumentError, "layers"),
    ("layers-string", lambda e: aw.attribute(e["model"], e["tok"], A, layers="0"), ArgumentError, "layers"),
    ("layers-float", lambda e: aw.attribute(e["model"], e["tok"], A, layers=[0.5]), ArgumentError, "layers"),
    ("steps-zero", lambda e: aw.attribute(e["model"], e["tok"], A, steps=0), ArgumentError, "steps"),
    ("steps-huge", lambda e: aw.attribute(e["model"], e["tok"], A, steps=10**8), ArgumentError, "steps"),
    ("steps-float", lambda e: aw.attribute(e["model"], e["tok"], A, steps=2.5), ArgumentError, "steps"),
    ("memory-budget-str", lambda e: aw.attribute(e["model"], e["tok"], A, memory_budget="2GB"), ArgumentError,
     "memory_budget"),
    ("memory-budget-neg", lambda e: aw.attribute(e["model"], e["tok"], A, memory_budget=-1), ArgumentError,
     "memory_budget"),
    ("cancel-bool", lambda e: aw.attribute(e["model"], e["tok"], A, cancel=True), ArgumentError, "cancel"),
    ("progress-int", lambda e: aw.attribute(e["model"], e["tok"], A, progress=5), ArgumentError, "progress"),
    ("max-length-zero", lambda e: aw.attribute(e["model"], e["tok"], A, max_length=0), ArgumentError,
     "max_length"),
    ("max-length-float", lambda e: aw.attribute(e["model"], e["tok"], A, max_length=7.5), ArgumentError,
     "max_length"),
    ("max-length-below-specials", lambda e: aw.attribute(e["model"], e["tok"], A, max_length=2, truncation=True),
     InputTooLongError, "max_length"),
    ("target-float", lambda e: aw.attribute(e["model"], e["tok"], A, target=1.7), TargetError, "target"),
    ("target-negative", lambda e: aw.attribute(e["model"], e["tok"], A, target=-1), TargetError, "target"),
    ("target-bool", lambda e: aw.attribute(e["model"], e["tok"], A, target=True), TargetError, "target"),
    ("device-bad", lambda e: aw.attribute(e["model"], e["tok"], A, device="nope"), ArgumentError, "device"),
    ("text-not-str", lambda e: aw.attribute(e["model"], e["tok"], 3), ArgumentError, "text"),
    ("text-surrogate", lambda e: aw.attribute(e["model"], e["tok"], "a \ud800 b"), ArgumentError, "text"),
    ("text-pair-empty", lambda e: aw.attribute(e["model"], e["tok"], A, " "), AttAttrError, "text_pair"),
    # iter_attributions / dataset-level
    ("batch-size-zero", lambda e: next(aw.iter_attributions(e["model"], e["tok"], SINGLES, batch_size=0)),
     ArgumentError, "batch_size"),
    ("batch-size-float", lambda e: head_importance(e["model"], e["tok"], SINGLES, method="attention",
                                                    batch_size=2.5), ArgumentError, "batch_size"),
    ("batch-size-negative", lambda e: compare_pruning(e["model"], e["tok"], SINGLES, {"a": np.ones((2, 2))},
                                                      batch_size=-3), ArgumentError, "batch_size"),
    ("seed-negative", lambda e: head_importance(e["model"], e["tok"], SINGLES, method="random", seed=-1),
     ArgumentError, "seed"),
    ("progress-str", lambda e: head_importance(e["model"], e["tok"], SINGLES, method="attention", progress="yes"),
     ArgumentError, "progress"),
    ("cancel-object", lambda e: head_importance(e["model"], e["tok"], SINGLES, method="attention",
                                                cancel=object()), ArgumentError, "cancel"),
    ("importance-steps", lambda e: head_importance(e["model"], e["tok"], SINGLES, steps=-2), ArgumentError, "steps"),
    ("importance-target-float", lambda e: head_importance(e["model"], e["tok"], SINGLES, method="taylor",
                                                          target=0.5), TargetError, "target"),
    ("importance-target-range", lambda e: head_importance(e["model"], e["tok"], SINGLES, method="taylor",
                                                          target=9), ArgumentError, "target"),
    ("label-minus-one", lambda e: head_importance(e["model"], e["tok"], _ex(-1), method="attention"),
     ArgumentError, "label"),
    ("label-fraction", lambda e: head_importance(e["model"], e["tok"], _ex(1.7), method="attention"),
     ArgumentError, "label"),
    ("label-out-of-range", lambda e: head_importance(e["model"], e["tok"], _ex(7), method="attention"),
     ArgumentError, "label"),
    ("label-bool", lambda e: head_importance(e["model"], e["tok"], _ex(True), method="attention"),
     ArgumentError, "label"),
    ("label-attattr-range", lambda e: head_importance(e["model"], e["tok"], _ex(5), steps=2), ArgumentError,
     "label"),
    ("examples-one-string", lambda e: head_importance(e["model"], e["tok"], "the movie", method="attention"),
     AttAttrError, "examples"),
    ("examples-one-dict", lambda e: head_importance(e["model"], e["tok"], {"text": "a", "label": 0},
                                                    method="attention"), AttAttrError, "examples"),
    ("examples-ragged-columns", lambda e: head_importance(e["model"], e["tok"], {"text": ["a", "b"], "label": [0]},
                                                         method="attention"), AttAttrError, "examples"),
    ("example-text-nan", lambda e: head_importance(e["model"], e["tok"], [{"text": float("nan"), "label": 0}],
                                                   method="attention"), ArgumentError, "text"),
    ("fractions-scalar", lambda e: compare_pruning(e["model"], e["tok"], SINGLES, {"a": np.ones((2, 2))},
                                                   fractions=0.5), ArgumentError, "fractions"),
    ("fractions-range", lambda e: compare_pruning(e["model"], e["tok"], SINGLES, {"a": np.ones((2, 2))},
                                                  fractions=[0, 1.5]), ArgumentError, "fractions"),
    ("fractions-empty", lambda e: compare_pruning(e["model"], e["tok"], SINGLES, {"a": np.ones((2, 2))},
                                                  fractions=[]), ArgumentError, "fractions"),
    ("fractions-str", lambda e: compare_pruning(e["model"], e["tok"], SINGLES, {"a": np.ones((2, 2))},
                                                fractions="0.5"), ArgumentError, "fractions"),
    ("importances-array", lambda e: compare_pruning(e["model"], e["tok"], SINGLES, np.ones((2, 2))),
     ArgumentError, "importances"),
    ("heads-per-layer-float", lambda e: effectiveness(e["model"], e["tok"], SINGLES, heads_per_layer=[1.5]),
     ArgumentError, "heads_per_layer"),
    ("heads-per-layer-range", lambda e: effectiveness(e["model"], e["tok"], SINGLES, heads_per_layer=[9]),
     ArgumentError, "heads_per_layer"),
    # triggers
    ("blacklist-string", lambda e: mine_triggers(e["model"], e["tok"], SINGLES, blacklist="the"), ArgumentError,
     "blacklist"),
    ("top-pairs-zero", lambda e: mine_triggers(e["model"], e["tok"], SINGLES, top_pairs=0), ArgumentError,
     "top_pairs"),
    ("ratio-range", lambda e: mine_triggers(e["model"], e["tok"], SINGLES, ratio=2), ArgumentError, "ratio"),
    ("min-tokens-negative", lambda e: mine_triggers(e["model"], e["tok"], SINGLES, min_tokens=-1), ArgumentError,
     "min_tokens"),
    ("mine-progress-true", lambda e: mine_triggers(e["model"], e["tok"], SINGLES, progress=True), ArgumentError,
     "progress"),
    ("patterns-single", lambda e: evaluate_triggers(e["model"], e["tok"], SINGLES, e["pat"]), ArgumentError,
     "patterns"),
    ("trigger-device", lambda e: evaluate_trigger(e["model"], e["tok"], SINGLES, e["pat"], device="cuda:3"),
     ArgumentError, "device"),
    ("trigger-label-minus-one", lambda e: evaluate_trigger(e["model"], e["tok"], _ex(-1), e["pat"]), ArgumentError,
     "label"),
    ("trigger-needs-classifier", lambda e: evaluate_trigger(e["lm"], e["tok"], SINGLES, e["pat"]),
     UnsupportedModelError, "classifier"),
    # tree and views
    ("threshold-negative", lambda e: attribution_tree(e["attr"], threshold=-1), ArgumentError, "threshold"),
    ("threshold-str", lambda e: attribution_tree(e["attr"], threshold="high"), ArgumentError, "threshold"),
    ("exclude-row-float", lambda e: attribution_tree(e["attr"], exclude_row=1.5), ArgumentError, "exclude_row"),
    ("tree-not-attribution", lambda e: attribution_tree(None), ArgumentError, "attribution"),
    ("treeview-threshold", lambda e: aw.TreeView(e["attr"], threshold=2), ArgumentError, "threshold"),
    ("explorer-not-attribution", lambda e: aw.Explorer.from_attribution({"scores": 1}), ArgumentError,
     "attribution"),
    ("headsview-fractions", lambda e: _views().HeadsView(e["model"], e["tok"], SINGLES, fractions=2),
     ArgumentError, "fractions"),
    ("headsview-interval", lambda e: _views().HeadsView(e["model"], e["tok"], SINGLES, interval="soon"),
     ArgumentError, "interval"),
    ("headsview-label", lambda e: _views().HeadsView(e["model"], e["tok"], _ex(9)), ArgumentError, "label"),
    ("triggersview-sample", lambda e: _views().TriggersView(e["model"], e["tok"], SINGLES, SINGLES, sample=1.5),
     ArgumentError, "sample"),
    ("triggersview-batch", lambda e: _views().TriggersView(e["model"], e["tok"], SINGLES, SINGLES,
                                                           eval_batch_size=0), ArgumentError, "eval_batch_size"),
    ("triggersview-lm", lambda e: _views().TriggersView(e["lm"], e["tok"], SINGLES, SINGLES),
     UnsupportedModelError, "classifier"),
]


def _views():
    import attattr_widgets.widgets as views

    return views


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error_naming_the_argument(env, case):
    _id, call, exc, word = case
    with pytest.raises(exc) as info:
        call(env)
    assert word in str(info.value), f"message does not name {word!r}: {info.value}"
    assert isinstance(info.value, AttAttrError), "every bad-input error is an AttAttrError (a ValueError)"


def _cfg():
    return T.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                        vocab_size=100, max_position_embeddings=32)


@pytest.mark.parametrize("make", [
    lambda: T.BertForTokenClassification(_cfg()),
    lambda: T.BertForMultipleChoice(_cfg()),
    lambda: T.BertForQuestionAnswering(_cfg()),
    lambda: T.ViTModel(T.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, image_size=32, patch_size=16)),
    lambda: T.ViTForMaskedImageModeling(T.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=16, image_size=32, patch_size=16)),
], ids=["token-classification", "multiple-choice", "question-answering", "vit-no-text", "vit-masked-image"])
def test_unsupported_heads_are_refused_up_front(make, env):
    model = make().eval()
    for call in (lambda: aw.attribute(model, env["tok"], A, steps=2),
                 lambda: head_importance(model, env["tok"], SINGLES, method="attention")):
        with pytest.raises(UnsupportedModelError, match=type(model).__name__):
            call()


def test_huge_step_count_is_refused_before_allocating(env):
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(ArgumentError, match="steps"):
        aw.attribute(env["model"], env["tok"], A, rule="gauss-legendre", steps=200_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 << 20, f"{peak / 2**20:.0f} MiB allocated before refusing"


def test_example_collections_as_dataframe_and_column_dict_are_accepted(env):
    pd = pytest.importorskip("pandas")
    rows = SINGLES + PAIRS
    want = head_importance(env["model"], env["tok"], rows, method="attention")
    frame = pd.DataFrame(rows)  # text_pair is NaN where missing
    cols = {k: [r.get(k) for r in rows] for k in ("text", "text_pair", "label")}
    np.testing.assert_allclose(head_importance(env["model"], env["tok"], frame, method="attention"), want)
    np.testing.assert_allclose(head_importance(env["model"], env["tok"], cols, method="attention"), want)
    assert as_examples(frame)[0].text_pair is None and as_examples(frame)[-1].text_pair == PAIRS[-1]["text_pair"]
    assert [e.label for e in as_examples(frame)] == [r["label"] for r in rows]


def test_integral_floats_are_accepted_but_not_rounded():
    assert as_examples([{"text": "a", "label": 2.0}])[0].label == 2
    assert validate.integer(np.int64(3), "n") == 3 and validate.batch_size(4.0) == 4
    with pytest.raises(ArgumentError, match="not rounded"):
        validate.integer(1.7, "n")


def test_blacklist_as_a_list_filters_words_not_letters(env):
    pats = mine_triggers(env["model"], env["tok"], SINGLES, steps=2, min_score=-1e9)
    assert pats
    word = pats[0].tokens[0]
    left = mine_triggers(env["model"], env["tok"], SINGLES, steps=2, min_score=-1e9, blacklist=[word])
    assert all(word not in p.tokens for p in left) and len(left) < len(pats)


def test_truncated_is_true_exactly_when_tokens_were_cut(env):
    from attattr_widgets.engine.model.encode import max_positions

    model, tok = env["model"], env["tok"]
    limit = max_positions(model, tok)
    fits = " ".join(["movie"] * (limit - 2))
    assert not encode(model, tok, fits, truncation=True).truncated
    cut = encode(model, tok, fits + " movie", truncation=True)
    assert cut.truncated and len(cut) == limit
    assert not encode(model, tok, "the movie", max_length=10, truncation=True).truncated
    pair = encode(model, tok, "the movie was great", "a cat", max_length=6, truncation=True)
    assert pair.truncated and len(pair) == 6 and 1 in pair.segments  # both segments keep a token
    with pytest.raises(InputTooLongError, match="max_length"):
        encode(model, tok, "the movie was great", "a cat", max_length=4, truncation=True)


def test_minus_one_is_not_the_last_class_in_trigger_results(env):
    """A -1 label used to be reported under the last class name; now it is refused (see CASES) and a valid
    set names each class by its own index."""
    res = evaluate_trigger(env["model"], env["tok"], SINGLES, env["pat"])
    names = aw.engine.model.adapters.adapter_for(env["model"]).label_names() if hasattr(aw, "engine") else None
    assert [c["label"] for c in res.per_class] == sorted({e["label"] for e in SINGLES})
    if names:
        assert all(c["name"] == names[c["label"]] for c in res.per_class)


def test_cancel_accepts_any_event_like(env):
    ev = threading.Event()
    head_importance(env["model"], env["tok"], SINGLES, method="attention", cancel=ev)
    with pytest.raises(Exception):
        ev.set()
        head_importance(env["model"], env["tok"], SINGLES, method="attention", cancel=ev)


def test_model_is_untouched_by_refused_arguments(env):
    model = env["model"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training = model.training
    with pytest.raises(ArgumentError):
        aw.attribute(model, env["tok"], A, layers=[])
    assert model.training == training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
