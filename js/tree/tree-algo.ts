// The attribution tree algorithm, the same contract as attattr_widgets/engine/analysis/tree.py `tree_from_layer_sums`
// (steps 1-3 of its docstring) and, across an encoder–decoder's source and answer, `seq2seq_tree_from_layer_sums`:
// float64 arithmetic in the same fixed order, so the browser builds the same tree as the kernel for any threshold
// from the embedded float32 layer sums (tests/test_tree_shared.py runs both).
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

/** An encoder–decoder's three sites (attattr_widgets/widgets/embed.py `embed_layer_sums` of a Seq2SeqAttribution). */
export interface Seq2SeqTreeInput {
  Se: ArrayLike<number>; // encoder [Le, ns, ns]
  Sd: ArrayLike<number>; // decoder self-attention [Ld, nt, nt]
  Sc: ArrayLike<number>; // cross-attention [Ld, nt, ns] (answer rows × source columns)
  ns: number;
  nt: number;
  encoder_layers: number[]; // model layer index of each row of Se
  decoder_layers: number[]; // … of Sd and Sc
  encoder_num_layers: number; // decoder layer l is drawn at level encoder_num_layers + l
  num_layers: number; // encoder + decoder layers: the root's level
  tokens: string[]; // source tokens then answer tokens (ns + nt)
  exclude_source: number | null;
  exclude_answer: number | null;
}

/** Step 1 on L maps [rows, cols]: P_l = S_l / |max over rows != row| (no positive maximum: divide by +inf). */
function normalize(S: ArrayLike<number>, L: number, rows: number, cols: number, row: number | null): Float64Array {
  const size = rows * cols;
  const P = new Float64Array(L * size);
  for (let l = 0; l < L; l++) {
    let mx = -Infinity;
    for (let i = 0; i < rows; i++) {
      if (i === row) continue;
      for (let j = 0; j < cols; j++) {
        const v = S[l * size + i * cols + j];
        if (v > mx) mx = v;
      }
    }
    const denom = mx > 0 ? Math.abs(mx) : Infinity;
    for (let k = 0; k < size; k++) P[l * size + k] = S[l * size + k] / denom;
  }
  return P;
}

/** C = S_0 + S_1 + … + S_{L-1} in float64, added in this order ([size]; zeros when L = 0). */
function layerTotal(S: ArrayLike<number>, L: number, size: number): Float64Array {
  const C = new Float64Array(size);
  if (L) for (let k = 0; k < size; k++) C[k] = S[k];
  for (let l = 1; l < L; l++) for (let k = 0; k < size; k++) C[k] += S[l * size + k];
  return C;
}

/** r_i = Σ_j max(0, C_ij), added j = 0..cols-1 in order. */
function positiveRowSums(C: Float64Array, rows: number, cols: number): Float64Array {
  const r = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.max(0, C[i * cols + j]);
    r[i] = s;
  }
  return r;
}

/** The first eligible row of largest score (0 when none is eligible). */
function argmaxEligible(score: Float64Array, row: number | null): number {
  let root = -1, best = -Infinity;
  for (let i = 0; i < score.length; i++) {
    if (i === row) continue;
    if (root < 0 || score[i] > best) {
      root = i;
      best = score[i];
    }
  }
  return root < 0 ? 0 : root;
}

/** One layer of step 3 on the normalised map at `off` ([rows, cols]): every open column j with a candidate
 * P[i, j] > τ from an allowed parent row i joins with the first i of largest P[i, j]; [parent, child, score], j
 * ascending. */
function join(P: Float64Array, off: number, rows: number, cols: number, tau: number, parents: Uint8Array, open: Uint8Array): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let j = 0; j < cols; j++) {
    if (!open[j]) continue;
    let parent = -1, pv = -Infinity;
    for (let i = 0; i < rows; i++) {
      if (!parents[i]) continue;
      const v = P[off + i * cols + j];
      if (v > tau && v > pv) {
        parent = i;
        pv = v;
      }
    }
    if (parent >= 0) out.push([parent, j, pv]);
  }
  return out;
}

/** Layer indices in decreasing model index (stable for equal indices). */
const topDown = (layers: number[]) => Array.from({ length: layers.length }, (_, k) => k).sort((a, b) => layers[b] - layers[a]);

const eligible = (n: number, row: number | null) => Uint8Array.from({ length: n }, (_, i) => (i === row ? 0 : 1));

