import { describe, expect, it } from "vitest";
import { EmbeddedHeadStore } from "./embedded-heads";
import { toHalf } from "../shared/testing";

async function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

async function chunk(values: number[], n: number) {
  const u16 = Uint16Array.from(values.map(toHalf));
  return { codec: "deflate" as const, dtype: "float16", shape: [2, n, n], view: new DataView((await deflate(new Uint8Array(u16.buffer))).buffer) };
}

describe("EmbeddedHeadStore", () => {
  it("decodes an embedded head on demand (float16 x scale) and says which heads were left out", async () => {
    const n = 2;
    const data = {
      format: 1, L: 2, H: 3, n, heads: [[1, 2], [0, 0]], scales: [[0.5, 2e-6], [1, 1]],
      chunks: [await chunk([1, 0.5, 0, 0.25, -1, 0.5, 0, 1], n), await chunk([0, 0, 0, 0, 0, 0, 0, 0], n)],
      requested: 6, omitted: 4, policy: "all", budget: 1000, bytes: 40,
    };
    let ready = 0;
    const store = new EmbeddedHeadStore(() => ready++);
    store.update(data);
    expect(store.count).toBe(2);
    expect(store.has(1, 2)).toBe(true);
    expect(store.has(0, 1)).toBe(false);
    expect(store.payload(1, 2)).toBeNull(); // decoding started
    await new Promise((r) => setTimeout(r, 50));
    expect(ready).toBe(1);
    const p = store.payload(1, 2)!;
    expect(p.source).toBe("embedded");
    const attn = new Float32Array((p.attention.view as DataView).buffer);
    const attr = new Float32Array((p.attribution.view as DataView).buffer);
    expect(Array.from(attn)).toEqual([0.5, 0.25, 0, 0.125]);
    expect(attr[0]).toBeCloseTo(-2e-6, 12);
    expect(attr[3]).toBeCloseTo(2e-6, 12);
    expect(store.note()).toContain("2 of 6 heads");
    expect(store.missing(0, 1, 0)).toContain("not embedded");
    expect(store.missing(1, 2, 1)).toBeNull();
    store.update({ ...data, heads: [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]], omitted: 0 });
    expect(store.note()).toBeNull(); // everything embedded: nothing to say
  });
});
