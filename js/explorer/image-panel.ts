// Image panel (image attributions): the picture twice, side by side — the selected head's attribution row of the
// query token overlaid per patch (signed colours) and its attention row (sequential colours); hover a patch for
// its values (both pictures outline it), click a patch to make it the query token; the tokens that are not patches
// ([CLS], DeiT's [DIST]) are buttons that make them the query. For image classifiers this panel replaces the
// sentence; a vision–language prompt keeps its sentence (its query is picked there).
import { formatValue, positiveScale, signedScale, type Scale, type Theme } from "../shared/color";
import { displayToken, h, sizeCanvas } from "../shared/dom";
import { drawImageOverlay, fitImage, imageOnly, patchAt, patchName, patchValues, tokenPatch, type ImageBox, type ImageInfo } from "../shared/image";
import { legendSvg } from "../shared/legend";
import type { TipLine, Tooltip } from "../shared/tooltip";

export interface ImageProps {
  info: ImageInfo | null; // null: no picture (text runs) — the panel is hidden
  tokens: string[];
  query: number; // query token (row of the maps)
  attr: Float32Array | null; // the query's attribution row [n] (null: no head yet)
  attn: Float32Array | null; // the query's attention row [n]
  width: number; // the panel's content width in CSS pixels (both pictures side by side fit in it)
  gamma: number;
  theme: Theme;
  /** Title after the query pill (layer / head), or null for the plain "Image" title. */
  note: string | null;
}

export interface ImageOptions {
  onQuery: (token: number) => void; // patch clicked
  tooltip: Tooltip;
}

const MAPS = [
  { key: "attribution", caption: "Attribution", kind: "diverging" },
  { key: "attention", caption: "Attention", kind: "sequential" },
] as const;

export class ImagePanel {
  readonly el: HTMLElement;
  readonly canvases: HTMLCanvasElement[] = MAPS.map((m) => h("canvas", { class: "aa-image-canvas", "data-map": `image-${m.key}` }));
  /** Patch under the pointer (row-major index), -1 = none. */
  hover = -1;
  box: ImageBox | null = null;
  private title = h("div", { class: "aa-panel-title" });
  private queryButtons = h("div", { class: "aa-image-queries" });
  private queryKey = "";
  private captions = MAPS.map(() => h("div", { class: "aa-image-caption" }));
  private legends = MAPS.map(() => h("div", { class: "aa-legend-box" }));
  private props: ImageProps | null = null;

  constructor(private opts: ImageOptions, signal: AbortSignal) {
    this.el = h("section", { class: "aa-panel aa-image-panel", hidden: true },
      h("div", { class: "aa-panel-head" }, this.title, this.queryButtons),
      h("div", { class: "aa-image-row" }, ...MAPS.map((_, i) => h("figure", { class: "aa-image-fig" }, this.captions[i], this.canvases[i], this.legends[i]))));
    const o = { signal };
    this.queryButtons.addEventListener("click", (e) => {
      const b = (e.target as HTMLElement | null)?.closest?.("[data-query]") as HTMLElement | null;
      if (b) opts.onQuery(Number(b.dataset.query));
    }, o);
    for (const c of this.canvases) {
      c.addEventListener("pointermove", (e) => this.pointer(c, e), o);
      c.addEventListener("pointerleave", () => {
        this.hover = -1;
        opts.tooltip.hide();
        this.draw(false);
      }, o);
      c.addEventListener("click", (e) => {
        const p = this.patchOf(c, e);
        const info = this.props?.info;
        if (p >= 0 && info) opts.onQuery(info.first + p);
      }, o);
    }
  }

  private patchOf(c: HTMLCanvasElement, e: MouseEvent): number {
    const info = this.props?.info;
    if (!info || !this.box) return -1;
    const r = c.getBoundingClientRect();
    return patchAt(this.box, info, e.clientX - r.left, e.clientY - r.top);
  }