export function treeFromLayerSums(inp: TreeInput, tau: number): TreeDict {
  const { S, L, n, layers, tokens } = inp;
  const nn = n * n;
  const row = n > 1 ? inp.exclude_row : null;
  const P = normalize(S, L, n, n, row);
  // step 2: root = first eligible row with the largest sum of max(0, C_ij), C = S_0 + ... + S_{L-1}, diagonal 0
  const C = layerTotal(S, L, nn);
  for (let i = 0; i < n; i++) C[i * n + i] = 0;
  const root = argmaxEligible(positiveRowSums(C, n, n), row);
  // step 3: layer-synchronous growth, highest model layer first
  const ok = eligible(n, row);
  const inTree = new Uint8Array(n);
  inTree[root] = 1;
  const nodes: TreeNode[] = [{ index: root, token: tokens[root], layer: inp.num_layers }];
  const edges: TreeEdge[] = [];
  for (const k of topDown(layers)) {
    const parents = inTree.map((v, i) => v & ok[i]);
    for (const [i, j, score] of join(P, k * nn, n, n, tau, parents, inTree.map((v) => 1 - v))) {
      edges.push({ parent: i, child: j, layer: layers[k], score });
      nodes.push({ index: j, token: tokens[j], layer: layers[k] });
      inTree[j] = 1;
    }
  }
  return { tokens: [...tokens], num_layers: inp.num_layers, threshold: tau, root, nodes, edges };
}

/** The tree across an encoder–decoder's source and answer (`seq2seq_tree_from_layer_sums`): root = the answer row
 * that reads most (decoder + cross row sums), then per decoder layer, top down, decoder edges (answer → answer)
 * and cross edges (answer → source) from the same in-tree answer parents, then the encoder layers top down
 * (source → source). Tokens are joint indices (source first); nodes carry `side` and `position`. */
export function seq2seqTreeFromLayerSums(inp: Seq2SeqTreeInput, tau: number): TreeDict {
  const { ns, nt, tokens, encoder_layers: encL, decoder_layers: decL } = inp;
  const rowE = ns > 1 ? inp.exclude_source : null, rowD = nt > 1 ? inp.exclude_answer : null;
  const Pe = normalize(inp.Se, encL.length, ns, ns, rowE);
  const Pd = normalize(inp.Sd, decL.length, nt, nt, rowD);
  const Pc = normalize(inp.Sc, decL.length, nt, ns, rowD);
  const Cd = layerTotal(inp.Sd, decL.length, nt * nt);
  for (let i = 0; i < nt; i++) Cd[i * nt + i] = 0;
  const rd = positiveRowSums(Cd, nt, nt), rc = positiveRowSums(layerTotal(inp.Sc, decL.length, nt * ns), nt, ns);
  const root = argmaxEligible(rd.map((v, i) => v + rc[i]), rowD);
  const sides: ("source" | "answer")[] = [...Array(ns).fill("source"), ...Array(nt).fill("answer")];
  const node = (index: number, layer: number): TreeNode =>
    ({ index, token: tokens[index], layer, side: sides[index], position: index < ns ? index : index - ns });
  const okE = eligible(ns, rowE), okD = eligible(nt, rowD);
  const inSrc = new Uint8Array(ns), inTgt = new Uint8Array(nt);
  inTgt[root] = 1;
  const nodes: TreeNode[] = [node(ns + root, inp.num_layers)];
  const edges: TreeEdge[] = [];
  const add = (joined: [number, number, number][], pOff: number, cOff: number, level: number, mark: Uint8Array) => {
    for (const [i, j, score] of joined) {
      edges.push({ parent: pOff + i, child: cOff + j, layer: level, score });
      nodes.push(node(cOff + j, level));
      mark[j] = 1;
    }
  };
  for (const k of topDown(decL)) {
    const level = inp.encoder_num_layers + decL[k];
    const parents = inTgt.map((v, i) => v & okD[i]);
    const joinedD = join(Pd, k * nt * nt, nt, nt, tau, parents, inTgt.map((v) => 1 - v));
    const joinedC = join(Pc, k * nt * ns, nt, ns, tau, parents, inSrc.map((v) => 1 - v));
    add(joinedD, ns, ns, level, inTgt);
    add(joinedC, ns, 0, level, inSrc);
  }
  for (const k of topDown(encL)) {
    add(join(Pe, k * ns * ns, ns, ns, tau, inSrc.map((v, i) => v & okE[i]), inSrc.map((v) => 1 - v)), 0, 0, encL[k], inSrc);
  }
  return { tokens: [...tokens], num_layers: inp.num_layers, threshold: tau, root: ns + root, nodes, edges, sides,
    encoder_layers: inp.encoder_num_layers };
}
