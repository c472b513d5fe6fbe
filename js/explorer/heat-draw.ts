// Painting one heatmap canvas: the (windowed) matrix from its offscreen pixels, frame, segment boundary, answer
// boundary and answer-token labels (in the answer colour), token labels (or search ticks when cells are too
// small), query row band, sentence-hover column, hover cross and lock.
import { answerColor, cssRGB, type Theme } from "../shared/color";
import { displayToken, s } from "../shared/dom";
import type { Cell } from "./hover-lock";
import { cellSize, heatCellRect, matrixSize, shownCells, type HeatLayout, type Window } from "../shared/layout";

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
  off: HTMLCanvasElement | null; // cols x rows pixels of the whole matrix
  labels: boolean; // token labels on the axes (cells >= 9 px)
  W: number;
  H: number;
  layout: HeatLayout;
  rows: number;
  cols: number;
  tokens: string[]; // row tokens
  special: boolean[]; // per row token: a special token (sent by the kernel), drawn fainter
  colTokens: string[]; // column tokens (square maps: `tokens`)
  colSpecial: boolean[];
  types: number[]; // token_types (segment boundary at the first 1)
  query: number; // query row (hover > lock > query)
  locked: Cell | null;
  hover: Cell | null;
  matches: number[]; // search matches among the row tokens
  colMatches: number[]; // … and among the column tokens (square maps: the same)
  tokenHover: number; // key column hovered in the sentence
  theme: Theme;
  answerStart: number; // first token of an explained answer (-1: none): a line before it, its labels coloured
}

