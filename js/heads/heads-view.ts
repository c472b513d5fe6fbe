// HeadsView: importance grids per method (rank-normalised, filling in as examples are processed), the pruning
// curves drawing point by point, the examples where a clicked head carries the most attribution (click one to
// open it in the linked Explorer), effectiveness (Fig 2) and the cross-task correlation (Fig 4).
import type { AnyModel } from "@anywidget/types";
import { formatValue } from "../shared/color";
import type { Invoke } from "../shared/commands";
import { decodeCached } from "../shared/decode";
import { h, truncate } from "../shared/dom";
import { GridPanel, headTipHead, type GridData } from "../shared/grid-panel";
import { LineChart, PALETTE, type ChartSeries } from "./line-chart";
import type { CurvePayload, HeadExample, HeadsModel } from "../shared/protocol";
import { DATASET_HEADER, type Header, percentProgress, progressText } from "../shared/header";
import { Tooltip, type TipLine } from "../shared/tooltip";
import { ViewBase } from "../shared/view-base";

type Model = AnyModel<HeadsModel>;

/** Examples listed for a clicked head (heads.py TOP_EXAMPLES). */
export const TOP_EXAMPLES = 8;

/** Rank of every finite value in [0, 1] (0 = smallest, 1 = largest; ties share their mean rank); NaN stays NaN. */
export function rankNormalize(v: ArrayLike<number>): Float32Array {
  const idx: number[] = [];
  for (let i = 0; i < v.length; i++) if (Number.isFinite(v[i])) idx.push(i);
  const out = new Float32Array(v.length).fill(NaN);
  idx.sort((a, b) => v[a] - v[b]);
  const n = idx.length;
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && v[idx[j + 1]] === v[idx[i]]) j++;
    const r = n > 1 ? (i + j) / 2 / (n - 1) : 1;
    for (let k = i; k <= j; k++) out[idx[k]] = r;
    i = j + 1;
  }
  return out;
}

/** Grid colour values: the rank mapped to [-1, 1] (least important -1, most important +1), so every method's grid
 * uses the whole colour scale and grids of different methods compare. */
export function rankColors(v: ArrayLike<number>): Float32Array {
  const r = rankNormalize(v);
  for (let i = 0; i < r.length; i++) r[i] = 2 * r[i] - 1;
  return r;
}

/** The method whose per-example scores rank a head's examples (attattr_widgets/widgets/heads.py ranking_method). */
export function rankingMethod(method: string, have: string[]): string {
  return have.includes(method) || !have.length ? method : have[0];
}

/** Indices of the k largest finite scores, largest first, ties by index (heads.py rank_examples). */
export function rankExamples(scores: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) if (Number.isFinite(scores[i])) idx.push(i);
  idx.sort((a, b) => (scores[b] - scores[a]) || (a - b));
  return idx.slice(0, k);
}

/** Pruned heads of curve point k as "L0H3" labels (layer-major). */
export function prunedHeads(pruned: Float32Array, k: number, L: number, H: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) if (pruned[(k * L + l) * H + hd] > 0.5) out.push(`L${l}H${hd}`);
  return out;
}

export class HeadsViewUI extends ViewBase<HeadsModel> {
  readonly header: Header;
  readonly grids = new Map<string, GridPanel>();
  readonly curves: LineChart;
  readonly effChart: LineChart;
  readonly corrChart: LineChart;
  private tooltip: Tooltip;
  private tabs: HTMLButtonElement[];
  private layoutBtns: HTMLButtonElement[];
  private methodSel = h("select", { class: "aa-select aa-method", "aria-label": "method" });
  private gridBox = h("div", { class: "aa-grids" });
  private captions = new Map<string, HTMLElement>();
  private examples = h("section", { class: "aa-panel aa-examples" });
  private overview = h("div", { class: "aa-heads-overview" });

