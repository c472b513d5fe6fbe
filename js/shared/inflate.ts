// Compressed arrays embedded in a view's state (attattr_widgets/widgets/embed.py `deflate_array`):
// `{codec: "deflate", dtype, shape, view}` where view holds zlib bytes (DataView / base64 / Uint8Array).
import { base64ToBytes, bytesOf, product, toFloat32, type BufferLike, type Decoded } from "./decode";

export interface DeflatedArray {
  codec: "deflate";
  dtype: string;
  shape: number[];
  view: BufferLike | string;
}

/** zlib ("deflate") bytes -> raw bytes with the browser's DecompressionStream. */
export async function inflateBytes(z: Uint8Array): Promise<Uint8Array> {
  if (typeof DecompressionStream !== "function") throw new Error("this browser has no DecompressionStream");
  const stream = new Blob([z as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export function isDeflated(x: unknown): x is DeflatedArray {
  return !!x && typeof x === "object" && (x as DeflatedArray).codec === "deflate" && Array.isArray((x as DeflatedArray).shape);
}

/** Decode an embedded compressed array (float16 widened to float32). */
export async function inflateArray(obj: DeflatedArray): Promise<Decoded> {
  const z = typeof obj.view === "string" ? base64ToBytes(obj.view) : bytesOf(obj.view);
  const data = toFloat32(await inflateBytes(z), obj.dtype);
  const want = product(obj.shape);
  if (data.length !== want) throw new Error(`shape [${obj.shape.join(", ")}] needs ${want} values, got ${data.length}`);
  return { data, shape: obj.shape.slice(), dtype: obj.dtype };
}
