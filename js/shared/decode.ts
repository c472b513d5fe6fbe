// Decoding of binary arrays sent by the kernel: `{dtype, shape}` header + one buffer that may arrive as a
// DataView (Jupyter), a Uint8Array (Colab custom messages), an ArrayBuffer, or a base64 string (some hosts /
// saved state). Float16 is widened to Float32 (Float16Array is not everywhere yet).

export type Dtype = "float16" | "float32" | "int32" | "uint8";
export type BufferLike = DataView | ArrayBufferView | ArrayBuffer;

export interface ArrayHeader {
  dtype: string;
  shape: number[];
}
export interface EncodedArray extends ArrayHeader {
  view?: BufferLike | string | null;
}
export interface Decoded {
  data: Float32Array;
  shape: number[];
  dtype: string;
}

const BYTES: Record<Dtype, number> = { float16: 2, float32: 4, int32: 4, uint8: 1 };

export function bytesOf(x: BufferLike): Uint8Array {
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  return new Uint8Array(x.buffer as ArrayBuffer, x.byteOffset, x.byteLength);
}

export function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** IEEE 754 half -> float (exact, handles subnormals, inf, nan). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

let HALF_TABLE: Float32Array | null = null;
function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    HALF_TABLE = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) HALF_TABLE[i] = halfToFloat(i);
  }
  return HALF_TABLE;
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Raw bytes (any alignment) of a little-endian array -> Float32Array (copies only when needed). */
export function toFloat32(raw: BufferLike | string, dtype: string): Float32Array {
  const u8 = typeof raw === "string" ? base64ToBytes(raw) : bytesOf(raw);
  const d = dtype as Dtype;
  if (!(d in BYTES)) throw new Error(`unsupported dtype ${dtype}`);
  const size = BYTES[d];
  if (u8.byteLength % size !== 0) throw new Error(`buffer of ${u8.byteLength} bytes is not a whole number of ${dtype}`);
  const aligned = u8.byteOffset % size === 0;
  const src: Uint8Array = aligned ? u8 : u8.slice();
  const n = src.byteLength / size;
  switch (d) {
    case "float32":
      return aligned ? new Float32Array(src.buffer as ArrayBuffer, src.byteOffset, n) : new Float32Array(src.buffer as ArrayBuffer, 0, n);
    case "float16": {
      const u16 = new Uint16Array(src.buffer as ArrayBuffer, src.byteOffset, n);
      const t = halfTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = t[u16[i]];
      return out;
    }
    case "int32":
      return Float32Array.from(new Int32Array(src.buffer as ArrayBuffer, src.byteOffset, n));
    case "uint8":
      return Float32Array.from(src);
  }
}

/** Decode a trait value `{view, dtype, shape}` or a custom-message header + buffer. */
export function decodeArray(obj: EncodedArray | ArrayHeader | null | undefined, buffer?: BufferLike): Decoded | null {
  if (!obj || !Array.isArray(obj.shape)) return null;
  const raw = buffer ?? (obj as EncodedArray).view;
  if (raw == null) return null;
  const data = toFloat32(raw, obj.dtype);
  const want = product(obj.shape);
  if (data.length !== want) throw new Error(`shape [${obj.shape.join(", ")}] needs ${want} values, buffer has ${data.length}`);
  return { data, shape: obj.shape.slice(), dtype: obj.dtype };
}

const MEMO = new WeakMap<object, Decoded | null>();

/** decodeArray memoised on the identity of the trait value (traits are replaced, never mutated). */
export function decodeCached(obj: EncodedArray | null | undefined): Decoded | null {
  if (!obj || typeof obj !== "object") return null;
  if (MEMO.has(obj)) return MEMO.get(obj)!;
  const d = decodeArray(obj);
  MEMO.set(obj, d);
  return d;
}
