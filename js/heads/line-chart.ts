// A small SVG line / scatter chart panel: several series in one chart (pruning curves, effectiveness curves,
// the head-importance correlation scatter), points drawn as they arrive (NaN = not yet), hover tooltip per point,
// legend, SVG and PNG download. Vector from the start, so the SVG download is the chart itself.
import { cssRGB, formatValue, niceTicks, type Theme } from "../shared/color";
import { downloadBlob, downloadSvg, h, s, svgToPng } from "../shared/dom";
import { downloadButtons } from "../shared/image-export";
import type { TipLine, Tooltip } from "../shared/tooltip";
import palette from "../../attattr_widgets/palette.json";

export interface ChartPoint {
  x: number;
  y: number; // NaN = not computed yet (not drawn)
  tip?: () => TipLine[];
}
export interface ChartSeries {
  name: string;
  color: string;
  dash?: boolean;
  line?: boolean; // default true; false = scatter
  points: ChartPoint[];
}
export interface ChartProps {
  series: ChartSeries[];
  xLabel: string;
  yLabel: string;
  xDomain?: [number, number];
  yDomain?: [number, number];
  xFormat?: (x: number) => string;
  width: number;
  height?: number;
  theme: Theme;
  emptyText?: string;
  baseline?: { y: number; label: string } | null;
}

/** Colours for up to 8 methods (colour-blind friendly, readable on light and dark backgrounds). */
export const PALETTE: string[] = palette.series;

const M = { l: 46, r: 12, t: 10, b: 34 };

export class LineChart {
  readonly el: HTMLElement;
  readonly box = h("div", { class: "aa-chart-box" });
  private svg: SVGElement | null = null;
  private props: ChartProps | null = null;
  /** Number of drawn (finite) points, for the test hooks. */
  points = 0;

  constructor(private opts: { title: (string | Node)[]; tooltip?: Tooltip; fileName?: () => string; cls?: string }, signal: AbortSignal) {
    this.el = h("section", { class: `aa-panel aa-chart-panel ${opts.cls ?? ""}` },
      h("div", { class: "aa-panel-head" }, h("div", { class: "aa-panel-title" }, ...opts.title),
        downloadButtons(() => this.downloadSvg(), () => this.downloadPng(), signal)),
      this.box);
    this.box.addEventListener("pointerleave", () => opts.tooltip?.hide(), { signal });
  }

  render(p: ChartProps): void {
    this.props = p;
    const svg = this.build(p, true);
    this.svg = svg;
    this.box.replaceChildren(svg ?? h("div", { class: "aa-placeholder" }, p.emptyText ?? "No data yet."));
  }

