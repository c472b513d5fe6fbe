// Colour scales: signed diverging (attribution) and sequential (attention), built around the theme's
// background so that 0 blends into the page in light and dark themes; 256-entry LUTs for canvas painting.

export type RGB = [number, number, number];

export interface Theme {
  bg: RGB;
  fg: RGB;
  dark: boolean;
}

// The stops live in one file shared with the kernel's static fallback (attattr_widgets/snapshot.py).
import palette from "../../attattr_widgets/palette.json";

export const LIGHT: Theme = { bg: palette.light.bg as RGB, fg: palette.light.fg as RGB, dark: false };
export const DARK: Theme = { bg: palette.dark.bg as RGB, fg: palette.dark.fg as RGB, dark: true };
/** The colour that marks an explained answer's tokens (heatmap axes; the CSS `--aa-answer` has the same values). */
export function answerColor(theme: Theme): string {
  return cssRGB((theme.dark ? palette.answer.dark : palette.answer.light) as RGB);
}

export function parseColor(s: string | null | undefined): RGB | null {
  if (!s) return null;
  const t = s.trim();
  let m = /^#([0-9a-f]{3})$/i.exec(t);
  if (m) return [0, 1, 2].map((i) => parseInt(m![1][i] + m![1][i], 16)) as RGB;
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(t);
  if (m) return [0, 2, 4].map((i) => parseInt(m![1].slice(i, i + 2), 16)) as RGB;
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$/i.exec(t);
  if (m) {
    if (m[4] !== undefined && parseFloat(m[4]) === 0) return null; // transparent
    return [Math.round(+m[1]), Math.round(+m[2]), Math.round(+m[3])];
  }
  return null;
}

export function luminance([r, g, b]: RGB): number {
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}

export function makeTheme(bg: RGB | null, fg: RGB | null): Theme {
  const b = bg ?? LIGHT.bg;
  const dark = luminance(b) < 0.5;
  return { bg: b, fg: fg ?? (dark ? DARK.fg : LIGHT.fg), dark };
}

const mix = (a: RGB, b: RGB, t: number): RGB => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];

function ramp(stops: RGB[], t: number): RGB {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  return mix(stops[i], stops[i + 1], x - i);
}

// ColorBrewer RdBu / teal ends; brighter ends on dark backgrounds
const NEG_LIGHT = palette.neg_light as RGB[];
const POS_LIGHT = palette.pos_light as RGB[];
const NEG_DARK = palette.neg_dark as RGB[];
const POS_DARK = palette.pos_dark as RGB[];
const SEQ_LIGHT = palette.seq_light as RGB[];
const SEQ_DARK = palette.seq_dark as RGB[];

/** Signed diverging colour at t in [-1, 1]. */
export function diverging(t: number, theme: Theme): RGB {
  const v = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  if (v < 0) {
    const s = theme.dark ? NEG_DARK : NEG_LIGHT; // listed strong ... weak
    return ramp([theme.bg, ...s.slice().reverse()], -v); // bg -> weak -> strong
  }
  return ramp([theme.bg, ...(theme.dark ? POS_DARK : POS_LIGHT)], v);
}

/** Sequential colour at t in [0, 1] (attention probabilities). */
export function sequential(t: number, theme: Theme): RGB {
  const v = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0));
  return ramp([theme.bg, ...(theme.dark ? SEQ_DARK : SEQ_LIGHT)], v);
}

export type ScaleKind = "diverging" | "sequential";

/** 256 colours packed as ABGR uint32 (little-endian ImageData order). Index 0 = lo end, 255 = hi end. */
export function makeLUT(kind: ScaleKind, theme: Theme): Uint32Array {
  const lut = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const c = kind === "diverging" ? diverging((i / 255) * 2 - 1, theme) : sequential(i / 255, theme);
    lut[i] = (255 << 24) | (Math.round(c[2]) << 16) | (Math.round(c[1]) << 8) | Math.round(c[0]);
  }
  return lut;
}

export function cssRGB(c: RGB, alpha = 1): string {
  const [r, g, b] = c.map((x) => Math.round(x));
  return alpha >= 1 ? `rgb(${r}, ${g}, ${b})` : `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** Readable text colour on top of background c. */
export function textOn(c: RGB): string {
  return luminance(c) > 0.55 ? "#111" : "#fff";
}

export interface Scale {
  kind: ScaleKind;
  lo: number;
  hi: number;
}

/** Symmetric signed domain [-m, m] with m = max |v| over finite values (1 if all zero). */
export function signedScale(values: ArrayLike<number>): Scale {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  }
  return { kind: "diverging", lo: -(m || 1), hi: m || 1 };
}

export function positiveScale(values: ArrayLike<number>): Scale {
  let m = 0;
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]) && values[i] > m) m = values[i];
  return { kind: "sequential", lo: 0, hi: m || 1 };
}

/** LUT index of v under the scale (clamped). */
export function lutIndex(v: number, s: Scale): number {
  if (!Number.isFinite(v)) return s.kind === "diverging" ? 128 : 0;
  const t = (v - s.lo) / (s.hi - s.lo || 1);
  return Math.max(0, Math.min(255, Math.round(t * 255)));
}

export function colorOf(v: number, s: Scale, theme: Theme): RGB {
  const t = (v - s.lo) / (s.hi - s.lo || 1);
  return s.kind === "diverging" ? diverging(t * 2 - 1, theme) : sequential(t, theme);
}

/** "Nice" ticks covering [lo, hi]; for signed symmetric domains 0 is always a tick. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo) || !Number.isFinite(lo) || !Number.isFinite(hi)) return [lo];
  const raw = (hi - lo) / Math.max(1, count - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const start = Math.ceil(lo / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
  return ticks;
}

/** Compact number for labels / tooltips. */
export function formatValue(v: number, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  const s = a >= 1e4 || a < 1e-3 ? v.toExponential(digits - 1) : v.toPrecision(digits);
  const clean = s.includes("e") ? s.replace(/\.?0+e/, "e") : s.includes(".") ? s.replace(/\.?0+$/, "") : s;
  return clean.replace(/^-/, "−");
}

/** Signed power transform used for the "√" contrast option: sign(v)·|v|^g (g = 1 is the identity). */
export function gammaValue(v: number, g: number): number {
  return g === 1 ? v : Math.sign(v) * Math.abs(v) ** g;
}

export function gammaScale(s: Scale, g: number): Scale {
  return { kind: s.kind, lo: gammaValue(s.lo, g), hi: gammaValue(s.hi, g) };
}

export function gammaArray(a: Float32Array, g: number): Float32Array {
  if (g === 1) return a;
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.sign(a[i]) * Math.abs(a[i]) ** g;
  return out;
}
