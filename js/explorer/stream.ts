// Model-level cache of streamed layers (custom messages are not state: a view that appears later reads
// them from here). Chunks of another run_id than the model's current one are dropped, and so are chunks of
// another answer token or site than the one shown (`answer_token`: an explained answer streams the whole answer and
// each answer token's own maps; `site`: an encoder–decoder streams its encoder, decoder and cross-attention sites;
// picking another one empties the cache and asks for its layers so far). The kernel pushes one
// `layer` message per finished layer (one-way); a page that missed some asks with the `_cmd_resend` command,
// whose response carries the layers done so far.
import type { AnyModel } from "@anywidget/types";
import { Commands, type Invoke } from "../shared/commands";
import { decodeArray, type ArrayHeader, type BufferLike } from "../shared/decode";

export interface LayerChunk {
  runId: number;
  index: number;
  layer: number;
  total: number;
  heads: number;
  zeroProb: number;
  completeness: number;
  steps: number | null; // quadrature nodes the layer used
  converged: boolean | null; // false: steps="auto" stopped before its tolerance
  panels: [number, number][] | null; // steps="auto": the partition of α ∈ [0, 1] the nodes were placed on
  tokens: string[]; // the maps' row tokens
  special: boolean[]; // per token: a special token (the kernel's engine.model.tokens.special_mask)
  colTokens: string[]; // the maps' column tokens when they differ from `tokens` (cross-attention), else []
  colSpecial: boolean[];
  scores: Float32Array; // [H]
  thumbs: Float32Array | null; // [H, t, t]
  thumbSize: number;
}

export interface LayerMessage {
  type: "layer";
  run_id: number;
  answer_token?: number | null; // null: the whole answer (or a single target); t: answer token t's own maps
  site?: string | null; // encoder–decoders: the site of the layer ("encoder" | "decoder" | "cross"), null otherwise
  col_tokens?: string[]; // rectangular maps: the column tokens (absent: the columns are `tokens`)
  col_special?: boolean[];
  index: number;
  layer: number;
  total: number;
  heads: number;
  zero_prob: number;
  completeness: number;
  steps?: number;
  converged?: boolean;
  panels?: [number, number][] | null;
  tokens?: string[];
  special?: boolean[];
  scores: ArrayHeader;
  thumbs?: ArrayHeader;
  resend?: boolean;
}

type Listener = () => void;

/** The stream a layer belongs to / a view shows: its site and answer token ("" and -1 when there are none). */
export function viewKey(site: string | null | undefined, answerToken: number | null | undefined): string {
  return `${site ?? ""}:${answerToken ?? -1}`;
}

/** The stream the model shows (its `site` and `answer_token` traits). */
export function shownStream(model: { get(k: string): unknown }): string {
  return viewKey(model.get("site") as string | undefined, model.get("answer_token") as number | undefined);
}

export class StreamCache {
  runId = -1;
  stream = viewKey("", -1); // the stream whose layers are cached (viewKey: site and answer token)
  layers = new Map<number, LayerChunk>();
  dropped = 0;
  private listeners = new Set<Listener>();

  /**
   * Returns true when the chunk was accepted. Chunks of an older run than the model's `run_id` (or than the run
   * already cached) are dropped. A chunk of a *newer* run is kept: ipywidgets applies trait updates
   * asynchronously but fires custom messages at once, so a run's first chunks can overtake its `run_id` update.
   */
  accept(msg: LayerMessage, buffers: readonly BufferLike[], currentRunId: number, shown = viewKey("", -1)): boolean {
    if (!msg || msg.type !== "layer") return false;
    const key = viewKey(msg.site, msg.answer_token);
    if (msg.run_id < currentRunId || msg.run_id < this.runId || key !== shown) {
      this.dropped++;
      return false;
    }
    if (this.runId !== msg.run_id || this.stream !== key) this.reset(msg.run_id, key);
    const scores = decodeArray(msg.scores, buffers[0]);
    if (!scores) return false;
    const thumbs = msg.thumbs && buffers[1] ? decodeArray(msg.thumbs, buffers[1]) : null;
    this.layers.set(msg.index, {
      runId: msg.run_id, index: msg.index, layer: msg.layer, total: msg.total, heads: msg.heads,
      zeroProb: msg.zero_prob, completeness: msg.completeness, steps: msg.steps ?? null, converged: msg.converged ?? null,
      panels: msg.panels ?? null, tokens: msg.tokens ?? [], special: msg.special ?? [],
      colTokens: msg.col_tokens ?? [], colSpecial: msg.col_special ?? [],
      scores: scores.data, thumbs: thumbs ? thumbs.data : null, thumbSize: thumbs ? thumbs.shape[thumbs.shape.length - 1] : 0,
    });
    this.emit();
    return true;
  }

