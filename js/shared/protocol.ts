// Synced traits of the Python widgets (attattr_widgets/widgets/*.py) mirrored as TypeScript types.
import type { EncodedArray } from "./decode";
import type { DeflatedArray } from "./inflate";

/** The run state of every view with a run (Explorer, HeadsView, TriggersView). */
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
  steps?: number | string;
  layer_zero_probs?: number[];
  completeness?: number[];
  layer_steps?: number[]; // quadrature nodes each layer used
  converged?: boolean[]; // false: steps="auto" stopped before its tolerance on that layer
  layer_panels?: ([number, number][] | null)[]; // steps="auto": each layer's partition of α ∈ [0, 1]
  /** Model layer indices where ΔF is below what the dtype resolves (completeness is noise there). */
  unresolved?: number[];
  label_names?: string[];
  default_query?: number;
  thumb_size?: number;
  error_detail?: string;
  /** Model layer indices whose results hold NaN/inf (bf16 overflow, a degenerate input): shown as a warning. */
  nonfinite?: number[];
  /** What F is: "prob", "logprob" (an answer's Σ log p, the default for answers), "logit". */
  score?: string;
  /** An explained answer (causal LMs; tokens = prompt + answer): index of its first token, null/absent = none. */
  answer_start?: number | null;
  /** The answer token whose own maps are shown (F_t = log p(y_t | prompt, y_<t)); null = the whole answer. */
  answer_token?: number | null;
  answer?: string; // the answer's text (its tokens joined)
  /** Per row of the shown maps, the answer token that row's output predicts ("" for a row that predicts none of it;
   * [] or absent when the maps explain no answer): a causal LM's answer from the row before it on, an
   * encoder–decoder's decoder and cross rows (which read the answer shifted right). */
  predicts?: string[];
  answer_ready?: number[]; // answer tokens whose own maps are complete (their chips are live)
  /** Encoder–decoders: the attention sites (the `site` switch) and each one's [layers done, layers] so far. */
  sites?: string[];
  site_layers?: Record<string, [number, number]>;
  /** Image runs: what the header calls the picture (an uploaded file's name, a path's file name, or "image"). */
  image_name?: string;
}

/** The picture of an image attribution (attattr_widgets/widgets/image.py `image_payload`): uint8 [h, w, 3] pixels as
 * one binary buffer, the patch grid, and the token index of patch (0, 0) (patches follow row-major). */
export interface ImagePayload {
  pixels: EncodedArray;
  grid: [number, number];
  first_patch: number;
  patch_size: number;
}

export interface HeadPayload {
  layer: number;
  head: number;
  attention: EncodedArray;
  attribution: EncodedArray;
  contrast?: EncodedArray; // the contrast target's map for this head (when a contrast run is done)
  label?: string; // what the attribution map shows when it is not the run's own target (contrast views; plain text)
}

/** Every embedded head's maps (attattr_widgets/widgets/embed.py `embed_heads`): float16 [2, n, n] chunks scaled by `scales`. */
export interface EmbeddedHeads {
  format: number;
  L: number;
  H: number;
  n: number;
  heads: number[][]; // [layer index, head] of each chunk
  scales: number[][]; // [attention max, attribution max] of each chunk
  chunks: DeflatedArray[];
  requested: number;
  omitted: number; // heads of the L x H grid not embedded
  policy: string; // "all" | "top-k" | "list"
  budget: number | null; // max_bytes used
  bytes: number;
}

/** What the kernel sets when an answer token is picked (attattr_widgets/widgets/explorer.py `_answer_states`). */
export interface AnswerState {
  meta: ExplorerMeta;
  head_scores: EncodedArray;
  thumbs: EncodedArray;
  heads_data: EmbeddedHeads | null;
}

