// Heads embedded in the Explorer's state (`heads_data`, attattr_widgets/widgets/embed.py `embed_heads`): the
// maps of every embedded head, decoded on demand (inflate + float16 x scale), so exported pages and notebooks
// reopened without a kernel draw any embedded head; and a plain sentence about the heads that were left out.
import { formatValue } from "../shared/color";
import type { EncodedArray } from "../shared/decode";
import { inflateArray } from "../shared/inflate";
import type { EmbeddedHeads, HeadPayload } from "../shared/protocol";

export interface EmbeddedPayload extends HeadPayload {
  source: "embedded";
}

function mb(bytes: number): string {
  return bytes >= 1e6 ? `${formatValue(bytes / 1e6, 3)} MB` : `${formatValue(bytes / 1e3, 3)} kB`;
}

export class EmbeddedHeadStore {
  private data: EmbeddedHeads | null = null;
  private index = new Map<string, number>();
  private ready = new Map<string, EmbeddedPayload>();
  private pending = new Set<string>();
  private failed = new Set<string>();

  /** `onReady` runs when a head requested by payload() finished decoding. */
  constructor(private onReady: () => void) {}

  /** Point at the current `heads_data` trait value (a new value drops the decoded maps). */
  update(d: EmbeddedHeads | null | undefined): void {
    const v = d && Array.isArray(d.heads) && Array.isArray(d.chunks) ? d : null;
    if (v === this.data) return;
    this.data = v;
    this.index = new Map((v?.heads ?? []).map(([l, h], i) => [`${l},${h}`, i]));
    this.ready.clear();
    this.pending.clear();
    this.failed.clear();
  }

  get count(): number {
    return this.index.size;
  }

  has(layer: number, head: number): boolean {
    return this.index.has(`${layer},${head}`);
  }

  /** The head's maps when decoded; otherwise null (and the decode starts if the head is embedded). */
  payload(layer: number, head: number): EmbeddedPayload | null {
    const key = `${layer},${head}`;
    const hit = this.ready.get(key);
    if (hit) return hit;
    const i = this.index.get(key);
    const d = this.data;
    if (i === undefined || !d || this.pending.has(key) || this.failed.has(key)) return null;
    this.pending.add(key);
    inflateArray(d.chunks[i]).then((dec) => {
      if (this.data !== d) return;
      const rows = dec.shape[1], cols = dec.shape[2] ?? rows, nn = rows * cols, [sa, sb] = d.scales[i] ?? [1, 1];
      const attn = new Float32Array(nn), attr = new Float32Array(nn);
      for (let k = 0; k < nn; k++) {
        attn[k] = dec.data[k] * sa;
        attr[k] = dec.data[nn + k] * sb;
      }
      const enc = (a: Float32Array): EncodedArray => ({ view: new DataView(a.buffer), dtype: "float32", shape: [rows, cols] });
      this.ready.set(key, { layer, head, attention: enc(attn), attribution: enc(attr), source: "embedded" });
      this.pending.delete(key);
      this.onReady();
    }, () => {
      this.pending.delete(key);
      this.failed.add(key);
      this.onReady();
    });
    return null;
  }

  /** What was not embedded, in words (null when every head of the grid is embedded or nothing was sent). */
  note(): string | null {
    const d = this.data;
    if (!d) return null;
    const total = d.L * d.H;
    if (!d.omitted || this.count >= total) return null;
    const why = d.budget !== null && d.requested > this.count ? `the ${mb(d.budget)} budget` : d.policy === "list" ? "the chosen heads" : d.policy;
    return `Maps of ${this.count} of ${total} heads are embedded (${why}, largest head scores first); the other heads need the running kernel.`;
  }

  /** Why a selected head cannot be drawn without the kernel, or null when it is embedded (or nothing was sent). */
  missing(layer: number, head: number, layerId: number): string | null {
    const d = this.data;
    if (!d || this.has(layer, head)) return this.failed.has(`${layer},${head}`) ? "The embedded maps of this head could not be decoded in this browser." : null;
    return `Layer ${layerId} · head ${head} is not embedded here (${this.count} of ${d.L * d.H} heads are): it loads from the running kernel; `
      + "without one, re-export with to_html(path, heads=[…] or \"all\", max_bytes=…) to include it.";
  }
}
