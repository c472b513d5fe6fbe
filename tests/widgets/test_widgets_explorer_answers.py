"""Explorer with explained answers (a causal LM, teacher-forced answer or generate=N) over the recording comm:
answer meta, per-answer-token maps (picked after and during a run), the input bar's answer / generate requests,
history and contrast of two answers, the tree of an answer token, and the static snapshot / export marking."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import widget_comm as wc
from conftest import make_model

import attattr_widgets.widgets.explorer as explorer_mod
from attattr_widgets import export
from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.snapshot import explorer_html
from attattr_widgets.widgets import Explorer

PROMPT, ANSWER, OTHER = "the cat sat on", "the mat was", "the dog"


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.fixture(scope="module")
def lm():
    return make_model("gpt2", "lm", layers=2, heads=2)


@pytest.fixture(scope="module")
def ref(lm, tokenizer):
    return attribute(lm, tokenizer, PROMPT, target=ANSWER, steps=2, per_token=True)


def layer_messages(ex, run_id=None):
    return [c for c, _ in wc.customs(ex) if c.get("type") == "layer" and c["run_id"] == (run_id or ex.run_id)]


def test_explained_answer_is_marked_and_each_answer_token_has_its_own_maps(lm, tokenizer, ref):
    ex = Explorer(lm, tokenizer)
    ex.explain(PROMPT, target=ANSWER, steps=2)
    a = ex.wait(60)
    assert a.target_kind == "continuation" and a.per_token is not None  # per_token is on for answers
    np.testing.assert_allclose(a.scores, ref.scores, rtol=1e-5, atol=1e-7)
    A = len(a.tokens) - a.answer_start
    m = ex.meta
    assert m["answer_start"] == a.answer_start and m["answer_token"] is None and m["answer"] == ANSWER
    assert m["answer_ready"] == list(range(A)) and m["score"] == "logprob" and m["target_kind"] == "continuation"
    assert ex.query == a.answer_start - 1  # the row that predicts the first answer token
    # the readout names what each row predicts: the answer's tokens, from the row before the answer on
    assert [(i, t) for i, t in enumerate(m["predicts"]) if t] == [
        (i, a.tokens[i + 1]) for i in range(a.answer_start - 1, len(a.tokens) - 1)]
    assert len(m["predicts"]) == len(ex.tokens) and m["predicts"][ex.query] == a.tokens[a.answer_start]
    assert explorer_mod._row_predicts(attribute(lm, tokenizer, PROMPT, steps=2)) == []  # one next token: no answer
    # only the shown stream (the whole answer) went to the browser; the per-token layers stayed in the kernel
    msgs = layer_messages(ex)
    assert [c["index"] for c in msgs] == [0, 1] and {c["answer_token"] for c in msgs} == {None}
    # pick answer token 1 from the browser: every trait now describes F_1, the selected head is kept
    sel = list(ex.selected)
    wc.from_front_end(ex, {"answer_token": 1})
    p1 = a.per_token[1]
    assert ex.selected == sel and ex.meta["answer_token"] == 1 and ex.meta["answer"] == ANSWER
    assert ex.meta["prob"] == pytest.approx(p1.prob) and ex.meta["target_label"] == p1.target_label
    assert ex.query == a.answer_start  # the row that predicts answer token 1
    assert ex.meta["predicts"] == m["predicts"]  # the same rows predict the same tokens for F_1
    np.testing.assert_array_equal(ex.head["attribution"], p1.scores[sel[0], sel[1]])
    np.testing.assert_allclose(ex.head_scores, p1.head_scores(), rtol=1e-6)
    assert ex.tokens == a.tokens
    # the tree grows from what is shown (answer token 1), or from any answer token asked for
    tv = ex.tree_view(0.2)
    assert tv.attribution is p1 and "answer token 1" in tv.title and tv.linked
    assert ex.tree_view(0.2, answer_token=None).attribution is a
    assert not ex.tree_view(0.2, answer_token=0).linked  # another answer token than the one shown
    with pytest.raises(ValueError, match=f"answer has {A} tokens"):
        ex.tree_view(0.2, answer_token=A)
    # back to the whole answer; an answer token without maps is refused and the view stays as it was
    ex.show_answer_token(None)
    assert ex.answer_token == -1 and ex.meta["answer_token"] is None
    np.testing.assert_array_equal(ex.head["attribution"], a.scores[sel[0], sel[1]])
    with pytest.raises(ValueError, match="no maps of its own"):
        ex.show_answer_token(A + 3)
    wc.from_front_end(ex, {"answer_token": A + 3})
    assert ex.answer_token == -1


def test_answer_token_picked_during_the_run_streams_its_layers(lm, tokenizer, monkeypatch):
    reached, release = threading.Event(), threading.Event()

    def slow(*args, progress=None, **kw):
        def prog(r):
            progress(r)
            if r.answer_token is None and r.index == 0:
                reached.set()
                release.wait(30)
        return attribute(*args, progress=prog, **kw)

    monkeypatch.setattr(explorer_mod, "_attribute", slow)
    ex = Explorer(lm, tokenizer)
    ex.explain(PROMPT, target=ANSWER, steps=2)
    assert reached.wait(30)
    assert ex.meta["answer_start"] == 6 and ex.meta["target_label"] == ANSWER  # known while streaming
    assert ex.meta["predicts"][5] == ex.tokens[6] and ex.meta["predicts"][-1] == "" and not any(ex.meta["predicts"][:5])
    wc.from_front_end(ex, {"answer_token": 2})
    before = len(layer_messages(ex))
    resp, _ = wc.command_from_front_end(ex, "_cmd_resend", {"run_id": ex.run_id})
    assert all(m["answer_token"] == 2 for m in resp["layers"]) and len(resp["layers"]) == ex.layers_done
    release.set()
    a = ex.wait(60)
    after = layer_messages(ex)[before:]
    assert after and {c["answer_token"] for c in after} == {2}
    assert ex.answer_token == 2 and ex.meta["answer_token"] == 2
    sel = ex.selected
    np.testing.assert_array_equal(ex.head["attribution"], a.per_token[2].scores[sel[0], sel[1]])


def test_input_bar_answer_and_generate(lm, tokenizer):
    ex = Explorer(lm, tokenizer)
    ex.explain(PROMPT, steps=2)  # a next token first: no answer
    ex.wait(60)
    assert "answer_start" not in ex.meta and ex.input_spec["answers"]
    wc.command_from_front_end(ex, "_cmd_run", {"text": PROMPT, "text_pair": None, "target": ANSWER})
    a = ex.wait(60)
    assert a.target_label == ANSWER and ex.meta["answer_start"] == a.answer_start and a.steps == 2
    wc.command_from_front_end(ex, "_cmd_run", {"text": PROMPT, "target": "pred", "generate": 3})
    g = ex.wait(60)
    ref = attribute(lm, tokenizer, PROMPT, generate=3, steps=2)
    assert g.tokens == ref.tokens and g.target_kind == "continuation" and g.per_token is not None
    assert ex.meta["answer"] == ref.target_label
    # history: answers listed with their text; switching back restores the answer and the whole answer's view
    assert [h["answer"] for h in ex.history] == [None, ANSWER, ref.target_label]
    wc.from_front_end(ex, {"answer_token": 0})
    wc.command_from_front_end(ex, "_cmd_history", {"key": ex.history[1]["key"]})
    assert ex.attribution is a and ex.answer_token == -1 and ex.meta["answer"] == ANSWER
    # a bad number of tokens is refused with the reason, shown in the view
    resp, _ = wc.command_from_front_end(ex, "_cmd_run", {"text": PROMPT, "generate": "lots"})
    assert resp["ok"] is False and "generate must be a whole number" in resp["error"]
    assert "generate" in ex.error


def test_contrast_of_two_answers_covers_the_tokens_they_share(lm, tokenizer):
    ex = Explorer(lm, tokenizer)
    ex.explain(PROMPT, target=ANSWER, steps=2)
    a = ex.wait(60)
    wc.command_from_front_end(ex, "_cmd_contrast", {"target": OTHER})
    b = ex.wait_contrast(60)
    assert b.target_label == OTHER and b.per_token is not None
    ref = attribute(lm, tokenizer, PROMPT, target=OTHER, steps=2)
    np.testing.assert_allclose(b.scores, ref.scores, rtol=1e-5, atol=1e-7)
    k = ex.contrast["common"]
    assert k == a.answer_start + 1  # the prompt and the shared first answer token ("the")
    li, h = ex.selected
    c = ex.head["contrast"]
    assert c.shape == a.scores.shape[-2:]
    np.testing.assert_array_equal(c[:k, :k], b.scores[li, h][:k, :k])
    assert np.isnan(c[k:]).all() and np.isnan(c[:, k:]).all()
    # per answer token: A's token t against B's token t
    wc.from_front_end(ex, {"answer_token": 1})
    np.testing.assert_array_equal(ex.head["contrast"][:k, :k], b.per_token[1].scores[li, h][:k, :k])
    np.testing.assert_array_equal(ex.head["attribution"], a.per_token[1].scores[li, h])
    # an answer token B does not have: no contrast map for it
    wc.from_front_end(ex, {"answer_token": 2})
    assert "contrast" not in ex.head


def test_static_snapshot_and_export_keep_the_answer_marked_and_escaped(lm, tokenizer, ref, tmp_path):
    from attattr_widgets.engine.results.attribution import Attribution

    hostile = ["<b>", "</script>", "<img src=x onerror=alert(1)>", "a&amp;b", "\u2028x"]
    n = len(hostile) + 2
    rng = np.random.default_rng(0)
    attr = Attribution(
        scores=rng.normal(size=(1, 2, n, n)).astype(np.float32),
        attention=rng.random(size=(1, 2, n, n)).astype(np.float32), tokens=["p0", "p1", *hostile],
        token_type_ids=np.zeros(n, np.int64), target=3, target_label="</script><b>ans", prob=-1.25,
        layer_zero_probs=np.zeros(1), completeness=np.zeros(1), layers=[0], num_layers=1, rule="gauss-legendre",
        steps=2, score="logprob", text="<!-- prompt", target_kind="continuation", answer_start=2)
    ex = Explorer.from_attribution(attr)
    assert ex.meta["answer_start"] == 2 and ex.meta["answer"] == "</script><b>ans" and ex.query == 1
    page = explorer_html(ex)
    assert "<img" not in page and "<b>ans" not in page and "&lt;img src=x" in page
    assert "answer <b>&lt;/script&gt;&lt;b&gt;ans</b>" in page and "log p = " in page
    assert page.count('data-answer="col"') == 2 and page.count("margin-left:14px") == 1
    out = export.to_html(ex, tmp_path / "answer.html")
    text = out.read_text(encoding="utf-8")
    assert "<img src=x" not in text and '"answer_start": 2' in text.replace('"answer_start":2', '"answer_start": 2')
    # a real answer with per-token maps: the snapshot of answer token 1 names it
    ex2 = Explorer.from_attribution(ref)
    ex2._attribution = ref
    ex2.show_answer_token(1)
    assert "answer token 1" in explorer_html(ex2)


def test_heads_view_opens_an_example_with_an_answer_as_that_answer(lm, tokenizer):
    from attattr_widgets.widgets import HeadsView

    examples = [{"text": PROMPT, "target": ANSWER}, {"text": "the dog was", "target": "on the mat"}]
    hv = HeadsView(lm, tokenizer, examples, methods=("attattr",), steps=2)
    hv.run()
    hv.wait(120)
    assert hv.state == "done", hv.error
    wc.command_from_front_end(hv, "_cmd_open", {"index": 1, "layer": 0, "head": 1})
    ex = hv.explorer
    a = ex.wait(60)
    assert a.target_label == "on the mat" and ex.meta["answer_start"] == a.answer_start and ex.selected == [0, 1]
    assert a.per_token is not None  # the answer's tokens can be picked in the linked Explorer


def test_generate_on_a_classifier_is_refused_at_once(tokenizer):
    ex = Explorer(make_model("bert", "cls", layers=1, heads=2), tokenizer)
    with pytest.raises(ValueError, match="generate= needs a causal language model"):
        ex.explain("the movie was great", generate=3)
    assert ex.state == "empty" and not ex.input_spec["answers"]


def test_export_of_an_answer_token_embeds_that_tokens_maps(lm, tokenizer, ref, tmp_path):
    """An exported page of answer token t draws t's maps for every head (not the whole answer's)."""
    from attattr_widgets.widgets.embed import embed_heads

    ex = Explorer.from_attribution(ref)
    ex.show_answer_token(2)
    want = embed_heads(ref.per_token[2], "top-2", None)
    assert ex.embed_heads("top-2", None)["chunks"] == want["chunks"]
    assert ex.to_html(tmp_path / "t2.html", heads="top-2").exists()


def test_an_export_carries_every_answer_tokens_state_for_a_page_without_kernel(lm, tokenizer, tmp_path):
    """Exporting an explained answer exports a copy (same answer token, head, query and lock) whose state holds, for
    the whole answer and every answer token, what the kernel would set when it is picked — the page's picker
    switches by itself. The live widget never gets it (in a notebook the kernel answers the picker)."""
    from attattr_widgets.widgets.embed import inflate_array

    ex = Explorer(lm, tokenizer)
    ex.explain(PROMPT, target=ANSWER, steps=2)
    a = ex.wait(60)
    ex.show_answer_token(1)
    ex.select(1, 0)
    [copy] = ex._export_views()
    assert copy is not ex and copy.answer_token == 1 and copy.meta["answer_token"] == 1
    assert copy.selected == [1, 0] and copy.query == ex.query
    np.testing.assert_array_equal(copy.head["attribution"], a.per_token[1].scores[1, 0])
    html = export.to_html(ex, tmp_path / "answer.html", max_bytes=400_000)
    assert ex.answer_states is None and '"answer_states":{"-1"' in html.read_text().replace(" ", "")
    with copy._embedding("all", 400_000):
        states = copy.answer_states
    A = len(a.per_token)
    assert sorted(states, key=int) == [str(t) for t in range(-1, A)]
    for t in range(-1, A):
        view, st = (a if t < 0 else a.per_token[t]), states[str(t)]
        assert st["meta"]["answer_token"] == (None if t < 0 else t)
        assert st["meta"]["prob"] == pytest.approx(view.prob) and st["meta"]["answer_start"] == a.answer_start
        np.testing.assert_allclose(st["head_scores"], view.head_scores(), rtol=1e-6)
        d = st["heads_data"]
        assert d["budget"] == 400_000 // (A + 1) and d["bytes"] <= d["budget"] and d["heads"]
        for (li, h), (sa, sr), chunk in zip(d["heads"], d["scales"], d["chunks"]):  # that token's own maps
            m = inflate_array(chunk).astype(np.float32)
            np.testing.assert_allclose(m[1] * sr, view.scores[li, h], rtol=2e-3, atol=2e-3 * sr)
            np.testing.assert_allclose(m[0] * sa, view.attention[li, h], rtol=2e-3, atol=2e-3 * sa)
    assert states["0"]["head_scores"].tolist() != states["-1"]["head_scores"].tolist()