  reset(runId: number, stream = viewKey("", -1)): void {
    this.runId = runId;
    this.stream = stream;
    this.layers.clear();
    this.emit();
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  private emit(): void {
    for (const fn of [...this.listeners]) fn();
  }
}

// anywidget hands `initialize` and each `render` *different* proxy objects of the same model, so the cache is
// keyed by the per-instance `_stream_key` trait (a uuid set by Python); the object is the fallback key.
const BY_KEY = new Map<string, StreamCache>();
const BY_OBJECT = new WeakMap<object, StreamCache>();

function streamKey(model: object): string {
  const get = (model as { get?: (k: string) => unknown }).get;
  const k = typeof get === "function" ? get.call(model, "_stream_key") : undefined;
  return typeof k === "string" ? k : "";
}

export function cacheFor(model: object): StreamCache {
  const key = streamKey(model);
  let c = key ? BY_KEY.get(key) : BY_OBJECT.get(model);
  if (!c) {
    c = new StreamCache();
    if (key) BY_KEY.set(key, c);
    else BY_OBJECT.set(model, c);
  }
  return c;
}

/** Forget a model's cache (its `initialize` cleanup: the model was closed). */
export function dropCache(model: object): void {
  const key = streamKey(model);
  if (key) BY_KEY.delete(key);
  else BY_OBJECT.delete(model);
}

/** `_cmd_resend`'s response: the current run's layers so far, 2 buffers each (scores, thumbs). */
export interface ResendResponse {
  ok: boolean;
  run_id?: number;
  layers?: LayerMessage[];
}

/** Wire the model's msg:custom to its cache (called from the AFM `initialize` with the host's `invoke`).
 * Returns a cleanup. */
export function attachStream(model: AnyModel, invoke?: Invoke): () => void {
  const cache = cacheFor(model);
  const ac = new AbortController();
  const commands = new Commands(model, invoke, ac.signal);
  const shownToken = () => shownStream(model);
  const onMsg = (msg: LayerMessage, buffers: BufferLike[]) => {
    if (msg && msg.type === "layer") cache.accept(msg, buffers ?? [], model.get("run_id") as number, shownToken());
  };
  const onRun = () => {
    const id = model.get("run_id") as number;
    if (cache.runId < id) cache.reset(id, shownToken());
  };
  let lastAsk = -Infinity;
  const askResend = (force = false) => {
    const now = typeof performance !== "undefined" ? performance.now() : Date.now();
    if (!force && now - lastAsk < 1500) return;
    lastAsk = now;
    void commands.call<ResendResponse>("_cmd_resend", { run_id: model.get("run_id") }).then((res) => {
      if (!res) return;
      const [r, buffers] = res;
      (r.layers ?? []).forEach((msg, k) => cache.accept(msg, buffers.slice(2 * k, 2 * k + 2), model.get("run_id") as number, shownToken()));
    });
  };
  // another answer token or site picked: its stream replaces the cached one (the kernel holds its layers so far)
  const onAnswer = () => {
    if (cache.stream === shownToken()) return;
    cache.reset(model.get("run_id") as number, shownToken());
    if (model.get("state") === "running") askResend(true);
  };
  // self-healing: the kernel says more layers are done than this page received (a fresh page mid-run, or
  // chunks lost in transit) -> ask for the layers done so far (only works while the kernel is idle, which it
  // is: the run happens in a background thread)
  const onDone = () => {
    const id = model.get("run_id") as number;
    if (model.get("state") !== "running") return;
    const have = cache.runId === id ? cache.layers.size : 0;
    if (have < ((model.get("layers_done") as number) || 0)) askResend();
  };
  model.on("msg:custom", onMsg);
  model.on("change:run_id", onRun);
  model.on("change:layers_done", onDone);
  model.on("change:answer_token", onAnswer);
  model.on("change:site", onAnswer);
  if (model.get("state") === "running" && cache.layers.size === 0) askResend();
  return () => {
    ac.abort();
    model.off("msg:custom", onMsg);
    model.off("change:run_id", onRun);
    model.off("change:layers_done", onDone);
    model.off("change:answer_token", onAnswer);
    model.off("change:site", onAnswer);
    dropCache(model);
  };
}
