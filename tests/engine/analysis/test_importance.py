"""Head importance (issue 3): every method checked against an independent reference computation."""
from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from conftest import PAIRS, SINGLES, encode_example, make_model, make_strong_bert

from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.errors import AttAttrError, AttributionCancelled, TargetError
from attattr_widgets.engine.intercept.controller import controller_for
from attattr_widgets.engine.analysis.importance import METHODS, head_importance
from attattr_widgets.engine.analysis.taylor import head_mask_gradients, normalize_by_layer
from attattr_widgets.engine.model.predict import EncodedSet, predict_masked


@pytest.fixture(scope="module")
def bert():
    return make_strong_bert()


def _logits_unpadded(model, tok, examples, keep=None):
    """Independent reference: one unpadded example at a time, one (H,) mask per layer for the whole forward."""
    ctrl = controller_for(model)
    out = []
    with torch.no_grad():
        for ex in examples:
            enc = encode_example(tok, ex)
            hm = {} if keep is None else {l: torch.as_tensor(keep[l], dtype=torch.float32) for l in range(len(keep))}
            with ctrl.session(head_mask=hm):
                lg = model(**enc).logits
            out.append(lg[0, -1] if lg.dim() == 3 else lg[0])
    return torch.stack(out)


def _clone(model):
    """An independent copy (no controller, plain eager attention) with the same weights."""
    cfg = copy.deepcopy(model.config)
    m = type(model)(cfg)
    m.set_attn_implementation("eager")
    m.load_state_dict(model.state_dict())
    return m.eval()


def _zero_head(model, family, layer, head):
    """Remove head (layer, head)'s contribution by editing weights (its value / output-projection slice)."""
    with torch.no_grad():
        if family == "bert":
            v = model.bert.encoder.layer[layer].attention.self.value
            d = v.weight.shape[0] // model.config.num_attention_heads
            v.weight[head * d : (head + 1) * d] = 0
            v.bias[head * d : (head + 1) * d] = 0
        elif family == "llama":
            o = model.model.layers[layer].self_attn.o_proj
            d = model.config.head_dim
            o.weight[:, head * d : (head + 1) * d] = 0
        else:
            raise ValueError(family)


# ---------------------------------------------------------------------------------------------------------
# masking = removing the head


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_head_mask_equals_zeroed_head_weights(family, tok):
    model = make_model(family, layers=2, heads=4, num_labels=3, seed=2)
    ctrl = controller_for(model)
    L, H = ctrl.num_layers, ctrl.num_heads
    examples = SINGLES if family == "bert" else [{"text": e["text"], "label": e["label"]} for e in SINGLES]
    for layer, head in [(0, 1), (1, 3)]:
        keep = np.ones((L, H), np.float32)
        keep[layer, head] = 0
        masked = _logits_unpadded(model, tok, examples, keep)
        edited = _clone(model)
        _zero_head(edited, family, layer, head)
        with torch.no_grad():
            ref = torch.stack([edited(**encode_example(tok, e)).logits[0] for e in examples])
        full = _logits_unpadded(model, tok, examples)
        assert not torch.allclose(full, ref, atol=1e-5)  # the head does contribute
        torch.testing.assert_close(masked, ref, atol=1e-5, rtol=1e-5)
        # the batched, padded, stacked evaluator gives the edited model's predictions too
        data = EncodedSet(model, tok, examples)
        preds = predict_masked(data, keep[None], batch_size=4)[0]
        assert preds.tolist() == ref.argmax(-1).tolist()


# ---------------------------------------------------------------------------------------------------------
# batched evaluation


def test_stacked_row_masks_equal_loop_over_masks(bert, tok):
    L, H = 2, 4
    rng = np.random.default_rng(0)
    keep = (rng.random((9, L, H)) > 0.4).astype(np.float32)
    keep[0] = 1
    data = EncodedSet(bert, tok, SINGLES + PAIRS)
    stacked = predict_masked(data, keep, batch_size=3, row_tokens=10**6)  # all 9 masks in one forward per batch
    one_by_one = predict_masked(data, keep, batch_size=3, row_tokens=1)  # one mask per forward
    ref = np.stack([_logits_unpadded(bert, tok, SINGLES + PAIRS, k).argmax(-1).numpy() for k in keep])
    assert (stacked == ref).all()
    assert (one_by_one == ref).all()
    assert len({tuple(r) for r in ref}) > 1  # the masks do change predictions


def test_per_example_masks_equal_loop(bert, tok):
    exs = SINGLES + PAIRS
    rng = np.random.default_rng(1)
    keep = (rng.random((len(exs), 5, 2, 4)) > 0.5).astype(np.float32)
    data = EncodedSet(bert, tok, exs)
    got = predict_masked(data, keep, per_example=True, batch_size=4)
    for n, ex in enumerate(exs):
        for k in range(5):
            ref = int(_logits_unpadded(bert, tok, [ex], keep[n, k]).argmax(-1)[0])
            assert got[k, n] == ref


# ---------------------------------------------------------------------------------------------------------
# the methods


def test_attattr_importance_is_mean_of_per_example_head_max(bert, tok):
    imp = head_importance(bert, tok, SINGLES[:3], method="attattr", steps=4, batch_size=2)
    ref = np.mean(
        [attribute(bert, tok, e["text"], target="gold", gold=e["label"], steps=4).head_scores("max")
         for e in SINGLES[:3]], axis=0,
    )
    np.testing.assert_allclose(imp, ref, rtol=1e-4, atol=1e-7)
    assert imp.shape == (2, 4) and np.abs(imp).max() > 0


