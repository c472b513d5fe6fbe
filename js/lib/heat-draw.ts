// Painting one heatmap canvas: the (windowed) matrix from its offscreen pixels, frame, segment boundary, token
// labels (or search ticks when cells are too small), query row band, sentence-hover column, hover cross and lock.
import { cssRGB, type Theme } from "./color";
import { displayToken, isSpecialToken } from "./dom";
import type { Cell } from "./hover-lock";
import { heatCellRect, type HeatLayout } from "./layout";

/** Text shortened with an ellipsis to fit maxW pixels in the context's current font. */
export function fitText(ctx: CanvasRenderingContext2D, text: string, maxW: number): string {
  if (ctx.measureText(text).width <= maxW) return text;
  let lo = 0, hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(text.slice(0, mid) + "…").width <= maxW) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, Math.max(1, lo)) + "…";
}

export interface HeatDrawArgs {
  off: HTMLCanvasElement | null; // n x n pixels of the whole matrix
  labels: boolean; // token labels on the axes (cells >= 9 px)
  W: number;
  H: number;
  layout: HeatLayout;
  n: number;
  tokens: string[];
  types: number[]; // token_types (segment boundary at the first 1)
  query: number; // query row (hover > lock > query)
  locked: Cell | null;
  hover: Cell | null;
  matches: number[]; // search matches
  tokenHover: number; // key column hovered in the sentence
  theme: Theme;
}

export function drawHeat(ctx: CanvasRenderingContext2D, a: HeatDrawArgs): void {
  const hl = a.layout, win = hl.win, theme = a.theme;
  const fg = cssRGB(theme.fg);
  const hotColor = theme.dark ? "#ffd54a" : "#b35900";
  ctx.clearRect(0, 0, a.W, a.H);
  if (a.off) {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(a.off, win.c0, win.r0, win.size, win.size, hl.x0, hl.y0, hl.side, hl.side);
  }
  ctx.strokeStyle = fg;
  ctx.globalAlpha = 0.25;
  ctx.lineWidth = 1;
  ctx.strokeRect(hl.x0 - 0.5, hl.y0 - 0.5, hl.side + 1, hl.side + 1);
  ctx.globalAlpha = 1;
  const cs = hl.side / win.size;
  const toks = a.tokens;
  const inWin = (i: number, o: number) => i >= o && i < o + win.size;
  // segment boundary (text pair)
  const b = a.types.indexOf(1);
  if (b > 0) {
    ctx.strokeStyle = fg;
    ctx.globalAlpha = 0.35;
    ctx.setLineDash([3, 3]);
    if (inWin(b, win.c0)) { ctx.beginPath(); ctx.moveTo(hl.x0 + (b - win.c0) * cs, hl.y0); ctx.lineTo(hl.x0 + (b - win.c0) * cs, hl.y0 + hl.side); ctx.stroke(); }
    if (inWin(b, win.r0)) { ctx.beginPath(); ctx.moveTo(hl.x0, hl.y0 + (b - win.r0) * cs); ctx.lineTo(hl.x0 + hl.side, hl.y0 + (b - win.r0) * cs); ctx.stroke(); }
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
  }
  const q = a.query;
  const lock = a.locked;
  if (a.labels) {
    ctx.font = `${Math.min(11, Math.max(8, cs * 0.8))}px system-ui, -apple-system, 'Segoe UI', sans-serif`;
    ctx.textBaseline = "middle";
    for (let i = win.r0; i < Math.min(a.n, win.r0 + win.size); i++) {
      const hot = i === q || a.matches.includes(i);
      ctx.fillStyle = hot ? hotColor : fg;
      ctx.globalAlpha = hot ? 1 : isSpecialToken(toks[i] ?? "") ? 0.45 : 0.8;
      ctx.textAlign = "right";
      ctx.fillText(fitText(ctx, displayToken(toks[i] ?? ""), hl.x0 - 8), hl.x0 - 4, hl.y0 + (i - win.r0 + 0.5) * cs);
    }
    for (let j = win.c0; j < Math.min(a.n, win.c0 + win.size); j++) {
      const hot = (lock !== null && j === lock.col) || a.matches.includes(j) || j === a.tokenHover;
      ctx.save();
      ctx.translate(hl.x0 + (j - win.c0 + 0.5) * cs, hl.y0 - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = hot ? hotColor : fg;
      ctx.globalAlpha = hot ? 1 : isSpecialToken(toks[j] ?? "") ? 0.45 : 0.8;
      ctx.textAlign = "left";
      ctx.fillText(fitText(ctx, displayToken(toks[j] ?? ""), hl.y0 - 8), 0, 0);
      ctx.restore();
    }
    ctx.globalAlpha = 1;
  } else {
    // tick marks for search matches on the axes
    ctx.fillStyle = hotColor;
    for (const i of a.matches) {
      if (inWin(i, win.r0)) ctx.fillRect(hl.x0 - 7, hl.y0 + (i - win.r0) * cs, 5, Math.max(1.5, cs));
      if (inWin(i, win.c0)) ctx.fillRect(hl.x0 + (i - win.c0) * cs, hl.y0 - 7, Math.max(1.5, cs), 5);
    }
  }
  ctx.save();
  ctx.beginPath();
  ctx.rect(hl.x0, hl.y0, hl.side, hl.side);
  ctx.clip();
  if (q >= 0 && inWin(q, win.r0)) { // query row band
    ctx.strokeStyle = fg;
    ctx.globalAlpha = 0.5;
    ctx.lineWidth = 1;
    ctx.strokeRect(hl.x0 + 0.5, hl.y0 + (q - win.r0) * cs + 0.5, hl.side - 1, Math.max(1, cs - 1));
    ctx.globalAlpha = 1;
  }
  if (a.tokenHover >= 0 && inWin(a.tokenHover, win.c0)) {
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.12;
    ctx.fillRect(hl.x0 + (a.tokenHover - win.c0) * cs, hl.y0, Math.max(1, cs), hl.side);
    ctx.globalAlpha = 1;
  }
  if (a.hover) {
    const [x, y, w] = heatCellRect(hl, a.hover.row, a.hover.col);
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.08;
    ctx.fillRect(hl.x0, y, hl.side, w);
    ctx.fillRect(x, hl.y0, w, hl.side);
    ctx.globalAlpha = 0.9;
    ctx.strokeStyle = fg;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(x - 0.75, y - 0.75, Math.max(2, w) + 1.5, Math.max(2, w) + 1.5);
    ctx.globalAlpha = 1;
  }
  if (lock) {
    const [x, y, w] = heatCellRect(hl, lock.row, lock.col);
    ctx.strokeStyle = theme.dark ? "#ffd54a" : "#111";
    ctx.lineWidth = 2.5;
    ctx.strokeRect(x - 1.25, y - 1.25, Math.max(3, w) + 2.5, Math.max(3, w) + 2.5);
  }
  ctx.restore();
}
