// Canvas painting through 256-entry LUTs (one Uint32 write per cell).
import { lutIndex, type Scale } from "./color";

/** RGBA pixels (ABGR uint32, little-endian) of an n_rows x n_cols matrix. */
export function matrixPixels(data: ArrayLike<number>, rows: number, cols: number, lut: Uint32Array, scale: Scale, missing = 0): Uint32Array {
  const out = new Uint32Array(rows * cols);
  const lo = scale.lo, k = 255 / (scale.hi - scale.lo || 1);
  for (let i = 0; i < rows * cols; i++) {
    const v = data[i];
    if (Number.isFinite(v)) {
      const t = Math.round((v - lo) * k);
      out[i] = lut[t < 0 ? 0 : t > 255 ? 255 : t];
    } else out[i] = missing;
  }
  return out;
}

export { lutIndex };

/** An offscreen canvas holding the pixels (or null without a 2D context). */
export function pixelsToCanvas(px: Uint32Array, w: number, h: number): HTMLCanvasElement | null {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    ctx = c.getContext("2d");
  } catch {
    ctx = null;
  }
  if (!ctx || typeof ImageData === "undefined") return null;
  const buf = new Uint8ClampedArray(new ArrayBuffer(w * h * 4));
  new Uint32Array(buf.buffer).set(px);
  ctx.putImageData(new ImageData(buf, w, h), 0, 0);
  return c;
}

/**
 * Atlas of L x H thumbnails (t x t each, values in [-1, 1]) scaled per head by factor[l*H+h]:
 * returns pixels of an (H*t) x (L*t) image.
 */
export function atlasPixels(thumbs: Float32Array, L: number, H: number, t: number, factor: ArrayLike<number>, lut: Uint32Array, missing = 0): Uint32Array {
  const W = H * t;
  const out = new Uint32Array(W * L * t);
  for (let l = 0; l < L; l++)
    for (let hd = 0; hd < H; hd++) {
      const f = factor[l * H + hd];
      const base = (l * H + hd) * t * t;
      for (let y = 0; y < t; y++)
        for (let x = 0; x < t; x++) {
          const o = (l * t + y) * W + hd * t + x;
          if (!Number.isFinite(f)) {
            out[o] = missing;
            continue;
          }
          const v = thumbs[base + y * t + x] * f; // in [-1, 1]
          const k = Math.round((v + 1) * 127.5);
          out[o] = lut[k < 0 ? 0 : k > 255 ? 255 : k];
        }
    }
  return out;
}