export interface ExplorerModel {
  tokens: string[];
  special: boolean[]; // per token: a special token ([CLS], </s>, …: the kernel's engine.model.tokens.special_mask)
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
  interactive: boolean;
  input_spec: Record<string, unknown>;
  targets: Record<string, unknown>;
  history: Record<string, unknown>[];
  contrast: Record<string, unknown>;
  contrast_view: "diff" | "target" | "contrast";
  answer_token: number; // -1: the whole answer; t: answer token t's own maps
  site: string; // encoder–decoders: the shown site ("encoder" | "decoder" | "cross"); "" for single-stack models
  col_tokens: string[]; // the maps' column tokens when they are not `tokens` (cross-attention: the source); [] = square
  col_special: boolean[]; // per column token: a special token
  heads_data: EmbeddedHeads | null;
  /** An exported copy of an explained answer: every answer token's state ("-1" = the whole answer), applied by the
   * page itself when an answer token is picked (no kernel); null otherwise. */
  answer_states: Record<string, AnswerState> | null;
  image: ImagePayload | null; // image runs: the picture the image panel overlays; null for text
  _stream_key: string;
  [key: string]: unknown;
}

export interface TreeNode {
  index: number;
  token: string;
  layer: number;
  side?: "source" | "answer"; // encoder–decoder tree across source and answer only
  position?: number; // index within its side's tokens (same tree only)
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
  sides?: ("source" | "answer")[]; // encoder–decoder tree: per token (source tokens first); absent for one site
  encoder_layers?: number; // layers below it are encoder layers, layer encoder_layers + l is decoder layer l
}

/** The head sums a one-site tree is built from (attattr_widgets/widgets/embed.py `embed_layer_sums`). */
export interface TreeLayerSums {
  sums: DeflatedArray; // float32 [L, n, n]
  layers: number[];
  num_layers: number;
  exclude_row: number | null;
}

/** An encoder–decoder's three sites' head sums, for the tree across source and answer (same function). */
export interface Seq2SeqLayerSums {
  encoder: DeflatedArray; // float32 [L_enc, n_src, n_src]
  decoder: DeflatedArray; // float32 [L_dec, n_tgt, n_tgt]
  cross: DeflatedArray; // float32 [L_dec, n_tgt, n_src]
  encoder_layers: number[];
  decoder_layers: number[];
  encoder_num_layers: number;
  num_layers: number;
  exclude_source: number | null;
  exclude_answer: number | null;
}

export interface TreeModel {
  tree: Partial<TreeDict>;
  special: boolean[]; // per token of the tree's tokens: a special token (the kernel's engine.model.tokens.special_mask)
  threshold: number;
  state: "empty" | "done" | "error";
  error: string;
  selected_edge: number[];
  linked: boolean;
  title: string;
  /** An explained answer (causal LMs): index in tree.tokens of its first token; null = none. */
  answer_start: number | null;
  layer_sums: TreeLayerSums | Seq2SeqLayerSums | null;
  image: ImagePayload | null; // image attributions: the tree is also drawn on the picture (edges between patch centres)
  [key: string]: unknown;
}

/** Names of the synced traits, checked against the Python classes by tests/test_widgets_protocol.py. */
export const EXPLORER_TRAITS = ["tokens", "special", "token_types", "meta", "run_id", "state", "error", "layers_done", "layers_total",
  "head_scores", "thumbs", "head", "selected", "query", "locked", "normalize", "grid_mode", "pair", "interactive", "input_spec",
  "targets", "history", "contrast", "contrast_view", "answer_token", "site", "col_tokens", "col_special", "heads_data",
  "answer_states", "image", "_stream_key"] as const;
export const TREE_TRAITS = ["tree", "special", "threshold", "state", "error", "selected_edge", "linked", "title", "answer_start", "layer_sums", "image"] as const;

export interface RunProgress {
  done: number;
  total: number;
  elapsed_s: number;
  eta_s: number | null;
}

export interface CurvePayload {
  method: string;
  order: string;
  fractions: number[];
  counts: number[];
  accuracy: EncodedArray; // float32 [K], NaN = not evaluated yet
  pruned: EncodedArray; // uint8 [K, L, H], 1 = pruned
}

export interface HeadExample {
  index: number;
  text: string;
  text_pair: string | null;
  label: number | null;
  score: number;
  method?: string; // the method whose per-example scores ranked the rows
}

