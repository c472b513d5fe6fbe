"""Pruning curves, effectiveness (Fig 2) and head correlation (Fig 4), against independent references; plus a
tiny BERT trained in the test where one known head carries the task."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import PAIRS, SINGLES, WORDS, encode_example, make_model, make_strong_bert

from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.errors import AttAttrError, AttributionCancelled
from attattr_widgets.engine.intercept.controller import controller_for
from attattr_widgets.engine.analysis.importance import head_importance
from attattr_widgets.engine.analysis.pruning import compare_pruning, effectiveness, head_correlation, per_layer_masks, pruned_counts, pruning_curve, pruning_masks
from attattr_widgets.engine.results import Correlation, Effectiveness, PruningCurve

EXAMPLES = SINGLES + PAIRS


@pytest.fixture(scope="module")
def bert():
    return make_strong_bert()


def _accuracy_unpadded(model, tok, examples, keep=None):
    """Reference: one unpadded example per forward, the same (H,) keep mask per layer."""
    ctrl = controller_for(model)
    hits = []
    with torch.no_grad():
        for ex in examples:
            hm = {} if keep is None else {l: torch.as_tensor(keep[l], dtype=torch.float32) for l in range(len(keep))}
            with ctrl.session(head_mask=hm):
                hits.append(int(model(**encode_example(tok, ex)).logits.argmax()) == ex["label"])
    return float(np.mean(hits))


def _clone_without_heads(model):
    """Independent copy (eager attention, no controller) with every head's value slice zeroed."""
    import copy

    m = type(model)(copy.deepcopy(model.config))
    m.set_attn_implementation("eager")
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer in m.bert.encoder.layer:
            layer.attention.self.value.weight.zero_()
            layer.attention.self.value.bias.zero_()
    return m.eval()


# ---------------------------------------------------------------------------------------------------------
# masks and counts


def test_pruned_counts_round_and_authors_floor():
    f = np.linspace(0, 1, 11)
    assert pruned_counts(f, 144, "floor").tolist() == [0, 14, 28, 43, 57, 72, 86, 100, 115, 129, 144]  # int(r·144)
    assert pruned_counts(f, 144).tolist() == [0, 14, 29, 43, 58, 72, 86, 101, 115, 130, 144]
    with pytest.raises(AttAttrError):
        pruned_counts([1.5], 144)


def test_pruning_masks_global_nested_and_ordered():
    rng = np.random.default_rng(0)
    imp = rng.random((3, 4))
    m = pruning_masks(imp, np.linspace(0, 1, 11))
    assert m.shape == (11, 3, 4) and m.dtype == bool
    assert m.sum((1, 2)).tolist() == pruned_counts(np.linspace(0, 1, 11), 12).tolist()
    assert all((m[k] <= m[k + 1]).all() for k in range(10))  # nested
    for k in range(11):  # least-first: every pruned head is less important than every kept head
        if 0 < m[k].sum() < 12:
            assert imp[m[k]].max() < imp[~m[k]].min()
    big = pruning_masks(imp, [0.25], "largest-first")[0]
    assert set(map(tuple, np.argwhere(big))) == set(map(tuple, np.argwhere(imp >= np.sort(imp.ravel())[-3])))
    # ties are broken by a seeded random order, not by layer index
    ties = np.zeros((4, 4))
    first = [np.argwhere(pruning_masks(ties, [0.25], seed=s)[0]).tolist() for s in range(6)]
    assert len({str(f) for f in first}) > 1
    assert np.array_equal(pruning_masks(ties, [0.5], seed=1), pruning_masks(ties, [0.5], seed=1))


def test_per_layer_masks():
    s = np.array([[0.3, 0.1, 0.4, 0.2], [4.0, 1.0, 3.0, 2.0]])
    keep = per_layer_masks(s, [0, 1, 2, 4], "smallest-first")
    assert keep.shape == (4, 2, 4)
    assert keep[0].all() and not keep[3].any()
    np.testing.assert_array_equal(keep[2], [[1, 0, 1, 0], [1, 0, 1, 0]])
    np.testing.assert_array_equal(per_layer_masks(s, [1], "largest-first")[0], [[1, 1, 0, 1], [0, 1, 1, 1]])


# ---------------------------------------------------------------------------------------------------------
# curves


