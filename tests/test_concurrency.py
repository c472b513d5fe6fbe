"""The user's model is theirs while an Explorer streams in the background: their own forwards in the main thread
give exactly what a deep copy gives, the run ends ``done``, and afterwards nothing about the model changed."""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch
import widget_comm as wc
from conftest import make_model

import attattr_widgets as aw
from attattr_widgets.widgets import Explorer

TEXT = "the movie was not very good and i really did not love it at all but the actors were fun"


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


@pytest.mark.parametrize("family,head", [("bert", "cls"), ("llama", "lm"), ("distilbert", "cls"),
                                         ("falcon-alibi", "lm")])
def test_main_thread_forwards_during_an_explorer_run_equal_a_deep_copy(family, head, tokenizer):
    model = make_model(family, head, layers=4, hidden=48, heads=4)
    twin = copy.deepcopy(model)
    batches = [tokenizer(["a dog", TEXT], return_tensors="pt", padding=True),
               tokenizer(TEXT, return_tensors="pt"),
               tokenizer(["the cat sat on the mat", "i love it"], ["a cat", "bad"], return_tensors="pt", padding=True)]
    if head == "lm":
        for b in batches:
            b.pop("token_type_ids", None)
    with torch.no_grad():
        expected = [twin(**b).logits for b in batches]
    impl = model.config._attn_implementation
    ex = Explorer(model, tokenizer)
    ex.explain(TEXT, steps=8)
    during, worst = 0, 0.0
    deadline = time.time() + 120
    while time.time() < deadline:
        running = ex.state == "running"
        for b, ref in zip(batches, expected):
            with torch.no_grad():
                got = model(**b).logits
            worst = max(worst, float((got - ref).abs().max()))
        if running:
            during += 1
        elif ex.state != "empty":
            break
    ex.wait(60)
    assert ex.state == "done", ex.error
    assert during >= 2, "the run finished before the main thread could overlap it: make the test run longer"
    assert worst <= 1e-6
    assert model.config._attn_implementation == impl and not model.training
    assert all(p.requires_grad for p in model.parameters())


def test_user_backward_during_a_run_gets_its_weight_gradients(tokenizer):
    """Parameters are never frozen by a run: a training step in the main thread during a background run gets
    the same gradients as on a copy."""
    model = make_model("bert", "cls", layers=4, hidden=48)
    twin = copy.deepcopy(model)
    batch = tokenizer([TEXT, "a dog"], return_tensors="pt", padding=True)
    y = torch.tensor([0, 1])

    def grads(m):
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(**batch).logits, y).backward()
        return [p.grad.clone() for p in m.parameters()]

    ref = grads(twin)
    done = threading.Event()
    t = threading.Thread(target=lambda: (aw.attribute(model, tokenizer, TEXT, steps=8), done.set()))
    t.start()
    rounds = 0
    while not done.is_set() and rounds < 50:
        got = grads(model)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, ref))
        rounds += 1
    t.join(120)
    assert done.is_set() and rounds >= 1


def test_two_explorers_on_one_model_both_finish_and_agree(tokenizer):
    model = make_model("gpt2", "lm", layers=3)
    a, b = Explorer(model, tokenizer), Explorer(model, tokenizer)
    a.explain(TEXT, steps=3)
    b.explain("the capital of france is", steps=3)
    a.wait(120)
    b.wait(120)
    assert a.state == b.state == "done"
    ref_a = aw.attribute(model, tokenizer, TEXT, steps=3)
    ref_b = aw.attribute(model, tokenizer, "the capital of france is", steps=3)
    np.testing.assert_allclose(a.attribution.scores, ref_a.scores, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(b.attribution.scores, ref_b.scores, rtol=1e-5, atol=1e-9)
    assert model.config._attn_implementation == "sdpa"


def test_main_thread_forwards_during_generate_then_explain_equal_a_deep_copy(tokenizer):
    """Generation (issue 21) and the per-token attribution after it run on the engine's copy: the user's own
    forwards meanwhile give what a deep copy gives, and the run's answer is the user's greedy answer."""
    model = make_model("llama", "lm", layers=4, hidden=48, heads=4, seed=1)
    twin = copy.deepcopy(model)
    batch = tokenizer(TEXT, return_tensors="pt")
    batch.pop("token_type_ids", None)
    with torch.no_grad():
        expected = twin(**batch).logits
        greedy = twin.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=0)[0, batch["input_ids"].shape[1]:]
    out: dict = {}

    def run():
        try:
            out["attr"] = aw.attribute(model, tokenizer, TEXT, generate=4, per_token=True, steps=8)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    during, worst = 0, 0.0
    while thread.is_alive():
        with torch.no_grad():
            got = model(**batch).logits
        worst = max(worst, float((got - expected).abs().max()))
        during += 1
    thread.join()
    if "error" in out:
        raise out["error"]
    attr = out["attr"]
    assert during >= 2, "the run finished before the main thread could overlap it: make the test run longer"
    assert worst <= 1e-6
    assert [p.target for p in attr.per_token] == greedy.tolist()
    assert not model.training and all(p.requires_grad for p in model.parameters())
