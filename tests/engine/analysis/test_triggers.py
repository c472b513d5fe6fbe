"""Adversarial triggers (issue 4): insertion positions (hand-computed), mining against a loop reference, and a
model trained here with a planted shortcut token whose trigger must collapse the other class."""
from __future__ import annotations

import json
import threading

import pytest
from conftest import make_model, make_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.errors import AttributionCancelled
from attattr_widgets.engine.analysis.triggers import evaluate_trigger, evaluate_triggers, insert_trigger, mine_triggers, top_triggers
from attattr_widgets.engine.results import TriggerPattern, TriggerResult


def pattern(tok, words, segments, relative, **kw):
    defaults = {"positions": list(range(len(words))), "score": 1.0, "layer": 0, "head": 0, "pairs": [], "pred": 1,
                    "pred_label": "pos", "gold": 1, "prob": 0.9, "example_index": 0, "text": "src"}
    defaults.update(kw)
    return TriggerPattern(tokens=list(words), token_ids=tok.convert_tokens_to_ids(list(words)),
                          segments=list(segments), relative=list(relative), **defaults)


# ---------------------------------------------------------------------------------------------------------------
# insertion: hand-computed sequences


def test_insert_single_sentence(tokenizer):
    # 4 content tokens + 1 trigger -> 5 slots; r = 0.5 -> slot floor(0.5 * 4 + 0.5) = 2
    enc = insert_trigger(tokenizer, "i love this film", pattern=pattern(tokenizer, ["cat"], [0], [0.5]))
    assert enc.tokens == ["[CLS]", "i", "love", "cat", "this", "film", "[SEP]"]
    assert enc.segments == [0] * 7 and enc.token_type_ids.tolist() == [[0] * 7]
    # first stays first, last stays last
    enc = insert_trigger(tokenizer, "i love this film", pattern=pattern(tokenizer, ["cat", "dog"], [0, 0], [0.0, 1.0]))
    assert enc.tokens == ["[CLS]", "cat", "i", "love", "this", "film", "dog", "[SEP]"]
    # r = 0.25 with 3 + 1 slots -> floor(0.75 + 0.5) = 1
    enc = insert_trigger(tokenizer, "the movie was", pattern=pattern(tokenizer, ["cat"], [0], [0.25]))
    assert enc.tokens == ["[CLS]", "the", "cat", "movie", "was", "[SEP]"]


def test_insert_keeps_unknown_words_in_place(tokenizer):
    # [UNK] stands for a word: it is content (counted in positions, kept in order), not a structural token
    enc = insert_trigger(tokenizer, "i love xyzzy film", pattern=pattern(tokenizer, ["cat"], [0], [1.0]))
    assert enc.tokens == ["[CLS]", "i", "love", "[UNK]", "film", "cat", "[SEP]"]
    enc = insert_trigger(tokenizer, "i love xyzzy film", pattern=pattern(tokenizer, ["cat"], [0], [0.5]))
    assert enc.tokens == ["[CLS]", "i", "love", "cat", "[UNK]", "film", "[SEP]"]


def test_insert_collision_moves_to_next_free_slot(tokenizer):
    # two tokens both at r = 0.5 in 2 + 2 = 4 slots: floor(1.5 + .5) = 2 -> slots 2 and 3 (source order kept)
    enc = insert_trigger(tokenizer, "good fun", pattern=pattern(tokenizer, ["cat", "dog"], [0, 0], [0.5, 0.5]))
    assert enc.tokens == ["[CLS]", "good", "fun", "cat", "dog", "[SEP]"]
    # both at the end: the second one goes to the previous free slot
    enc = insert_trigger(tokenizer, "good fun", pattern=pattern(tokenizer, ["cat", "dog"], [0, 0], [1.0, 1.0]))
    assert enc.tokens == ["[CLS]", "good", "fun", "dog", "cat", "[SEP]"]


def test_insert_pair_same_segment_and_position(tokenizer):
    m = make_model("bert", num_labels=3)
    pat = pattern(tokenizer, ["cat", "dog", "mat"], [0, 1, 1], [1.0, 0.0, 0.5])
    enc = insert_trigger(tokenizer, "i love this film", "the plot was bad", pattern=pat, model=m)
    # premise: 4 + 1 slots, cat at 4 (last); hypothesis: 4 + 2 = 6 slots, dog at 0, mat at floor(2.5 + .5) = 3
    assert enc.tokens == ["[CLS]", "i", "love", "this", "film", "cat", "[SEP]",
                          "dog", "the", "plot", "mat", "was", "bad", "[SEP]"]
    assert enc.segments == [0] * 7 + [1] * 7
    assert enc.token_type_ids.tolist() == [[0] * 7 + [1] * 7]
    assert not enc.truncated
    # a pair pattern on a single sentence puts everything into its only segment
    enc = insert_trigger(tokenizer, "i love this film", pattern=pat, model=m)
    # 4 + 3 = 7 slots: cat r=1 -> 6, dog r=0 -> 0, mat r=0.5 -> 3 (order by r)
    assert enc.tokens == ["[CLS]", "dog", "i", "love", "mat", "this", "film", "cat", "[SEP]"]


