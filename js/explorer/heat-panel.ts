// Heatmap panel: attention and attribution maps of one head side by side (query rows x key columns), sharing
// hover / lock / pan / zoom, token labels, search, a readout of the exact values, a minimap when zoomed, the
// √-contrast option, and SVG / PNG export.
import { cssRGB, formatValue, gammaArray, gammaScale, positiveScale, signedScale, type Scale } from "../shared/color";
import { decodeArray, type Decoded } from "../shared/decode";
import { canvasToBlob, displayToken, downloadBlob, downloadSvg, h, s, sizeCanvas } from "../shared/dom";
import type { HoverLock, LockChange } from "./hover-lock";
import { composite, downloadButtons } from "../shared/image-export";
import { centerWindow, clampWindow, hitHeat, matrixSize, searchTokens, shownCells, zoomLevels, type HeatLayout, type Window } from "../shared/layout";
import { drawHeat, drawMinimap, heatSvg } from "./heat-draw";
import { legendSvg } from "../shared/legend";
import { matrixPixels, pixelsToCanvas } from "../shared/paint";
import type { HeadPayload } from "../shared/protocol";
import type { ThemeWatcher } from "../shared/theme";

export interface HeadData {
  layer: number;
  head: number;
  rows: number; // query rows (square maps: rows = cols = n tokens)
  cols: number; // key columns
  attn: Float32Array; // [rows, cols] row-major
  attr: Float32Array;
  label: string; // what the attribution map shows, when not the run's target ("" = the run's target)
  attnScale: Scale;
  attrScale: Scale;
}

/** Caption of the attribution map of the run's own target. */
const ATTR_FORMULA = "A ⊙ ∫∂F/∂A";

/** What the panel reads from and writes to its view. */
export interface HeatHost {
  tokens(): string[]; // the maps' row tokens
  special(): boolean[]; // per token: a special token (sent by the kernel with the tokens)
  colTokens(): string[]; // the maps' column tokens (square maps: `tokens()`)
  colSpecial(): boolean[];
  tokenTypes(): number[];
  answerStart(): number; // first token of an explained answer, -1 = none
  predicts(): string[]; // per row: the answer token that row predicts ("" none; [] no answer)
  hoverLock: HoverLock;
  tokenHover(): number; // key column hovered in the sentence, -1 = none
  theme: ThemeWatcher;
  lock(change: LockChange, redraw: string): void; // write `locked` / `query`, then redraw those parts
  invalidate(parts: string): void;
  fileName(): string;
}

export interface HeatProps {
  selected: [number, number] | null;
  layerId: number | null; // model layer index of the selected row
  state: string;
  width: number; // CSS px available for both maps
  missing?: string | null; // why the selected head cannot be drawn without the kernel (not embedded)
  axes?: string; // what the rows and columns are (default "query rows × key columns")
}

/** A number per array object: the painted maps' key names the arrays themselves, so new maps for the same head
 * and run (another answer token's, a contrast view) repaint, and the same ones never do. */
const IDS = new WeakMap<object, number>();
let nextId = 0;
function idOf(o: unknown): number {
  if (!o || typeof o !== "object") return 0;
  let i = IDS.get(o);
  if (i === undefined) IDS.set(o, (i = ++nextId));
  return i;
}

const KEYS: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