  /** The chart as an SVG element (`live` adds hover targets for the tooltip). */
  build(p: ChartProps, live = false): SVGElement | null {
    const all = p.series.flatMap((sr) => sr.points.filter((pt) => Number.isFinite(pt.y) && Number.isFinite(pt.x)));
    this.points = all.length;
    if (!p.series.length || (!all.length && !p.xDomain)) return null;
    const W = Math.max(260, p.width), H = p.height ?? 240;
    const fg = cssRGB(p.theme.fg), bg = cssRGB(p.theme.bg);
    const xs = all.map((q) => q.x), ys = all.map((q) => q.y);
    const [x0, x1] = p.xDomain ?? [Math.min(...xs), Math.max(...xs)];
    const [y0, y1] = p.yDomain ?? pad(Math.min(...ys, p.baseline?.y ?? Infinity), Math.max(...ys, p.baseline?.y ?? -Infinity));
    const sx = (x: number) => M.l + ((x - x0) / (x1 - x0 || 1)) * (W - M.l - M.r);
    const sy = (y: number) => H - M.b - ((y - y0) / (y1 - y0 || 1)) * (H - M.t - M.b);
    const legendH = 16 * Math.ceil(p.series.length / 3);
    const svg = s("svg", { class: "aa-chart", width: W, height: H + legendH, viewBox: `0 0 ${W} ${H + legendH}`, "font-family": "system-ui, sans-serif", "font-size": 10 },
      s("rect", { width: W, height: H + legendH, fill: bg }));
    const fmt = p.xFormat ?? ((x: number) => formatValue(x, 2));
    for (const t of niceTicks(x0, x1, 6)) {
      svg.appendChild(s("line", { x1: sx(t), x2: sx(t), y1: M.t, y2: H - M.b, stroke: fg, "stroke-opacity": 0.08 }));
      svg.appendChild(s("text", { x: sx(t), y: H - M.b + 13, "text-anchor": "middle", fill: fg, "fill-opacity": 0.75 }, fmt(t)));
    }
    for (const t of niceTicks(y0, y1, 5)) {
      svg.appendChild(s("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t), stroke: fg, "stroke-opacity": 0.08 }));
      svg.appendChild(s("text", { x: M.l - 5, y: sy(t) + 3, "text-anchor": "end", fill: fg, "fill-opacity": 0.75 }, formatValue(t, 2)));
    }
    svg.appendChild(s("rect", { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, fill: "none", stroke: fg, "stroke-opacity": 0.3 }));
    svg.appendChild(s("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle", fill: fg }, p.xLabel));
    svg.appendChild(s("text", { x: 11, y: (M.t + H - M.b) / 2, "text-anchor": "middle", fill: fg, transform: `rotate(-90 11 ${(M.t + H - M.b) / 2})` }, p.yLabel));
    if (p.baseline && Number.isFinite(p.baseline.y)) {
      svg.appendChild(s("line", { x1: M.l, x2: W - M.r, y1: sy(p.baseline.y), y2: sy(p.baseline.y), stroke: fg, "stroke-opacity": 0.45, "stroke-dasharray": "2 3" }));
      svg.appendChild(s("text", { x: W - M.r - 3, y: sy(p.baseline.y) - 3, "text-anchor": "end", fill: fg, "fill-opacity": 0.6 }, p.baseline.label));
    }
    p.series.forEach((sr, k) => {
      const g = s("g", { "data-series": sr.name });
      const pts = sr.points.filter((q) => Number.isFinite(q.y) && Number.isFinite(q.x));
      if (sr.line !== false && pts.length > 1) {
        g.appendChild(s("polyline", { points: pts.map((q) => `${sx(q.x)},${sy(q.y)}`).join(" "), fill: "none", stroke: sr.color, "stroke-width": 2,
          "stroke-dasharray": sr.dash ? "5 3" : null, "stroke-linejoin": "round" }));
      }
      for (const q of pts) {
        const c = s("circle", { class: "aa-pt", cx: sx(q.x), cy: sy(q.y), r: sr.line === false ? 3 : 3.5, fill: sr.color, "fill-opacity": sr.line === false ? 0.7 : 1 },
          s("title", {}, `${sr.name}: ${fmt(q.x)}, ${formatValue(q.y, 4)}`));
        if (live && q.tip && this.opts.tooltip) {
          const tip = this.opts.tooltip, lines = q.tip;
          c.addEventListener("pointerenter", (e) => tip.show(e as PointerEvent, lines()));
          c.addEventListener("pointerleave", () => tip.hide());
        }
        g.appendChild(c);
      }
      svg.appendChild(g);
      const lx = M.l + (k % 3) * Math.floor((W - M.l) / 3), ly = H + 10 + 16 * Math.floor(k / 3);
      svg.appendChild(s("line", { x1: lx, x2: lx + 18, y1: ly - 3, y2: ly - 3, stroke: sr.color, "stroke-width": 2.5, "stroke-dasharray": sr.dash ? "5 3" : null }));
      svg.appendChild(s("text", { x: lx + 23, y: ly, fill: fg }, sr.name));
    });
    return svg;
  }

  private name(): string {
    return `${this.opts.fileName?.() ?? "attattr"}_chart`;
  }

  downloadSvg(): void {
    const svg = this.props ? this.build(this.props) : null;
    if (svg) downloadSvg(svg, `${this.name()}.svg`);
  }

  async downloadPng(): Promise<void> {
    const svg = this.props ? this.build(this.props) : null;
    if (!svg || !this.props) return;
    const w = Number(svg.getAttribute("width")), hh = Number(svg.getAttribute("height"));
    downloadBlob(await svgToPng(svg, w, hh, 2, cssRGB(this.props.theme.bg)), `${this.name()}.png`);
  }
}

function pad(lo: number, hi: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  const d = (hi - lo) * 0.06;
  return [lo - d, hi + d];
}