def test_curve_endpoints_and_points_match_references(bert, tok):
    imp = head_importance(bert, tok, EXAMPLES, method="taylor")
    curve = pruning_curve(bert, tok, EXAMPLES, imp, method_name="taylor", batch_size=3)
    assert curve.method == "taylor" and curve.order == "least-first" and curve.num_examples == len(EXAMPLES)
    assert curve.pruned.shape == (11, 2, 4) and curve.counts.tolist() == pruned_counts(curve.fractions, 8).tolist()
    # 0 %: the untouched model, evaluated without any session
    with torch.no_grad():
        plain = np.mean([int(bert(**encode_example(tok, e)).logits.argmax()) == e["label"] for e in EXAMPLES])
    assert curve.accuracy[0] == plain
    # 100 %: a copy whose heads were removed by zeroing every value projection
    empty = _clone_without_heads(bert)
    with torch.no_grad():
        none = np.mean([int(empty(**encode_example(tok, e)).logits.argmax()) == e["label"] for e in EXAMPLES])
    assert curve.accuracy[-1] == none
    # every point: a loop over the masks, one unpadded example at a time
    ref = [_accuracy_unpadded(bert, tok, EXAMPLES, (~p).astype(np.float32)) for p in curve.pruned]
    np.testing.assert_allclose(curve.accuracy, ref)
    assert len(set(ref)) > 1


def test_compare_pruning_equals_separate_curves(bert, tok):
    imps = {"a": head_importance(bert, tok, EXAMPLES, method="random", seed=1),
            "b": head_importance(bert, tok, EXAMPLES, method="random", seed=2)}
    fr = [0.0, 0.25, 0.5, 1.0]
    curves = compare_pruning(bert, tok, EXAMPLES, imps, fractions=fr, order=("least-first", "largest-first"))
    assert [c.method for c in curves] == ["a, least-first", "a, largest-first", "b, least-first", "b, largest-first"]
    for c in curves:
        name, order = c.method.split(", ")
        single = pruning_curve(bert, tok, EXAMPLES, imps[name], fractions=fr, order=order, batch_size=2)
        np.testing.assert_array_equal(c.accuracy, single.accuracy)
        np.testing.assert_array_equal(c.pruned, single.pruned)
    assert curves[0].accuracy[0] == curves[3].accuracy[0]


def test_pruning_curve_roundtrip(tmp_path, bert, tok):
    imp = head_importance(bert, tok, EXAMPLES, method="random")
    c = pruning_curve(bert, tok, EXAMPLES, imp, fractions=[0, 0.5, 1], method_name="random", rounding="floor")
    back = PruningCurve.load(c.save(tmp_path / "c.json"))
    assert back.method == c.method and back.order == c.order and back.rounding == "floor"
    np.testing.assert_array_equal(back.accuracy, c.accuracy)
    np.testing.assert_array_equal(back.pruned, c.pruned)
    assert back.pruned.dtype == bool
    json.dumps(c.to_dict())
    assert 0 <= c.area() <= 1


def test_pruning_progress_cancel_and_errors(bert, tok):
    imp = np.zeros((2, 4))
    calls = []
    pruning_curve(bert, tok, EXAMPLES, imp, fractions=[0, 1], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(EXAMPLES) * 2, len(EXAMPLES) * 2)
    import threading

    ev = threading.Event()
    ev.set()
    with pytest.raises(AttributionCancelled):
        pruning_curve(bert, tok, EXAMPLES, imp, cancel=ev)
    with pytest.raises(AttAttrError, match="shape"):
        pruning_curve(bert, tok, EXAMPLES, np.zeros((3, 4)))
    with pytest.raises(AttAttrError, match="order"):
        pruning_curve(bert, tok, EXAMPLES, imp, order="sideways")
    with pytest.raises(AttAttrError, match="NaN"):
        pruning_curve(bert, tok, EXAMPLES, np.full((2, 4), np.nan))


# ---------------------------------------------------------------------------------------------------------
# effectiveness


def test_effectiveness_matches_reference(bert, tok):
    exs = EXAMPLES[:5]
    eff = effectiveness(bert, tok, exs, steps=3, batch_size=3)
    assert isinstance(eff, Effectiveness) and eff.heads.tolist() == [0, 1, 2, 3, 4]
    ref = {(c, o): np.zeros(5) for c in ("attribution", "attention") for o in ("smallest-first", "largest-first")}
    for n, e in enumerate(exs):
        a = attribute(bert, tok, e["text"], e.get("text_pair"), target="gold", gold=e["label"], steps=3)
        crit = {"attribution": a.scores.reshape(2, 4, -1).max(-1), "attention": a.attention.reshape(2, 4, -1).max(-1)}
        for (c, o), acc in ref.items():
            for i, k in enumerate(range(5)):
                keep = np.ones((2, 4), np.float32)
                for l in range(2):
                    key = crit[c][l] if o == "smallest-first" else -crit[c][l]
                    tie = np.random.default_rng(n).random(4)  # documented tie-break: seeded per example (seed + n)
                    ranked = sorted(range(4), key=lambda h: (key[h], tie[h]))
                    keep[l, ranked[:k]] = 0
                acc[i] += _accuracy_unpadded(bert, tok, [e], keep) / len(exs)
    for (c, o), acc in ref.items():
        np.testing.assert_allclose(eff.accuracy[c][o], acc, err_msg=f"{c} {o}")
    assert eff.accuracy["attribution"]["smallest-first"][0] == eff.full_accuracy == _accuracy_unpadded(bert, tok, exs)
    json.dumps(eff.to_dict())
    assert Effectiveness.from_dict(eff.to_dict()).accuracy["attention"]["largest-first"].tolist() == \
        eff.accuracy["attention"]["largest-first"].tolist()


