// Model-level cache of streamed layers (custom messages are not state: a view that appears later reads
// them from here). Chunks of another run_id than the model's current one are dropped.
import type { AnyModel } from "@anywidget/types";
import { decodeArray, type ArrayHeader, type BufferLike } from "./decode";

export interface LayerChunk {
  runId: number;
  index: number;
  layer: number;
  total: number;
  heads: number;
  zeroProb: number;
  completeness: number;
  tokens: string[];
  scores: Float32Array; // [H]
  thumbs: Float32Array | null; // [H, t, t]
  thumbSize: number;
}

export interface LayerMessage {
  type: "layer";
  run_id: number;
  index: number;
  layer: number;
  total: number;
  heads: number;
  zero_prob: number;
  completeness: number;
  tokens?: string[];
  scores: ArrayHeader;
  thumbs?: ArrayHeader;
  resend?: boolean;
}

type Listener = () => void;

export class StreamCache {
  runId = -1;
  layers = new Map<number, LayerChunk>();
  dropped = 0;
  private listeners = new Set<Listener>();

  /** Returns true when the chunk was accepted. */
  accept(msg: LayerMessage, buffers: readonly BufferLike[], currentRunId: number): boolean {
    if (!msg || msg.type !== "layer") return false;
    if (msg.run_id !== currentRunId) {
      this.dropped++;
      return false;
    }
    if (this.runId !== currentRunId) this.reset(currentRunId);
    const scores = decodeArray(msg.scores, buffers[0]);
    if (!scores) return false;
    const thumbs = msg.thumbs && buffers[1] ? decodeArray(msg.thumbs, buffers[1]) : null;
    this.layers.set(msg.index, {
      runId: msg.run_id, index: msg.index, layer: msg.layer, total: msg.total, heads: msg.heads,
      zeroProb: msg.zero_prob, completeness: msg.completeness, tokens: msg.tokens ?? [],
      scores: scores.data, thumbs: thumbs ? thumbs.data : null, thumbSize: thumbs ? thumbs.shape[thumbs.shape.length - 1] : 0,
    });
    this.emit();
    return true;
  }

  reset(runId: number): void {
    this.runId = runId;
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

const CACHES = new WeakMap<object, StreamCache>();

export function cacheFor(model: object): StreamCache {
  let c = CACHES.get(model);
  if (!c) {
    c = new StreamCache();
    CACHES.set(model, c);
  }
  return c;
}

/** Wire the model's msg:custom to its cache (called from the AFM `initialize`). Returns a cleanup. */
export function attachStream(model: AnyModel): () => void {
  const cache = cacheFor(model);
  const onMsg = (msg: LayerMessage, buffers: BufferLike[]) => {
    if (msg && msg.type === "layer") cache.accept(msg, buffers ?? [], model.get("run_id") as number);
  };
  const onRun = () => {
    const id = model.get("run_id") as number;
    if (cache.runId !== id) cache.reset(id);
  };
  model.on("msg:custom", onMsg);
  model.on("change:run_id", onRun);
  // a fresh page while a run is in progress: ask the kernel for the layers done so far
  if (model.get("state") === "running" && cache.layers.size === 0) {
    try {
      model.send({ type: "resend", run_id: model.get("run_id") });
    } catch {
      /* no comm (static export) */
    }
  }
  return () => {
    model.off("msg:custom", onMsg);
    model.off("change:run_id", onRun);
  };
}
