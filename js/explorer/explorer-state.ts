// What the Explorer's panels draw, derived from its model: trait state merged with streamed layer chunks
// (the run state), the locked pair's per-head scores, and the grid mode actually available.
import type { AnyModel } from "@anywidget/types";
import { formatValue } from "../shared/color";
import { decodeCached } from "../shared/decode";
import type { GridData } from "../shared/grid-panel";
import type { ExplorerMeta, ExplorerModel } from "../shared/protocol";
import { shownStream, type StreamCache } from "./stream";

type Model = AnyModel<ExplorerModel>;

export interface PairScores {
  query: number;
  key: number;
  scores: Float32Array; // [L*H]
}

/** Merge trait state and streamed chunks into what the grid draws. */
export function gridData(model: Model, cache: StreamCache): GridData | null {
  const state = model.get("state");
  const meta = (model.get("meta") ?? {}) as ExplorerMeta;
  const trait = decodeCached(model.get("head_scores"));
  const runId = model.get("run_id");
  const chunks = cache.runId === runId && cache.stream === shownStream(model) ? [...cache.layers.values()] : [];
  if (trait && trait.shape.length === 2 && (state !== "running" || chunks.length === 0)) {
    const [L, H] = trait.shape;
    const th = decodeCached(model.get("thumbs"));
    const t = th && th.shape.length === 4 ? th.shape[3] : 0;
    let done = 0;
    for (let l = 0; l < L; l++) if (Number.isFinite(trait.data[l * H])) done++;
    return {
      L, H, scores: trait.data, thumbs: th && t ? th.data : null, t,
      layerIds: meta.layers && meta.layers.length === L ? meta.layers : Array.from({ length: L }, (_, i) => i),
      zeroProbs: Array.from({ length: L }, (_, i) => meta.layer_zero_probs?.[i] ?? null),
      completeness: Array.from({ length: L }, (_, i) => meta.completeness?.[i] ?? null),
      nodes: Array.from({ length: L }, (_, i) => meta.layer_steps?.[i] ?? null),
      converged: Array.from({ length: L }, (_, i) => meta.converged?.[i] ?? null),
      panels: Array.from({ length: L }, (_, i) => meta.layer_panels?.[i] ?? null),
      unresolved: unresolvedRows(meta, meta.layers && meta.layers.length === L ? meta.layers : Array.from({ length: L }, (_, i) => i)),
      done,
    };
  }
  if (!chunks.length) return null;
  const H = chunks[0].heads;
  const L = Math.max(model.get("layers_total") || 0, chunks[0].total, ...chunks.map((c) => c.index + 1));
  const t = chunks[0].thumbSize;
  const scores = new Float32Array(L * H).fill(NaN);
  const thumbs = t ? new Float32Array(L * H * t * t) : null;
  const layerIds = Array.from({ length: L }, (_, i) => (meta.layers && meta.layers[i] !== undefined ? meta.layers[i] : i));
  const zeroProbs: (number | null)[] = Array(L).fill(null);
  const completeness: (number | null)[] = Array(L).fill(null);
  const nodes: (number | null)[] = Array(L).fill(null);
  const converged: (boolean | null)[] = Array(L).fill(null);
  const panels: ([number, number][] | null)[] = Array(L).fill(null);
  for (const c of chunks) {
    if (c.index >= L || c.heads !== H) continue;
    scores.set(c.scores.subarray(0, H), c.index * H);
    if (thumbs && c.thumbs && c.thumbSize === t) thumbs.set(c.thumbs, c.index * H * t * t);
    layerIds[c.index] = c.layer;
    zeroProbs[c.index] = c.zeroProb;
    completeness[c.index] = c.completeness;
    nodes[c.index] = c.steps;
    converged[c.index] = c.converged;
    panels[c.index] = c.panels;
  }
  return { L, H, scores, thumbs, t, layerIds, zeroProbs, completeness, nodes, converged, panels,
    unresolved: unresolvedRows(meta, layerIds), done: chunks.length };
}

/** Per grid row: whether its model layer is in `meta.unresolved` (ΔF below the dtype's resolution). */
function unresolvedRows(meta: ExplorerMeta, layerIds: number[]): boolean[] {
  const set = new Set(meta.unresolved ?? []);
  return layerIds.map((id) => set.has(id));
}

/** Per-head attribution of the locked pair when the kernel sent it for the current lock. */
export function pairScores(model: Model): PairScores | null {
  const p = model.get("pair");
  const lock = model.get("locked") ?? [];
  if (!p || lock.length !== 2 || p.query !== lock[0] || p.key !== lock[1]) return null;
  const d = decodeCached(p.scores);
  return d ? { query: p.query, key: p.key, scores: d.data } : null;
}

/** The grid mode drawn: the requested one when its data is there, else "scores". */
export function gridMode(model: Model, g: GridData | null, pair: PairScores | null): "scores" | "maps" | "pair" {
  const m = model.get("grid_mode");
  if (m === "maps" && g?.thumbs) return "maps";
  if (m === "pair" && pair) return "pair";
  return "scores";
}

/** A point of [0, 1] as the adaptive rule places it: a dyadic fraction ("1/64", "3/8") where it is one. */
export function dyadic(x: number): string {
  if (x === 0 || x === 1) return String(x);
  for (let k = 1; k <= 30; k++) {
    const n = x * 2 ** k;
    if (Number.isInteger(n)) return `${n}/${2 ** k}`;
  }
  return formatValue(x, 3);
}

/** The grid tooltip's line on a layer's integration: completeness error, nodes used, the α-panels of
 * `steps="auto"` (how many, and the finest — usually the one at α = 0 on attention-sink layers), whether it reached
 * its tolerance ("not converged" otherwise), and whether ΔF is below what the dtype resolves. */
export function integrationLine(completeness: number, nodes: number | null, converged: boolean | null,
  panels: [number, number][] | null = null, unresolved = false): string {
  const parts = [`IG completeness ${formatValue(completeness, 3)}`];
  if (nodes) parts.push(`${nodes} node${nodes === 1 ? "" : "s"}`);
  if (panels && panels.length > 1) {
    const finest = panels.reduce((a, b) => (b[1] - b[0] < a[1] - a[0] ? b : a));
    parts.push(`${panels.length} α-panels, finest [${dyadic(finest[0])}, ${dyadic(finest[1])}]`);
  }
  if (converged === false) parts.push("not converged (raise steps)");
  if (unresolved) parts.push("ΔF below the dtype's resolution: completeness not meaningful");
  return parts.join(" · ");
}
