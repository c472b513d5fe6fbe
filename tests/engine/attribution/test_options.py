"""The validated options object behind attribute / iter_attributions / the backend call
(engine/attribution/options.py)."""
from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

import attattr_widgets as aw
from attattr_widgets.engine.attribution import api
from attattr_widgets.engine.attribution.options import AttributionOptions, Quadrature
from attattr_widgets.engine.errors import ArgumentError, AttAttrError

from conftest import make_model

BAD = [
    ({"steps": 0}, ArgumentError, "steps"),
    ({"tol": -1}, ArgumentError, "tol"),
    ({"max_steps": 0}, ArgumentError, "max_steps"),
    ({"device": True}, ArgumentError, "device must be None, a device string"),
    ({"device": "warp-drive"}, ArgumentError, "is not a device"),
    ({"precision": "fp8"}, ArgumentError, "precision"),
    ({"memory_budget": -5}, ArgumentError, "memory_budget"),
    ({"score": "margin"}, AttAttrError, "unknown score 'margin': choose one of prob, logprob, logit"),
    ({"method": "fast"}, AttAttrError, "unknown method 'fast': choose one of prefix, naive"),
    ({"rule": "simpson", "steps": 4}, AttAttrError, "unknown quadrature rule 'simpson'"),
    ({"rule": "left"}, AttAttrError, "steps='auto' is its own adaptive rule; rule='left' needs a fixed steps="),
    ({"max_steps": 2}, AttAttrError, "steps='auto' starts with 3 nodes (α = 0, ½, 1): max_steps=2 is too few; "
                                     "pass max_steps >= 3, or a fixed steps=2"),
    ({"truncation": "yes"}, ArgumentError, "truncation"),
    ({"max_length": 0}, ArgumentError, "max_length"),
    ({"batch_size": 0}, ArgumentError, "batch_size"),
]


@pytest.mark.parametrize("kw,exc,words", BAD, ids=[next(iter(k)) + "-" + str(i) for i, (k, _, _) in enumerate(BAD)])
def test_every_keyword_is_checked_once_with_the_public_functions_messages(kw, exc, words, tokenizer):
    with pytest.raises(exc) as info:
        AttributionOptions.from_kwargs(**kw)
    assert words in str(info.value)
    model = make_model("bert", "cls", layers=1)
    public = {k: v for k, v in kw.items() if k != "batch_size"}
    if public:  # the public function refuses it with the same message
        with pytest.raises(exc) as again:
            aw.attribute(model, tokenizer, "the movie", **public)
        assert str(again.value) == str(info.value)


def test_options_are_frozen_picklable_and_hold_the_checked_values():
    opts = AttributionOptions.from_kwargs(layers=[2, 0], steps=6, rule="left", tol=0, device="cpu",
                                          truncation=True, batch_size=4, store="fp16", target=" Paris")
    assert opts.quad == Quadrature("left", 6, 0.0, 32) and not opts.quad.auto
    assert opts.layers == (2, 0) and opts.layer_list(3) == [2, 0]
    assert opts.device == torch.device("cpu") and opts.truncation is True and opts.batch_size == 4
    assert pickle.loads(pickle.dumps(opts)) == opts
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.score = "logit"
    assert opts.replace(target="pred").target == "pred" and opts.target == " Paris"
    assert AttributionOptions.from_kwargs() == AttributionOptions()


def test_layers_are_checked_against_the_model_with_the_usual_messages():
    opts = AttributionOptions.from_kwargs(layers=[1, 1])
    with pytest.raises(ArgumentError, match=r"layers=\[1, 1\] repeats a layer"):
        opts.layer_list(3)
    with pytest.raises(ArgumentError, match="layer 5 does not exist, the model has 3 layers"):
        AttributionOptions.from_kwargs(layers=5).layer_list(3)
    with pytest.raises(ArgumentError, match="layers must be None"):
        AttributionOptions.from_kwargs(layers="all").layer_list(3)
    assert AttributionOptions.from_kwargs(layers=(x for x in [-1])).layer_list(3) == [2]


def test_unknown_keywords_are_refused():
    with pytest.raises(TypeError, match="stepz"):
        AttributionOptions.from_kwargs(stepz=3)


def test_the_backend_call_ships_one_options_object(monkeypatch, tokenizer):
    """iter_attributions(backend=...) validates on the driver and hands the shard function the options object,
    not the keywords."""
    shipped = {}

    def fake_sharded(backend, fn, model, tok, items, *, progress, cancel, desc, multiple, **kwargs):
        shipped.update(kwargs, multiple=multiple)
        return iter([fn(model, tok, items, offset=0, progress=progress, cancel=cancel, **kwargs)])

    monkeypatch.setattr(api, "iter_sharded", fake_sharded)
    monkeypatch.setattr(api, "check_backend", lambda backend: None)
    model = make_model("bert", "cls", layers=2)
    out = list(aw.iter_attributions(model, tokenizer, [{"text": "the movie was great", "label": 1}], steps=2,
                                    layers=[1], batch_size=2, backend=object()))
    assert set(shipped) == {"options", "multiple"} and shipped["multiple"] == 2
    opts = shipped["options"]
    assert isinstance(opts, AttributionOptions)
    assert (opts.target, opts.truncation, opts.layers, opts.quad.steps) == ("gold", True, (1,), 2)
    assert [a.target for a in out] == [1] and out[0].layers == [1]
    with pytest.raises(AttAttrError, match="device= does not apply with a backend"):
        list(aw.iter_attributions(model, tokenizer, [{"text": "a", "label": 1}], device="cpu", backend=object()))
    with pytest.raises(AttAttrError, match="is a file on the worker"):
        list(api.iter_attributions_on(object(), model, tokenizer, [{"text": "a", "label": 1}], store="/tmp/x"))
