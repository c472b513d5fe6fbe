// Test helpers (imported by *.test.ts only): a fake anywidget model and array encoders.
import type { EncodedArray } from "./decode";

type Handler = (...args: any[]) => void;

/** A command call recorded by `FakeModel.invoke`; `reply` answers it (as the kernel's `@command` would). */
export interface Invoked {
  name: string;
  msg: any;
  signal?: AbortSignal;
  buffers: DataView[]; // binary buffers sent with the request (an uploaded file)
  reply: (response: any, buffers?: DataView[]) => void;
}

export class FakeModel<T extends Record<string, any> = Record<string, any>> {
  state: Record<string, any>;
  handlers = new Map<string, Set<Handler>>();
  sent: { content: any; buffers?: any }[] = [];
  /** Commands called through `invoke` (anywidget's `experimental.invoke`, bound to this model). */
  invoked: Invoked[] = [];
  saves = 0;
  widget_manager = { get_model: async () => { throw new Error("no manager"); } } as any;

  constructor(state: Partial<T>) {
    this.state = { ...state };
  }
  get(k: string): any {
    return this.state[k];
  }
  set(k: string, v: any): void {
    this.state[k] = v;
    this.emit(`change:${k}`);
  }
  save_changes(): void {
    this.saves++;
  }
  send(content: any, _callbacks?: any, buffers?: any): void {
    this.sent.push({ content, buffers });
  }
  /** Stand-in for `experimental.invoke`: records the call; pending until `reply` or the signal aborts. */
  invoke = <R>(name: string, msg?: any, options: { signal?: AbortSignal; buffers?: DataView[] } = {}): Promise<[R, DataView[]]> =>
    new Promise((resolve, reject) => {
      const signal = options.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      this.invoked.push({ name, msg, signal, buffers: options.buffers ?? [], reply: (r, b = []) => resolve([r as R, b]) });
    });
  /** The commands called so far, as `{name, msg}`. */
  calls(): { name: string; msg: any }[] {
    return this.invoked.map(({ name, msg }) => ({ name, msg }));
  }
  on(ev: string, cb: Handler): void {
    if (!this.handlers.has(ev)) this.handlers.set(ev, new Set());
    this.handlers.get(ev)!.add(cb);
  }
  off(ev?: string | null, cb?: Handler | null): void {
    if (!ev) return this.handlers.clear();
    if (!cb) this.handlers.delete(ev);
    else this.handlers.get(ev)?.delete(cb);
  }
  emit(ev: string, ...args: any[]): void {
    for (const cb of [...(this.handlers.get(ev) ?? [])]) cb(...args);
  }
  /** Simulate a Python-side trait change. */
  update(patch: Record<string, any>): void {
    for (const [k, v] of Object.entries(patch)) this.set(k, v);
  }
  get listenerCount(): number {
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }
}

export function f32(values: ArrayLike<number>, shape: number[]): EncodedArray {
  const a = Float32Array.from(values);
  return { view: new DataView(a.buffer), dtype: "float32", shape };
}

/** float -> IEEE half bits (round to nearest; enough for tests). */
export function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  let e = ((x >>> 23) & 0xff) - 127 + 15;
  let m = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m = (m | 0x800000) >> (1 - e);
    return sign | ((m + 0x1000) >> 13);
  }
  return sign | (e << 10) | ((m + 0x1000) >> 13);
}

export function f16(values: ArrayLike<number>, shape: number[]): EncodedArray {
  const u = Uint16Array.from(Array.from(values, toHalf));
  return { view: new DataView(u.buffer), dtype: "float16", shape };
}

/** Deterministic pseudo-random numbers. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 4294967296);
  };
}

export function u8(values: ArrayLike<number>, shape: number[]): EncodedArray {
  return { dtype: "uint8", shape, view: new DataView(Uint8Array.from(values).buffer) };
}

/** An image payload (protocol.ts `ImagePayload`): a w × h picture of a horizontal grey ramp, `rows` × `cols` patches. */
export function imagePayload(w: number, h: number, rows: number, cols: number, first = 1) {
  const px: number[] = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.push(Math.round((255 * x) / Math.max(1, w - 1)), 0, 0);
  return { pixels: u8(px, [h, w, 3]), grid: [rows, cols] as [number, number], first_patch: first, patch_size: 16 };
}