  constructor(model: Model, el: HTMLElement, invoke?: Invoke) {
    super(model, el, "attattr-heads", invoke);
    const signal = this.signal;
    this.tooltip = new Tooltip(this.root);
    this.header = this.runHeader(DATASET_HEADER);
    const seg = (attr: string, v: string, label: string, title: string) => h("button", { class: "aa-seg", type: "button", [attr]: v, title }, label);
    this.tabs = [seg("data-view", "importance", "importance & pruning", "Importance grids, pruning curves, top examples per head"),
      seg("data-view", "effectiveness", "effectiveness", "Fig 2: prune heads per layer by attribution vs attention"),
      seg("data-view", "correlation", "correlation", "Fig 4: importance of the same heads on two tasks")];
    this.layoutBtns = [seg("data-layout", "side", "side by side", "One grid per method"), seg("data-layout", "single", "one", "One grid, switch the method")];
    const fileName = () => `attattr_heads`;
    this.curves = new LineChart({ title: ["Pruning ", h("span", { class: "aa-muted" }, "accuracy as heads are pruned (least important first)")], tooltip: this.tooltip, fileName, cls: "aa-curves" }, signal);
    this.effChart = new LineChart({ title: ["Effectiveness ", h("span", { class: "aa-muted" }, "heads pruned in every layer, per example (paper Fig 2)")], tooltip: this.tooltip, fileName: () => "attattr_effectiveness", cls: "aa-eff" }, signal);
    this.corrChart = new LineChart({ title: ["Correlation ", h("span", { class: "aa-muted" }, "one dot per head (paper Fig 4)")], tooltip: this.tooltip, fileName: () => "attattr_correlation", cls: "aa-corr" }, signal);
    const methods = model.get("meta")?.methods ?? [];
    methods.forEach((m) => {
      const cap = h("div", { class: "aa-grid-caption" });
      this.captions.set(m, cap);
      const grid = new GridPanel({
        title: [m, " ", h("span", { class: "aa-muted" }, "rank")],
        ariaLabel: `${m} importance grid`,
        onSelect: (layer, head) => {
          model.set("method", m);
          model.set("selected", [layer, head]);
          model.save_changes();
          this.schedule();
        },
        onHoverChange: () => this.schedule(),
        tooltip: this.tooltip,
        tipLines: (c) => this.gridTip(m, c.layer, c.head),
        fileName: () => `attattr_${m}`,
      }, signal);
      grid.el.dataset.method = m;
      grid.el.appendChild(cap);
      this.grids.set(m, grid);
      this.gridBox.appendChild(grid.el);
      this.methodSel.appendChild(h("option", { value: m }, m));
    });
    const toolbar = h("div", { class: "aa-toolbar aa-heads-tabs" },
      h("div", { class: "aa-segmented", role: "group", "aria-label": "view" }, ...this.tabs),
      h("span", { class: "aa-spacer" }),
      h("div", { class: "aa-segmented", role: "group", "aria-label": "layout" }, ...this.layoutBtns),
      this.methodSel);
    this.overview.append(this.gridBox, this.examples, this.curves.el);
    this.root.append(this.header.el, this.header.errorBox, toolbar, this.overview, this.effChart.el, this.corrChart.el, this.tooltip.el);
    const o = { signal };
    for (const b of this.tabs) b.addEventListener("click", () => this.setTrait("view", b.dataset.view as HeadsModel["view"]), o);
    for (const b of this.layoutBtns) b.addEventListener("click", () => this.setTrait("arrangement", b.dataset.layout as HeadsModel["arrangement"]), o);
    this.methodSel.addEventListener("change", () => this.setTrait("method", this.methodSel.value), o);
    this.onTraits(["state", "error", "phase", "meta", "progress", "importance", "curves", "effectiveness", "correlation", "view", "method",
      "arrangement", "selected", "head_examples", "examples", "example_scores"], () => this.schedule());
    this.onResize(() => this.schedule(), 0);
    this.flush();
  }

  private shape(): [number, number] {
    const meta = this.model.get("meta") ?? {};
    return [meta.num_layers ?? 0, meta.num_heads ?? 0];
  }

  private scores(m: string): Float32Array | null {
    const d = decodeCached(this.model.get("importance")?.[m]);
    return d ? d.data : null;
  }