export interface HeadsModel {
  state: RunState;
  error: string;
  run_id: number;
  phase: "" | "importance" | "pruning" | "effectiveness";
  meta: { model_name?: string; num_layers?: number; num_heads?: number; methods?: string[]; num_examples?: number;
    num_eval?: number; fractions?: number[]; target?: string; label_names?: string[]; effectiveness?: boolean; error_detail?: string };
  progress: Record<string, RunProgress>;
  importance: Record<string, EncodedArray>; // method -> float32 [L, H] running estimate
  curves: CurvePayload[];
  effectiveness: { heads?: number[]; accuracy?: Record<string, Record<string, number[]>>; num_examples?: number; full_accuracy?: number };
  correlation: { labels?: string[]; r?: number; spearman?: number | null; n?: number; method?: string; x?: EncodedArray; y?: EncodedArray };
  view: "importance" | "pruning" | "effectiveness" | "correlation";
  method: string;
  arrangement: "side" | "single";
  selected: number[];
  head_examples: HeadExample[];
  examples: { text: string; text_pair: string | null; label: number | null }[];
  example_scores: Record<string, EncodedArray>; // method -> float32 [N, L, H] per-example head scores (NaN = not yet)
  [key: string]: unknown;
}

export interface ClassAccuracy {
  label: number;
  name: string;
  n: number;
  before: number;
  after: number;
  drop: number;
}

export interface PatternRow {
  id: number;
  tokens: string[];
  segments: number[];
  relative: number[];
  positions: number[];
  score: number;
  layer: number;
  head: number;
  pred: number;
  pred_label: string;
  gold: number | null;
  text: string;
  text_pair: string | null;
  evaluated: boolean;
  per_class?: ClassAccuracy[];
  overall_before?: number;
  overall_after?: number;
  flip_rate?: number;
}

export interface Prediction {
  pred: number;
  label: string;
  prob: number;
}

export interface AttackedSample {
  index: number;
  gold: number | null;
  before: Prediction;
  after: Prediction;
  tokens: string[];
  special: boolean[]; // per token: a special token (sent by the kernel)
  segments: number[];
  inserted: boolean[];
}

export interface TriggersModel {
  state: RunState;
  error: string;
  run_id: number;
  phase: "" | "mining" | "evaluating";
  meta: { model_name?: string; label_names?: string[]; num_examples?: number; num_eval?: number; evaluate?: number; pair?: boolean;
    num_patterns?: number; error_detail?: string };
  progress: Record<string, RunProgress>;
  patterns: PatternRow[];
  selected: number;
  samples: AttackedSample[];
  custom: { text?: string; text_pair?: string | null; pattern?: number | null; before?: Prediction; after?: Prediction; tokens?: string[];
    special?: boolean[]; segments?: number[]; inserted?: boolean[]; trigger?: string[]; error?: string };
  [key: string]: unknown;
}

/** Requests to the kernel: anywidget commands (`@command` methods of the Python classes, js/shared/commands.ts),
 * checked against the Python classes by tests/test_widgets_protocol.py. */
export const EXPLORER_COMMANDS = ["_cmd_cancel", "_cmd_resend", "_cmd_run", "_cmd_targets", "_cmd_history", "_cmd_contrast", "_cmd_image"] as const;
export const HEADS_COMMANDS = ["_cmd_cancel", "_cmd_open"] as const;
export const TRIGGERS_COMMANDS = ["_cmd_cancel", "_cmd_apply"] as const;
export const TREE_COMMANDS = ["_cmd_edge"] as const;
export type CommandName = (typeof EXPLORER_COMMANDS | typeof HEADS_COMMANDS | typeof TRIGGERS_COMMANDS | typeof TREE_COMMANDS)[number];

export const HEADS_TRAITS = ["state", "error", "run_id", "phase", "meta", "progress", "importance", "curves", "effectiveness",
  "correlation", "view", "method", "arrangement", "selected", "head_examples", "examples", "example_scores"] as const;
export const TRIGGERS_TRAITS = ["state", "error", "run_id", "phase", "meta", "progress", "patterns", "selected", "samples", "custom"] as const;
