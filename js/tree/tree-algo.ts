// The attribution tree algorithm, the same contract as attattr_widgets/engine/analysis/tree.py `tree_from_layer_sums`
// (steps 1-3 of its docstring): float64 arithmetic in the same fixed order, so the browser builds the same tree as
// the kernel for any threshold from the embedded float32 layer sums (tests/test_tree_shared.py runs both).
import type { TreeDict, TreeEdge, TreeNode } from "../shared/protocol";

export interface TreeInput {
  S: ArrayLike<number>; // [L, n, n] head sums (float32 values), row-major
  L: number;
  n: number;
  layers: number[]; // model layer index of each row of S
  num_layers: number;
  tokens: string[];
  exclude_row: number | null; // resolved by the kernel (0 for a leading [CLS]-like token, else null)
}

export function treeFromLayerSums(inp: TreeInput, tau: number): TreeDict {
  const { S, L, n, layers, tokens } = inp;
  const nn = n * n;
  const row = n > 1 ? inp.exclude_row : null;
  // step 1: P_l = S_l / |max over rows != row| (a layer without a positive maximum divides by +inf)
  const P = new Float64Array(L * nn);
  for (let l = 0; l < L; l++) {
    let mx = -Infinity;
    for (let i = 0; i < n; i++) {
      if (i === row) continue;
      for (let j = 0; j < n; j++) {
        const v = S[l * nn + i * n + j];
        if (v > mx) mx = v;
      }
    }
    const denom = mx > 0 ? Math.abs(mx) : Infinity;
    for (let k = 0; k < nn; k++) P[l * nn + k] = S[l * nn + k] / denom;
  }
  // step 2: root = first eligible row with the largest sum of max(0, C_ij), C = S_0 + ... + S_{L-1}, diagonal 0
  const C = new Float64Array(nn);
  if (L) for (let k = 0; k < nn; k++) C[k] = S[k];
  for (let l = 1; l < L; l++) for (let k = 0; k < nn; k++) C[k] += S[l * nn + k];
  for (let i = 0; i < n; i++) C[i * n + i] = 0;
  let root = -1, best = -Infinity;
  for (let i = 0; i < n; i++) {
    if (i === row) continue;
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.max(0, C[i * n + j]);
    if (root < 0 || s > best) {
      root = i;
      best = s;
    }
  }
  if (root < 0) root = 0;
  // step 3: layer-synchronous growth, highest model layer first (stable for equal indices)
  const inTree = new Uint8Array(n);
  inTree[root] = 1;
  let canParent = Uint8Array.from(inTree);
  const nodes: TreeNode[] = [{ index: root, token: tokens[root], layer: inp.num_layers }];
  const edges: TreeEdge[] = [];
  const order = Array.from({ length: L }, (_, k) => k).sort((a, b) => layers[b] - layers[a]);
  for (const k of order) {
    const off = k * nn;
    const joined: number[] = [];
    for (let j = 0; j < n; j++) {
      if (inTree[j]) continue;
      let parent = -1, pv = -Infinity;
      for (let i = 0; i < n; i++) {
        if (!canParent[i] || i === row) continue;
        const v = P[off + i * n + j];
        if (v > tau && v > pv) {
          parent = i;
          pv = v;
        }
      }
      if (parent >= 0) {
        edges.push({ parent, child: j, layer: layers[k], score: pv });
        nodes.push({ index: j, token: tokens[j], layer: layers[k] });
        joined.push(j);
      }
    }
    for (const j of joined) inTree[j] = 1;
    canParent = Uint8Array.from(inTree);
  }
  return { tokens: [...tokens], num_layers: inp.num_layers, threshold: tau, root, nodes, edges };
}
