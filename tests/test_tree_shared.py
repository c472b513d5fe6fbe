"""The attribution tree has ONE algorithm with two implementations: the kernel's (engine/analysis/tree.py
``tree_from_layer_sums``, and ``seq2seq_tree_from_layer_sums`` across an encoder–decoder's source and answer) and
the browser's (js/tree/tree-algo.ts, used by the TreeView in exported pages and
reopened notebooks). This runs the TypeScript through node (bundled by esbuild) on the same inputs as the Python
and requires identical trees — same root, nodes, edges and bit-identical edge scores — over many random cases,
including exact ties, layers without a positive maximum, duplicate / unsorted layer indices and n = 1.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from attattr_widgets.engine.analysis.tree import (attribution_tree, layer_sums, resolve_exclude_row,
                                                  seq2seq_tree_from_layer_sums, tree_from_layer_sums)

REPO = pathlib.Path(__file__).resolve().parents[1]
ESBUILD = REPO / "node_modules" / ".bin" / "esbuild"
TAUS = [0.0, 0.1, 0.25, 0.4, 0.7, 0.99, 1.0]

RUNNER = """
import { seq2seqTreeFromLayerSums, treeFromLayerSums } from "./tree-algo.mjs";
let buf = "";
process.stdin.on("data", (d) => (buf += d));
process.stdin.on("end", () => {
  const one = (c, t) => c.Se
    ? seq2seqTreeFromLayerSums({ ...c, Se: Float32Array.from(c.Se), Sd: Float32Array.from(c.Sd), Sc: Float32Array.from(c.Sc) }, t)
    : treeFromLayerSums({ ...c, S: Float32Array.from(c.S) }, t);
  const out = JSON.parse(buf).map((c) => c.taus.map((t) => one(c, t)));
  process.stdout.write(JSON.stringify(out));
});
"""


@pytest.fixture(scope="module")
def run_ts(tmp_path_factory):
    node = shutil.which("node")
    if node is None or not ESBUILD.exists():
        pytest.skip("needs node and esbuild (`npm ci`) to run js/tree/tree-algo.ts")
    d = tmp_path_factory.mktemp("tree-ts")
    subprocess.run([str(ESBUILD), str(REPO / "js" / "tree" / "tree-algo.ts"), "--bundle", "--format=esm",
                    f"--outfile={d / 'tree-algo.mjs'}", "--log-level=warning"], check=True)
    (d / "run.mjs").write_text(RUNNER)

    def run(cases):
        p = subprocess.run([node, str(d / "run.mjs")], input=json.dumps(cases), capture_output=True, text=True,
                           check=True)
        return json.loads(p.stdout)
    return run


def _scores(rng, kind, shape):
    """Random head maps of one of four kinds (float32)."""
    if kind == 0:
        scores = rng.normal(size=shape)
    elif kind == 1:   # small integers: many exact ties in maxima, row sums and parent choices
        scores = rng.integers(-2, 3, size=shape).astype(float)
    elif kind == 2:   # mostly negative, some layers with no positive value at all
        scores = -np.abs(rng.normal(size=shape))
        scores[rng.random(shape[0]) < 0.5] *= -1
    else:             # sparse, heavy-tailed
        scores = rng.standard_cauchy(size=shape) * (rng.random(shape) < 0.3)
    return scores.astype(np.float32)


def _layers(rng, L):
    layers = [int(x) for x in rng.permutation(L + 2)[:L]] if rng.random() < 0.5 else list(range(L))
    if L > 1 and rng.random() < 0.2:
        layers[1] = layers[0]                     # duplicate layer index: order must stay stable
    return layers


def _case(rng, k):
    n = int(rng.integers(1, 13))
    L = int(rng.integers(1, 6))
    H = int(rng.integers(1, 5))
    scores = _scores(rng, k % 4, (L, H, n, n))
    tokens = (["[CLS]"] if rng.random() < 0.6 else ["w0"]) + [f"w{i}" for i in range(1, n)]
    layers = _layers(rng, L)
    return scores, tokens, layers, max(layers) + 1 + int(rng.integers(0, 2))


def test_browser_and_kernel_trees_are_identical(run_ts):
    rng = np.random.default_rng(13)
    cases, expected = [], []
    for k in range(400):
        scores, tokens, layers, num_layers = _case(rng, k)
        S = scores.sum(1, dtype=np.float32)
        row = resolve_exclude_row(tokens, "auto", S.shape[-1])
        cases.append({"S": [float(x) for x in S.ravel()], "L": S.shape[0], "n": S.shape[-1], "layers": layers,
                      "num_layers": num_layers, "tokens": tokens, "exclude_row": row, "taus": TAUS})
        expected.append([tree_from_layer_sums(S, layers=layers, num_layers=num_layers, tokens=tokens, threshold=t,
                                              exclude_row=row).to_dict() for t in TAUS])
    got = run_ts(cases)
    mismatches = [(k, i) for k in range(len(cases)) for i in range(len(TAUS)) if got[k][i] != expected[k][i]]
    assert not mismatches, (f"{len(mismatches)} of {len(cases) * len(TAUS)} trees differ; first: case "
                            f"{mismatches[0]}: ts={got[mismatches[0][0]][mismatches[0][1]]} "
                            f"py={expected[mismatches[0][0]][mismatches[0][1]]}")
    n_edges = sum(len(t["edges"]) for c in expected for t in c)
    assert n_edges > 1000                      # the cases really grow trees, not only roots


def test_shared_entry_point_is_what_attribution_tree_computes():
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    for k in range(40):
        scores, tokens, layers, num_layers = _case(rng, k)
        attr = SimpleNamespace(scores=scores, tokens=tokens, layers=layers, num_layers=num_layers)
        S = layer_sums(attr)
        assert S.dtype == np.float32 and S.shape == scores.shape[:1] + scores.shape[2:]
        for t in (0.0, 0.4):
            direct = tree_from_layer_sums(S, layers=layers, num_layers=num_layers, tokens=tokens, threshold=t,
                                          exclude_row=resolve_exclude_row(tokens, "auto", S.shape[-1]))
            assert attribution_tree(attr, threshold=t).to_dict() == direct.to_dict()


def _seq2seq_case(rng, k):
    """Random encoder, decoder and cross head sums (float32) of a tree across source and answer."""
    ns, nt = int(rng.integers(1, 10)), int(rng.integers(1, 9))
    Le, Ld, H = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    kind = k % 4
    sums = [_scores(rng, kind, (L, H, r, c)).sum(1, dtype=np.float32)
            for L, r, c in ((Le, ns, ns), (Ld, nt, nt), (Ld, nt, ns))]
    src = [f"s{i}" for i in range(ns - 1)] + ["</s>"] if rng.random() < 0.7 else [f"s{i}" for i in range(ns)]
    tgt = (["<pad>"] if rng.random() < 0.7 else ["t0"]) + [f"t{i}" for i in range(1, nt)]
    enc_layers, dec_layers = _layers(rng, Le), _layers(rng, Ld)
    enc_num = max(enc_layers) + 1 + int(rng.integers(0, 2))
    args = dict(source_tokens=src, answer_tokens=tgt, encoder_layers=enc_layers, decoder_layers=dec_layers,
                encoder_num_layers=enc_num, num_layers=enc_num + max(dec_layers) + 1,
                exclude_source=resolve_exclude_row(src, "auto", ns), exclude_answer=resolve_exclude_row(tgt, "auto", nt))
    return sums, args


def test_browser_and_kernel_trees_across_source_and_answer_are_identical(run_ts):
    rng = np.random.default_rng(29)
    cases, expected = [], []
    for k in range(300):
        (Se, Sd, Sc), a = _seq2seq_case(rng, k)
        cases.append({"Se": [float(x) for x in Se.ravel()], "Sd": [float(x) for x in Sd.ravel()],
                      "Sc": [float(x) for x in Sc.ravel()], "ns": len(a["source_tokens"]), "nt": len(a["answer_tokens"]),
                      "tokens": a["source_tokens"] + a["answer_tokens"], "taus": TAUS,
                      **{key: a[key] for key in ("encoder_layers", "decoder_layers", "encoder_num_layers", "num_layers",
                                                 "exclude_source", "exclude_answer")}})
        expected.append([seq2seq_tree_from_layer_sums(Se, Sd, Sc, threshold=t, **a).to_dict() for t in TAUS])
    got = run_ts(cases)
    mismatches = [(k, i) for k in range(len(cases)) for i in range(len(TAUS)) if got[k][i] != expected[k][i]]
    assert not mismatches, (f"{len(mismatches)} of {len(cases) * len(TAUS)} trees differ; first: case "
                            f"{mismatches[0]}: ts={got[mismatches[0][0]][mismatches[0][1]]} "
                            f"py={expected[mismatches[0][0]][mismatches[0][1]]}")
    edges = [e for c in expected for t in c for e in t["edges"]]
    sides = [c[0]["sides"] for c in expected]
    assert len(edges) > 1000
    kinds = {(sides[k][e["parent"]], sides[k][e["child"]]) for k, c in enumerate(expected) for t in c for e in t["edges"]}
    assert kinds == {("answer", "answer"), ("answer", "source"), ("source", "source")}  # every kind of edge is compared
