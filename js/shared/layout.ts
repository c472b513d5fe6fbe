// Pure geometry: grid layout, heatmap windows, pixel -> cell hit testing.

export interface GridLayout {
  layers: number;
  heads: number;
  cell: number;
  gap: number;
  x0: number; // left of the first cell (after the row labels)
  y0: number; // top of the first cell (after the column labels)
  width: number;
  height: number;
}

export function gridLayout(layers: number, heads: number, maxWidth: number, opts: { min?: number; max?: number; labelW?: number; labelH?: number; gap?: number } = {}): GridLayout {
  const min = opts.min ?? 12, max = opts.max ?? 34, labelW = opts.labelW ?? 34, labelH = opts.labelH ?? 18, gap = opts.gap ?? 2;
  const avail = Math.max(0, maxWidth - labelW - 4);
  const cell = Math.max(min, Math.min(max, Math.floor(avail / Math.max(1, heads)) - gap));
  return {
    layers, heads, cell, gap, x0: labelW, y0: labelH,
    width: labelW + heads * (cell + gap) + 2,
    height: labelH + layers * (cell + gap) + 2,
  };
}

/** Top-left corner of a grid cell (rows = layers, drawn top = last layer? no: row i = layer index i). */
export function cellOrigin(g: GridLayout, layer: number, head: number): [number, number] {
  return [g.x0 + head * (g.cell + g.gap), g.y0 + layer * (g.cell + g.gap)];
}

/** CSS pixel -> {layer, head} or null (gaps and labels miss). */
export function hitGrid(g: GridLayout, x: number, y: number): { layer: number; head: number } | null {
  const cx = x - g.x0, cy = y - g.y0;
  if (cx < 0 || cy < 0) return null;
  const step = g.cell + g.gap;
  const head = Math.floor(cx / step), layer = Math.floor(cy / step);
  if (head >= g.heads || layer >= g.layers) return null;
  if (cx - head * step >= g.cell || cy - layer * step >= g.cell) return null;
  return { layer, head };
}

/** A window of a rows x cols matrix (square maps: rows = cols = n) zoomed to `size` cells per axis: rows
 * [r0, r0 + min(size, rows)), cols [c0, c0 + min(size, cols)). */
export interface Window {
  r0: number;
  c0: number;
  size: number;
}

export function clampWindow(w: Window, rows: number, cols = rows): Window {
  const size = Math.max(1, Math.min(Math.max(rows, cols), Math.round(w.size)));
  const clamp = (v: number, n: number) => Math.max(0, Math.min(n - Math.min(size, n), Math.round(v)));
  return { r0: clamp(w.r0, rows), c0: clamp(w.c0, cols), size };
}

/** Window of `size` centred on (row, col). */
export function centerWindow(row: number, col: number, size: number, rows: number, cols = rows): Window {
  return clampWindow({ r0: row - size / 2, c0: col - size / 2, size }, rows, cols);
}

export interface HeatLayout {
  x0: number; // left of the matrix area in CSS px
  y0: number;
  side: number; // CSS px of `win.size` cells (the matrix area of a square window)
  win: Window;
  rows?: number; // rows / cols of the window actually shown (fewer than `win.size` on the short axis of a
  cols?: number; // rectangular map); absent: win.size
}

export function cellSize(h: HeatLayout): number {
  return h.side / h.win.size;
}

/** Rows and columns the layout shows. */
export function shownCells(h: HeatLayout): [number, number] {
  return [h.rows ?? h.win.size, h.cols ?? h.win.size];
}

/** CSS px [width, height] of the matrix area. */
export function matrixSize(h: HeatLayout): [number, number] {
  const cs = cellSize(h), [r, c] = shownCells(h);
  return [c * cs, r * cs];
}

/** CSS pixel inside the heatmap canvas -> matrix {row, col} or null. */
export function hitHeat(h: HeatLayout, x: number, y: number): { row: number; col: number } | null {
  const cx = x - h.x0, cy = y - h.y0;
  const [mw, mh] = matrixSize(h);
  if (cx < 0 || cy < 0 || cx >= mw || cy >= mh) return null;
  const cs = cellSize(h);
  return { row: h.win.r0 + Math.floor(cy / cs), col: h.win.c0 + Math.floor(cx / cs) };
}

/** Matrix cell -> its CSS rect in the canvas (may be outside the visible area). */
export function heatCellRect(h: HeatLayout, row: number, col: number): [number, number, number, number] {
  const cs = cellSize(h);
  return [h.x0 + (col - h.win.c0) * cs, h.y0 + (row - h.win.r0) * cs, cs, cs];
}

/** Zoom choices offered for an n-token input. */
export function zoomLevels(n: number): number[] {
  const out = [n];
  for (const z of [128, 64, 32, 16]) if (z < n) out.push(z);
  return out;
}

/** Token indices whose text contains `q` (case-insensitive; trims sub-word markers). */
export function searchTokens(tokens: readonly string[], q: string): number[] {
  const needle = q.trim().toLowerCase();
  if (!needle) return [];
  const out: number[] = [];
  tokens.forEach((t, i) => {
    const s = String(t).toLowerCase().replace(/^(##|Ġ|▁)/, "");
    if (s.includes(needle) || String(t).toLowerCase().includes(needle)) out.push(i);
  });
  return out;
}