  /** Draw everything. */
  protected draw(): void {
    const m = this.model;
    const meta = m.get("meta") ?? {};
    const state = m.get("state"), phase = m.get("phase"), prog = m.get("progress") ?? {};
    const methods = meta.methods ?? [];
    const w = this.root.clientWidth || 960;
    // header
    const running = methods.find((x) => prog[x] && prog[x].done < prog[x].total) ?? (phase === "pruning" ? "pruning" : phase === "effectiveness" ? "effectiveness" : "");
    const pr = running ? prog[running] : undefined;
    const unit = running === "pruning" ? "fractions" : running === "effectiveness" ? "steps" : "examples";
    const total = methods.length + 1 + (meta.effectiveness ? 1 : 0);
    const doneSteps = methods.filter((x) => prog[x] && prog[x].done >= prog[x].total).length + (prog.pruning && prog.pruning.done >= prog.pruning.total ? 1 : 0);
    this.header.render({
      title: `AttAttr heads · ${meta.model_name ?? ""}`,
      subtitle: `${methods.join(", ")} on ${meta.num_examples ?? 0} examples · pruning on ${meta.num_eval ?? 0} · target ${meta.target ?? "gold"}`,
      state, error: m.get("error"), errorDetail: meta.error_detail,
      progress: percentProgress((doneSteps + (pr && pr.total ? pr.done / pr.total : 0)) / total, state,
        state === "running" ? `${running || phase} ${progressText(pr, unit)}` : state === "cancelled" ? "partial results kept" : ""),
    });
    const view = m.get("view");
    const eff = m.get("effectiveness") ?? {}, corr = m.get("correlation") ?? {};
    for (const b of this.tabs) {
      b.classList.toggle("aa-on", b.dataset.view === view || (view === "pruning" && b.dataset.view === "importance"));
      b.disabled = (b.dataset.view === "effectiveness" && !meta.effectiveness) || (b.dataset.view === "correlation" && !corr.x);
    }
    this.overview.hidden = !(view === "importance" || view === "pruning");
    this.effChart.el.hidden = view !== "effectiveness";
    this.corrChart.el.hidden = view !== "correlation";
    const layout = m.get("arrangement");
    for (const b of this.layoutBtns) b.classList.toggle("aa-on", b.dataset.layout === layout);
    this.methodSel.hidden = layout !== "single";
    this.methodSel.value = m.get("method") || methods[0] || "";
    // grids
    const [L, H] = this.shape();
    const sel = m.get("selected") ?? [];
    const perGrid = layout === "single" ? Math.min(420, w - 40) : Math.max(180, Math.min(320, Math.floor((w - 40) / Math.max(1, methods.length)) - 14));
    for (const [name, grid] of this.grids) {
      const shown = layout !== "single" || name === (m.get("method") || methods[0]);
      grid.el.hidden = !shown;
      if (!shown) continue;
      const raw = this.scores(name);
      const scores = raw && raw.length === L * H ? raw : new Float32Array(L * H).fill(NaN);
      const data: GridData = { L, H, scores, thumbs: null, t: 0, layerIds: Array.from({ length: L }, (_, i) => i), zeroProbs: [], completeness: [], nodes: [], converged: [], panels: [], unresolved: [], done: 0 };
      grid.render({
        data: L && H ? data : null, scores, values: rankColors(scores), maps: false, running: false, width: perGrid,
        selected: sel.length === 2 && (m.get("method") || methods[0]) === name ? [sel[0], sel[1]] : null,
        legend: { scale: { kind: "diverging", lo: -1, hi: 1 }, caption: "rank: −1 least, +1 most important" },
        emptyText: "waiting…", theme: this.theme.theme, lutDiv: this.theme.lutDiv,
      });
      const p = prog[name];
      const cap = this.captions.get(name)!;
      const partial = state !== "running" && !!p && p.done < p.total;
      cap.textContent = p ? (partial ? `${p.done} / ${p.total} examples (partial)` : `${p.done >= p.total ? "✓ " : ""}${progressText(p, "examples")}`) : "not started";
      cap.classList.toggle("aa-partial", partial);
    }
    this.renderExamples();
    this.renderCurves(w);
    if (view === "effectiveness") this.renderEffectiveness(eff, w);
    if (view === "correlation") this.renderCorrelation(corr, w);
    this.renders++;
    this.hooks();
  }

