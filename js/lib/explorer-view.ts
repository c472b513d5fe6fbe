// The Explorer view: header (status, progress, Stop), layer x head grid, attention / attribution heatmaps
// of the selected head, and the sentence coloured by the selected query token's attribution.
import type { AnyModel } from "@anywidget/types";
import { cssRGB, formatValue, gammaArray, gammaScale, gammaValue, makeLUT, positiveScale, signedScale, colorOf, textOn, type Scale, type Theme } from "./color";
import { decodeArray, decodeCached, type Decoded } from "./decode";
import { canvasToBlob, ctx2d, displayToken, downloadBlob, downloadSvg, drawSvg, h, isSpecialToken, nextFrame, readTheme, s, sizeCanvas, truncate } from "./dom";
import { cellOrigin, centerWindow, clampWindow, gridLayout, heatCellRect, hitGrid, hitHeat, searchTokens, zoomLevels, type GridLayout, type HeatLayout, type Window } from "./layout";
import { legendSvg } from "./legend";
import { atlasPixels, matrixPixels, pixelsToCanvas } from "./paint";
import type { ExplorerMeta, ExplorerModel, HeadPayload, RunState } from "./protocol";
import { cacheFor, type StreamCache } from "./stream";

type Model = AnyModel<ExplorerModel>;

export interface GridData {
  L: number;
  H: number;
  scores: Float32Array; // L*H, NaN = not computed yet
  thumbs: Float32Array | null; // L*H*t*t in [-1, 1]
  t: number;
  layerIds: number[]; // model layer index of each row
  zeroProbs: (number | null)[];
  completeness: (number | null)[];
  done: number;
}

export interface HeadData {
  layer: number;
  head: number;
  n: number;
  attn: Float32Array;
  attr: Float32Array;
  attnScale: Scale;
  attrScale: Scale;
}

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

/** Merge trait state and streamed chunks into what the grid draws. */
export function gridData(model: Model, cache: StreamCache): GridData | null {
  const state = model.get("state");
  const meta = (model.get("meta") ?? {}) as ExplorerMeta;
  const trait = decodeCached(model.get("head_scores"));
  const runId = model.get("run_id");
  const chunks = cache.runId === runId ? [...cache.layers.values()] : [];
  if (trait && trait.shape.length === 2 && (state !== "running" || chunks.length === 0)) {
    const [L, H] = trait.shape;
    const th = decodeCached(model.get("thumbs"));
    const t = th && th.shape.length === 4 ? th.shape[3] : 0;
    let done = 0;
    for (let l = 0; l < L; l++) if (Number.isFinite(trait.data[l * H])) done++;
    return {
      L, H, scores: trait.data, thumbs: th && t ? th.data : null, t,
      layerIds: meta.layers && meta.layers.length === L ? meta.layers : Array.from({ length: L }, (_, i) => i),
      zeroProbs: Array.from({ length: L }, (_, i) => meta.layer_zero_probs?.[i] ?? null),
      completeness: Array.from({ length: L }, (_, i) => meta.completeness?.[i] ?? null),
      done,
    };
  }
  if (!chunks.length) return null;
  const H = chunks[0].heads;
  const L = Math.max(model.get("layers_total") || 0, chunks[0].total, ...chunks.map((c) => c.index + 1));
  const t = chunks[0].thumbSize;
  const scores = new Float32Array(L * H).fill(NaN);
  const thumbs = t ? new Float32Array(L * H * t * t) : null;
  const layerIds = Array.from({ length: L }, (_, i) => (meta.layers && meta.layers[i] !== undefined ? meta.layers[i] : i));
  const zeroProbs: (number | null)[] = Array(L).fill(null);
  const completeness: (number | null)[] = Array(L).fill(null);
  for (const c of chunks) {
    if (c.index >= L || c.heads !== H) continue;
    scores.set(c.scores.subarray(0, H), c.index * H);
    if (thumbs && c.thumbs && c.thumbSize === t) thumbs.set(c.thumbs, c.index * H * t * t);
    layerIds[c.index] = c.layer;
    zeroProbs[c.index] = c.zeroProb;
    completeness[c.index] = c.completeness;
  }
  return { L, H, scores, thumbs, t, layerIds, zeroProbs, completeness, done: chunks.length };
}