def test_insert_wordpieces_as_ids(tokenizer):
    pat = pattern(tokenizer, ["cat", "##s"], [0, 0], [0.5, 0.5])
    enc = insert_trigger(tokenizer, "i love this film", pattern=pat)
    # 4 + 2 = 6 slots: floor(2.5 + .5) = 3 for "cat", the collision pushes "##s" to 4
    assert enc.tokens[1:-1] == ["i", "love", "this", "cat", "##s", "film"]
    assert enc.input_ids[0].tolist() == tokenizer.convert_tokens_to_ids(enc.tokens)


def test_insert_truncates_longest_segment_not_the_trigger(tokenizer):
    m = make_model("bert", num_labels=3)
    pat = pattern(tokenizer, ["cat"], [1], [1.0])
    enc = insert_trigger(tokenizer, "i love this film very much", "bad", pattern=pat, model=m, max_length=9)
    assert enc.tokens == ["[CLS]", "i", "love", "this", "film", "[SEP]", "bad", "cat", "[SEP]"]
    assert enc.truncated


words = st.lists(st.sampled_from(["the", "a", "movie", "film", "was", "great", "good", "bad", "plot", "actors", "story", "i", "you", "it"]),
                 min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(words, words, st.lists(st.tuples(st.sampled_from(["cat", "dog", "mat"]), st.integers(0, 1),
                                        st.floats(0, 1)), min_size=1, max_size=4))
def test_insert_properties(a, b, trig):
    tok = make_tokenizer()
    pat = pattern(tok, [t for t, _, _ in trig], [s for _, s, _ in trig], [r for _, _, r in trig])
    enc = insert_trigger(tok, " ".join(a), " ".join(b), pattern=pat)
    seg_tokens = {s: [t for t, x in zip(enc.tokens, enc.segments) if x == s and t not in ("[CLS]", "[SEP]")]
                  for s in (0, 1)}
    for s, orig in ((0, a), (1, b)):
        got = seg_tokens[s]
        inserted = sorted(t for t, x, _ in trig if x == s)
        assert len(got) == len(orig) + len(inserted)
        assert [t for t in got if t not in ("cat", "dog", "mat")] == orig  # original order untouched
        assert sorted(t for t in got if t in ("cat", "dog", "mat")) == inserted
        if len(inserted) == 1:  # a lone trigger lands within half a slot of its relative position
            r = next(r for _, x, r in trig if x == s)
            q = got.index(inserted[0])
            assert abs(q - r * (len(got) - 1)) <= 0.5 + 1e-9
    assert enc.tokens[0] == "[CLS]" and enc.tokens.count("[SEP]") == 2


# ---------------------------------------------------------------------------------------------------------------
# mining against an independent loop reference (untrained tiny model, pairs and single sentences)


def reference_pattern(model, tok, text, text_pair, steps, top_pairs=2, ratio=0.2):
    attr = attribute(model, tok, text, text_pair, target="pred", steps=steps)
    L, H, n, _ = attr.scores.shape
    entries = sorted(((float(attr.scores[l, h, i, j]), l, h, i, j) for l in range(L) for h in range(H)
                      for i in range(n) for j in range(n)), key=lambda e: -e[0])
    _, l, h, _, _ = entries[0]
    pairs = sorted(((float(attr.scores[l, h, i, j]), i, j) for i in range(n) for j in range(n)),
                   key=lambda e: -e[0])[:top_pairs]
    pos = set()
    for k, (v, i, j) in enumerate(pairs):
        if k == 0 or v / pairs[0][0] >= ratio:
            pos |= {i, j}
    pos = sorted(p for p in pos if attr.tokens[p] not in ("[CLS]", "[SEP]"))
    rel = []
    for p in pos:
        seg = attr.token_type_ids[p]
        content = [q for q in range(n) if attr.token_type_ids[q] == seg and attr.tokens[q] not in ("[CLS]", "[SEP]")]
        rel.append(content.index(p) / (len(content) - 1) if len(content) > 1 else 0.0)
    return {"layer": l, "head": h, "tokens": [attr.tokens[p] for p in pos], "positions": pos, "relative": rel,
                "segments": [int(attr.token_type_ids[p]) for p in pos], "score": sum(v for v, _, _ in pairs),
                "pred": attr.target}


def test_mining_matches_reference(tokenizer):
    model = make_model("bert", layers=2, heads=2, num_labels=3)
    exs = [{"text": "the movie was great fun", "text_pair": "i love this film", "label": 0},
           {"text": "the plot was bad", "label": 2},
           {"text": "a man and a dog sat on the mat", "text_pair": "the dog sat", "label": 1}]
    seen = []
    pats = mine_triggers(model, tokenizer, exs, steps=3, min_score=-1e9, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3, 3)
    assert [p.score for p in pats] == sorted((p.score for p in pats), reverse=True)
    for p in pats:
        ex = exs[p.example_index]
        ref = reference_pattern(model, tokenizer, ex["text"], ex.get("text_pair"), steps=3)
        assert (p.layer, p.head, p.tokens, p.positions, p.segments, p.pred) == (
            ref["layer"], ref["head"], ref["tokens"], ref["positions"], ref["segments"], ref["pred"])
        assert p.relative == pytest.approx(ref["relative"])
        assert p.score == pytest.approx(ref["score"], rel=1e-5)
        assert p.gold == ex["label"]
        assert json.loads(json.dumps(p.to_dict())) == p.to_dict()
        assert TriggerPattern.from_dict(p.to_dict()) == p


def test_mining_filters_and_cancel(tokenizer):
    model = make_model("bert", layers=2, heads=2, num_labels=2)
    exs = [{"text": "the movie was great fun and i love it", "label": 1}, {"text": "bad", "label": 0}]
    pats = mine_triggers(model, tokenizer, exs, steps=2, min_tokens=5, min_score=-1e9)
    assert {p.example_index for p in pats} <= {0}
    assert mine_triggers(model, tokenizer, exs, steps=2, min_score=1e9) == []
    everything = mine_triggers(model, tokenizer, exs, steps=2, min_score=-1e9)
    banned = {t for p in everything for t in p.tokens}
    assert mine_triggers(model, tokenizer, exs, steps=2, min_score=-1e9, blacklist=banned) == []
    ev = threading.Event()
    ev.set()
    with pytest.raises(AttributionCancelled):
        mine_triggers(model, tokenizer, exs, steps=2, cancel=ev)
    with pytest.raises(AttributionCancelled):
        evaluate_trigger(model, tokenizer, exs, pattern(tokenizer, ["cat"], [0], [0.5]), cancel=ev)


def test_top_triggers_groups_by_predicted_class(tokenizer):
    mk = lambda w, pred, score: pattern(tokenizer, [w], [0], [0.5], pred=pred, pred_label=["neg", "pos"][pred],
                                        score=score)
    pats = [mk("cat", 1, 0.9), mk("cat", 1, 0.8), mk("dog", 1, 0.7), mk("mat", 0, 0.6), mk("a", 1, 0.5),
            mk("the", 1, 0.4)]
    top = top_triggers(pats, per_class=3)
    assert list(top) == ["neg", "pos"]
    assert [p.tokens[0] for p in top["pos"]] == ["cat", "dog", "a"]  # duplicate 'cat' skipped
    assert [p.tokens[0] for p in top_triggers(pats, per_class=2, distinct=False)["pos"]] == ["cat", "cat"]


# ---------------------------------------------------------------------------------------------------------------
# a model trained here with a planted shortcut: "cat" only ever appears in class-1 examples


def test_planted_shortcut_is_mined_and_collapses_the_other_class(shortcut_model):
    model, tok, mine, test = shortcut_model
    # min_score=0: with the zero-attention baseline this tiny model already leans to class 1, so its class-1
    # attributions are small (~1e-4); the authors' 0.02 is calibrated for BERT-base probabilities.
    patterns = mine_triggers(model, tok, mine, steps=4, min_score=0.0)
    top = top_triggers(patterns, per_class=3)
    assert "pos" in top and "neg" in top
    best = top["pos"][0]
    assert "cat" in best.tokens, best
    assert all("cat" in p.tokens for p in patterns if p.pred == 1)
    assert not any("cat" in p.tokens for p in patterns if p.pred == 0)
    result = evaluate_trigger(model, tok, test, best, batch_size=16)
    before, after = result.accuracy("neg")
    assert before >= 0.9
    assert after <= 0.2, result
    assert result.accuracy("pos")[1] >= 0.9
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    # a trigger without the shortcut token barely moves the negative class
    control = pattern(tok, ["the"], [0], [0.5])
    (ctrl,) = evaluate_triggers(model, tok, test, [control])
    assert ctrl.accuracy("neg")[1] >= 0.8
    assert isinstance(ctrl, TriggerResult) and ctrl.n == len(test)
