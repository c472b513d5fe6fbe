"""The user's model never changes, not even during a run (issue 20): every engine pass runs on the engine's own
structural copy (its own eval mode and config), so a ``train()`` model's own forwards keep their dropout while a
run streams, a user's ``eval()`` during a run stays, a decoder classifier's missing pad id is never seen changed,
and no run draws from the global torch RNG."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import SINGLES, make_model, make_tokenizer

import attattr_widgets as aw
from attattr_widgets.engine.analysis.importance import head_importance
from attattr_widgets.engine.analysis.pruning import compare_pruning
from attattr_widgets.engine.analysis.triggers import evaluate_trigger
from attattr_widgets.engine.results import TriggerPattern


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def _dropout_model(family="bert", head="cls", **kw):
    """A tiny model with heavy dropout, in train() mode."""
    m = make_model(family, head, layers=2, heads=2, **kw)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.5
    return m.train()


def _watch(model, seen: list):
    """A forward pre-hook on the user's root module: the hook dicts are shared with the engine's copies, so it
    fires on every engine pass and records what the user's model looks like meanwhile."""
    def hook(module, args, kwargs):
        seen.append((module is model, model.training, model.config.pad_token_id))
    return model.register_forward_pre_hook(hook, with_kwargs=True)


class _Paused:
    """Runs ``fn`` in a thread that stops inside its ``nth`` engine pass (a shared pre-hook blocks there) until
    the ``with`` block ends; the user's own forwards (``module is model``) pass through."""

    def __init__(self, model, fn, nth: int = 2):
        self.model, self.fn, self.nth = model, fn, nth
        self.inside, self.go = threading.Event(), threading.Event()
        self.error = None
        self.handle = model.register_forward_pre_hook(self._hook)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _hook(self, module, args):
        if module is self.model or self.inside.is_set():
            return
        self.nth -= 1
        if self.nth == 0:
            self.inside.set()
            assert self.go.wait(60)

    def _run(self):
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            self.error = exc

    def __enter__(self):
        self.thread.start()
        assert self.inside.wait(60), "the run never reached a forward"
        return self

    def __exit__(self, *exc):
        self.go.set()
        self.thread.join(60)
        self.handle.remove()
        if self.error is not None and exc[0] is None:
            raise self.error


def test_train_model_keeps_dropout_in_the_users_thread_during_a_run(tok):
    model = _dropout_model()
    inputs = tok("the movie was great fun", return_tensors="pt")
    aw.attribute(model, tok, "a film", steps=2)  # discovery done: the runs below are steady-state
    torch.manual_seed(7)
    alone = model(**inputs).logits.detach()
    torch.manual_seed(7)
    again = model(**inputs).logits.detach()
    torch.manual_seed(8)
    other = model(**inputs).logits.detach()
    assert torch.equal(alone, again) and not torch.equal(alone, other)  # the seed matters: dropout is on
    with _Paused(model, lambda: aw.attribute(model, tok, "the movie was not very good", steps=3)):
        torch.manual_seed(7)
        during = model(**inputs).logits.detach()
        assert model.training
    assert torch.equal(during, alone)
    assert model.training


@pytest.mark.parametrize("switch", ["eval", "train"])
def test_the_users_mode_switch_during_a_run_stays(tok, switch):
    model = _dropout_model()
    if switch == "train":
        model.eval()
    aw.attribute(model, tok, "warm up", steps=2)
    with _Paused(model, lambda: aw.attribute(model, tok, "the movie was great", steps=2)):
        getattr(model, switch)()
    assert model.training == (switch == "train")
    assert all(m.training == (switch == "train") for m in model.modules())


def _gpt2_no_pad():
    m = make_model("gpt2", layers=2, heads=2, num_labels=3)
    m.config.pad_token_id = None
    return m


@pytest.mark.parametrize("entry", ["iter_attributions", "taylor", "attention", "pruning", "trigger", "attribute",
                                   "predict"])
