"""The attribution tree has ONE algorithm with two implementations: the kernel's (engine/analysis/tree.py
``tree_from_layer_sums``) and the browser's (js/tree/tree-algo.ts, used by the TreeView in exported pages and
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

from attattr_widgets.engine.analysis.tree import attribution_tree, layer_sums, resolve_exclude_row, tree_from_layer_sums

REPO = pathlib.Path(__file__).resolve().parents[1]
ESBUILD = REPO / "node_modules" / ".bin" / "esbuild"
TAUS = [0.0, 0.1, 0.25, 0.4, 0.7, 0.99, 1.0]

RUNNER = """
import { treeFromLayerSums } from "./tree-algo.mjs";
let buf = "";
process.stdin.on("data", (d) => (buf += d));
process.stdin.on("end", () => {
  const out = JSON.parse(buf).map((c) => c.taus.map((t) => treeFromLayerSums({ ...c, S: Float32Array.from(c.S) }, t)));
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


def _case(rng, k):
    n = int(rng.integers(1, 13))
    L = int(rng.integers(1, 6))
    H = int(rng.integers(1, 5))
    kind = k % 4
    if kind == 0:
        scores = rng.normal(size=(L, H, n, n))
    elif kind == 1:   # small integers: many exact ties in maxima, row sums and parent choices
        scores = rng.integers(-2, 3, size=(L, H, n, n)).astype(float)
    elif kind == 2:   # mostly negative, some layers with no positive value at all
        scores = -np.abs(rng.normal(size=(L, H, n, n)))
        scores[rng.random(L) < 0.5] *= -1
    else:             # sparse, heavy-tailed
        scores = rng.standard_cauchy(size=(L, H, n, n)) * (rng.random((L, H, n, n)) < 0.3)
    scores = scores.astype(np.float32)
    tokens = (["[CLS]"] if rng.random() < 0.6 else ["w0"]) + [f"w{i}" for i in range(1, n)]
    layers = [int(x) for x in rng.permutation(L + 2)[:L]] if rng.random() < 0.5 else list(range(L))
    if L > 1 and rng.random() < 0.2:
        layers[1] = layers[0]                     # duplicate layer index: order must stay stable
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
