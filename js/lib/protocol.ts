// Synced traits of the Python widgets (attattr_widgets/widgets/*.py) mirrored as TypeScript types.
import type { EncodedArray } from "./decode";

export type RunState = "empty" | "running" | "done" | "cancelled" | "error";

export interface ExplorerMeta {
  text?: string | null;
  text_pair?: string | null;
  model_name?: string;
  target?: number;
  target_label?: string;
  target_kind?: string;
  prob?: number | null;
  layers?: number[];
  num_layers?: number;
  num_heads?: number;
  rule?: string;
  steps?: number;
  layer_zero_probs?: number[];
  completeness?: number[];
  label_names?: string[];
  default_query?: number;
  thumb_size?: number;
  error_detail?: string;
}

export interface HeadPayload {
  layer: number;
  head: number;
  attention: EncodedArray;
  attribution: EncodedArray;
}

export interface ExplorerModel {
  tokens: string[];
  token_types: number[];
  meta: ExplorerMeta;
  run_id: number;
  state: RunState;
  error: string;
  layers_done: number;
  layers_total: number;
  head_scores: EncodedArray | null;
  thumbs: EncodedArray | null;
  head: HeadPayload | null;
  selected: number[];
  query: number;
  locked: number[];
  normalize: "global" | "layer";
  grid_mode: "scores" | "maps" | "pair";
  pair: { query: number; key: number; scores: EncodedArray } | null;
  _stream_key: string;
  [key: string]: unknown;
}

export interface TreeNode {
  index: number;
  token: string;
  layer: number;
}
export interface TreeEdge {
  parent: number;
  child: number;
  layer: number;
  score: number;
}
export interface TreeDict {
  tokens: string[];
  num_layers: number;
  threshold: number;
  root: number | null;
  nodes: TreeNode[];
  edges: TreeEdge[];
}

export interface TreeModel {
  tree: Partial<TreeDict>;
  threshold: number;
  state: "empty" | "done" | "error";
  error: string;
  selected_edge: number[];
  linked: boolean;
  title: string;
  [key: string]: unknown;
}

/** Names of the synced traits, checked against the Python classes by tests/test_widgets_protocol.py. */
export const EXPLORER_TRAITS = ["tokens", "token_types", "meta", "run_id", "state", "error", "layers_done", "layers_total",
  "head_scores", "thumbs", "head", "selected", "query", "locked", "normalize", "grid_mode", "pair", "_stream_key"] as const;
export const TREE_TRAITS = ["tree", "threshold", "state", "error", "selected_edge", "linked", "title"] as const;
