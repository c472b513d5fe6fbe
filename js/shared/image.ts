// The picture of an image attribution (protocol.ts `ImagePayload`): decoding its uint8 [h, w, 3] buffer, the patch
// geometry (patch (r, c) covers rows r/rows..(r+1)/rows and columns c/cols..(c+1)/cols of the picture, whatever
// size the kernel's small copy has), and drawing one attribution / attention row on it, one colour per patch.
// Used by the Explorer's image panel and the tree drawn on the picture.
import { colorOf, cssRGB, gammaScale, gammaValue, type Scale, type Theme } from "./color";
import { bytesOf, base64ToBytes, type BufferLike } from "./decode";
import type { ImagePayload } from "./protocol";

export interface ImageInfo {
  w: number; // picture width / height in its own pixels
  h: number;
  rows: number; // patch grid
  cols: number;
  first: number; // token index of patch (0, 0)
  rgba: Uint8ClampedArray; // w * h * 4
}

const INFO = new WeakMap<object, ImageInfo | null>();

/** The decoded picture, memoised on the payload's identity (traits are replaced, never mutated); null when absent
 * or malformed (a view then simply has no image panel). */
export function imageInfo(p: ImagePayload | null | undefined): ImageInfo | null {
  if (!p || typeof p !== "object") return null;
  if (INFO.has(p)) return INFO.get(p)!;
  let info: ImageInfo | null = null;
  try {
    info = decodeImage(p);
  } catch {
    info = null;
  }
  INFO.set(p, info);
  return info;
}

function decodeImage(p: ImagePayload): ImageInfo | null {
  const px = p.pixels;
  const shape = px?.shape ?? [];
  if (!px || px.dtype !== "uint8" || shape.length !== 3 || shape[2] !== 3 || px.view == null) return null;
  const [h, w] = shape;
  const u8 = typeof px.view === "string" ? base64ToBytes(px.view) : bytesOf(px.view as BufferLike);
  if (u8.length !== w * h * 3) return null;
  const rows = Math.floor(p.grid?.[0] ?? 0), cols = Math.floor(p.grid?.[1] ?? 0);
  if (!(rows >= 1 && cols >= 1)) return null;
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0, j = 0; i < w * h; i++, j += 3) {
    rgba[i * 4] = u8[j];
    rgba[i * 4 + 1] = u8[j + 1];
    rgba[i * 4 + 2] = u8[j + 2];
    rgba[i * 4 + 3] = 255;
  }
  return { w, h, rows, cols, first: Math.max(0, Math.floor(p.first_patch ?? 0)), rgba };
}

/** Patch index (row-major) of token `t`, or -1 when `t` is not a patch ([CLS], DeiT's [DIST], …). */
export function tokenPatch(info: ImageInfo, t: number): number {
  const p = t - info.first;
  return p >= 0 && p < info.rows * info.cols ? p : -1;
}

/** Whether `n` tokens are the picture's alone (an image classifier: [CLS] … then the patches), not a prompt
 * around it (a vision–language model: text tokens before and after the image tokens). */
export function imageOnly(info: ImageInfo, n: number): boolean {
  return n <= info.first + info.rows * info.cols;
}

/** "(r,c)" of patch `p`. */
export function patchName(info: ImageInfo, p: number): string {
  return `(${Math.floor(p / info.cols)},${p % info.cols})`;
}

/** The patch part of one row [n] (a query token to every key token): [rows * cols], or null if the row is short. */
export function patchValues(row: Float32Array | null, info: ImageInfo): Float32Array | null {
  const k = info.rows * info.cols;
  if (!row || row.length < info.first + k) return null;
  return row.subarray(info.first, info.first + k);
}

/** Where the picture is drawn: its top-left corner and size in CSS pixels. */
export interface ImageBox {
  x0: number;
  y0: number;
  width: number;
  height: number;
}

/** The largest box of the picture's aspect ratio inside maxW × maxH, at (pad, pad). */
export function fitImage(info: ImageInfo, maxW: number, maxH: number, pad = 0): ImageBox {
  const s = Math.max(0.01, Math.min((maxW - 2 * pad) / info.w, (maxH - 2 * pad) / info.h));
  return { x0: pad, y0: pad, width: Math.round(info.w * s), height: Math.round(info.h * s) };
}

/** The rectangle of patch `p` in the box. */
export function patchRect(box: ImageBox, info: ImageInfo, p: number): { x: number; y: number; w: number; h: number } {
  const r = Math.floor(p / info.cols), c = p % info.cols;
  const x = box.x0 + (c * box.width) / info.cols, y = box.y0 + (r * box.height) / info.rows;
  return { x, y, w: box.width / info.cols, h: box.height / info.rows };
}

/** The centre of patch `p` in the box. */
export function patchCentre(box: ImageBox, info: ImageInfo, p: number): [number, number] {
  const r = patchRect(box, info, p);
  return [r.x + r.w / 2, r.y + r.h / 2];
}