  private gridTip(m: string, l: number, hd: number): TipLine[] {
    const [L, H] = this.shape();
    const s = this.scores(m);
    const v = s && s.length === L * H ? s[l * H + hd] : NaN;
    const r = s ? rankNormalize(s)[l * H + hd] : NaN;
    const lines = headTipHead(l, hd, v, `${m} importance`);
    if (Number.isFinite(r)) lines.push(`rank ${formatValue(r, 2)} (1 = most important)`);
    lines.push(h("span", { class: "aa-muted" }, "click: the examples where this head matters most"));
    return lines;
  }

  /** The selected head's top examples, ranked here from `example_scores` (works without a kernel), else as sent. */
  private topRows(sel: number[], method: string): HeadExample[] {
    const m = this.model;
    const per = m.get("example_scores") ?? {};
    const methods = (m.get("meta")?.methods ?? []).filter((x) => per[x]);
    const [L, H] = this.shape();
    if (!methods.length || sel.length !== 2) return m.get("head_examples") ?? [];
    const use = rankingMethod(method, methods);
    const d = decodeCached(per[use]);
    if (!d || d.shape.length !== 3 || d.shape[1] !== L || d.shape[2] !== H) return m.get("head_examples") ?? [];
    const N = d.shape[0];
    const col = new Float32Array(N);
    for (let i = 0; i < N; i++) col[i] = d.data[(i * L + sel[0]) * H + sel[1]];
    const exs = m.get("examples") ?? [];
    return rankExamples(col, TOP_EXAMPLES).map((i) => ({ index: i, text: exs[i]?.text ?? "", text_pair: exs[i]?.text_pair ?? null,
      label: exs[i]?.label ?? null, score: col[i], method: use }));
  }

