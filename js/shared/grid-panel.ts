// Layer x head grid panel: one canvas of L x H cells coloured by a value in [-1, 1] (or showing each head's
// thumbnail map), row / column labels, hover outline, selected-cell frame, colour legend, keyboard selection,
// SVG and PNG export. Fed plain arrays, not a model: the Explorer and dataset-level views (HeadsView) both use it.
import { colorOf, cssRGB, formatValue, signedScale, type Scale, type Theme } from "./color";
import { canvasToBlob, downloadBlob, downloadSvg, h, s, sizeCanvas } from "./dom";
import { composite, downloadButtons } from "./image-export";
import { cellOrigin, gridLayout, hitGrid, type GridLayout } from "./layout";
import { legendSvg } from "./legend";
import { atlasPixels, pixelsToCanvas } from "./paint";
import type { TipLine, Tooltip } from "./tooltip";

/** Panels [lo, hi] of [0, 1] (the adaptive quadrature's partition of α), left to right. */
export type Panels = [number, number][];

export interface GridData {
  L: number;
  H: number;
  scores: Float32Array; // L*H, NaN = not computed yet
  thumbs: Float32Array | null; // L*H*t*t in [-1, 1]
  t: number;
  layerIds: number[]; // model layer index of each row
  zeroProbs: (number | null)[];
  completeness: (number | null)[];
  nodes: (number | null)[]; // quadrature nodes per layer
  converged: (boolean | null)[];
  panels: (Panels | null)[]; // steps="auto": the partition of [0, 1] the layer's nodes were placed on
  unresolved: boolean[]; // ΔF below what the model's dtype resolves: the completeness figure is noise there
  done: number;
}

export interface GridHead {
  layer: number; // row index (not the model layer id)
  head: number;
}

/** Per-cell colour value in [-1, 1] for the grid under the chosen normalisation. */
export function normalizedScores(g: Pick<GridData, "L" | "H" | "scores">, mode: "global" | "layer"): { values: Float32Array; scale: Scale } {
  const out = new Float32Array(g.scores.length);
  if (mode === "global") {
    const sc = signedScale(g.scores);
    for (let i = 0; i < out.length; i++) out[i] = g.scores[i] / sc.hi;
    return { values: out, scale: sc };
  }
  for (let l = 0; l < g.L; l++) {
    const row = g.scores.subarray(l * g.H, (l + 1) * g.H);
    const m = signedScale(row).hi;
    for (let j = 0; j < g.H; j++) out[l * g.H + j] = row[j] / m;
  }
  return { values: out, scale: { kind: "diverging", lo: -1, hi: 1 } };
}

export interface GridProps {
  data: GridData | null;
  /** Value shown per cell (raw: tooltips, SVG titles) and its colour value in [-1, 1] (NaN = not computed). */
  scores: Float32Array;
  values: Float32Array;
  legend: { scale: Scale; caption: string };
  maps: boolean; // draw each cell's thumbnail (data.thumbs) instead of a flat colour
  selected: [number, number] | null;
  running: boolean; // highlight the row being computed (data.done)
  emptyText: string; // placeholder when data is null
  width: number; // CSS px available
  theme: Theme;
  lutDiv: Uint32Array;
}

export interface GridOptions {
  title: (string | Node)[];
  toolbar?: HTMLElement[];
  ariaLabel?: string;
  onSelect: (layer: number, head: number) => void;
  onHoverChange?: () => void; // hovered cell changed (redraw)
  tooltip?: Tooltip;
  tipLines?: (cell: GridHead) => TipLine[];
  fileName?: () => string; // download name without extension
}

const KEYS: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

export class GridPanel {
  readonly el: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  readonly legendBox = h("div", { class: "aa-legend-box" });
  private empty = h("div", { class: "aa-placeholder" });
  layout: GridLayout | null = null;
  hover: GridHead | null = null;
  private props: GridProps | null = null;
  private boostCache: { src: Float32Array; out: Float32Array } | null = null;