/** The patch under the point (x, y) in box coordinates, -1 outside the picture. */
export function patchAt(box: ImageBox, info: ImageInfo, x: number, y: number): number {
  const u = (x - box.x0) / box.width, v = (y - box.y0) / box.height;
  if (!(u >= 0 && u < 1 && v >= 0 && v < 1)) return -1;
  return Math.floor(v * info.rows) * info.cols + Math.floor(u * info.cols);
}

/** Overlay opacity of a patch whose value is `t` of the scale's maximum (|t| ≤ 1): faint where the value is
 * small, so the picture stays visible there. */
export function overlayAlpha(t: number): number {
  const a = Math.min(1, Math.abs(Number.isFinite(t) ? t : 0));
  return 0.1 + 0.6 * a;
}

const CANVAS = new WeakMap<ImageInfo, HTMLCanvasElement | null>();

/** The picture as an offscreen canvas (its own pixel size), memoised; null without a 2D context (happy-dom). */
export function pictureCanvas(info: ImageInfo): HTMLCanvasElement | null {
  if (CANVAS.has(info)) return CANVAS.get(info)!;
  let c: HTMLCanvasElement | null = document.createElement("canvas");
  c.width = info.w;
  c.height = info.h;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    ctx = c.getContext("2d");
  } catch {
    ctx = null;
  }
  if (ctx) ctx.putImageData(new ImageData(new Uint8ClampedArray(info.rgba), info.w, info.h), 0, 0);
  else c = null;
  CANVAS.set(info, c);
  return c;
}

/** The picture as a PNG data URL (the tree's SVG embeds it), or null without a 2D context. */
export function pictureDataUrl(info: ImageInfo): string | null {
  const c = pictureCanvas(info);
  try {
    return c ? c.toDataURL("image/png") : null;
  } catch {
    return null;
  }
}

export interface OverlayArgs {
  info: ImageInfo;
  box: ImageBox;
  values: Float32Array | null; // per patch [rows * cols]; null = the bare picture
  scale: Scale | null;
  gamma: number;
  theme: Theme;
  hover: number; // patch under the pointer (-1 none): outlined
  query: number; // the query token's patch (-1: the query is not a patch): outlined dashed
}

/** Draw the picture with one colour per patch (the value's colour on the shared palette, opacity by magnitude),
 * the patch grid, the hovered patch and the query patch. `ctx` is in CSS pixels. */
export function drawImageOverlay(ctx: CanvasRenderingContext2D, a: OverlayArgs): void {
  const { info, box, theme } = a;
  const pic = pictureCanvas(info);
  ctx.save();
  ctx.imageSmoothingEnabled = info.w < box.width / 2 ? false : true; // tiny pictures (8×8 digits) stay crisp
  if (pic) ctx.drawImage(pic, box.x0, box.y0, box.width, box.height);
  if (a.values && a.scale) {
    const sc = gammaScale(a.scale, a.gamma);
    const hi = Math.max(Math.abs(sc.lo), Math.abs(sc.hi)) || 1;
    for (let p = 0; p < a.values.length; p++) {
      const v = gammaValue(a.values[p], a.gamma);
      if (!Number.isFinite(v)) continue;
      const r = patchRect(a.box, info, p);
      ctx.fillStyle = cssRGB(colorOf(v, sc, theme), overlayAlpha(v / hi));
      ctx.fillRect(r.x, r.y, r.w, r.h);
    }
  }
  // patch grid (faint)
  ctx.strokeStyle = cssRGB(theme.fg, 0.18);
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let c = 1; c < info.cols; c++) {
    const x = Math.round(box.x0 + (c * box.width) / info.cols) + 0.5;
    ctx.moveTo(x, box.y0);
    ctx.lineTo(x, box.y0 + box.height);
  }
  for (let r = 1; r < info.rows; r++) {
    const y = Math.round(box.y0 + (r * box.height) / info.rows) + 0.5;
    ctx.moveTo(box.x0, y);
    ctx.lineTo(box.x0 + box.width, y);
  }
  ctx.stroke();
  ctx.strokeStyle = cssRGB(theme.fg, 0.35);
  ctx.strokeRect(box.x0 - 0.5, box.y0 - 0.5, box.width + 1, box.height + 1);
  const outline = (p: number, dash: boolean, color: string) => {
    if (p < 0) return;
    const r = patchRect(box, info, p);
    ctx.setLineDash(dash ? [3, 2] : []);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.strokeRect(r.x + 1, r.y + 1, r.w - 2, r.h - 2);
  };
  const hot = theme.dark ? "#ffd54a" : "#b35900";
  outline(a.query, true, hot);
  outline(a.hover, false, cssRGB(theme.fg));
  ctx.restore();
}