export class HeatPanel {
  readonly el: HTMLElement;
  readonly search = h("input", { class: "aa-search", type: "search", placeholder: "Find token…", spellcheck: "false", "aria-label": "find token" });
  readonly attnCanvas = h("canvas", { class: "aa-heat-canvas", "data-map": "attention", tabindex: 0, "aria-label": "attention heatmap of the selected head" });
  readonly attrCanvas = h("canvas", { class: "aa-heat-canvas", "data-map": "attribution", tabindex: 0, "aria-label": "attribution heatmap of the selected head" });
  data: HeadData | null = null;
  layout: HeatLayout | null = null;
  win: Window = { r0: 0, c0: 0, size: 0 };
  gamma = 1;
  matches: number[] = []; // search matches among the row (query) tokens
  colMatches: number[] = []; // … among the column tokens (square maps: the same)
  private matchPos = -1;
  private key = "";
  /** Where the drawn maps come from: "kernel" (float32 `head` trait) or "embedded" (float16 `heads_data`). */
  source = "kernel";
  private attnOff: HTMLCanvasElement | null = null;
  private attrOff: HTMLCanvasElement | null = null;
  private drag: { x: number; y: number; win: Window; moved: boolean } | null = null;
  private width = 640;
  private title = h("div", { class: "aa-panel-title" });
  private scaleLin = h("button", { class: "aa-seg aa-on", type: "button", "data-gamma": "1", title: "Linear colour scale" }, "linear");
  private scaleSqrt = h("button", { class: "aa-seg", type: "button", "data-gamma": "0.5", title: "Square-root colour scale: small values become visible" }, "√ contrast");
  private attrWhat = h("span", { class: "aa-muted aa-attr-what" }, ATTR_FORMULA);
  private attnLegend = h("div", { class: "aa-legend-box" });
  private attrLegend = h("div", { class: "aa-legend-box" });
  private wrap = h("div", { class: "aa-heat-wrap" });
  private empty = h("div", { class: "aa-placeholder" });
  private readout = h("div", { class: "aa-readout", "aria-live": "polite" });
  private minimap = h("canvas", { class: "aa-minimap", title: "Overview: the box is the window shown above; click to move it" });
  private zoomSel = h("select", { class: "aa-select", title: "Zoom: window of tokens shown on both axes" });
  private winText = h("span", { class: "aa-muted aa-win-text" });
  private searchCount = h("span", { class: "aa-muted aa-search-count" });

  constructor(private host: HeatHost, signal: AbortSignal) {
    this.wrap.append(
      h("figure", { class: "aa-heat" }, h("figcaption", {}, "Attention ", h("span", { class: "aa-muted" }, "A")), this.attnCanvas, this.attnLegend),
      h("figure", { class: "aa-heat" }, h("figcaption", {}, "Attribution ", this.attrWhat), this.attrCanvas, this.attrLegend),
    );
    this.el = h("section", { class: "aa-panel aa-heat-panel" },
      h("div", { class: "aa-panel-head" }, this.title, downloadButtons(() => this.downloadSvg(), () => this.downloadPng(), signal)),
      h("div", { class: "aa-toolbar" },
        h("label", { class: "aa-field" }, "zoom ", this.zoomSel),
        h("div", { class: "aa-segmented", role: "group", "aria-label": "colour scale" }, this.scaleLin, this.scaleSqrt),
        this.winText,
        h("span", { class: "aa-spacer" }),
        h("span", { class: "aa-search-box" }, this.search, this.searchCount)),
      h("div", { class: "aa-canvas-box" }, this.wrap, this.empty),
      h("div", { class: "aa-readout-row" }, this.readout, this.minimap),
    );
    this.bind(signal);
  }