/** Per-cell colour value in [-1, 1] for the grid under the chosen normalisation. */
export function normalizedScores(g: GridData, mode: "global" | "layer"): { values: Float32Array; scale: Scale } {
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

const STATE_LABEL: Record<RunState, string> = { empty: "no input yet", running: "running", done: "done", cancelled: "stopped", error: "error" };

export class ExplorerView {
  readonly root: HTMLDivElement;
  private ac = new AbortController();
  private cleanups: (() => void)[] = [];
  private raf = 0;
  private dirty = new Set<string>();
  private theme: Theme;
  private lutDiv: Uint32Array;
  private lutSeq: Uint32Array;
  private cache: StreamCache;

  // DOM
  private title = h("div", { class: "aa-title" });
  private subtitle = h("div", { class: "aa-subtitle" });
  private badge = h("span", { class: "aa-badge" });
  private progressBar = h("div", { class: "aa-progress-bar" });
  private progress = h("div", { class: "aa-progress", role: "progressbar", "aria-valuemin": 0 }, this.progressBar);
  private progressText = h("span", { class: "aa-progress-text" });
  private stopBtn = h("button", { class: "attattr-stop aa-btn aa-btn-danger", type: "button", title: "Stop the attribution run" }, "■ Stop");
  private errorBox = h("div", { class: "aa-error", role: "alert" });
  private gridCanvas = h("canvas", { class: "aa-grid-canvas", tabindex: 0, "aria-label": "layer by head grid of head attribution scores" });
  private gridLegend = h("div", { class: "aa-legend-box" });
  private gridEmpty = h("div", { class: "aa-placeholder" });
  private normGlobal = h("button", { class: "aa-seg", type: "button", "data-value": "global", title: "One colour scale for all heads" }, "global");
  private normLayer = h("button", { class: "aa-seg", type: "button", "data-value": "layer", title: "Each layer scaled to its own max" }, "per layer");
  private modeScores = h("button", { class: "aa-seg", type: "button", "data-value": "scores", title: "Cells coloured by head score" }, "scores");
  private modeMaps = h("button", { class: "aa-seg", type: "button", "data-value": "maps", title: "Cells show each head's attribution map" }, "maps");
  private modePair = h("button", { class: "aa-seg", type: "button", "data-value": "pair", title: "Heads coloured by their attribution of the locked token pair (click a heatmap cell to lock one)" }, "pair");
  private heatTitle = h("div", { class: "aa-panel-title" });
  private scaleLin = h("button", { class: "aa-seg aa-on", type: "button", "data-gamma": "1", title: "Linear colour scale" }, "linear");
  private scaleSqrt = h("button", { class: "aa-seg", type: "button", "data-gamma": "0.5", title: "Square-root colour scale: small values become visible" }, "√ contrast");
  private gamma = 1;
  private attnCanvas = h("canvas", { class: "aa-heat-canvas", "data-map": "attention", tabindex: 0, "aria-label": "attention heatmap of the selected head" });
  private attrCanvas = h("canvas", { class: "aa-heat-canvas", "data-map": "attribution", tabindex: 0, "aria-label": "attribution heatmap of the selected head" });
  private attnLegend = h("div", { class: "aa-legend-box" });
  private attrLegend = h("div", { class: "aa-legend-box" });
  private heatWrap = h("div", { class: "aa-heat-wrap" });
  private heatEmpty = h("div", { class: "aa-placeholder" });
  private readout = h("div", { class: "aa-readout", "aria-live": "polite" });
  private minimap = h("canvas", { class: "aa-minimap", title: "Overview: the box is the window shown above; click to move it" });
  private zoomSel = h("select", { class: "aa-select", title: "Zoom: window of tokens shown on both axes" });
  private winText = h("span", { class: "aa-muted aa-win-text" });
  private search = h("input", { class: "aa-search", type: "search", placeholder: "Find token…", spellcheck: "false", "aria-label": "find token" });
  private searchCount = h("span", { class: "aa-muted aa-search-count" });
  private sentenceTitle = h("div", { class: "aa-panel-title" });
  private sentence = h("div", { class: "aa-sentence" });
  private sentenceLegend = h("div", { class: "aa-legend-box" });
  private tip = h("div", { class: "aa-tip", role: "tooltip", hidden: true });
  private heatPanel = h("section", { class: "aa-panel aa-heat-panel" });
  private gridPanel = h("section", { class: "aa-panel aa-grid-panel" });
  private body = h("div", { class: "aa-body" });

  // view state
  private grid: GridData | null = null;
  private gl: GridLayout | null = null;
  private gridHover: { layer: number; head: number } | null = null;
  private headKey = "";
  private headData: HeadData | null = null;
  private attnOff: HTMLCanvasElement | null = null;
  private attrOff: HTMLCanvasElement | null = null;
  private hl: HeatLayout | null = null;
  private win: Window = { r0: 0, c0: 0, size: 0 };
  private hover: { row: number; col: number } | null = null;
  private tokHover = -1;
  private matches: number[] = [];
  private matchPos = -1;
  private tokenSpans: HTMLSpanElement[] = [];
  private tokensKey = "";
  private gridWidth = 300;
  private heatWidth = 640;
  private stopping = false;
  private drag: { x: number; y: number; win: Window; moved: boolean } | null = null;
  private renders = 0;

  constructor(private model: Model, el: HTMLElement) {
    this.cache = cacheFor(model);
    this.root = h("div", { class: "attattr-root attattr-explorer", "data-state": "empty" });
    el.appendChild(this.root);
    this.theme = readTheme(this.root);
    this.lutDiv = makeLUT("diverging", this.theme);
    this.lutSeq = makeLUT("sequential", this.theme);
    this.build();
    this.bind();
    this.invalidate("all");
    this.flush();
  }

  // ------------------------------------------------------------------------------------------ structure
  private build(): void {
    const header = h("div", { class: "aa-header" },
      h("div", { class: "aa-heading" }, this.title, this.subtitle),
      h("div", { class: "aa-status" }, this.badge, this.progress, this.progressText, this.stopBtn),
    );
    const gridPanel = this.gridPanel;
    gridPanel.append(
      h("div", { class: "aa-panel-head" },
        h("div", { class: "aa-panel-title" }, "Heads ", h("span", { class: "aa-muted" }, "layer × head, max attribution")),
        this.dlButtons("grid")),
      h("div", { class: "aa-toolbar" },
        h("div", { class: "aa-segmented", role: "group", "aria-label": "normalise" }, this.normGlobal, this.normLayer),
        h("div", { class: "aa-segmented", role: "group", "aria-label": "cell content" }, this.modeScores, this.modeMaps, this.modePair)),
      h("div", { class: "aa-canvas-box" }, this.gridCanvas, this.gridEmpty),
      this.gridLegend,
    );
    this.heatWrap.append(
      h("figure", { class: "aa-heat" }, h("figcaption", {}, "Attention ", h("span", { class: "aa-muted" }, "A")), this.attnCanvas, this.attnLegend),
      h("figure", { class: "aa-heat" }, h("figcaption", {}, "Attribution ", h("span", { class: "aa-muted" }, "A ⊙ ∫∂F/∂A")), this.attrCanvas, this.attrLegend),
    );
    const heatPanel = this.heatPanel;
    heatPanel.append(
      h("div", { class: "aa-panel-head" }, this.heatTitle, this.dlButtons("heat")),
      h("div", { class: "aa-toolbar" },
        h("label", { class: "aa-field" }, "zoom ", this.zoomSel),
        h("div", { class: "aa-segmented", role: "group", "aria-label": "colour scale" }, this.scaleLin, this.scaleSqrt),
        this.winText,
        h("span", { class: "aa-spacer" }),
        h("span", { class: "aa-search-box" }, this.search, this.searchCount)),
      h("div", { class: "aa-canvas-box" }, this.heatWrap, this.heatEmpty),
      h("div", { class: "aa-readout-row" }, this.readout, this.minimap),
    );
    const sentencePanel = h("section", { class: "aa-panel aa-sentence-panel" },
      h("div", { class: "aa-panel-head" }, this.sentenceTitle, this.sentenceLegend),
      this.sentence,
    );
    this.root.append(header, this.errorBox, this.body, this.tip);
    this.body.append(gridPanel, heatPanel, sentencePanel);
  }

  private dlButtons(which: "grid" | "heat"): HTMLElement {
    const svg = h("button", { class: "aa-btn aa-dl", type: "button", "data-download": "svg", title: "Download as SVG" }, "⤓ SVG");
    const png = h("button", { class: "aa-btn aa-dl", type: "button", "data-download": "png", title: "Download as PNG" }, "⤓ PNG");
    const o = { signal: this.ac.signal };
    svg.addEventListener("click", () => (which === "grid" ? this.downloadGridSvg() : this.downloadHeatSvg()), o);
    png.addEventListener("click", () => void (which === "grid" ? this.downloadGridPng() : this.downloadHeatPng()), o);
    return h("div", { class: "aa-dl-group" }, svg, png);
  }

  private bind(): void {
    const o = { signal: this.ac.signal };
    const m = this.model;
    const on = (ev: string, parts: string) => {
      const cb = () => this.invalidate(parts);
      m.on(ev, cb);
      this.cleanups.push(() => m.off(ev, cb));
    };
    on("change:state", "header,grid,heat,sentence");
    on("change:error", "header");
    on("change:meta", "header,grid,sentence");
    on("change:layers_done", "header");
    on("change:layers_total", "header,grid");
    on("change:run_id", "all");
    on("change:head_scores", "grid");
    on("change:thumbs", "grid");
    on("change:normalize", "grid");
    on("change:grid_mode", "grid");
    on("change:selected", "grid,heat,sentence");
    on("change:head", "heat,sentence");
    on("change:tokens", "heat,sentence");
    on("change:token_types", "sentence");
    on("change:query", "heat,sentence");
    on("change:locked", "grid,heat,sentence");
    on("change:pair", "grid");
    this.cleanups.push(this.cache.subscribe(() => this.invalidate("grid,header")));

    this.stopBtn.addEventListener("click", () => {
      if (m.get("state") !== "running") return;
      this.stopping = true;
      m.send({ type: "cancel", run_id: m.get("run_id") });
      this.invalidate("header");
    }, o);
    for (const b of [this.normGlobal, this.normLayer]) b.addEventListener("click", () => this.setTrait("normalize", b.dataset.value as "global" | "layer"), o);
    for (const b of [this.modeScores, this.modeMaps, this.modePair]) b.addEventListener("click", () => this.setTrait("grid_mode", b.dataset.value as "scores" | "maps" | "pair"), o);

    // grid
    const gc = this.gridCanvas;
    gc.addEventListener("pointermove", (e) => {
      const hit = this.gl ? hitGrid(this.gl, ...this.local(gc, e)) : null;
      const valid = hit && this.grid && Number.isFinite(this.grid.scores[hit.layer * this.grid.H + hit.head]) ? hit : hit;
      if (JSON.stringify(valid) !== JSON.stringify(this.gridHover)) {
        this.gridHover = valid;
        this.invalidate("grid");
      }
      this.showGridTip(e);
    }, o);
    gc.addEventListener("pointerleave", () => {
      this.gridHover = null;
      this.hideTip();
      this.invalidate("grid");
    }, o);
    gc.addEventListener("click", (e) => {
      const hit = this.gl ? hitGrid(this.gl, ...this.local(gc, e)) : null;
      if (hit) this.selectHead(hit.layer, hit.head);
    }, o);
    gc.addEventListener("keydown", (e) => {
      if (!this.grid) return;
      const [l, hd] = this.selected() ?? [0, 0];
      const d: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      const mv = d[e.key];
      if (!mv) return;
      e.preventDefault();
      this.selectHead(Math.max(0, Math.min(this.grid.L - 1, l + mv[0])), Math.max(0, Math.min(this.grid.H - 1, hd + mv[1])));
    }, o);

    // heatmaps (both canvases share hover / lock / pan)
    for (const c of [this.attnCanvas, this.attrCanvas]) {
      c.addEventListener("pointerdown", (e) => {
        if (this.win.size < (this.headData?.n ?? 0)) {
          this.drag = { x: e.clientX, y: e.clientY, win: { ...this.win }, moved: false };
          try {
            c.setPointerCapture(e.pointerId);
          } catch {
            /* not supported */
          }
        }
      }, o);
      c.addEventListener("pointermove", (e) => {
        if (this.drag && this.hl && this.headData) {
          const cs = this.hl.side / this.win.size;
          const dx = (e.clientX - this.drag.x) / cs, dy = (e.clientY - this.drag.y) / cs;
          if (Math.abs(e.clientX - this.drag.x) + Math.abs(e.clientY - this.drag.y) > 3) this.drag.moved = true;
          if (this.drag.moved) {
            this.win = clampWindow({ r0: this.drag.win.r0 - dy, c0: this.drag.win.c0 - dx, size: this.win.size }, this.headData.n);
            this.invalidate("heat");
            return;
          }
        }
        const hit = this.hl ? hitHeat(this.hl, ...this.local(c, e)) : null;
        this.setHover(hit);
      }, o);
      c.addEventListener("pointerup", (e) => {
        const moved = this.drag?.moved;
        this.drag = null;
        if (moved) return;
        const hit = this.hl ? hitHeat(this.hl, ...this.local(c, e)) : null;
        if (hit) this.toggleLock(hit.row, hit.col);
      }, o);
      c.addEventListener("pointerleave", () => this.setHover(null), o);
      c.addEventListener("keydown", (e) => {
        // arrows move the locked cell (query row / key column), keeping it inside the window
        const n = this.headData?.n ?? 0;
        const d: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
        const mv = d[e.key];
        if (!n || !mv) return;
        e.preventDefault();
        const [q, k] = this.focusCell();
        const r = Math.max(0, Math.min(n - 1, q + mv[0])), col = Math.max(0, Math.min(n - 1, k + mv[1]));
        this.model.set("locked", [r, col]);
        this.model.set("query", r);
        this.model.save_changes();
        const w = this.win;
        if (r < w.r0 || r >= w.r0 + w.size || col < w.c0 || col >= w.c0 + w.size)
          this.win = clampWindow({ r0: r < w.r0 ? r : r >= w.r0 + w.size ? r - w.size + 1 : w.r0, c0: col < w.c0 ? col : col >= w.c0 + w.size ? col - w.size + 1 : w.c0, size: w.size }, n);
        this.invalidate("heat,sentence,grid");
      }, o);
      c.addEventListener("wheel", (e) => {
        if (!this.headData || this.win.size >= this.headData.n) return; // only capture the wheel when zoomed
        e.preventDefault();
        const step = Math.max(1, Math.round(this.win.size / 8)) * Math.sign(e.deltaY || e.deltaX);
        const horizontal = e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY);
        this.win = clampWindow({ ...this.win, r0: this.win.r0 + (horizontal ? 0 : step), c0: this.win.c0 + (horizontal ? step : 0) }, this.headData.n);
        this.invalidate("heat");
      }, { signal: this.ac.signal, passive: false });
    }
    for (const b of [this.scaleLin, this.scaleSqrt])
      b.addEventListener("click", () => {
        this.gamma = Number(b.dataset.gamma) || 1;
        this.scaleLin.classList.toggle("aa-on", this.gamma === 1);
        this.scaleSqrt.classList.toggle("aa-on", this.gamma !== 1);
        this.headKey = "";
        this.invalidate("heat,sentence");
      }, o);
    this.minimap.addEventListener("click", (e) => {
      const n = this.headData?.n ?? 0;
      if (!n) return;
      const [x, y] = this.local(this.minimap, e);
      const side = parseFloat(this.minimap.style.width) || 72;
      this.win = centerWindow((y / side) * n, (x / side) * n, this.win.size, n);
      this.invalidate("heat");
    }, o);
    this.zoomSel.addEventListener("change", () => {
      const n = this.headData?.n ?? this.tokens().length;
      const size = Number(this.zoomSel.value) || n;
      const [q, k] = this.focusCell();
      this.win = centerWindow(q, k, size, n);
      this.invalidate("heat");
    }, o);
    this.search.addEventListener("input", () => {
      this.matches = searchTokens(this.tokens(), this.search.value);
      this.matchPos = -1;
      this.invalidate("heat,sentence");
    }, o);
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && this.matches.length) {
        e.preventDefault();
        this.matchPos = (this.matchPos + (e.shiftKey ? -1 : 1) + this.matches.length) % this.matches.length;
        const i = this.matches[this.matchPos];
        this.setQuery(i);
        const n = this.headData?.n ?? this.tokens().length;
        if (this.win.size && this.win.size < n) this.win = centerWindow(i, i, this.win.size, n);
        this.invalidate("heat,sentence");
      } else if (e.key === "Escape") {
        this.search.value = "";
        this.matches = [];
        this.invalidate("heat,sentence");
      }
    }, o);
    this.root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && (this.model.get("locked") ?? []).length && e.target !== this.search) {
        this.setTrait("locked", []);
      }
    }, o);

    // sentence
    this.sentence.addEventListener("click", (e) => {
      const i = this.tokenIndexOf(e.target);
      if (i >= 0) this.setQuery(i);
    }, o);
    this.sentence.addEventListener("pointerover", (e) => {
      const i = this.tokenIndexOf(e.target);
      this.tokHover = i;
      if (i >= 0) this.showTokenTip(e as PointerEvent, i);
      this.invalidate("heat");
    }, o);
    this.sentence.addEventListener("pointerleave", () => {
      this.tokHover = -1;
      this.hideTip();
      this.invalidate("heat");
    }, o);

    // size + theme
    if (typeof ResizeObserver !== "undefined") {
      const ro = new ResizeObserver(() => {
        const w = this.root.clientWidth;
        if (w && Math.abs(w - this.lastWidth) > 4) {
          this.lastWidth = w;
          this.invalidate("grid,heat");
        }
      });
      ro.observe(this.root);
      this.cleanups.push(() => ro.disconnect());
    }
    if (typeof MutationObserver !== "undefined" && document.body) {
      const mo = new MutationObserver(() => this.refreshTheme());
      mo.observe(document.body, { attributes: true, attributeFilter: ["class", "data-jp-theme-light", "data-theme", "style"] });
      this.cleanups.push(() => mo.disconnect());
    }
    if (typeof matchMedia === "function") {
      const mq = matchMedia("(prefers-color-scheme: dark)");
      mq.addEventListener?.("change", () => this.refreshTheme(), o);
    }
  }
  private lastWidth = 0;

  // ----------------------------------------------------------------------------------------- helpers
  private local(c: HTMLElement, e: MouseEvent): [number, number] {
    const r = c.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  private setTrait<K extends keyof ExplorerModel & string>(k: K, v: ExplorerModel[K]): void {
    this.model.set(k, v);
    this.model.save_changes();
    this.invalidate("all");
  }

  tokens(): string[] {
    const t = this.model.get("tokens");
    if (t && t.length) return t;
    const first = [...this.cache.layers.values()][0];
    return first ? first.tokens : [];
  }

  selected(): [number, number] | null {
    const s = this.model.get("selected");
    return s && s.length === 2 ? [s[0], s[1]] : null;
  }

  private selectHead(layer: number, head: number): void {
    this.setTrait("selected", [layer, head]);
  }

  private setQuery(i: number): void {
    this.model.set("query", i);
    this.model.set("locked", []);
    this.model.save_changes();
    this.invalidate("heat,sentence");
  }

  private toggleLock(row: number, col: number): void {
    const l = this.model.get("locked") ?? [];
    if (l.length === 2 && l[0] === row && l[1] === col) this.model.set("locked", []);
    else {
      this.model.set("locked", [row, col]);
      this.model.set("query", row);
    }
    this.model.save_changes();
    this.invalidate("heat,sentence");
  }

  private setHover(hit: { row: number; col: number } | null): void {
    if (JSON.stringify(hit) === JSON.stringify(this.hover)) return;
    this.hover = hit;
    this.invalidate("heat,sentence");
  }

  /** Query row shown in the sentence: hover > lock > query trait > default. */
  currentQuery(): number {
    return this.effectiveQuery(true);
  }

  /** The selected query token (lock > query trait > default); with `hover`, a hovered row wins. */
  effectiveQuery(hover = false): number {
    const n = this.tokens().length;
    const l = this.model.get("locked") ?? [];
    const q = hover && this.hover ? this.hover.row : l.length === 2 ? l[0] : this.model.get("query");
    if (q >= 0 && q < n) return q;
    const d = (this.model.get("meta") as ExplorerMeta)?.default_query;
    return d !== undefined && d >= 0 && d < n ? d : n ? 0 : -1;
  }

  private focusCell(): [number, number] {
    const l = this.model.get("locked") ?? [];
    if (l.length === 2) return [l[0], l[1]];
    const q = this.currentQuery();
    return [Math.max(0, q), Math.max(0, q)];
  }

  private tokenIndexOf(t: EventTarget | null): number {
    const el = (t as HTMLElement | null)?.closest?.("[data-i]") as HTMLElement | null;
    return el && this.sentence.contains(el) ? Number(el.dataset.i) : -1;
  }

  private refreshTheme(): void {
    const t = readTheme(this.root);
    if (JSON.stringify(t) === JSON.stringify(this.theme)) return;
    this.theme = t;
    this.lutDiv = makeLUT("diverging", t);
    this.lutSeq = makeLUT("sequential", t);
    this.headKey = "";
    this.invalidate("all");
  }

  // ------------------------------------------------------------------------------------- scheduling
  invalidate(parts: string): void {
    for (const p of parts.split(",")) this.dirty.add(p.trim());
    if (this.raf || this.ac.signal.aborted) return;
    this.raf = nextFrame(() => {
      this.raf = 0;
      this.flush();
    });
  }

  /** Draw everything that is dirty now (tests call this directly). */
  flush(): void {
    if (this.ac.signal.aborted) return;
    const d = this.dirty;
    const all = d.has("all");
    this.dirty = new Set();
    // not laid out (detached, or a notebook cell hidden by windowing): draw with defaults and let the
    // ResizeObserver redraw once the real width is known
    if (!this.root.clientWidth) this.lastWidth = 0;
    const w = this.root.clientWidth || 960;
    this.gridWidth = Math.max(230, Math.min(380, Math.floor(w * 0.36)));
    // side by side only when each heatmap still gets >= 240 px; otherwise the heatmaps take the full width
    // below, and the sentence moves up next to the grid
    const stacked = (w - this.gridWidth - 90) / 2 - 90 < 240;
    this.body.classList.toggle("aa-stacked", stacked);
    if (all || d.has("header")) this.renderHeader();
    if (all || d.has("grid")) this.renderGrid();
    if (all || d.has("heat") || d.has("sentence")) this.prepareHead();
    this.heatWidth = Math.max(300, (this.heatPanel.clientWidth || w - this.gridWidth - 60) - 22);
    if (all || d.has("heat")) this.renderHeat();
    if (all || d.has("sentence")) this.renderSentence();
    this.renders++;
    this.updateHooks();
  }

  private updateHooks(): void {
    const r = this.root.dataset;
    const m = this.model;
    r.state = m.get("state");
    r.runId = String(m.get("run_id"));
    r.layersDone = String(this.grid ? this.grid.done : 0);
    r.layersTotal = String(this.grid ? this.grid.L : m.get("layers_total") || 0);
    const sel = this.selected();
    r.selected = sel ? sel.join(",") : "";
    r.headReady = this.headData ? `${this.headData.layer},${this.headData.head}` : "";
    r.query = String(this.effectiveQuery());
    r.hover = this.hover ? `${this.hover.row},${this.hover.col}` : "";
    r.locked = (m.get("locked") ?? []).join(",");
    r.normalize = m.get("normalize");
    r.gridMode = this.gridMode(this.grid, this.pairScores());
    r.pair = this.pairScores() ? (m.get("locked") ?? []).join(",") : "";
    r.zoom = String(this.win.size || 0);
    r.window = `${this.win.r0},${this.win.c0},${this.win.size}`;
    r.tokens = String(this.tokens().length);
    r.matches = String(this.matches.length);
    r.renders = String(this.renders);
  }

  // ----------------------------------------------------------------------------------------- header
  private renderHeader(): void {
    const m = this.model;
    const meta = (m.get("meta") ?? {}) as ExplorerMeta;
    const state = m.get("state");
    if (state !== "running") this.stopping = false;
    this.title.textContent = meta.model_name ? `AttAttr · ${meta.model_name}` : "AttAttr explorer";
    const parts: string[] = [];
    if (meta.target_label || meta.target !== undefined) {
      const lbl = meta.target_label || (meta.label_names && meta.target !== undefined ? meta.label_names[meta.target] : "") || `class ${meta.target}`;
      parts.push(`${meta.target_kind === "next-token" ? "next token" : "target"}: ${lbl}`);
    }
    if (meta.prob !== undefined && meta.prob !== null) parts.push(`p = ${formatValue(meta.prob, 3)}`);
    if (meta.rule) parts.push(`${meta.rule}${meta.steps ? `, ${meta.steps} steps` : ""}`);
    const text = [meta.text, meta.text_pair].filter((x) => x).join("  ‖  ");
    this.subtitle.replaceChildren(
      parts.length ? h("span", { class: "aa-chip" }, parts.join(" · ")) : "",
      text ? h("span", { class: "aa-text", title: text }, truncate(text, 160)) : "",
    );
    this.badge.textContent = this.stopping && state === "running" ? "stopping…" : STATE_LABEL[state] ?? state;
    this.badge.dataset.state = state;
    const g = this.grid;
    const total = m.get("layers_total") || (g ? g.L : 0);
    const done = Math.max(m.get("layers_done") || 0, g ? g.done : 0);
    const frac = total ? Math.min(1, done / total) : 0;
    this.progressBar.style.width = `${(state === "done" ? 1 : frac) * 100}%`;
    this.progress.setAttribute("aria-valuemax", String(total));
    this.progress.setAttribute("aria-valuenow", String(done));
    this.progress.dataset.state = state;
    this.progressText.textContent = state === "running" ? (total ? `layer ${done} / ${total}` : "starting…") : state === "empty" ? "" : total ? `${done} / ${total} layers` : "";
    this.stopBtn.disabled = state !== "running" || this.stopping;
    this.stopBtn.hidden = state !== "running";
    const err = m.get("error");
    this.errorBox.replaceChildren();
    if (state === "error" && err) {
      this.errorBox.append(h("strong", {}, "Attribution failed: "), err);
      if (meta.error_detail) this.errorBox.append(h("details", {}, h("summary", {}, "details"), h("pre", {}, meta.error_detail)));
    }
    this.errorBox.hidden = !(state === "error" && err);
  }

  // ------------------------------------------------------------------------------------------- grid
  private renderGrid(): void {
    this.grid = gridData(this.model, this.cache);
    const g = this.grid;
    const state = this.model.get("state");
    for (const b of [this.normGlobal, this.normLayer]) b.classList.toggle("aa-on", b.dataset.value === this.model.get("normalize"));
    const pair = this.pairScores();
    const mode = this.gridMode(g, pair);
    for (const b of [this.modeScores, this.modeMaps, this.modePair]) b.classList.toggle("aa-on", b.dataset.value === mode);
    this.modeMaps.disabled = !g?.thumbs;
    this.modePair.disabled = !pair;
    if (!g) {
      this.gl = null;
      this.gridCanvas.hidden = true;
      this.gridEmpty.hidden = false;
      this.gridEmpty.textContent = state === "running" ? "Computing the first layer…" : state === "error" ? "No results." : "Run explorer.explain(text) to attribute a prediction.";
      this.gridLegend.replaceChildren();
      return;
    }
    this.gridCanvas.hidden = false;
    this.gridEmpty.hidden = true;
    const gl = gridLayout(g.L, g.H, this.gridWidth, { labelW: 34, labelH: 18, min: 10, max: 30 });
    this.gl = gl;
    const ctx = sizeCanvas(this.gridCanvas, gl.width, gl.height);
    const shown = mode === "pair" && pair && pair.scores.length === g.scores.length ? { ...g, scores: pair.scores } : g;
    const { values, scale } = normalizedScores(shown, this.model.get("normalize"));
    const legendScale = this.model.get("normalize") === "global" ? scale : { kind: "diverging" as const, lo: -1, hi: 1 };
    const toks = this.tokens();
    const what = mode === "pair" && pair ? `attribution of ${displayToken(toks[pair.query] ?? "")} → ${displayToken(toks[pair.key] ?? "")}` : "head score (max attribution)";
    this.gridLegend.replaceChildren(legendSvg(legendScale, this.theme, {
      width: Math.min(gl.width, 260),
      caption: this.model.get("normalize") === "global" ? truncate(what, 48) : `${truncate(what, 36)} ÷ layer max`,
    }));
    if (!ctx) return;
    this.drawGrid(ctx, g, gl, values);
  }

  private drawGrid(ctx: CanvasRenderingContext2D, g: GridData, gl: GridLayout, values: Float32Array): void {
    const fg = cssRGB(this.theme.fg);
    ctx.clearRect(0, 0, gl.width, gl.height);
    ctx.font = "10px var(--aa-font, system-ui, sans-serif)";
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
    const maps = this.gridMode(g, this.pairScores()) === "maps" && g.thumbs && g.t;
    let atlas: HTMLCanvasElement | null = null;
    if (maps && g.thumbs) {
      const factor = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) factor[i] = Number.isFinite(values[i]) ? Math.max(0.4, Math.sqrt(Math.abs(values[i]))) : NaN;
      atlas = pixelsToCanvas(atlasPixels(this.boosted(g.thumbs), g.L, g.H, g.t, factor, this.lutDiv, 0), g.H * g.t, g.L * g.t);
    }
    const running = this.model.get("state") === "running";
    for (let l = 0; l < g.L; l++)
      for (let hd = 0; hd < g.H; hd++) {
        const [x, y] = cellOrigin(gl, l, hd);
        const v = values[l * g.H + hd];
        if (!Number.isFinite(v)) {
          ctx.fillStyle = fg;
          ctx.globalAlpha = running && l === g.done ? 0.14 : 0.06;
          ctx.fillRect(x, y, gl.cell, gl.cell);
          ctx.globalAlpha = 1;
          continue;
        }
        if (atlas) {
          ctx.drawImage(atlas, hd * g.t, l * g.t, g.t, g.t, x, y, gl.cell, gl.cell);
        } else {
          ctx.fillStyle = cssRGB(colorOf(v, { kind: "diverging", lo: -1, hi: 1 }, this.theme));
          ctx.fillRect(x, y, gl.cell, gl.cell);
        }
        ctx.strokeStyle = fg;
        ctx.globalAlpha = 0.12;
        ctx.lineWidth = 1;
        ctx.strokeRect(x + 0.5, y + 0.5, gl.cell - 1, gl.cell - 1);
        ctx.globalAlpha = 1;
      }
    const sel = this.selected();
    if (this.gridHover) {
      const [x, y] = cellOrigin(gl, this.gridHover.layer, this.gridHover.head);
      ctx.strokeStyle = fg;
      ctx.globalAlpha = 0.6;
      ctx.lineWidth = 1.5;
      ctx.strokeRect(x - 0.75, y - 0.75, gl.cell + 1.5, gl.cell + 1.5);
      ctx.globalAlpha = 1;
    }
    if (sel && sel[0] < g.L && sel[1] < g.H) {
      const [x, y] = cellOrigin(gl, sel[0], sel[1]);
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = this.theme.dark ? "#ffd54a" : "#111";
      ctx.strokeRect(x - 1.5, y - 1.5, gl.cell + 3, gl.cell + 3);
    }
  }

  /** Per-head attribution of the locked pair when the kernel sent it for the current lock. */
  pairScores(): { query: number; key: number; scores: Float32Array } | null {
    const p = this.model.get("pair");
    const lock = this.model.get("locked") ?? [];
    if (!p || lock.length !== 2 || p.query !== lock[0] || p.key !== lock[1]) return null;
    const d = decodeCached(p.scores);
    return d ? { query: p.query, key: p.key, scores: d.data } : null;
  }

  private gridMode(g: GridData | null, pair: unknown): "scores" | "maps" | "pair" {
    const m = this.model.get("grid_mode");
    if (m === "maps" && g?.thumbs) return "maps";
    if (m === "pair" && pair) return "pair";
    return "scores";
  }

  private boostCache: { src: Float32Array; out: Float32Array } | null = null;
  /** sign(v)·sqrt|v|: sparse attribution maps stay visible in 20-30 px thumbnails. */
  private boosted(t: Float32Array): Float32Array {
    if (this.boostCache?.src === t) return this.boostCache.out;
    const out = new Float32Array(t.length);
    for (let i = 0; i < t.length; i++) out[i] = Math.sign(t[i]) * Math.sqrt(Math.abs(t[i]));
    this.boostCache = { src: t, out };
    return out;
  }

  private showGridTip(e: PointerEvent): void {
    const hit = this.gridHover, g = this.grid;
    if (!hit || !g) return this.hideTip();
    const v = g.scores[hit.layer * g.H + hit.head];
    const lines: (string | HTMLElement)[] = [h("strong", {}, `Layer ${g.layerIds[hit.layer]} · head ${hit.head}`)];
    lines.push(Number.isFinite(v) ? `max attribution ${formatValue(v, 4)}` : "not computed yet");
    const pair = this.pairScores();
    if (pair) {
      const toks = this.tokens();
      const pv = pair.scores[hit.layer * g.H + hit.head];
      lines.push(`${displayToken(toks[pair.query] ?? "")} → ${displayToken(toks[pair.key] ?? "")}: ${formatValue(pv, 4)}`);
    }
    const zp = g.zeroProbs[hit.layer], cp = g.completeness[hit.layer];
    if (zp !== null && zp !== undefined) lines.push(`p with layer's attention zeroed ${formatValue(zp, 3)}`);
    if (cp !== null && cp !== undefined) lines.push(`IG completeness ${formatValue(cp, 3)}`);
    this.showTip(e, lines);
  }

  private showTokenTip(e: PointerEvent, i: number): void {
    const toks = this.tokens();
    const q = this.currentQuery();
    const lines: (string | HTMLElement)[] = [h("strong", {}, `“${displayToken(toks[i])}”`), ` #${i}`];
    const hd = this.headData;
    if (hd && q >= 0) {
      lines.push(`attribution ${displayToken(toks[q])} → ${displayToken(toks[i])}: ${formatValue(hd.attr[q * hd.n + i], 4)}`);
      lines.push(`attention ${formatValue(hd.attn[q * hd.n + i], 4)}`);
    }
    lines.push(h("span", { class: "aa-muted" }, "click: make this the query token"));
    this.showTip(e, lines);
  }

  private showTip(e: MouseEvent, lines: (string | HTMLElement)[]): void {
    this.tip.replaceChildren(...lines.flatMap((l, i) => (i ? [h("br"), l] : [l])));
    const r = this.root.getBoundingClientRect();
    let x = e.clientX - r.left + 14, y = e.clientY - r.top + 14;
    if (x + 260 > r.width) x = Math.max(0, x - 280);
    this.tip.style.left = `${x}px`;
    this.tip.style.top = `${y}px`;
    this.tip.hidden = false;
  }

  private hideTip(): void {
    this.tip.hidden = true;
  }

  // --------------------------------------------------------------------------------------- heatmaps
  private prepareHead(): void {
    const payload = this.model.get("head") as HeadPayload | null;
    const sel = this.selected();
    if (!payload || !sel || payload.layer !== sel[0] || payload.head !== sel[1]) {
      this.headData = null;
      this.headKey = "";
      return;
    }
    const key = `${this.model.get("run_id")}:${payload.layer}:${payload.head}:${this.theme.dark}:${this.gamma}`;
    if (key === this.headKey && this.headData) return;
    let attn: Decoded | null, attr: Decoded | null;
    try {
      attn = decodeArray(payload.attention);
      attr = decodeArray(payload.attribution);
    } catch {
      attn = attr = null;
    }
    if (!attn || !attr || attn.shape.length !== 2) {
      this.headData = null;
      return;
    }
    const n = attn.shape[0];
    const prevN = this.headData?.n ?? 0;
    this.headData = {
      layer: payload.layer, head: payload.head, n, attn: attn.data, attr: attr.data,
      attnScale: positiveScale(attn.data), attrScale: signedScale(attr.data),
    };
    this.headKey = key;
    const g = this.gamma;
    this.attnOff = pixelsToCanvas(matrixPixels(gammaArray(attn.data, g), n, n, this.lutSeq, gammaScale(this.headData.attnScale, g)), n, n);
    this.attrOff = pixelsToCanvas(matrixPixels(gammaArray(attr.data, g), n, n, this.lutDiv, gammaScale(this.headData.attrScale, g)), n, n);
    if (n !== prevN || !this.win.size) {
      const size = n > 96 ? 64 : n; // long inputs open zoomed in around the query token
      const [q, k] = this.focusCell();
      this.win = centerWindow(q, n > 96 ? Math.max(0, k) : 0, size, n);
      if (size === n) this.win = { r0: 0, c0: 0, size: n };
    }
    this.win = clampWindow(this.win, n);
    const levels = zoomLevels(n);
    this.zoomSel.replaceChildren(...levels.map((z) => h("option", { value: z }, z === n ? `all ${n}` : `${z} × ${z}`)));
    this.zoomSel.value = String(levels.includes(this.win.size) ? this.win.size : n);
  }

  private labelMetrics(): { rowW: number; colH: number; show: boolean } {
    const hd = this.headData!;
    const side = this.mapSide(0);
    const cs = side / this.win.size;
    const show = cs >= 9;
    if (!show) return { rowW: 10, colH: 10, show };
    const toks = this.tokens();
    let longest = 0;
    for (let i = this.win.r0; i < Math.min(hd.n, this.win.r0 + this.win.size); i++) longest = Math.max(longest, displayToken(toks[i] ?? "").length);
    for (let i = this.win.c0; i < Math.min(hd.n, this.win.c0 + this.win.size); i++) longest = Math.max(longest, displayToken(toks[i] ?? "").length);
    const w = Math.min(84, 10 + Math.min(14, longest) * 6.2);
    return { rowW: w, colH: w, show };
  }

  private mapSide(margin: number): number {
    const per = Math.floor((this.heatWidth - 30) / 2) - margin;
    return Math.max(140, Math.min(440, per));
  }

  private renderHeat(): void {
    const hd = this.headData;
    const sel = this.selected();
    const state = this.model.get("state");
    if (sel) {
      const g = this.grid;
      const lid = g ? g.layerIds[sel[0]] : sel[0];
      this.heatTitle.replaceChildren(h("span", {}, `Layer ${lid} · head ${sel[1]}`), h("span", { class: "aa-muted" }, "  query rows × key columns"));
    } else this.heatTitle.replaceChildren(h("span", {}, "Selected head"));
    if (!hd) {
      this.heatWrap.hidden = true;
      this.heatEmpty.hidden = false;
      this.hl = null;
      this.heatEmpty.textContent = !sel ? (state === "running" ? "Waiting for the first layer…" : "Select a head in the grid.")
        : state === "running" ? `Layer ${sel[0]} is still being computed…` : state === "done" || state === "cancelled" ? "Loading head…" : "No data for this head.";
      this.readout.replaceChildren();
      this.attnLegend.replaceChildren();
      this.attrLegend.replaceChildren();
      return;
    }
    this.heatWrap.hidden = false;
    this.heatEmpty.hidden = true;
    const lm = this.labelMetrics();
    const side0 = this.mapSide(lm.rowW);
    const cs = Math.max(side0 / this.win.size, 0);
    const side = Math.floor(cs * this.win.size) || side0;
    this.hl = { x0: lm.rowW, y0: lm.colH, side, win: this.win };
    const W = lm.rowW + side + 6, H = lm.colH + side + 6;
    for (const [c, off] of [[this.attnCanvas, this.attnOff], [this.attrCanvas, this.attrOff]] as const) {
      const ctx = sizeCanvas(c, W, H);
      if (ctx) this.drawHeat(ctx, off, lm.show, W, H);
    }
    const lw = Math.min(side + lm.rowW, 280);
    const sq = this.gamma !== 1 ? " · √ scale" : "";
    this.attnLegend.replaceChildren(legendSvg(hd.attnScale, this.theme, { width: lw, caption: `attention probability${sq}`, gamma: this.gamma }));
    this.attrLegend.replaceChildren(legendSvg(hd.attrScale, this.theme, { width: lw, caption: `attribution (signed)${sq}`, gamma: this.gamma }));
    const n = hd.n;
    this.winText.textContent = this.win.size < n ? `rows ${this.win.r0}–${this.win.r0 + this.win.size - 1} · cols ${this.win.c0}–${this.win.c0 + this.win.size - 1} · drag / wheel to pan` : `${n} tokens`;
    this.zoomSel.value = String(this.win.size);
    this.searchCount.textContent = this.search.value ? (this.matches.length ? `${this.matchPos >= 0 ? this.matchPos + 1 + "/" : ""}${this.matches.length} match${this.matches.length === 1 ? "" : "es"}` : "no match") : "";
    this.renderReadout();
    this.renderMinimap();
  }

  private renderMinimap(): void {
    const hd = this.headData;
    const zoomed = !!hd && this.win.size < hd.n;
    this.minimap.hidden = !zoomed;
    if (!zoomed || !hd) return;
    const side = 72;
    const ctx = sizeCanvas(this.minimap, side, side);
    if (!ctx) return;
    ctx.clearRect(0, 0, side, side);
    if (this.attrOff) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.attrOff, 0, 0, side, side);
    }
    const k = side / hd.n;
    ctx.strokeStyle = this.theme.dark ? "#ffd54a" : "#e65100";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(this.win.c0 * k + 0.75, this.win.r0 * k + 0.75, Math.max(3, this.win.size * k - 1.5), Math.max(3, this.win.size * k - 1.5));
  }

  private drawHeat(ctx: CanvasRenderingContext2D, off: HTMLCanvasElement | null, labels: boolean, W: number, H: number): void {
    const hl = this.hl!, hd = this.headData!, win = hl.win;
    const fg = cssRGB(this.theme.fg);
    ctx.clearRect(0, 0, W, H);
    if (off) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, win.c0, win.r0, win.size, win.size, hl.x0, hl.y0, hl.side, hl.side);
    }
    ctx.strokeStyle = fg;
    ctx.globalAlpha = 0.25;
    ctx.lineWidth = 1;
    ctx.strokeRect(hl.x0 - 0.5, hl.y0 - 0.5, hl.side + 1, hl.side + 1);
    ctx.globalAlpha = 1;
    const cs = hl.side / win.size;
    const toks = this.tokens();
    const inWin = (i: number, o: number) => i >= o && i < o + win.size;
    // segment boundary (text pair)
    const types = this.model.get("token_types") ?? [];
    const b = types.indexOf(1);
    if (b > 0) {
      ctx.strokeStyle = fg;
      ctx.globalAlpha = 0.35;
      ctx.setLineDash([3, 3]);
      if (inWin(b, win.c0)) { ctx.beginPath(); ctx.moveTo(hl.x0 + (b - win.c0) * cs, hl.y0); ctx.lineTo(hl.x0 + (b - win.c0) * cs, hl.y0 + hl.side); ctx.stroke(); }
      if (inWin(b, win.r0)) { ctx.beginPath(); ctx.moveTo(hl.x0, hl.y0 + (b - win.r0) * cs); ctx.lineTo(hl.x0 + hl.side, hl.y0 + (b - win.r0) * cs); ctx.stroke(); }
      ctx.setLineDash([]);
      ctx.globalAlpha = 1;
    }
    const q = this.currentQuery();
    const lock = this.model.get("locked") ?? [];
    // labels
    if (labels) {
      ctx.font = `${Math.min(11, Math.max(8, cs * 0.8))}px system-ui, -apple-system, 'Segoe UI', sans-serif`;
      ctx.textBaseline = "middle";
      for (let i = win.r0; i < Math.min(hd.n, win.r0 + win.size); i++) {
        const hot = i === q || this.matches.includes(i);
        ctx.fillStyle = hot ? (this.theme.dark ? "#ffd54a" : "#b35900") : fg;
        ctx.globalAlpha = hot ? 1 : isSpecialToken(toks[i] ?? "") ? 0.45 : 0.8;
        ctx.textAlign = "right";
        ctx.fillText(fitText(ctx, displayToken(toks[i] ?? ""), hl.x0 - 8), hl.x0 - 4, hl.y0 + (i - win.r0 + 0.5) * cs);
      }
      for (let j = win.c0; j < Math.min(hd.n, win.c0 + win.size); j++) {
        const hot = (lock.length === 2 && j === lock[1]) || this.matches.includes(j) || j === this.tokHover;
        ctx.save();
        ctx.translate(hl.x0 + (j - win.c0 + 0.5) * cs, hl.y0 - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.fillStyle = hot ? (this.theme.dark ? "#ffd54a" : "#b35900") : fg;
        ctx.globalAlpha = hot ? 1 : isSpecialToken(toks[j] ?? "") ? 0.45 : 0.8;
        ctx.textAlign = "left";
        ctx.fillText(fitText(ctx, displayToken(toks[j] ?? ""), hl.y0 - 8), 0, 0);
        ctx.restore();
      }
      ctx.globalAlpha = 1;
    } else {
      // tick marks for search matches and the query on the axes
      ctx.fillStyle = this.theme.dark ? "#ffd54a" : "#b35900";
      for (const i of this.matches) {
        if (inWin(i, win.r0)) ctx.fillRect(hl.x0 - 7, hl.y0 + (i - win.r0) * cs, 5, Math.max(1.5, cs));
        if (inWin(i, win.c0)) ctx.fillRect(hl.x0 + (i - win.c0) * cs, hl.y0 - 7, Math.max(1.5, cs), 5);
      }
    }
    ctx.save();
    ctx.beginPath();
    ctx.rect(hl.x0, hl.y0, hl.side, hl.side);
    ctx.clip();
    // query row band
    if (q >= 0 && inWin(q, win.r0)) {
      ctx.strokeStyle = fg;
      ctx.globalAlpha = 0.5;
      ctx.lineWidth = 1;
      ctx.strokeRect(hl.x0 + 0.5, hl.y0 + (q - win.r0) * cs + 0.5, hl.side - 1, Math.max(1, cs - 1));
      ctx.globalAlpha = 1;
    }
    if (this.tokHover >= 0 && inWin(this.tokHover, win.c0)) {
      ctx.fillStyle = fg;
      ctx.globalAlpha = 0.12;
      ctx.fillRect(hl.x0 + (this.tokHover - win.c0) * cs, hl.y0, Math.max(1, cs), hl.side);
      ctx.globalAlpha = 1;
    }
    if (this.hover) {
      const [x, y, w] = heatCellRect(hl, this.hover.row, this.hover.col);
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
    if (lock.length === 2) {
      const [x, y, w] = heatCellRect(hl, lock[0], lock[1]);
      ctx.strokeStyle = this.theme.dark ? "#ffd54a" : "#111";
      ctx.lineWidth = 2.5;
      ctx.strokeRect(x - 1.25, y - 1.25, Math.max(3, w) + 2.5, Math.max(3, w) + 2.5);
    }
    ctx.restore();
  }

  private renderReadout(): void {
    const hd = this.headData;
    if (!hd) return this.readout.replaceChildren();
    const lock = this.model.get("locked") ?? [];
    const cell = this.hover ?? (lock.length === 2 ? { row: lock[0], col: lock[1] } : null);
    const toks = this.tokens();
    if (!cell) {
      this.readout.replaceChildren(h("span", { class: "aa-muted" }, "Hover a cell for exact values · click to lock · Esc unlocks"));
      return;
    }
    const i = cell.row, j = cell.col, k = i * hd.n + j;
    const pill = (t: string, i2: number) => h("span", { class: "aa-tokpill" }, displayToken(t), h("sub", {}, String(i2)));
    this.readout.replaceChildren(
      lock.length === 2 && !this.hover ? h("span", { class: "aa-lock", title: "locked: click the cell again or press Esc to unlock" }, "locked") : "",
      pill(toks[i] ?? "", i), h("span", { class: "aa-arrow" }, " attends to "), pill(toks[j] ?? "", j),
      h("span", { class: "aa-val" }, "attention ", h("b", {}, formatValue(hd.attn[k], 4))),
      h("span", { class: "aa-val" }, "attribution ", h("b", { class: hd.attr[k] < 0 ? "aa-neg" : hd.attr[k] > 0 ? "aa-pos" : "" }, formatValue(hd.attr[k], 4))),
    );
  }

  // --------------------------------------------------------------------------------------- sentence
  private renderSentence(): void {
    const toks = this.tokens();
    const key = toks.join("\u0001") + "|" + (this.model.get("token_types") ?? []).join(",");
    if (key !== this.tokensKey) {
      this.tokensKey = key;
      const types = this.model.get("token_types") ?? [];
      this.tokenSpans = toks.map((t, i) => {
        const span = h("span", { class: "aa-tok", "data-i": i, tabindex: -1 }, displayToken(t));
        if (isSpecialToken(t)) span.classList.add("aa-special");
        if (t.startsWith("##")) span.classList.add("aa-cont");
        if (types[i] === 1 && types[i - 1] === 0) span.classList.add("aa-segb");
        return span;
      });
      this.sentence.replaceChildren(...this.tokenSpans);
      this.matches = searchTokens(toks, this.search.value);
    }
    const hd = this.headData;
    const q = this.currentQuery();
    const lock = this.model.get("locked") ?? [];
    let scale: Scale | null = null;
    let row: Float32Array | null = null;
    if (hd && q >= 0 && q < hd.n) {
      row = hd.attr.subarray(q * hd.n, (q + 1) * hd.n);
      scale = signedScale(row);
    }
    const matchSet = new Set(this.matches);
    this.tokenSpans.forEach((span, i) => {
      if (row && scale) {
        const g = this.gamma;
        const c = colorOf(gammaValue(row[i], g), gammaScale(scale, g), this.theme);
        span.style.backgroundColor = cssRGB(c);
        span.style.color = Math.abs(gammaValue(row[i], g)) / gammaValue(scale.hi, g) > 0.45 ? textOn(c) : "";
      } else {
        span.style.backgroundColor = "";
        span.style.color = "";
      }
      span.classList.toggle("aa-query", i === q);
      span.classList.toggle("aa-key", lock.length === 2 && i === lock[1]);
      span.classList.toggle("aa-match", matchSet.has(i));
    });
    const sel = this.selected();
    if (toks.length && q >= 0) {
      this.sentenceTitle.replaceChildren("Attribution from query ", h("span", { class: "aa-tokpill" }, displayToken(toks[q]), h("sub", {}, String(q))),
        h("span", { class: "aa-muted" }, sel && hd ? `  to every key token · layer ${this.grid?.layerIds[sel[0]] ?? sel[0]} head ${sel[1]} · click a token to make it the query` : "  (select a computed head)"));
    } else this.sentenceTitle.replaceChildren("Tokens");
    this.sentenceLegend.replaceChildren(scale ? legendSvg(scale, this.theme, { width: 200, gamma: this.gamma }) : "");
  }

  // -------------------------------------------------------------------------------------- downloads
  private baseName(): string {
    const sel = this.selected();
    return `attattr${sel ? `_L${this.grid?.layerIds[sel[0]] ?? sel[0]}_H${sel[1]}` : ""}`;
  }

  gridSvg(): SVGElement | null {
    const g = this.grid, gl = this.gl;
    if (!g || !gl) return null;
    const fg = cssRGB(this.theme.fg), bg = cssRGB(this.theme.bg);
    const pair = this.pairScores();
    const shown = this.gridMode(g, pair) === "pair" && pair ? { ...g, scores: pair.scores } : g;
    const { values, scale } = normalizedScores(shown, this.model.get("normalize"));
    const legend = legendSvg(this.model.get("normalize") === "global" ? scale : { kind: "diverging", lo: -1, hi: 1 }, this.theme, { width: 220, caption: "head score" });
    const W = gl.width + 8, H = gl.height + 50;
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "font-family": "system-ui, sans-serif" },
      s("rect", { width: W, height: H, fill: bg }));
    for (let hd = 0; hd < g.H; hd++) svg.appendChild(s("text", { x: gl.x0 + hd * (gl.cell + gl.gap) + gl.cell / 2, y: gl.y0 / 2 + 3, "font-size": 9, "text-anchor": "middle", fill: fg }, String(hd)));
    for (let l = 0; l < g.L; l++) {
      svg.appendChild(s("text", { x: gl.x0 - 5, y: gl.y0 + l * (gl.cell + gl.gap) + gl.cell / 2 + 3, "font-size": 9, "text-anchor": "end", fill: fg }, `L${g.layerIds[l]}`));
      for (let hd = 0; hd < g.H; hd++) {
        const [x, y] = cellOrigin(gl, l, hd);
        const v = values[l * g.H + hd];
        const raw = shown.scores[l * g.H + hd];
        svg.appendChild(s("rect", { x, y, width: gl.cell, height: gl.cell, fill: Number.isFinite(v) ? cssRGB(colorOf(v, { kind: "diverging", lo: -1, hi: 1 }, this.theme)) : fg, "fill-opacity": Number.isFinite(v) ? 1 : 0.06 },
          s("title", {}, `layer ${g.layerIds[l]} head ${hd}: ${formatValue(raw, 4)}`)));
      }
    }
    const sel = this.selected();
    if (sel) {
      const [x, y] = cellOrigin(gl, sel[0], sel[1]);
      svg.appendChild(s("rect", { x: x - 1, y: y - 1, width: gl.cell + 2, height: gl.cell + 2, fill: "none", stroke: fg, "stroke-width": 2 }));
    }
    legend.setAttribute("x", "4");
    legend.setAttribute("y", String(gl.height + 6));
    svg.appendChild(legend);
    return svg;
  }

  downloadGridSvg(): void {
    const svg = this.gridSvg();
    if (svg) downloadSvg(svg, `${this.baseName()}_grid.svg`);
  }

  async downloadGridPng(): Promise<void> {
    if (!this.grid) return;
    const legends = [this.gridLegend.querySelector("svg")].filter((x): x is SVGSVGElement => !!x);
    downloadBlob(await canvasToBlob(await this.composite([this.gridCanvas], legends)), `${this.baseName()}_grid.png`);
  }

  /** Canvases side by side (device pixels), each with its legend SVG underneath, on the theme background. */
  private async composite(canvases: HTMLCanvasElement[], legends: (SVGElement | null)[] = [], title?: string): Promise<HTMLCanvasElement> {
    const dpr = canvases[0].width / (parseFloat(canvases[0].style.width) || canvases[0].width);
    const pad = Math.round(12 * dpr), top = title ? Math.round(28 * dpr) : pad;
    const legH = legends.some((l) => l) ? Math.round(44 * dpr) : 0;
    const W = canvases.reduce((a, c) => a + c.width, 0) + pad * (canvases.length + 1);
    const H = Math.max(...canvases.map((c) => c.height)) + top + legH + pad;
    const out = document.createElement("canvas");
    out.width = W;
    out.height = H;
    const ctx = ctx2d(out);
    if (!ctx) return out;
    ctx.fillStyle = cssRGB(this.theme.bg);
    ctx.fillRect(0, 0, W, H);
    if (title) {
      ctx.fillStyle = cssRGB(this.theme.fg);
      ctx.font = `600 ${Math.round(13 * dpr)}px system-ui, sans-serif`;
      ctx.textBaseline = "middle";
      ctx.fillText(title, pad, top / 2 + 2);
    }
    let x = pad;
    const ch = Math.max(...canvases.map((c) => c.height));
    for (let i = 0; i < canvases.length; i++) {
      const c = canvases[i];
      ctx.drawImage(c, x, top);
      const leg = legends[i];
      if (leg) {
        const lw = Number(leg.getAttribute("width")) || 200, lh = Number(leg.getAttribute("height")) || 30;
        await drawSvg(ctx, leg, x + 4 * dpr, top + ch + 6 * dpr, lw * dpr, lh * dpr);
      }
      x += c.width + pad;
    }
    return out;
  }

  async downloadHeatPng(): Promise<void> {
    if (!this.headData) return;
    const sel = this.selected();
    const title = sel ? `Layer ${this.grid?.layerIds[sel[0]] ?? sel[0]} · head ${sel[1]} — attention (left), attribution (right)` : "";
    const legends = [this.attnLegend.querySelector("svg"), this.attrLegend.querySelector("svg")];
    downloadBlob(await canvasToBlob(await this.composite([this.attnCanvas, this.attrCanvas], legends, title)), `${this.baseName()}_heatmaps.png`);
  }

  heatSvg(): SVGElement | null {
    const hd = this.headData, hl = this.hl;
    if (!hd || !hl) return null;
    const fg = cssRGB(this.theme.fg), bg = cssRGB(this.theme.bg);
    const cw = parseFloat(this.attnCanvas.style.width) || this.attnCanvas.width;
    const ch = parseFloat(this.attnCanvas.style.height) || this.attnCanvas.height;
    const W = cw * 2 + 36, H = ch + 40;
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "font-family": "system-ui, sans-serif" }, s("rect", { width: W, height: H, fill: bg }));
    const sel = this.selected();
    svg.appendChild(s("text", { x: 12, y: 18, "font-size": 13, fill: fg }, sel ? `Layer ${this.grid?.layerIds[sel[0]] ?? sel[0]} · head ${sel[1]}: attention | attribution` : "heatmaps"));
    [this.attnCanvas, this.attrCanvas].forEach((c, k) => {
      let href = "";
      try {
        href = c.toDataURL("image/png");
      } catch {
        href = "";
      }
      svg.appendChild(s("image", { x: 12 + k * (cw + 12), y: 28, width: cw, height: ch, href, preserveAspectRatio: "none" }));
    });
    return svg;
  }

  downloadHeatSvg(): void {
    const svg = this.heatSvg();
    if (svg) downloadSvg(svg, `${this.baseName()}_heatmaps.svg`);
  }

  // ---------------------------------------------------------------------------------------- teardown
  destroy(): void {
    this.ac.abort();
    if (this.raf) {
      (typeof cancelAnimationFrame === "function" ? cancelAnimationFrame : clearTimeout)(this.raf);
      this.raf = 0;
    }
    for (const c of this.cleanups.splice(0)) c();
    this.root.remove();
  }
}