  constructor(private opts: GridOptions, signal: AbortSignal) {
    this.canvas = h("canvas", { class: "aa-grid-canvas", tabindex: 0, "aria-label": opts.ariaLabel ?? "layer by head grid of head attribution scores" });
    this.el = h("section", { class: "aa-panel aa-grid-panel" },
      h("div", { class: "aa-panel-head" }, h("div", { class: "aa-panel-title" }, ...opts.title),
        downloadButtons(() => this.downloadSvg(), () => this.downloadPng(), signal)),
      opts.toolbar?.length ? h("div", { class: "aa-toolbar" }, ...opts.toolbar) : null,
      h("div", { class: "aa-canvas-box" }, this.canvas, this.empty),
      this.legendBox,
    );
    const o = { signal };
    const gc = this.canvas;
    const local = (e: MouseEvent): [number, number] => {
      const r = gc.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    gc.addEventListener("pointermove", (e) => {
      const hit = this.layout ? hitGrid(this.layout, ...local(e)) : null;
      if (JSON.stringify(hit) !== JSON.stringify(this.hover)) {
        this.hover = hit;
        opts.onHoverChange?.();
      }
      this.showTip(e);
    }, o);
    gc.addEventListener("pointerleave", () => {
      this.hover = null;
      opts.tooltip?.hide();
      opts.onHoverChange?.();
    }, o);
    gc.addEventListener("click", (e) => {
      const hit = this.layout ? hitGrid(this.layout, ...local(e)) : null;
      if (hit) opts.onSelect(hit.layer, hit.head);
    }, o);
    gc.addEventListener("keydown", (e) => {
      const g = this.props?.data;
      if (!g) return;
      const [l, hd] = this.props?.selected ?? [0, 0];
      const mv = KEYS[e.key];
      if (!mv) return;
      e.preventDefault();
      opts.onSelect(Math.max(0, Math.min(g.L - 1, l + mv[0])), Math.max(0, Math.min(g.H - 1, hd + mv[1])));
    }, o);
  }

  private showTip(e: PointerEvent): void {
    const tip = this.opts.tooltip;
    if (!tip) return;
    if (!this.hover || !this.props?.data || !this.opts.tipLines) return tip.hide();
    tip.show(e, this.opts.tipLines(this.hover));
  }

  render(p: GridProps): void {
    this.props = p;
    const g = p.data;
    if (!g) {
      this.layout = null;
      this.canvas.hidden = true;
      this.empty.hidden = false;
      this.empty.textContent = p.emptyText;
      this.legendBox.replaceChildren();
      return;
    }
    this.canvas.hidden = false;
    this.empty.hidden = true;
    const gl = gridLayout(g.L, g.H, p.width, { labelW: 34, labelH: 18, min: 10, max: 30 });
    this.layout = gl;
    const ctx = sizeCanvas(this.canvas, gl.width, gl.height);
    this.legendBox.replaceChildren(legendSvg(p.legend.scale, p.theme, { width: Math.min(gl.width, 260), caption: p.legend.caption }));
    if (!ctx) return;
    this.draw(ctx, g, gl, p);
  }

  private draw(ctx: CanvasRenderingContext2D, g: GridData, gl: GridLayout, p: GridProps): void {
    const fg = cssRGB(p.theme.fg);
    const values = p.values;
    ctx.clearRect(0, 0, gl.width, gl.height);
    ctx.font = "10px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.fillStyle = fg;
    ctx.globalAlpha = 0.65;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const every = gl.cell < 14 ? Math.ceil(14 / gl.cell) : 1;
    for (let hd = 0; hd < g.H; hd += every) ctx.fillText(String(hd), gl.x0 + hd * (gl.cell + gl.gap) + gl.cell / 2, gl.y0 / 2);
    ctx.textAlign = "right";
    for (let l = 0; l < g.L; l += every) ctx.fillText(`L${g.layerIds[l]}`, gl.x0 - 5, gl.y0 + l * (gl.cell + gl.gap) + gl.cell / 2);
    ctx.globalAlpha = 1;
    let atlas: HTMLCanvasElement | null = null;
    if (p.maps && g.thumbs && g.t) {
      const factor = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) factor[i] = Number.isFinite(values[i]) ? Math.max(0.4, Math.sqrt(Math.abs(values[i]))) : NaN;
      atlas = pixelsToCanvas(atlasPixels(this.boosted(g.thumbs), g.L, g.H, g.t, factor, p.lutDiv, 0), g.H * g.t, g.L * g.t);
    }
    for (let l = 0; l < g.L; l++)
      for (let hd = 0; hd < g.H; hd++) {
        const [x, y] = cellOrigin(gl, l, hd);
        const v = values[l * g.H + hd];
        if (!Number.isFinite(v)) {
          ctx.fillStyle = fg;
          ctx.globalAlpha = p.running && l === g.done ? 0.14 : 0.06;
          ctx.fillRect(x, y, gl.cell, gl.cell);
          ctx.globalAlpha = 1;
          continue;
        }
        if (atlas) {
          ctx.drawImage(atlas, hd * g.t, l * g.t, g.t, g.t, x, y, gl.cell, gl.cell);
        } else {
          ctx.fillStyle = cssRGB(colorOf(v, { kind: "diverging", lo: -1, hi: 1 }, p.theme));
          ctx.fillRect(x, y, gl.cell, gl.cell);
        }
        ctx.strokeStyle = fg;
        ctx.globalAlpha = 0.12;
        ctx.lineWidth = 1;
        ctx.strokeRect(x + 0.5, y + 0.5, gl.cell - 1, gl.cell - 1);
        ctx.globalAlpha = 1;
      }
    if (this.hover) {
      const [x, y] = cellOrigin(gl, this.hover.layer, this.hover.head);
      ctx.strokeStyle = fg;
      ctx.globalAlpha = 0.6;
      ctx.lineWidth = 1.5;
      ctx.strokeRect(x - 0.75, y - 0.75, gl.cell + 1.5, gl.cell + 1.5);
      ctx.globalAlpha = 1;
    }
    const sel = p.selected;
    if (sel && sel[0] < g.L && sel[1] < g.H) {
      const [x, y] = cellOrigin(gl, sel[0], sel[1]);
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = p.theme.dark ? "#ffd54a" : "#111";
      ctx.strokeRect(x - 1.5, y - 1.5, gl.cell + 3, gl.cell + 3);
    }
  }