export function drawHeat(ctx: CanvasRenderingContext2D, a: HeatDrawArgs): void {
  const hl = a.layout, win = hl.win, theme = a.theme;
  const fg = cssRGB(theme.fg);
  const hotColor = theme.dark ? "#ffd54a" : "#b35900";
  const [vr, vc] = shownCells(hl), [mw, mh] = matrixSize(hl);
  ctx.clearRect(0, 0, a.W, a.H);
  if (a.off) {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(a.off, win.c0, win.r0, vc, vr, hl.x0, hl.y0, mw, mh);
  }
  ctx.strokeStyle = fg;
  ctx.globalAlpha = 0.25;
  ctx.lineWidth = 1;
  ctx.strokeRect(hl.x0 - 0.5, hl.y0 - 0.5, mw + 1, mh + 1);
  ctx.globalAlpha = 1;
  const cs = cellSize(hl);
  const toks = a.tokens;
  const inWin = (i: number, o: number) => i >= o && i < o + win.size;
  // segment boundary (text pair)
  const b = a.types.indexOf(1);
  if (b > 0) {
    ctx.strokeStyle = fg;
    ctx.globalAlpha = 0.35;
    ctx.setLineDash([3, 3]);
    if (inWin(b, win.c0)) { ctx.beginPath(); ctx.moveTo(hl.x0 + (b - win.c0) * cs, hl.y0); ctx.lineTo(hl.x0 + (b - win.c0) * cs, hl.y0 + mh); ctx.stroke(); }
    if (inWin(b, win.r0)) { ctx.beginPath(); ctx.moveTo(hl.x0, hl.y0 + (b - win.r0) * cs); ctx.lineTo(hl.x0 + mw, hl.y0 + (b - win.r0) * cs); ctx.stroke(); }
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
  }
  const ans = a.answerStart > 0 && a.answerStart < a.rows ? a.answerStart : -1;
  const ansColor = answerColor(theme);
  if (ans > 0) { // prompt | answer boundary on both axes
    ctx.strokeStyle = ansColor;
    ctx.lineWidth = 1.5;
    if (inWin(ans, win.c0)) { ctx.beginPath(); ctx.moveTo(hl.x0 + (ans - win.c0) * cs, hl.y0 - 3); ctx.lineTo(hl.x0 + (ans - win.c0) * cs, hl.y0 + mh); ctx.stroke(); }
    if (inWin(ans, win.r0)) { ctx.beginPath(); ctx.moveTo(hl.x0 - 3, hl.y0 + (ans - win.r0) * cs); ctx.lineTo(hl.x0 + mw, hl.y0 + (ans - win.r0) * cs); ctx.stroke(); }
    ctx.lineWidth = 1;
  }
  const labelColor = (i: number, hot: boolean) => (hot ? hotColor : ans >= 0 && i >= ans ? ansColor : fg);
  const q = a.query;
  const lock = a.locked;
  if (a.labels) {
    ctx.font = `${Math.min(11, Math.max(8, cs * 0.8))}px system-ui, -apple-system, 'Segoe UI', sans-serif`;
    ctx.textBaseline = "middle";
    for (let i = win.r0; i < Math.min(a.rows, win.r0 + win.size); i++) {
      const hot = i === q || a.matches.includes(i);
      ctx.fillStyle = labelColor(i, hot);
      ctx.globalAlpha = hot ? 1 : a.special[i] ? 0.45 : 0.8;
      ctx.textAlign = "right";
      ctx.fillText(fitText(ctx, displayToken(toks[i] ?? ""), hl.x0 - 8), hl.x0 - 4, hl.y0 + (i - win.r0 + 0.5) * cs);
    }
    for (let j = win.c0; j < Math.min(a.cols, win.c0 + win.size); j++) {
      const hot = (lock !== null && j === lock.col) || a.colMatches.includes(j) || j === a.tokenHover;
      ctx.save();
      ctx.translate(hl.x0 + (j - win.c0 + 0.5) * cs, hl.y0 - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = labelColor(j, hot);
      ctx.globalAlpha = hot ? 1 : a.colSpecial[j] ? 0.45 : 0.8;
      ctx.textAlign = "left";
      ctx.fillText(fitText(ctx, displayToken(a.colTokens[j] ?? ""), hl.y0 - 8), 0, 0);
      ctx.restore();
    }
    ctx.globalAlpha = 1;
  } else {
    // tick marks for search matches on the axes
    ctx.fillStyle = hotColor;
    for (const i of a.matches) if (inWin(i, win.r0)) ctx.fillRect(hl.x0 - 7, hl.y0 + (i - win.r0) * cs, 5, Math.max(1.5, cs));
    for (const j of a.colMatches) if (inWin(j, win.c0)) ctx.fillRect(hl.x0 + (j - win.c0) * cs, hl.y0 - 7, Math.max(1.5, cs), 5);
  }
  ctx.save();
  ctx.beginPath();
  ctx.rect(hl.x0, hl.y0, mw, mh);
  ctx.clip();
  if (q >= 0 && inWin(q, win.r0)) { // query row band
    ctx.strokeStyle = fg;
    ctx.globalAlpha = 0.5;
    ctx.lineWidth = 1;
    ctx.strokeRect(hl.x0 + 0.5, hl.y0 + (q - win.r0) * cs + 0.5, mw - 1, Math.max(1, cs - 1));
    ctx.globalAlpha = 1;
  }
  if (a.tokenHover >= 0 && inWin(a.tokenHover, win.c0)) {
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.12;
    ctx.fillRect(hl.x0 + (a.tokenHover - win.c0) * cs, hl.y0, Math.max(1, cs), mh);
    ctx.globalAlpha = 1;
  }
  if (a.hover) {
    const [x, y, w] = heatCellRect(hl, a.hover.row, a.hover.col);
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.08;
    ctx.fillRect(hl.x0, y, mw, w);
    ctx.fillRect(x, hl.y0, w, mh);
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

export interface HeatSvgArgs {
  values: ArrayLike<number>; // rows x cols, row-major, already under the contrast transform
  scale: { lo: number; hi: number }; // domain of the LUT (same as the canvas)
  lut: Uint32Array; // ABGR colours, as painted on the canvas
  rows: number;
  cols: number;
  layout: HeatLayout; // the canvas geometry: the SVG matches what is on screen
  tokens: string[]; // row tokens
  special: boolean[];
  colTokens: string[]; // column tokens (square maps: `tokens`)
  colSpecial: boolean[];
  labels: boolean;
  theme: Theme;
  answerStart: number; // first token of an explained answer (-1: none)
}

/** One heatmap as vector shapes (a <g>): the visible window as rects — one per run of equal colour in a row —,
 * a frame and the token labels, at the canvas' coordinates. */
export function heatSvg(a: HeatSvgArgs): SVGElement {
  const hl = a.layout, win = hl.win, cs = cellSize(hl);
  const [mw, mh] = matrixSize(hl);
  const fg = cssRGB(a.theme.fg);
  const g = s("g", {});
  const k = 255 / (a.scale.hi - a.scale.lo || 1);
  const color = (i: number) => {
    const c = a.lut[i];
    return `#${[c & 255, (c >>> 8) & 255, (c >>> 16) & 255].map((x) => x.toString(16).padStart(2, "0")).join("")}`;
  };
  const cells = s("g", { "shape-rendering": "crispEdges" });
  const r1 = Math.min(a.rows, win.r0 + win.size), c1 = Math.min(a.cols, win.c0 + win.size);
  for (let r = win.r0; r < r1; r++) {
    let start = win.c0, prev = -1;
    const flush = (end: number) => {
      if (prev >= 0) cells.appendChild(s("rect", { x: +(hl.x0 + (start - win.c0) * cs).toFixed(2), y: +(hl.y0 + (r - win.r0) * cs).toFixed(2), width: +((end - start) * cs).toFixed(2), height: +cs.toFixed(2), fill: color(prev) }));
    };
    for (let c = win.c0; c < c1; c++) {
      const v = a.values[r * a.cols + c];
      const t = Number.isFinite(v) ? Math.round((v - a.scale.lo) * k) : 0;
      const idx = t < 0 ? 0 : t > 255 ? 255 : t;
      if (idx !== prev) {
        flush(c);
        start = c;
        prev = idx;
      }
    }
    flush(c1);
  }
  g.appendChild(cells);
  g.appendChild(s("rect", { x: hl.x0 - 0.5, y: hl.y0 - 0.5, width: mw + 1, height: mh + 1, fill: "none", stroke: fg, "stroke-opacity": 0.25 }));
  const ans = a.answerStart > 0 && a.answerStart < a.rows ? a.answerStart : -1;
  const ansColor = answerColor(a.theme);
  if (ans > 0) {
    if (ans >= win.c0 && ans < c1) { const x = +(hl.x0 + (ans - win.c0) * cs).toFixed(2); g.appendChild(s("line", { x1: x, x2: x, y1: hl.y0 - 3, y2: hl.y0 + mh, stroke: ansColor, "stroke-width": 1.5, "data-answer": "col" })); }
    if (ans >= win.r0 && ans < r1) { const y = +(hl.y0 + (ans - win.r0) * cs).toFixed(2); g.appendChild(s("line", { x1: hl.x0 - 3, x2: hl.x0 + mw, y1: y, y2: y, stroke: ansColor, "stroke-width": 1.5, "data-answer": "row" })); }
  }
  const labelFill = (i: number) => (ans >= 0 && i >= ans ? ansColor : fg);
  if (a.labels) {
    const fs = Math.min(11, Math.max(8, cs * 0.8));
    for (let i = win.r0; i < r1; i++)
      g.appendChild(s("text", { x: hl.x0 - 4, y: hl.y0 + (i - win.r0 + 0.5) * cs, "font-size": fs, "text-anchor": "end", "dominant-baseline": "middle", fill: labelFill(i), "fill-opacity": a.special[i] ? 0.45 : 0.8 }, displayToken(a.tokens[i] ?? "")));
    for (let j = win.c0; j < c1; j++) {
      const x = hl.x0 + (j - win.c0 + 0.5) * cs, y = hl.y0 - 4;
      g.appendChild(s("text", { x: 0, y: 0, transform: `translate(${x.toFixed(2)},${y}) rotate(-90)`, "font-size": fs, "dominant-baseline": "middle", fill: labelFill(j), "fill-opacity": a.colSpecial[j] ? 0.45 : 0.8 }, displayToken(a.colTokens[j] ?? "")));
    }
  }
  return g;
}

/** The zoom minimap: the whole rows x cols attribution map scaled to fit `side` px and the window shown as a box. */
export function drawMinimap(ctx: CanvasRenderingContext2D, side: number, off: HTMLCanvasElement | null, rows: number, cols: number, win: Window, theme: Theme): void {
  ctx.clearRect(0, 0, side, side);
  const k = side / Math.max(rows, cols);
  if (off) {
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(off, 0, 0, cols * k, rows * k);
  }
  ctx.strokeStyle = theme.dark ? "#ffd54a" : "#e65100";
  ctx.lineWidth = 1.5;
  ctx.strokeRect(win.c0 * k + 0.75, win.r0 * k + 0.75, Math.max(3, Math.min(win.size, cols) * k - 1.5), Math.max(3, Math.min(win.size, rows) * k - 1.5));
}