  private renderExamples(): void {
    const m = this.model;
    const sel = m.get("selected") ?? [];
    const method = m.get("method") || (m.get("meta")?.methods ?? [])[0] || "";
    const rows = this.topRows(sel, method);
    if (sel.length !== 2) {
      this.examples.replaceChildren(h("div", { class: "aa-panel-title" }, "Examples ", h("span", { class: "aa-muted" }, "click a head in a grid")));
      return;
    }
    const title = h("div", { class: "aa-panel-title" }, `Layer ${sel[0]} · head ${sel[1]} `,
      h("span", { class: "aa-muted" }, rows.length ? `examples where it scores highest (${rows[0].method ?? method}); click one to open it in the linked Explorer` : `no per-example scores for ${method}`));
    const table = h("table", { class: "aa-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "text"), h("th", {}, "label"), h("th", {}, "score"))));
    const body = h("tbody");
    const names = m.get("meta")?.label_names ?? [];
    for (const r of rows) {
      const tr = h("tr", { class: "aa-row", "data-index": r.index, title: "open in the linked Explorer on this head" },
        h("td", { class: "aa-num" }, String(r.index)),
        h("td", {}, truncate([r.text, r.text_pair].filter((x) => x).join("  ‖  "), 140)),
        h("td", {}, r.label === null ? "" : names[r.label] ?? String(r.label)),
        h("td", { class: "aa-num" }, formatValue(r.score, 4)));
      tr.addEventListener("click", () => void this.commands.call("_cmd_open", { index: r.index, layer: sel[0], head: sel[1] }), { signal: this.signal });
      body.appendChild(tr);
    }
    table.appendChild(body);
    this.examples.replaceChildren(title, table);
  }

  private renderCurves(w: number): void {
    const m = this.model;
    const [L, H] = this.shape();
    const curves = (m.get("curves") ?? []) as CurvePayload[];
    const series: ChartSeries[] = curves.map((c, k) => {
      const acc = decodeCached(c.accuracy)?.data ?? new Float32Array(0);
      const pruned = decodeCached(c.pruned)?.data ?? new Float32Array(0);
      return {
        name: c.method, color: PALETTE[k % PALETTE.length], dash: c.order === "largest-first",
        points: c.fractions.map((f, i) => ({
          x: f, y: acc[i] ?? NaN,
          tip: () => {
            const heads = prunedHeads(pruned, i, L, H);
            return [h("strong", {}, `${c.method}: ${formatValue(f * 100, 3)}% pruned`), `accuracy ${formatValue(acc[i], 4)}`,
              `${c.counts[i]} heads pruned${heads.length ? ":" : ""}`, ...(heads.length ? [truncate(heads.join(" "), 180)] : [])];
          },
        })),
      };
    });
    const full = series.length ? series[0].points[0]?.y : NaN;
    this.curves.render({
      series, xLabel: "fraction of heads pruned", yLabel: "accuracy", xDomain: [0, 1], yDomain: [0, 1], width: Math.min(760, w - 30), height: 230,
      xFormat: (x) => `${Math.round(x * 100)}%`, theme: this.theme.theme, baseline: Number.isFinite(full) ? { y: full, label: "full model" } : null,
      emptyText: m.get("state") === "cancelled" || m.get("state") === "error" ? "Stopped before the pruning curves."
        : m.get("phase") === "importance" ? "The pruning curves draw once the importance is estimated." : "No pruning curves.",
    });
    if (!curves.length) this.curves.points = 0;
  }

  private renderEffectiveness(eff: HeadsModel["effectiveness"], w: number): void {
    const ks = eff.heads ?? [];
    const series: ChartSeries[] = [];
    const colors: Record<string, string> = { attribution: PALETTE[0], attention: PALETTE[1] };
    for (const [crit, d] of Object.entries(eff.accuracy ?? {})) {
      for (const [order, ys] of Object.entries(d)) {
        series.push({ name: `${crit}, ${order}`, color: colors[crit] ?? PALETTE[2], dash: order === "largest-first",
          points: ks.map((k, i) => ({ x: k, y: ys[i], tip: () => [h("strong", {}, `${crit}, ${order}`), `${k} heads pruned per layer`, `accuracy ${formatValue(ys[i], 4)}`] })) });
      }
    }
    this.effChart.render({ series, xLabel: "heads pruned in every layer", yLabel: "accuracy", yDomain: [0, 1], width: Math.min(760, w - 30), theme: this.theme.theme,
      baseline: eff.full_accuracy !== undefined ? { y: eff.full_accuracy, label: "full model" } : null, xFormat: (x) => String(Math.round(x)),
      emptyText: "Effectiveness runs after the pruning curves (effectiveness_examples=...)." });
  }

  private renderCorrelation(c: HeadsModel["correlation"], w: number): void {
    const x = decodeCached(c.x)?.data, y = decodeCached(c.y)?.data;
    const [, H] = this.shape();
    const pts = x && y ? Array.from(x, (xv, i) => ({ x: xv, y: y[i], tip: () => [h("strong", {}, `L${Math.floor(i / (H || 1))}H${i % (H || 1)}`), `${c.labels?.[0] ?? "A"} ${formatValue(xv, 4)}`, `${c.labels?.[1] ?? "B"} ${formatValue(y[i], 4)}`] })) : [];
    const title = `Pearson r = ${formatValue(c.r ?? NaN, 3)}${c.spearman !== null && c.spearman !== undefined ? `, Spearman ρ = ${formatValue(c.spearman, 3)}` : ""} (${c.n ?? 0} heads)`;
    this.corrChart.render({ series: [{ name: title, color: PALETTE[0], line: false, points: pts }], xLabel: `${c.labels?.[0] ?? "A"} importance (${c.method ?? ""})`,
      yLabel: `${c.labels?.[1] ?? "B"} importance`, width: Math.min(520, w - 30), height: 300, theme: this.theme.theme, emptyText: "Call view.compare_with(other_view) to correlate." });
  }

  private hooks(): void {
    const r = this.root.dataset, m = this.model;
    const prog = m.get("progress") ?? {};
    r.state = m.get("state");
    r.phase = m.get("phase");
    r.view = m.get("view");
    r.progress = (m.get("meta")?.methods ?? []).map((x) => `${x}:${prog[x]?.done ?? 0}/${prog[x]?.total ?? 0}`).join(",");
    r.points = String(this.curves.points);
    r.selected = (m.get("selected") ?? []).join(",");
    r.examples = String(this.topRows(m.get("selected") ?? [], m.get("method") || (m.get("meta")?.methods ?? [])[0] || "").length);
    r.renders = String(this.renders);
  }
}