def test_no_pass_writes_the_users_mode_or_config(tok, entry):
    """Every entry point's passes: the user's model is never the module run, stays in train(), and its config's
    pad id stays None (decoder classifier without one) throughout — seen from inside every engine pass."""
    model = _gpt2_no_pad().train()
    seen: list = []
    data = SINGLES[:3]
    pat = TriggerPattern(tokens=["movie"], token_ids=tok.convert_tokens_to_ids(["movie"]), positions=[2],
                         segments=[0], relative=[0.5], score=0.5, layer=0, head=0, pairs=[], pred=0,
                         pred_label="LABEL_0", gold=None, prob=0.9, example_index=0, text="the movie")
    aw.attribute(model, tok, "warm up", steps=2)
    handle = _watch(model, seen)
    try:
        if entry == "iter_attributions":
            list(aw.iter_attributions(model, tok, data, steps=2, batch_size=2))
        elif entry in ("taylor", "attention"):
            head_importance(model, tok, data, method=entry)
        elif entry == "pruning":
            compare_pruning(model, tok, data, {"r": np.arange(4.0).reshape(2, 2)}, fractions=[0.0, 0.5])
        elif entry == "trigger":
            evaluate_trigger(model, tok, data, pat)
        elif entry == "attribute":
            aw.attribute(model, tok, "the movie was great", steps=2)
        else:
            from attattr_widgets.engine.model.predict import target_options
            target_options(model, tok, "the movie was great")
    finally:
        handle.remove()
    assert seen, "no engine pass ran"
    assert not any(is_user for is_user, _, _ in seen), "the engine ran the user's own model"
    assert all(training and pad is None for _, training, pad in seen), seen
    assert model.training and model.config.pad_token_id is None


def test_pad_id_never_seen_changed_from_another_thread(tok):
    model = _gpt2_no_pad()
    head_importance(model, tok, SINGLES[:1], method="attention")
    with _Paused(model, lambda: head_importance(model, tok, SINGLES[:3], method="taylor")):
        assert model.config.pad_token_id is None
    assert model.config.pad_token_id is None


@pytest.mark.parametrize("family,head", [("bert", "cls"), ("gpt2", "lm")])
def test_a_run_draws_nothing_from_the_global_rng(tok, family, head):
    """The first run (discovery included) on a fresh train() model, and a later one, leave torch's RNG as it was."""
    model = _dropout_model(family, head)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    aw.attribute(model, tok, "the movie was great", steps=2)
    assert torch.equal(torch.get_rng_state(), state)
    aw.attribute(model, tok, "a bad plot", steps="auto")
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training


def test_engine_copy_has_its_own_mode_and_config(tok):
    from attattr_widgets.engine.intercept.controller import controller_for
    from attattr_widgets.engine.model.adapters import adapter_for

    model = _gpt2_no_pad().train()
    ctrl = controller_for(model)
    copy = ctrl.private(config_overrides=adapter_for(model).private_config())
    assert not copy.training and not any(m.training for m in copy.modules())
    assert copy.config is not model.config and copy.config.pad_token_id == -1
    assert all(getattr(m, "config", copy.config) is copy.config for m in copy.modules())
    assert model.training and model.config.pad_token_id is None
    ours = dict(model.named_parameters())
    assert all(p.data_ptr() == ours[n].data_ptr() for n, p in copy.named_parameters())


def test_generate_then_explain_never_runs_or_writes_the_users_model(tok):
    """``attribute(generate=N)`` (issue 21): decoding and every pass run on the engine's copy — the user's model is
    never the module run, stays in train() while it runs, and its generation config is unchanged; a user's
    eval() during the run stays."""
    model = _dropout_model("llama", "lm")
    gen = model.generation_config.to_dict()
    seen: list = []
    handle = _watch(model, seen)
    try:
        aw.attribute(model, tok, "the movie was great", generate=3, steps=2)
    finally:
        handle.remove()
    assert seen and not any(is_user for is_user, _, _ in seen), "the engine ran the user's own model"
    assert all(training for _, training, _ in seen) and model.training
    assert model.generation_config.to_dict() == gen
    with _Paused(model, lambda: aw.attribute(model, tok, "the movie was great", generate=3, steps=2)):
        model.eval()
    assert not model.training and not any(m.training for m in model.modules())