  private pointer(c: HTMLCanvasElement, e: PointerEvent): void {
    const p = this.patchOf(c, e);
    if (p !== this.hover) {
      this.hover = p;
      this.draw(false);
    }
    if (p >= 0) this.opts.tooltip.show(e, this.tipLines(p));
    else this.opts.tooltip.hide();
  }

  /** Tooltip of patch `p`: its name and token index, and the query's attribution / attention to it. */
  tipLines(p: number): TipLine[] {
    const pr = this.props!;
    const info = pr.info!;
    const t = info.first + p;
    const lines: TipLine[] = [h("strong", {}, `patch ${patchName(info, p)}`), ` token #${t}`];
    const q = pr.query;
    const from = q >= 0 ? displayToken(pr.tokens[q] ?? String(q)) : "";
    if (pr.attr && t < pr.attr.length) lines.push(`attribution ${from} → ${patchName(info, p)}: ${formatValue(pr.attr[t], 4)}`);
    if (pr.attn && t < pr.attn.length) lines.push(`attention ${formatValue(pr.attn[t], 4)}`);
    lines.push(h("span", { class: "aa-muted" }, "click: make this patch the query"));
    return lines;
  }

  render(p: ImageProps): void {
    this.props = p;
    this.el.hidden = !p.info;
    if (!p.info) return;
    const info = p.info;
    const q = p.query;
    if (p.note !== null && q >= 0 && q < p.tokens.length) {
      this.title.replaceChildren("Image · from query ", h("span", { class: "aa-tokpill" }, displayToken(p.tokens[q]), h("sub", {}, String(q))),
        h("span", { class: "aa-muted" }, p.note));
    } else this.title.replaceChildren("Image", h("span", { class: "aa-muted" }, `  ${info.rows} × ${info.cols} patches`));
    const own = imageOnly(info, p.tokens.length) ? p.tokens.slice(0, info.first) : []; // the model's own tokens
    const key = `${own.join("\u0001")}|${own.length}`;
    if (key !== this.queryKey) {
      this.queryKey = key;
      this.queryButtons.replaceChildren(...(own.length ? ["query ", ...own.map((t, i) =>
        h("button", { class: "aa-btn aa-image-query", type: "button", "data-query": i, title: `Make ${displayToken(t)} the query token` }, displayToken(t)))] : []),
      h("span", { class: "aa-muted" }, own.length ? " or click a patch" : "click a patch (or a token) to make it the query"));
    }
    for (const b of this.queryButtons.querySelectorAll("button")) b.classList.toggle("aa-on", Number((b as HTMLElement).dataset.query) === q);
    const side = Math.max(100, Math.min(340, Math.floor((p.width - 24) / 2)));
    this.box = fitImage(info, side, side);
    this.draw(true);
  }

  /** The two pictures with their overlays (attribution, attention) and, with `legends`, their legends. */
  private draw(legends: boolean): void {
    const p = this.props;
    if (!p || !p.info || !this.box) return;
    const info = p.info, box = this.box;
    const rows = [patchValues(p.attr, info), patchValues(p.attn, info)];
    const query = tokenPatch(info, p.query);
    MAPS.forEach((m, i) => {
      const values = rows[i];
      const scale: Scale | null = values ? (m.kind === "diverging" ? signedScale(values) : positiveScale(values)) : null;
      const c = this.canvases[i];
      c.dataset.patches = values ? String(values.length) : "0";
      this.captions[i].textContent = values ? `${m.caption} to each patch` : `${m.caption} (select a computed head)`;
      const ctx = sizeCanvas(c, box.width, box.height);
      if (ctx) drawImageOverlay(ctx, { info, box, values, scale, gamma: m.kind === "diverging" ? p.gamma : 1, theme: p.theme, hover: this.hover, query });
      if (legends) this.legends[i].replaceChildren(scale ? legendSvg(scale, p.theme, { width: Math.min(200, box.width), gamma: m.kind === "diverging" ? p.gamma : 1 }) : "");
    });
    this.el.dataset.hover = this.hover >= 0 ? String(info.first + this.hover) : "";
  }
}