  /** sign(v)·sqrt|v|: sparse attribution maps stay visible in 20-30 px thumbnails. */
  private boosted(t: Float32Array): Float32Array {
    if (this.boostCache?.src === t) return this.boostCache.out;
    const out = new Float32Array(t.length);
    for (let i = 0; i < t.length; i++) out[i] = Math.sign(t[i]) * Math.sqrt(Math.abs(t[i]));
    this.boostCache = { src: t, out };
    return out;
  }

  /** The grid as a vector SVG (one rect per head, a title with its value, the legend underneath). */
  toSvg(caption = "head score"): SVGElement | null {
    const p = this.props, gl = this.layout;
    const g = p?.data;
    if (!p || !g || !gl) return null;
    const fg = cssRGB(p.theme.fg), bg = cssRGB(p.theme.bg);
    const legend = legendSvg(p.legend.scale, p.theme, { width: 220, caption });
    const W = gl.width + 8, H = gl.height + 50;
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "font-family": "system-ui, sans-serif" },
      s("rect", { width: W, height: H, fill: bg }));
    for (let hd = 0; hd < g.H; hd++) svg.appendChild(s("text", { x: gl.x0 + hd * (gl.cell + gl.gap) + gl.cell / 2, y: gl.y0 / 2 + 3, "font-size": 9, "text-anchor": "middle", fill: fg }, String(hd)));
    for (let l = 0; l < g.L; l++) {
      svg.appendChild(s("text", { x: gl.x0 - 5, y: gl.y0 + l * (gl.cell + gl.gap) + gl.cell / 2 + 3, "font-size": 9, "text-anchor": "end", fill: fg }, `L${g.layerIds[l]}`));
      for (let hd = 0; hd < g.H; hd++) {
        const [x, y] = cellOrigin(gl, l, hd);
        const v = p.values[l * g.H + hd];
        const raw = p.scores[l * g.H + hd];
        svg.appendChild(s("rect", { x, y, width: gl.cell, height: gl.cell, fill: Number.isFinite(v) ? cssRGB(colorOf(v, { kind: "diverging", lo: -1, hi: 1 }, p.theme)) : fg, "fill-opacity": Number.isFinite(v) ? 1 : 0.06 },
          s("title", {}, `layer ${g.layerIds[l]} head ${hd}: ${formatValue(raw, 4)}`)));
      }
    }
    const sel = p.selected;
    if (sel) {
      const [x, y] = cellOrigin(gl, sel[0], sel[1]);
      svg.appendChild(s("rect", { x: x - 1, y: y - 1, width: gl.cell + 2, height: gl.cell + 2, fill: "none", stroke: fg, "stroke-width": 2 }));
    }
    legend.setAttribute("x", "4");
    legend.setAttribute("y", String(gl.height + 6));
    svg.appendChild(legend);
    return svg;
  }

  private name(): string {
    return `${this.opts.fileName?.() ?? "attattr"}_grid`;
  }

  downloadSvg(): void {
    const svg = this.toSvg();
    if (svg) downloadSvg(svg, `${this.name()}.svg`);
  }

  async downloadPng(): Promise<void> {
    if (!this.props?.data) return;
    const legends = [this.legendBox.querySelector("svg")].filter((x): x is SVGSVGElement => !!x);
    downloadBlob(await canvasToBlob(await composite(this.props.theme, [this.canvas], legends)), `${this.name()}.png`);
  }
}

/** Tooltip text shared by grid views: "Layer l · head h" and the value (or "not computed yet"). */
export function headTipHead(layerId: number, head: number, value: number, what = "max attribution"): TipLine[] {
  return [h("strong", {}, `Layer ${layerId} · head ${head}`), Number.isFinite(value) ? `${what} ${formatValue(value, 4)}` : "not computed yet"];
}

