"""The attribution tree across source and answer of an encoder–decoder (``seq2seq_tree``): on tiny T5 / BART /
Marian results, checked edge by edge against a reference written here with plain loops over the result's maps
(head sums, per-layer-site normalisation, strict threshold, the documented layer order); save/load round-trip."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SEQ2SEQ_FAMILIES, make_seq2seq, make_seq2seq_tokenizer

from attattr_widgets.engine.analysis.tree import attribution_tree, seq2seq_tree
from attattr_widgets.engine.attribution.api import attribute
from attattr_widgets.engine.errors import ArgumentError
from attattr_widgets.engine.model.tokens import is_special_token
from attattr_widgets.engine.results import AttributionTree, load_result

SOURCE = "the cat sat on a mat"
ANSWER = "die katze sitzt auf einer matte"


@pytest.fixture(scope="module", params=SEQ2SEQ_FAMILIES)
def res(request):
    return attribute(make_seq2seq(request.param), make_seq2seq_tokenizer(), SOURCE, target=ANSWER, steps=2)


def _normalised(scores, row_tokens):
    """Plain loops: head sum (float32, as the tree's contract), divided by |max over rows ≠ a leading special
    token's row|; a layer without a positive maximum has no candidate."""
    S = np.asarray(scores).sum(1, dtype=np.float32).astype(np.float64)
    L, R, C = S.shape
    skip = 0 if is_special_token(row_tokens[0]) and R > 1 else None
    out = []
    for k in range(L):
        mx = max(S[k, i, j] for i in range(R) if i != skip for j in range(C))
        out.append([[S[k, i, j] / abs(mx) if mx > 0 else 0.0 for j in range(C)] for i in range(R)])
    return out, S, skip


def reference(res, tau):
    """The documented rule, written independently: (parent, child, level, score) in joint indices (source first)."""
    ns, nt = len(res.source_tokens), len(res.decoder_tokens)
    Pe, _, skip_e = _normalised(res.encoder.scores, res.source_tokens)
    Pd, Sd, skip_d = _normalised(res.decoder.scores, res.decoder_tokens)
    Pc, Sc, _ = _normalised(res.cross.scores, res.decoder_tokens)
    L_enc = res.encoder_meta.num_layers
    reads = []
    for i in range(nt):
        r = sum(max(0.0, sum(Sd[k, i, j] for k in range(len(Sd)))) for j in range(nt) if j != i)
        r += sum(max(0.0, sum(Sc[k, i, s] for k in range(len(Sc)))) for s in range(ns))
        reads.append(r if i != skip_d else -np.inf)
    root = max(range(nt), key=lambda i: (reads[i], -i))
    in_tree = {("answer", root)}
    edges = []

    def grow(P, parent_side, child_side, level, n_rows, n_cols, skip, before):
        for j in range(n_cols):
            if (child_side, j) in in_tree:
                continue
            best = None
            for i in range(n_rows):
                if (parent_side, i) in before and i != skip and P[i][j] > tau and (best is None or P[i][j] > best[1]):
                    best = (i, P[i][j])
            if best:
                off_p, off_c = (ns if parent_side == "answer" else 0), (ns if child_side == "answer" else 0)
                edges.append((off_p + best[0], off_c + j, level, best[1]))
                in_tree.add((child_side, j))

    for k in sorted(range(len(res.decoder_meta.layers)), key=lambda k: -res.decoder_meta.layers[k]):
        before = set(in_tree)
        level = L_enc + res.decoder_meta.layers[k]
        grow(Pd[k], "answer", "answer", level, nt, nt, skip_d, before)
        grow(Pc[k], "answer", "source", level, nt, ns, skip_d, before)
    for k in sorted(range(len(res.encoder_meta.layers)), key=lambda k: -res.encoder_meta.layers[k]):
        grow(Pe[k], "source", "source", res.encoder_meta.layers[k], ns, ns, skip_e, set(in_tree))
    return ns + root, edges


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.4, 0.7])
def test_edges_match_the_hand_computed_threshold(res, tau):
    tree = seq2seq_tree(res, threshold=tau)
    root, edges = reference(res, tau)
    assert tree.root == root and tree.nodes[0].index == root and tree.nodes[0].side == "answer"
    assert sorted((e.parent, e.child, e.layer) for e in tree.edges) == sorted(e[:3] for e in edges)
    got = {(e.parent, e.child): e.score for e in tree.edges}
    for p, c, _, score in edges:
        assert got[(p, c)] == pytest.approx(score, rel=1e-12)
    assert attribution_tree(res, threshold=tau).to_dict() == tree.to_dict()  # one implementation


def test_sides_positions_and_layer_order(res):
    tree = seq2seq_tree(res, threshold=0.0)
    ns, nt = len(res.source_tokens), len(res.decoder_tokens)
    L_enc, L_dec = res.encoder_meta.num_layers, res.decoder_meta.num_layers
    assert tree.tokens == res.source_tokens + res.decoder_tokens
    assert tree.sides == ["source"] * ns + ["answer"] * nt
    assert tree.encoder_layers == L_enc and tree.num_layers == L_enc + L_dec
    side = {nd.index: nd for nd in tree.nodes}
    for nd in tree.nodes:
        assert nd.side == tree.sides[nd.index]
        toks = res.source_tokens if nd.side == "source" else res.decoder_tokens
        assert toks[nd.position] == nd.token == tree.tokens[nd.index]
    kinds = set()
    for e in tree.edges:
        p, c = side[e.parent], side[e.child]
        assert p.layer > e.layer == c.layer  # the parent entered above the edge's layer
        kind = {("answer", "answer"): "decoder", ("answer", "source"): "cross", ("source", "source"): "encoder"}[
            (p.side, c.side)]
        kinds.add(kind)
        assert (e.layer < L_enc) == (kind == "encoder")  # encoder edges below every decoder / cross edge
    assert "cross" in kinds  # at τ = 0 the answer reaches the source
    # a tree: every node but the root has exactly one parent
    assert sorted(e.child for e in tree.edges) == sorted(nd.index for nd in tree.nodes[1:])


def test_save_load_round_trip(res, tmp_path):
    tree = seq2seq_tree(res, threshold=0.1)
    back = load_result(tree.save(tmp_path / "tree"))
    assert isinstance(back, AttributionTree) and back.to_dict() == tree.to_dict()
    assert back.sides == tree.sides and back.nodes == tree.nodes


def test_refuses_other_results():
    with pytest.raises(ArgumentError, match="Seq2SeqAttribution"):
        seq2seq_tree(object())


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["sides"].pop(), "'sides' must give"),
    (lambda d: d["sides"].__setitem__(0, "target"), "'sides' must give"),
    (lambda d: d["nodes"][1].__setitem__("side", "source" if d["nodes"][1]["side"] == "answer" else "answer"),
     "node 1 has side"),
])
def test_load_refuses_inconsistent_sides(res, tmp_path, edit, words):
    import json

    from attattr_widgets.engine.results import ResultFileError

    path = seq2seq_tree(res, threshold=0.0).save(tmp_path / "tree")
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(str(members.pop("__meta__")))
    edit(meta["data"])
    with open(tmp_path / "bad.npz", "wb") as fh:
        np.savez(fh, **members, __meta__=np.array(json.dumps(meta)))
    with pytest.raises(ResultFileError, match=words):
        load_result(tmp_path / "bad.npz")