  private bind(signal: AbortSignal): void {
    const o = { signal };
    const host = this.host;
    const local = (c: HTMLElement, e: MouseEvent): [number, number] => {
      const r = c.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    const hover = (cell: { row: number; col: number } | null) => {
      if (host.hoverLock.setHover(cell)) host.invalidate("heat,sentence");
    };
    for (const c of [this.attnCanvas, this.attrCanvas]) {
      c.addEventListener("pointerdown", (e) => {
        if (this.data && this.win.size < Math.max(this.data.rows, this.data.cols)) {
          this.drag = { x: e.clientX, y: e.clientY, win: { ...this.win }, moved: false };
          try {
            c.setPointerCapture(e.pointerId);
          } catch {
            /* not supported */
          }
        }
      }, o);
      c.addEventListener("pointermove", (e) => {
        if (this.drag && this.layout && this.data) {
          const cs = this.layout.side / this.win.size;
          const dx = (e.clientX - this.drag.x) / cs, dy = (e.clientY - this.drag.y) / cs;
          if (Math.abs(e.clientX - this.drag.x) + Math.abs(e.clientY - this.drag.y) > 3) this.drag.moved = true;
          if (this.drag.moved) {
            this.win = clampWindow({ r0: this.drag.win.r0 - dy, c0: this.drag.win.c0 - dx, size: this.win.size }, this.data.rows, this.data.cols);
            host.invalidate("heat");
            return;
          }
        }
        hover(this.layout ? hitHeat(this.layout, ...local(c, e)) : null);
      }, o);
      c.addEventListener("pointerup", (e) => {
        const moved = this.drag?.moved;
        this.drag = null;
        if (moved) return;
        const hit = this.layout ? hitHeat(this.layout, ...local(c, e)) : null;
        if (hit) host.lock(host.hoverLock.click(hit), "heat,sentence");
      }, o);
      c.addEventListener("pointerleave", () => hover(null), o);
      c.addEventListener("keydown", (e) => {
        // arrows move the locked cell (query row / key column), keeping it inside the window
        const hd = this.data;
        const mv = KEYS[e.key];
        if (!hd || !mv) return;
        e.preventDefault();
        const change = host.hoverLock.move(mv[0], mv[1]);
        const [r, col] = change.locked;
        const w = this.win;
        if (r < w.r0 || r >= w.r0 + w.size || col < w.c0 || col >= w.c0 + w.size)
          this.win = clampWindow({ r0: r < w.r0 ? r : r >= w.r0 + w.size ? r - w.size + 1 : w.r0, c0: col < w.c0 ? col : col >= w.c0 + w.size ? col - w.size + 1 : w.c0, size: w.size }, hd.rows, hd.cols);
        host.lock(change, "heat,sentence,grid");
      }, o);
      c.addEventListener("wheel", (e) => {
        if (!this.data || this.win.size >= Math.max(this.data.rows, this.data.cols)) return; // only capture the wheel when zoomed
        e.preventDefault();
        const step = Math.max(1, Math.round(this.win.size / 8)) * Math.sign(e.deltaY || e.deltaX);
        const horizontal = e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY);
        this.win = clampWindow({ ...this.win, r0: this.win.r0 + (horizontal ? 0 : step), c0: this.win.c0 + (horizontal ? step : 0) }, this.data.rows, this.data.cols);
        host.invalidate("heat");
      }, { signal, passive: false });
    }
    for (const b of [this.scaleLin, this.scaleSqrt])
      b.addEventListener("click", () => {
        this.gamma = Number(b.dataset.gamma) || 1;
        this.scaleLin.classList.toggle("aa-on", this.gamma === 1);
        this.scaleSqrt.classList.toggle("aa-on", this.gamma !== 1);
        this.reset();
        host.invalidate("heat,sentence");
      }, o);
    this.minimap.addEventListener("click", (e) => {
      const hd = this.data;
      if (!hd) return;
      const [x, y] = local(this.minimap, e);
      const side = parseFloat(this.minimap.style.width) || 72;
      const n = Math.max(hd.rows, hd.cols); // the minimap scales the longer axis to `side`
      this.win = centerWindow((y / side) * n, (x / side) * n, this.win.size, hd.rows, hd.cols);
      host.invalidate("heat");
    }, o);
    this.zoomSel.addEventListener("change", () => {
      const rows = this.data?.rows ?? host.tokens().length, cols = this.data?.cols ?? rows;
      const size = Number(this.zoomSel.value) || Math.max(rows, cols);
      const [q, k] = host.hoverLock.focus();
      this.win = centerWindow(q, k, size, rows, cols);
      host.invalidate("heat");
    }, o);
    this.search.addEventListener("input", () => {
      this.refreshMatches(host.tokens());
      this.matchPos = -1;
      host.invalidate("heat,sentence");
    }, o);
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && this.matches.length) {
        e.preventDefault();
        this.matchPos = (this.matchPos + (e.shiftKey ? -1 : 1) + this.matches.length) % this.matches.length;
        const i = this.matches[this.matchPos];
        host.lock({ locked: [], query: i }, "heat,sentence");
        const rows = this.data?.rows ?? host.tokens().length, cols = this.data?.cols ?? rows;
        if (this.win.size && this.win.size < Math.max(rows, cols)) this.win = centerWindow(i, i, this.win.size, rows, cols);
        host.invalidate("heat,sentence");
      } else if (e.key === "Escape") {
        this.search.value = "";
        this.matches = this.colMatches = [];
        host.invalidate("heat,sentence");
      }
    }, o);
  }

  /** Forget the painted maps (theme or contrast changed): the next prepare() repaints them. */
  reset(): void {
    this.key = "";
  }

  /** Re-run the token search on new tokens. */
  refreshMatches(tokens: string[]): void {
    this.matches = searchTokens(tokens, this.search.value);
    this.colMatches = searchTokens(this.host.colTokens(), this.search.value);
  }

  /** Decode and paint the selected head's maps when they arrived (`payload` of another head = none yet). */
  prepare(payload: HeadPayload | null, sel: [number, number] | null, runId: number): void {
    if (!payload || !sel || payload.layer !== sel[0] || payload.head !== sel[1]) {
      this.data = null;
      this.key = "";
      return;
    }
    const th = this.host.theme;
    const source = (payload as { source?: string }).source ?? "kernel";
    const label = payload.label ?? "";
    const key = `${runId}:${payload.layer}:${payload.head}:${source}:${th.theme.dark}:${this.gamma}:${label}:${idOf(payload.attention)}:${idOf(payload.attribution)}`;
    if (key === this.key && this.data) return;
    let attn: Decoded | null, attr: Decoded | null;
    try {
      attn = decodeArray(payload.attention);
      attr = decodeArray(payload.attribution);
    } catch {
      attn = attr = null;
    }
    if (!attn || !attr || attn.shape.length !== 2) {
      this.data = null;
      return;
    }
    const [rows, cols] = attn.shape;
    const n = Math.max(rows, cols); // cells on the longer axis
    const prev = this.data ? `${this.data.rows}x${this.data.cols}` : "";
    this.data = {
      layer: payload.layer, head: payload.head, rows, cols, attn: attn.data, attr: attr.data, label,
      attnScale: positiveScale(attn.data), attrScale: signedScale(attr.data),
    };
    this.key = key;
    this.source = source;
    const g = this.gamma;
    this.attnOff = pixelsToCanvas(matrixPixels(gammaArray(attn.data, g), rows, cols, th.lutSeq, gammaScale(this.data.attnScale, g)), cols, rows);
    this.attrOff = pixelsToCanvas(matrixPixels(gammaArray(attr.data, g), rows, cols, th.lutDiv, gammaScale(this.data.attrScale, g)), cols, rows);
    if (`${rows}x${cols}` !== prev || !this.win.size) {
      const size = n > 96 ? 64 : n; // long inputs open zoomed in around the query token
      const [q, k] = this.host.hoverLock.focus();
      this.win = centerWindow(q, n > 96 ? Math.max(0, k) : 0, size, rows, cols);
      if (size === n) this.win = { r0: 0, c0: 0, size: n };
    }
    this.win = clampWindow(this.win, rows, cols);
    const levels = zoomLevels(n);
    this.zoomSel.replaceChildren(...levels.map((z) => h("option", { value: z }, z === n ? (rows === cols ? `all ${n}` : `all ${rows} × ${cols}`) : `${z} × ${z}`)));
    this.zoomSel.value = String(levels.includes(this.win.size) ? this.win.size : n);
  }

  private labelMetrics(): { rowW: number; colH: number; show: boolean } {
    const hd = this.data!;
    const cs = this.mapSide(0) / this.win.size;
    const show = cs >= 9;
    if (!show) return { rowW: 10, colH: 10, show };
    const toks = this.host.tokens(), cols = this.host.colTokens();
    let longest = 0;
    for (let i = this.win.r0; i < Math.min(hd.rows, this.win.r0 + this.win.size); i++) longest = Math.max(longest, displayToken(toks[i] ?? "").length);
    for (let i = this.win.c0; i < Math.min(hd.cols, this.win.c0 + this.win.size); i++) longest = Math.max(longest, displayToken(cols[i] ?? "").length);
    const w = Math.min(84, 10 + Math.min(14, longest) * 6.2);
    return { rowW: w, colH: w, show };
  }

  private mapSide(margin: number): number {
    const per = Math.floor((this.width - 30) / 2) - margin;
    return Math.max(140, Math.min(440, per));
  }

  render(p: HeatProps): void {
    this.width = p.width;
    this.layerId = p.layerId;
    const hd = this.data, sel = p.selected, state = p.state;
    const theme = this.host.theme.theme;
    if (sel) this.title.replaceChildren(h("span", {}, `Layer ${p.layerId ?? sel[0]} · head ${sel[1]}`), h("span", { class: "aa-muted" }, p.axes ?? "  query rows × key columns"),
      hd && this.source === "embedded" ? h("span", { class: "aa-muted aa-embedded", title: "drawn from the maps embedded in the widget state (float16, ~3 significant digits)" }, " · embedded float16") : "");
    else this.title.replaceChildren(h("span", {}, "Selected head"));
    if (!hd) {
      this.wrap.hidden = true;
      this.empty.hidden = false;
      this.layout = null;
      this.empty.textContent = !sel ? (state === "running" ? "Waiting for the first layer…" : "Select a head in the grid.")
        : state === "running" ? `Layer ${sel[0]} is still being computed…` : state === "done" || state === "cancelled" ? (p.missing ? `Loading head… ${p.missing}` : "Loading head…") : "No data for this head.";
      this.readout.replaceChildren();
      this.attnLegend.replaceChildren();
      this.attrLegend.replaceChildren();
      return;
    }
    this.wrap.hidden = false;
    this.empty.hidden = true;
    this.attrWhat.textContent = hd.label || ATTR_FORMULA;
    const lm = this.labelMetrics();
    const side0 = this.mapSide(lm.rowW);
    const cs = Math.max(side0 / this.win.size, 0);
    const side = Math.floor(cs * this.win.size) || side0;
    this.layout = { x0: lm.rowW, y0: lm.colH, side, win: this.win, rows: Math.min(this.win.size, hd.rows), cols: Math.min(this.win.size, hd.cols) };
    const [mw, mh] = matrixSize(this.layout);
    const W = lm.rowW + mw + 6, H = lm.colH + mh + 6;
    for (const [c, off] of [[this.attnCanvas, this.attnOff], [this.attrCanvas, this.attrOff]] as const) {
      const ctx = sizeCanvas(c, W, H);
      if (ctx) this.draw(ctx, off, lm.show, W, H);
    }
    const lw = Math.max(140, Math.min(mw + lm.rowW, 280));
    const sq = this.gamma !== 1 ? " · √ scale" : "";
    this.attnLegend.replaceChildren(legendSvg(hd.attnScale, theme, { width: lw, caption: `attention probability${sq}`, gamma: this.gamma }));
    this.attrLegend.replaceChildren(legendSvg(hd.attrScale, theme, { width: lw, caption: `attribution (signed)${sq}`, gamma: this.gamma }));
    const n = Math.max(hd.rows, hd.cols);
    const [vr, vc] = shownCells(this.layout);
    this.winText.textContent = this.win.size < n ? `rows ${this.win.r0}–${this.win.r0 + vr - 1} · cols ${this.win.c0}–${this.win.c0 + vc - 1} · drag / wheel to pan`
      : hd.rows === hd.cols ? `${n} tokens` : `${hd.rows} rows × ${hd.cols} columns`;
    this.zoomSel.value = String(this.win.size);
    this.searchCount.textContent = this.search.value ? (this.matches.length ? `${this.matchPos >= 0 ? this.matchPos + 1 + "/" : ""}${this.matches.length} match${this.matches.length === 1 ? "" : "es"}` : "no match") : "";
    this.renderReadout();
    this.renderMinimap();
  }

  private draw(ctx: CanvasRenderingContext2D, off: HTMLCanvasElement | null, labels: boolean, W: number, H: number): void {
    const host = this.host, hl = host.hoverLock;
    drawHeat(ctx, {
      off, labels, W, H, layout: this.layout!, rows: this.data!.rows, cols: this.data!.cols, tokens: host.tokens(), special: host.special(),
      colTokens: host.colTokens(), colSpecial: host.colSpecial(), types: host.tokenTypes(),
      query: hl.query(true), locked: hl.lockedCell(), hover: hl.hover, matches: this.matches, colMatches: this.colMatches, tokenHover: host.tokenHover(),
      theme: host.theme.theme, answerStart: host.answerStart(),
    });
  }

  private renderReadout(): void {
    const hd = this.data;
    if (!hd) return this.readout.replaceChildren();
    const shown = this.host.hoverLock.shown();
    const toks = this.host.tokens(), cols = this.host.colTokens();
    if (!shown) {
      this.readout.replaceChildren(h("span", { class: "aa-muted" }, "Hover a cell for exact values · click to lock · Esc unlocks"));
      return;
    }
    const i = shown.cell.row, j = shown.cell.col, k = i * hd.cols + j;
    const pill = (t: string, i2: number) => h("span", { class: "aa-tokpill" }, displayToken(t), h("sub", {}, String(i2)));
    const predicted = this.host.predicts()[i] ?? "";
    this.readout.replaceChildren(
      shown.locked ? h("span", { class: "aa-lock", title: "locked: click the cell again or press Esc to unlock" }, "locked") : "",
      pill(toks[i] ?? "", i),
      predicted ? h("span", { class: "aa-muted aa-predicts" }, " (predicts ", h("span", { class: "aa-tokpill" }, displayToken(predicted)), ")") : "",
      h("span", { class: "aa-arrow" }, " attends to "), pill(cols[j] ?? "", j),
      h("span", { class: "aa-val" }, "attention ", h("b", {}, formatValue(hd.attn[k], 4))),
      h("span", { class: "aa-val" }, "attribution ", h("b", { class: hd.attr[k] < 0 ? "aa-neg" : hd.attr[k] > 0 ? "aa-pos" : "" }, formatValue(hd.attr[k], 4))),
    );
  }

  private renderMinimap(): void {
    const hd = this.data;
    const zoomed = !!hd && (this.win.size < hd.rows || this.win.size < hd.cols);
    this.minimap.hidden = !zoomed;
    const ctx = zoomed && hd ? sizeCanvas(this.minimap, 72, 72) : null;
    if (ctx && hd) drawMinimap(ctx, 72, this.attrOff, hd.rows, hd.cols, this.win, this.host.theme.theme);
  }

  // ---------------------------------------------------------------------------------------- export
  private caption(): string {
    const hd = this.data;
    return hd ? `Layer ${this.layerId ?? hd.layer} · head ${hd.head}` : "";
  }
  private layerId: number | null = null;

  /** Both maps as a real vector SVG (rects per colour run of the visible window, token labels, legends). */
  toSvg(): SVGElement | null {
    const hd = this.data, hl = this.layout;
    if (!hd || !hl) return null;
    const th = this.host.theme, theme = th.theme;
    const fg = cssRGB(theme.fg), bg = cssRGB(theme.bg);
    const cw = parseFloat(this.attnCanvas.style.width) || this.attnCanvas.width;
    const ch = parseFloat(this.attnCanvas.style.height) || this.attnCanvas.height;
    const legends = [this.attnLegend, this.attrLegend].map((b) => b.querySelector("svg")?.cloneNode(true) as SVGElement | undefined);
    const legH = Math.max(0, ...legends.map((l) => Number(l?.getAttribute("height")) || 0));
    const W = cw * 2 + 36, H = ch + 40 + legH;
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "font-family": "system-ui, sans-serif" }, s("rect", { width: W, height: H, fill: bg }));
    svg.appendChild(s("text", { x: 12, y: 18, "font-size": 13, fill: fg }, `${this.caption()}: attention | attribution${hd.label ? ` ${hd.label}` : ""}`));
    const g = this.gamma, labels = hl.side / hl.win.size >= 9;
    const maps = [
      { values: gammaArray(hd.attn, g), scale: gammaScale(hd.attnScale, g), lut: th.lutSeq },
      { values: gammaArray(hd.attr, g), scale: gammaScale(hd.attrScale, g), lut: th.lutDiv },
    ];
    maps.forEach((m, k) => {
      const map = heatSvg({ ...m, rows: hd.rows, cols: hd.cols, layout: hl, tokens: this.host.tokens(), special: this.host.special(),
        colTokens: this.host.colTokens(), colSpecial: this.host.colSpecial(), labels, theme, answerStart: this.host.answerStart() });
      map.setAttribute("transform", `translate(${12 + k * (cw + 12)},28)`);
      map.setAttribute("data-map", k ? "attribution" : "attention");
      svg.appendChild(map);
      const leg = legends[k];
      if (leg) {
        leg.setAttribute("x", String(12 + k * (cw + 12)));
        leg.setAttribute("y", String(28 + ch + 4));
        svg.appendChild(leg);
      }
    });
    return svg;
  }

  downloadSvg(): void {
    const svg = this.toSvg();
    if (svg) downloadSvg(svg, `${this.host.fileName()}_heatmaps.svg`);
  }

  async downloadPng(): Promise<void> {
    if (!this.data) return;
    const title = `${this.caption()} — attention (left), attribution${this.data.label ? ` ${this.data.label}` : ""} (right)`;
    const legends = [this.attnLegend.querySelector("svg"), this.attrLegend.querySelector("svg")];
    downloadBlob(await canvasToBlob(await composite(this.host.theme.theme, [this.attnCanvas, this.attrCanvas], legends, title)), `${this.host.fileName()}_heatmaps.png`);
  }
}
