"""Attribution tree (issue 4): a hand-built example, an independent loop reference, tree invariants, monotonicity."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attattr_widgets.engine.errors import AttAttrError
from attattr_widgets.engine.analysis.tree import attribution_tree, normalized_layer_scores
from attattr_widgets.engine.results import AttributionTree


def fake(scores, tokens=None, layers=None, num_layers=None):
    scores = np.asarray(scores, dtype=np.float32)
    L, _, n, _ = scores.shape
    tokens = tokens or (["[CLS]"] + [f"w{i}" for i in range(1, n)])
    layers = list(range(L)) if layers is None else layers
    return SimpleNamespace(scores=scores, tokens=tokens, layers=layers,
                           num_layers=num_layers if num_layers is not None else max(layers) + 1)


# ---------------------------------------------------------------------------------------------------------------
# independent reference: plain Python loops over the documented rules (no numpy vectorisation)

def reference_tree(scores, tokens, layers, num_layers, tau):
    scores = np.asarray(scores, dtype=np.float64)
    L, H, n, _ = scores.shape
    cls = 0 if tokens[0] in ("[CLS]", "<s>") else None
    S = [[[sum(float(scores[k, h, i, j]) for h in range(H)) for j in range(n)] for i in range(n)] for k in range(L)]
    P = []
    for k in range(L):
        mx = max(S[k][i][j] for i in range(n) if i != cls for j in range(n))
        P.append([[S[k][i][j] / abs(mx) if mx > 0 else 0.0 for j in range(n)] for i in range(n)])
    best_root, best_sum = None, None
    for i in range(n):
        if i == cls:
            continue
        tot = sum(max(0.0, sum(S[k][i][j] for k in range(L))) for j in range(n) if j != i)
        if best_sum is None or tot > best_sum:
            best_root, best_sum = i, tot
    entered = {best_root: num_layers}
    edges = []
    for k in sorted(range(L), key=lambda k: layers[k], reverse=True):
        before = dict(entered)
        for j in range(n):
            if j in entered:
                continue
            best = None
            for i in sorted(before):
                if i == cls or not P[k][i][j] > tau:
                    continue
                if best is None or P[k][i][j] > P[k][best][j]:
                    best = i
            if best is not None:
                entered[j] = layers[k]
                edges.append((best, j, layers[k], P[k][best][j]))
    return best_root, entered, edges


def check_invariants(tree: AttributionTree, tau: float):
    d = tree.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON types
    assert set(d) == {"tokens", "num_layers", "threshold", "root", "nodes", "edges"}
    nodes = {n["index"]: n for n in d["nodes"]}
    assert len(nodes) == len(d["nodes"]), "a token joined twice"
    assert d["nodes"][0]["index"] == d["root"] and d["nodes"][0]["layer"] == d["num_layers"]
    assert len(d["edges"]) == len(nodes) - 1
    parent = {}
    for e in d["edges"]:
        assert e["child"] not in parent, "two parents"
        assert e["child"] != d["root"]
        parent[e["child"]] = e["parent"]
        assert e["parent"] in nodes and e["child"] in nodes
        assert e["score"] > tau
        assert nodes[e["child"]]["layer"] == e["layer"]
        assert nodes[e["parent"]]["layer"] > e["layer"], "parent must have entered above the edge's layer"
        assert d["tokens"][e["child"]] == nodes[e["child"]]["token"]
    for j in nodes:  # root reachable from every node, no cycles
        seen, k = set(), j
        while k != d["root"]:
            assert k not in seen, "cycle"
            seen.add(k)
            k = parent[k]


# ---------------------------------------------------------------------------------------------------------------


def hand_built():
    """[CLS] a b c [SEP], 3 layers, 2 heads whose sum is the table below (known tree)."""
    n, L = 5, 3
    S = np.zeros((L, n, n))
    S[2, 0, 1] = 5.0   # [CLS] row: excluded from the normaliser, never a parent
    S[2, 2, 1] = 1.0   # b -> a at the top layer (layer max = 1)
    S[2, 2, 3] = 0.3   # below 0.4
    S[2, 3, 1] = -4.0  # negative: no effect on |max|
    S[1, 0, 2] = 10.0  # [CLS] row again (would push everything below τ if it counted)
    S[1, 1, 3] = 0.8   # candidate parent a for c ...
    S[1, 2, 3] = 1.0   # ... but b scores higher
    S[1, 3, 4] = 0.9   # c joins at layer 1 so cannot parent at layer 1
    S[0, 3, 4] = 0.5
    S[0, 1, 4] = 1.0   # [SEP] joins below a at layer 0
    S[0, 4, 0] = 0.45  # [SEP] joined at layer 0: cannot parent [CLS] at layer 0
    scores = np.stack([S * 0.25, S * 0.75], axis=1)  # two heads
    return fake(scores, tokens=["[CLS]", "a", "b", "c", "[SEP]"])


def test_hand_built_known_tree():
    tree = attribution_tree(hand_built(), threshold=0.4)
    d = tree.to_dict()
    assert d["root"] == 2 and d["num_layers"] == 3 and d["threshold"] == 0.4
    assert d["nodes"] == [
        {"index": 2, "token": "b", "layer": 3},
        {"index": 1, "token": "a", "layer": 2},
        {"index": 3, "token": "c", "layer": 1},
        {"index": 4, "token": "[SEP]", "layer": 0},
    ]
    assert [(e["parent"], e["child"], e["layer"]) for e in d["edges"]] == [(2, 1, 2), (2, 3, 1), (1, 4, 0)]
    assert [e["score"] for e in d["edges"]] == pytest.approx([1.0, 1.0, 1.0])
    check_invariants(tree, 0.4)
    assert AttributionTree.from_dict(d).to_dict() == d
    assert tree.parent(4) == 1 and tree.children(2) == [1, 3] and tree.depth() == 2


def test_hand_built_thresholds():
    a = hand_built()
    # τ = 0.85 removes a -> c (0.8) only, which was not chosen anyway
    assert attribution_tree(a, threshold=0.85).to_dict()["edges"] == attribution_tree(a, threshold=0.4).to_dict()["edges"]
    # strict '>': a link exactly at τ (normalised 1.0) is not an edge
    assert attribution_tree(a, threshold=1.0).to_dict()["edges"] == []
    # with τ = 0.44 [SEP]->[CLS] (0.45) still cannot attach ([SEP] joined at layer 0)
    assert 0 not in {n["index"] for n in attribution_tree(a, threshold=0.44).to_dict()["nodes"]}


def test_cls_row_excluded_from_normaliser():
    P, layers = normalized_layer_scores(hand_built())
    assert layers == [0, 1, 2]
    assert P[1, 2, 3] == pytest.approx(1.0)      # max over rows 1.. = 1.0, not the [CLS] row's 10
    assert P[1, 0, 2] == pytest.approx(10.0)
    # without a special first token every row counts
    a = hand_built()
    a.tokens = ["x", "a", "b", "c", "d"]
    P2, _ = normalized_layer_scores(a)
    assert P2[1, 0, 2] == pytest.approx(1.0)


def test_layer_subset_and_order():
    a = hand_built()
    a.layers, a.num_layers = [3, 7, 11], 12  # the three rows are model layers 3, 7, 11
    d = attribution_tree(a).to_dict()
    assert [(e["parent"], e["child"], e["layer"]) for e in d["edges"]] == [(2, 1, 11), (2, 3, 7), (1, 4, 3)]
    assert d["nodes"][0]["layer"] == 12
    # unordered layers give the same tree
    b = hand_built()
    b.scores = b.scores[::-1].copy()
    b.layers, b.num_layers = [11, 7, 3], 12
    assert attribution_tree(b).to_dict() == d


def test_no_positive_scores_gives_root_only():
    a = fake(-np.abs(np.random.default_rng(0).standard_normal((2, 2, 4, 4))))
    d = attribution_tree(a).to_dict()
    assert d["edges"] == [] and len(d["nodes"]) == 1 and d["root"] != 0


def test_bad_threshold():
    with pytest.raises(AttAttrError):
        attribution_tree(hand_built(), threshold=-0.1)
    with pytest.raises(AttAttrError):
        attribution_tree(hand_built(), threshold=float("nan"))


# ---------------------------------------------------------------------------------------------------------------
# property tests: exact quarter-integers so the float32 library and the float64 reference agree bit for bit

@st.composite
def attributions(draw):
    L = draw(st.integers(1, 4))
    H = draw(st.integers(1, 3))
    n = draw(st.integers(2, 8))
    ints = draw(hnp.arrays(np.int8, (L, H, n, n), elements=st.integers(-8, 8)))
    cls = draw(st.booleans())
    tokens = (["[CLS]"] if cls else ["x0"]) + [f"t{i}" for i in range(1, n)]
    layers = sorted(draw(st.lists(st.integers(0, 11), min_size=L, max_size=L, unique=True)))
    return fake(ints.astype(np.float32) * 0.25, tokens=tokens, layers=layers, num_layers=12)


taus = st.sampled_from([0.0, 0.1, 0.25, 0.4, 0.5, 0.7, 0.9, 1.0])


@settings(max_examples=150, deadline=None)
@given(attributions(), taus)
def test_matches_reference_and_is_a_tree(a, tau):
    tree = attribution_tree(a, threshold=tau)
    check_invariants(tree, tau)
    root, entered, edges = reference_tree(a.scores, a.tokens, a.layers, a.num_layers, tau)
    d = tree.to_dict()
    assert d["root"] == root
    assert {n["index"]: n["layer"] for n in d["nodes"]} == entered
    assert sorted((e["parent"], e["child"], e["layer"]) for e in d["edges"]) == sorted(e[:3] for e in edges)
    assert sorted(e["score"] for e in d["edges"]) == pytest.approx(sorted(e[3] for e in edges))


@settings(max_examples=150, deadline=None)
@given(attributions(), taus, taus)
def test_threshold_monotonicity(a, t1, t2):
    lo, hi = sorted((t1, t2))
    low, high = attribution_tree(a, threshold=lo).to_dict(), attribution_tree(a, threshold=hi).to_dict()
    assert len(high["edges"]) <= len(low["edges"])  # a higher threshold never adds edges
    low_layer = {n["index"]: n["layer"] for n in low["nodes"]}
    for node in high["nodes"]:  # the node set only shrinks, and nodes enter no higher than at a lower τ
        assert node["index"] in low_layer and node["layer"] <= low_layer[node["index"]]
    P, layers = normalized_layer_scores(a)
    for e in high["edges"]:  # every high-τ edge is an above-threshold link at the low τ too
        assert P[layers.index(e["layer"]), e["parent"], e["child"]] > lo


def test_on_a_real_attribution(tokenizer):
    from conftest import make_model

    from attattr_widgets.engine.attribution.api import attribute

    model = make_model("bert", layers=3, heads=2)
    attr = attribute(model, tokenizer, "the movie was great fun", "i love this film", steps=3)
    tree = attribution_tree(attr, threshold=0.4)
    check_invariants(tree, 0.4)
    assert tree.tokens == attr.tokens and tree.num_layers == 3 and tree.root != 0
    sub = attribute(model, tokenizer, "the movie was great fun", layers=[0, 2], steps=3)
    t2 = attribution_tree(sub, threshold=0.2)
    check_invariants(t2, 0.2)
    assert {e.layer for e in t2.edges} <= {0, 2} and t2.num_layers == 3