def test_attention_importance_matches_output_attentions(bert, tok):
    exs = SINGLES + PAIRS
    imp = head_importance(bert, tok, exs, method="attention", batch_size=3)
    per = []
    eager = copy.deepcopy(bert)
    eager.set_attn_implementation("eager")  # the engine leaves `bert` on SDPA, which returns no attentions
    with torch.no_grad():
        for e in exs:
            att = eager(**encode_example(tok, e), output_attentions=True).attentions  # L × (1, H, n, n), unpadded
            per.append(np.stack([a[0].reshape(a.shape[1], -1).max(-1).values.numpy() for a in att]))
    np.testing.assert_allclose(imp, np.mean(per, 0), rtol=1e-5, atol=1e-6)


def test_taylor_mask_gradient_equals_finite_differences(tok):
    model = make_model("bert", layers=2, heads=4, num_labels=3, seed=3, dtype=torch.float64)
    exs = SINGLES[:4]
    g = head_mask_gradients(model, tok, exs, batch_size=4)  # padded batch, one mask row per example
    ctrl = controller_for(model)
    eps = 1e-5

    def loss(ex, l, h, delta):
        xi = {i: torch.ones(4, dtype=torch.float64) for i in range(2)}
        xi[l][h] += delta
        with torch.no_grad(), ctrl.session(head_mask=xi):
            lg = model(**encode_example(tok, ex)).logits
        return float(torch.nn.functional.cross_entropy(lg, torch.tensor([ex["label"]])))

    fd = np.array([[[(loss(e, l, h, eps) - loss(e, l, h, -eps)) / (2 * eps) for h in range(4)] for l in range(2)]
                   for e in exs])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)
    imp = head_importance(model, tok, exs, method="taylor")
    np.testing.assert_allclose(imp, normalize_by_layer(np.abs(fd).mean(0)), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(imp, axis=1), 1.0)


def test_taylor_authors_matches_context_vector_hook(bert, tok):
    """|<ctx_i, ∂(Σ logits)/∂ctx_i>| per query token, summed: the authors' script, via hooks on the context."""
    exs = SINGLES + PAIRS
    H = 4
    ref = np.zeros((2, H))
    ctx = {}
    hooks = [bert.bert.encoder.layer[l].attention.self.register_forward_hook(
        lambda mod, args, out, l=l: ctx.__setitem__(l, out[0])) for l in range(2)]
    try:
        for e in exs:
            ctx.clear()
            S = bert(**encode_example(tok, e)).logits.sum()
            grads = torch.autograd.grad(S, [ctx[l] for l in range(2)])
            for l in range(2):
                c = ctx[l].detach().view(1, -1, H, 8)
                ref[l] += (c * grads[l].view(1, -1, H, 8)).sum(-1).abs().sum((0, 1)).numpy()
    finally:
        for hk in hooks:
            hk.remove()
    got = head_importance(bert, tok, exs, method="taylor-authors", normalize=False, batch_size=3)
    np.testing.assert_allclose(got, ref / len(exs), rtol=1e-4)
    np.testing.assert_allclose(head_importance(bert, tok, exs, method="taylor-authors"), normalize_by_layer(ref),
                               rtol=1e-4)


def test_accuracy_difference_matches_edited_models(bert, tok):
    exs = SINGLES + PAIRS
    got = head_importance(bert, tok, exs, method="accuracy", batch_size=4)
    labels = np.array([e["label"] for e in exs])
    with torch.no_grad():
        full = np.mean([int(bert(**encode_example(tok, e)).logits.argmax()) == e["label"] for e in exs])
    ref = np.zeros((2, 4))
    for l in range(2):
        for h in range(4):
            m = _clone(bert)
            _zero_head(m, "bert", l, h)
            with torch.no_grad():
                preds = np.array([int(m(**encode_example(tok, e)).logits.argmax()) for e in exs])
            ref[l, h] = full - (preds == labels).mean()
    np.testing.assert_allclose(got, ref)
    assert np.abs(ref).max() > 0


def test_random_is_seeded(bert, tok):
    a = head_importance(bert, tok, SINGLES, method="random", seed=3)
    assert a.shape == (2, 4)
    np.testing.assert_array_equal(a, head_importance(bert, tok, SINGLES, method="random", seed=3))
    assert not np.array_equal(a, head_importance(bert, tok, SINGLES, method="random", seed=4))


# ---------------------------------------------------------------------------------------------------------
# progress, cancellation, errors


@pytest.mark.parametrize("method", ["attattr", "attention", "taylor", "taylor-authors", "accuracy"])
def test_progress_and_cancel(method, bert, tok):
    calls = []
    head_importance(bert, tok, SINGLES[:3], method=method, steps=2, batch_size=2,
                    progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
    ev = threading.Event()
    ev.set()
    with pytest.raises(AttributionCancelled):
        head_importance(bert, tok, SINGLES[:3], method=method, steps=2, cancel=ev)


def test_progress_true_uses_tqdm(bert, tok):
    head_importance(bert, tok, SINGLES[:2], method="attention", progress=True)


def test_errors(bert, tok):
    assert set(METHODS) >= {"attattr", "attention", "taylor", "taylor-authors", "accuracy", "random"}
    with pytest.raises(AttAttrError, match="unknown importance method"):
        head_importance(bert, tok, SINGLES, method="magic")
    unlabelled = [{"text": "the movie"}]
    with pytest.raises(TargetError):
        head_importance(bert, tok, unlabelled, method="accuracy")
    with pytest.raises(TargetError):
        head_importance(bert, tok, unlabelled, method="taylor")
    # target="pred" needs no labels
    assert head_importance(bert, tok, unlabelled, method="taylor", target="pred").shape == (2, 4)