# ---------------------------------------------------------------------------------------------------------
# correlation


def test_head_correlation_matches_numpy_and_scipy():
    rng = np.random.default_rng(0)
    a = rng.random((6, 12))
    b = 0.7 * a + 0.3 * rng.random((6, 12))
    c = head_correlation(a, b, labels=("sst", "nli"))
    assert isinstance(c, Correlation) and c.n == 72 and c.labels == ("sst", "nli")
    assert c.r == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    from scipy import stats

    assert c.p_value == pytest.approx(stats.pearsonr(a.ravel(), b.ravel()).pvalue)
    assert c.spearman == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic)
    assert (c.layer[13], c.head[13], c.x[13], c.y[13]) == (1, 1, a[1, 1], b[1, 1])
    assert np.isnan(head_correlation(np.ones((2, 2)), a[:2, :2]).r)
    with pytest.raises(AttAttrError):
        head_correlation(a, b[:3])


# ---------------------------------------------------------------------------------------------------------
# a tiny BERT trained here: "is the word 'cat' in the sentence?", solvable only through head (0, 2)

PLANTED = (0, 2)


def _cat_data(n, seed):
    rng = random.Random(seed)
    words = [w for w in WORDS if w.isalpha() and w != "cat"]
    out = []
    for i in range(n):
        k = rng.randint(3, 8)
        ws = [rng.choice(words) for _ in range(k)]
        if i % 2:
            ws[rng.randrange(k)] = "cat"
        out.append({"text": " ".join(ws), "label": i % 2})
    return out


@pytest.fixture(scope="module")
def planted(tok):
    """2 layers × 4 heads, hidden 32. Every head but PLANTED has its value projection zeroed and is masked
    during training (so it stays zero: no gradient reaches it), hence the only route from the 'cat' token to
    [CLS] is head (0, 2): it is necessary by construction, and the model must learn to use it."""
    torch.manual_seed(0)
    model = make_model("bert", layers=2, heads=4, hidden=32, num_labels=2, vocab_size=len(tok), seed=0)
    ctrl = controller_for(model)
    d = 32 // 4
    keep = {l: torch.tensor([1.0 if (l, h) == PLANTED else 0.0 for h in range(4)]) for l in range(2)}
    with torch.no_grad():
        for l in range(2):
            v = model.bert.encoder.layer[l].attention.self.value
            for h in range(4):
                if (l, h) != PLANTED:
                    v.weight[h * d : (h + 1) * d] = 0
                    v.bias[h * d : (h + 1) * d] = 0
    train = _cat_data(2000, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(80):
        batch = random.Random(step).sample(train, 64)
        enc = tok([b["text"] for b in batch], padding=True, return_tensors="pt")
        with ctrl.session(head_mask=keep):
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, torch.tensor([b["label"] for b in batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def test_trained_model_planted_head_is_found_and_kept(planted, tok):
    held_out = _cat_data(160, 2)
    importance_set = _cat_data(40, 3)
    L, H = 2, 4
    flat = PLANTED[0] * H + PLANTED[1]
    full = _accuracy_unpadded(planted, tok, held_out)
    keep = np.ones((L, H), np.float32)
    keep[PLANTED] = 0
    assert full >= 0.95
    assert _accuracy_unpadded(planted, tok, held_out, keep) <= 0.6  # the head is necessary
    imps = {m: head_importance(planted, tok, importance_set, method=m, steps=4)
            for m in ("attattr", "accuracy", "taylor")}
    for m, imp in imps.items():
        assert int(np.argmax(imp)) == flat, m
    imps.update({f"random{s}": head_importance(planted, tok, importance_set, method="random", seed=s)
                 for s in range(5)})
    curves = compare_pruning(planted, tok, held_out, imps, order=("least-first", "largest-first"), batch_size=64)
    by = {c.method: c for c in curves}
    least, largest = by["attattr, least-first"], by["attattr, largest-first"]
    assert least.accuracy[0] == full and least.accuracy[:-1].min() >= 0.95  # the planted head goes last
    assert largest.accuracy[1:].max() <= 0.6  # the planted head goes first
    randoms = [by[f"random{s}, least-first"] for s in range(5)]
    assert all((least.accuracy >= r.accuracy - 1e-12).all() for r in randoms)
    assert least.area() > np.mean([r.area() for r in randoms]) + 0.05
    assert least.area() > largest.area() + 0.3
