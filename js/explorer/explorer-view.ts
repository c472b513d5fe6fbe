// The Explorer view: a thin composition of the shared panels — header (run state, progress, Stop), the
// layer x head grid, the selected head's attention / attribution heatmaps and the sentence coloured by the
// selected query token's attribution — wired to the Explorer model (traits + streamed layers).
import type { AnyModel } from "@anywidget/types";
import { formatValue } from "../shared/color";
import type { Invoke } from "../shared/commands";
import { displayToken, h, truncate } from "../shared/dom";
import { ExplorerInput } from "./explorer-input";
import { EmbeddedHeadStore } from "./embedded-heads";
import { gridData, gridMode, integrationLine, pairScores } from "./explorer-state";
import { GridPanel, normalizedScores, type GridData, type GridHead } from "../shared/grid-panel";
import type { Header } from "../shared/header";
import { EXPLORER_HEADER, explorerHeader } from "./explorer-header";
import { HeatPanel, type HeatHost } from "./heat-panel";
import { HoverLock, type LockChange } from "./hover-lock";
import { ImagePanel } from "./image-panel";
import { imageInfo, imageOnly } from "../shared/image";
import type { AnswerState, ExplorerMeta, ExplorerModel, HeadPayload } from "../shared/protocol";
import { SentencePanel } from "./sentence-panel";
import { cacheFor, type StreamCache } from "./stream";
import { Tooltip, type TipLine } from "../shared/tooltip";
import { ViewBase } from "../shared/view-base";

type Model = AnyModel<ExplorerModel>;

export class ExplorerView extends ViewBase<ExplorerModel> {
  readonly hoverLock: HoverLock;
  readonly header: Header;
  readonly grid: GridPanel;
  readonly heat: HeatPanel;
  readonly sentence: SentencePanel;
  readonly image: ImagePanel;
  readonly rowSentence: SentencePanel; // rectangular maps (cross-attention): the row tokens, to pick the query row
  readonly embedded = new EmbeddedHeadStore(() => this.invalidate("heat,sentence"));
  private embedNote = h("div", { class: "aa-muted aa-embed-note" });
  readonly input: ExplorerInput | null; // the input bar (Explorers with a model)
  private dirty = new Set<string>();
  private cache: StreamCache;
  private tooltip: Tooltip;
  private body = h("div", { class: "aa-body" });
  private seg = (value: string, title: string, label: string) => h("button", { class: "aa-seg", type: "button", "data-value": value, title }, label);
  private normButtons = [this.seg("global", "One colour scale for all heads", "global"), this.seg("layer", "Each layer scaled to its own max", "per layer")];
  private modeButtons = [this.seg("scores", "Cells coloured by head score", "scores"), this.seg("maps", "Cells show each head's attribution map", "maps"),
    this.seg("pair", "Heads coloured by their attribution of the locked token pair (click a heatmap cell to lock one)", "pair")];
  private data: GridData | null = null;
  private siteTitles: Record<string, string> = { encoder: "Encoder self-attention: source × source", decoder: "Decoder self-attention: answer × answer",
    cross: "Cross-attention: answer rows × source columns (the alignment view)" };
  private siteButtons = ["encoder", "decoder", "cross"].map((v) => this.seg(v, this.siteTitles[v], v));
  private siteBar = h("div", { class: "aa-site-bar" }, h("span", { class: "aa-muted" }, "attention "),
    h("div", { class: "aa-segmented", role: "group", "aria-label": "attention site" }, ...this.siteButtons), h("span", { class: "aa-muted aa-site-note" }));

  constructor(model: Model, el: HTMLElement, invoke?: Invoke) {
    super(model, el, "attattr-explorer", invoke);
    const signal = this.signal;
    this.cache = cacheFor(model);
    this.tooltip = new Tooltip(this.root);
    this.hoverLock = new HoverLock(() => ({
      locked: model.get("locked") ?? [], query: model.get("query"), n: this.tokens().length, cols: this.colTokens().length,
      defaultQuery: (model.get("meta") as ExplorerMeta)?.default_query,
    }));
    this.header = this.runHeader(EXPLORER_HEADER, () => this.invalidate("header"));
    this.grid = new GridPanel({
      title: ["Heads ", h("span", { class: "aa-muted" }, "layer × head, max attribution")],
      toolbar: [h("div", { class: "aa-segmented", role: "group", "aria-label": "normalise" }, ...this.normButtons),
        h("div", { class: "aa-segmented", role: "group", "aria-label": "cell content" }, ...this.modeButtons)],
      onSelect: (layer, head) => this.setTrait("selected", [layer, head]),
      onHoverChange: () => this.invalidate("grid"),
      tooltip: this.tooltip,
      tipLines: (c) => this.gridTip(c),
      fileName: () => this.fileName(),
    }, signal);
    const host: HeatHost = {
      tokens: () => this.tokens(), special: () => this.special(), colTokens: () => this.colTokens(), colSpecial: () => this.colSpecial(),
      tokenTypes: () => (this.rectangular() ? [] : model.get("token_types") ?? []), hoverLock: this.hoverLock,
      answerStart: () => this.answerStart(), predicts: () => this.predicts(),
      tokenHover: () => this.sentence.hover, theme: this.theme, lock: (c, parts) => this.lock(c, parts),
      invalidate: (parts) => this.invalidate(parts), fileName: () => this.fileName(),
    };
    this.heat = new HeatPanel(host, signal);
    this.sentence = new SentencePanel({
      onQuery: (i) => this.lock(HoverLock.query(i), "heat,sentence"),
      onAnswer: (t) => this.pickAnswer(t),
      onHoverChange: () => this.invalidate("heat"),
      tooltip: this.tooltip,
      tipLines: (i) => this.tokenTip(i),
    }, signal);
    this.image = new ImagePanel({ onQuery: (t) => this.lock(HoverLock.query(t), "heat,sentence"), tooltip: this.tooltip }, signal);
    this.rowSentence = new SentencePanel({
      onQuery: (i) => this.lock(HoverLock.query(i), "heat,sentence"),
      onAnswer: () => undefined,
      onHoverChange: () => undefined,
      tooltip: this.tooltip,
      tipLines: (i) => [h("strong", {}, `“${displayToken(this.tokens()[i] ?? "")}”`), ` row #${i}`,
        ...(this.predicts()[i] ? [`predicts “${displayToken(this.predicts()[i])}”`] : []),
        h("span", { class: "aa-muted" }, "click: make this the query row")],
    }, signal);
    this.rowSentence.el.classList.add("aa-row-sentence");
    this.input = model.get("interactive") ? new ExplorerInput(model, this.commands, (parts) => this.invalidate(parts), () => this.heat.reset(), signal) : null;
    this.root.append(this.header.el, this.header.errorBox, ...(this.input ? [this.input.bar.el] : []), this.siteBar, this.body, this.tooltip.el);
    this.body.append(this.grid.el, this.heat.el, this.image.el, this.rowSentence.el, this.sentence.el);
    this.grid.el.append(this.embedNote);
    this.bind();
    this.invalidate("all");
    this.flush();
  }

  private bind(): void {
    const o = { signal: this.signal };
    const m = this.model;
    const on = (traits: string[], parts: string) => this.onTraits(traits, () => this.invalidate(parts));
    on(["state"], "header,grid,heat,sentence");
    on(["error", "layers_done"], "header");
    on(["meta"], "header,grid,heat,sentence"); // heat: the answer line (answer_start) and the readout (predicts)
    on(["layers_total"], "header,grid");
    on(["run_id"], "all");
    on(["head_scores", "thumbs", "normalize", "grid_mode", "pair"], "grid");
    on(["selected", "locked", "heads_data"], "grid,heat,sentence");
    on(["head", "tokens", "special", "query"], "heat,sentence");
    on(["token_types", "image"], "sentence");
    on(["answer_token", "site", "col_tokens"], "all");
    this.onDestroy(this.cache.subscribe(() => this.invalidate("grid,header")));
    for (const b of this.normButtons) b.addEventListener("click", () => this.setTrait("normalize", b.dataset.value as "global" | "layer"), o);
    for (const b of this.modeButtons) b.addEventListener("click", () => this.setTrait("grid_mode", b.dataset.value as "scores" | "maps" | "pair"), o);
    for (const b of this.siteButtons) b.addEventListener("click", () => {
      if (b.dataset.value !== m.get("site")) this.setTrait("site", b.dataset.value as string);
    }, o);
    this.root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && (m.get("locked") ?? []).length && e.target !== this.heat.search) this.setTrait("locked", []);
    }, o);
    this.onResize(() => this.invalidate("grid,heat,sentence"));
  }

  protected themeChanged(): void {
    this.heat.reset();
    this.invalidate("all");
  }

  // ----------------------------------------------------------------------------------------- model
  protected setTrait<K extends keyof ExplorerModel & string>(k: K, v: ExplorerModel[K]): void {
    this.dirty.add("all");
    super.setTrait(k, v);
  }

  /** Write a hover/lock change to the `locked` / `query` traits and redraw `parts`. */
  private lock(c: LockChange, parts: string): void {
    this.model.set("locked", c.locked);
    if (c.query !== undefined) this.model.set("query", c.query);
    this.model.save_changes();
    this.invalidate(parts);
  }

  tokens(): string[] {
    const t = this.model.get("tokens");
    if (t && t.length) return t;
    const first = [...this.cache.layers.values()][0];
    return first ? first.tokens : [];
  }

  /** Per token: a special token, as the kernel sent it with the tokens (trait, else the first streamed layer). */
  special(): boolean[] {
    const t = this.model.get("tokens");
    if (t && t.length) return this.model.get("special") ?? [];
    const first = [...this.cache.layers.values()][0];
    return first ? first.special : [];
  }

  /** The maps' column tokens: `col_tokens` when the maps are rectangular (cross-attention), else the tokens. */
  colTokens(): string[] {
    const c = this.model.get("col_tokens");
    if (c && c.length) return c;
    const t = this.model.get("tokens");
    const first = t && t.length ? null : [...this.cache.layers.values()][0];
    return first && first.colTokens.length ? first.colTokens : this.tokens();
  }

  colSpecial(): boolean[] {
    const c = this.model.get("col_tokens");
    if (c && c.length) return this.model.get("col_special") ?? [];
    const t = this.model.get("tokens");
    const first = t && t.length ? null : [...this.cache.layers.values()][0];
    return first && first.colTokens.length ? first.colSpecial : this.special();
  }

  /** Whether the maps are rectangular (rows and columns are different token lists). */
  rectangular(): boolean {
    const c = this.model.get("col_tokens"), t = this.model.get("tokens");
    if (c && c.length) return true;
    const first = t && t.length ? null : [...this.cache.layers.values()][0];
    return !!first && first.colTokens.length > 0;
  }

  /** Index of an explained answer's first token (-1: no answer, or not in the tokens shown). */
  answerStart(): number {
    const s = (this.model.get("meta") as ExplorerMeta)?.answer_start;
    return typeof s === "number" && s >= 0 && s < this.tokens().length && !this.rectangular() ? s : -1;
  }

  /** Show answer token `t` (-1: the whole answer). A page that carries every answer token's state (an export's
   * `answer_states`: no kernel) switches by itself — the traits the kernel would set, the head's exact maps and a
   * locked pair dropped (the embedded maps draw the head) — then `answer_token` is written as always. */
  pickAnswer(t: number): void {
    const st = (this.model.get("answer_states") as Record<string, AnswerState> | null)?.[String(t)];
    if (st) {
      const m = this.model;
      m.set("meta", st.meta);
      m.set("head_scores", st.head_scores);
      m.set("thumbs", st.thumbs);
      m.set("heads_data", st.heads_data);
      m.set("head", null);
      m.set("pair", null);
      m.set("locked", []);
      if (typeof st.meta.default_query === "number") m.set("query", st.meta.default_query);
    }
    this.setTrait("answer_token", t);
  }

  /** Per row of the shown maps, the answer token its output predicts (meta.predicts; [] when absent or not one per
   * row, e.g. between a new run's tokens and its first layer's meta). */
  predicts(): string[] {
    const p = (this.model.get("meta") as ExplorerMeta)?.predicts;
    return Array.isArray(p) && p.length === this.tokens().length ? p : [];
  }

  selected(): [number, number] | null {
    const s = this.model.get("selected");
    return s && s.length === 2 ? [s[0], s[1]] : null;
  }

  private layerId(row: number): number {
    return this.data?.layerIds[row] ?? row;
  }

  private fileName(): string {
    const sel = this.selected();
    return `attattr${sel ? `_L${this.layerId(sel[0])}_H${sel[1]}` : ""}`;
  }

  // ------------------------------------------------------------------------------------- scheduling
  invalidate(parts: string): void {
    for (const p of parts.split(",")) this.dirty.add(p.trim());
    this.schedule();
  }

  /** Draw everything that is dirty (`themeReread`: everything). */
  protected draw(themeReread: boolean): void {
    if (themeReread) this.dirty.add("all");
    const d = this.dirty;
    const all = d.has("all");
    this.dirty = new Set();
    const m = this.model;
    // not laid out (detached, or a notebook cell hidden by windowing): draw with defaults; the ResizeObserver
    // redraws once the real width is known
    const w = this.root.clientWidth || 960;
    // read with the root's width, before this draw writes anything (a read after the writes would force a layout
    // on every hover): the image panel's content width (its padding + border are 22 px), 0 while hidden
    const imageW = this.image.el.hidden ? 0 : this.image.el.clientWidth - 22;
    const gridWidth = Math.max(230, Math.min(380, Math.floor(w * 0.36)));
    // side by side only when each heatmap still gets >= 240 px; otherwise the heatmaps take the full width
    // below, and the sentence moves up next to the grid
    this.body.classList.toggle("aa-stacked", (w - gridWidth - 90) / 2 - 90 < 240);
    // image runs: the picture panel goes next to the grid, the heatmaps below; an image classifier's tokens are
    // all on the picture (no sentence), a vision–language prompt keeps its sentence
    const info = imageInfo(m.get("image"));
    this.body.classList.toggle("aa-has-image", !!info);
    this.body.classList.toggle("aa-image-only", !!info && imageOnly(info, this.tokens().length));
    if (all || d.has("header")) this.renderSites();
    if (all || d.has("header")) {
      const g = this.data;
      this.header.render(explorerHeader({
        meta: (m.get("meta") ?? {}) as ExplorerMeta, state: m.get("state"), error: m.get("error"),
        total: m.get("layers_total") || (g ? g.L : 0), done: Math.max(m.get("layers_done") || 0, g ? g.done : 0),
      }));
    }
    if (all || d.has("grid")) this.renderGrid(gridWidth);
    const sel = this.selected();
    if (all || d.has("input")) this.input?.render();
    this.embedded.update(m.get("heads_data"));
    let head = m.get("head") as HeadPayload | null;
    if (sel && !(head && head.layer === sel[0] && head.head === sel[1])) head = this.embedded.payload(sel[0], sel[1]) ?? head;
    if (all || d.has("heat") || d.has("sentence")) this.heat.prepare(this.input ? this.input.payload(head) : head, sel, m.get("run_id"));
    if (all || d.has("heat")) {
      const width = Math.max(300, (this.heat.el.clientWidth || w - gridWidth - 60) - 22);
      const site = m.get("site");
      this.heat.render({ selected: sel, layerId: sel ? this.layerId(sel[0]) : null, state: m.get("state"), width,
        axes: site === "cross" ? "  answer rows × source columns" : site === "encoder" ? "  source × source" : site === "decoder" ? "  answer × answer" : undefined,
        missing: sel ? this.embedded.missing(sel[0], sel[1], this.layerId(sel[0])) : null });
    }
    if (all || d.has("sentence")) {
      this.renderSentence();
      // first draw (panel still hidden): estimated from the CSS — next to the grid panel (gridWidth + 72 px, gap
      // 12 px) when its flex-basis (440 px) fits there, else the full width it wraps to; then measured
      const beside = w - gridWidth - 130;
      this.renderImage(imageW > 0 ? imageW : beside >= 418 ? beside : w - 46);
    }
    this.renders++;
    this.updateHooks();
  }

  private updateHooks(): void {
    const r = this.root.dataset;
    const m = this.model;
    const g = this.data, hd = this.heat.data, win = this.heat.win, hover = this.hoverLock.hover;
    const pair = pairScores(m);
    r.state = m.get("state");
    r.runId = String(m.get("run_id"));
    r.layersDone = String(g ? g.done : 0);
    r.layersTotal = String(g ? g.L : m.get("layers_total") || 0);
    const sel = this.selected();
    r.selected = sel ? sel.join(",") : "";
    r.headReady = hd ? `${hd.layer},${hd.head}` : "";
    r.headSource = hd ? this.heat.source : "";
    r.embedded = String(this.embedded.count);
    r.query = String(this.hoverLock.query());
    r.hover = hover ? `${hover.row},${hover.col}` : "";
    r.locked = (m.get("locked") ?? []).join(",");
    r.normalize = m.get("normalize");
    r.gridMode = gridMode(m, g, pair);
    r.pair = pair ? (m.get("locked") ?? []).join(",") : "";
    r.zoom = String(win.size || 0);
    r.window = `${win.r0},${win.c0},${win.size}`;
    const hl = this.heat.layout;
    r.heatBox = hl ? `${hl.x0},${hl.y0},${hl.side}` : "";
    r.tokens = String(this.tokens().length);
    const img = imageInfo(m.get("image"));
    r.image = img ? `${img.rows},${img.cols}` : "";
    r.answerStart = String(this.answerStart());
    r.answerToken = String(m.get("answer_token") ?? -1);
    r.site = m.get("site") ?? "";
    r.cols = String(this.colTokens().length);
    r.heatShape = hd ? `${hd.rows}x${hd.cols}` : "";
    r.matches = String(this.heat.matches.length);
    r.renders = String(this.renders);
  }

  // ---------------------------------------------------------------------------------------- panels
  private renderGrid(width: number): void {
    const m = this.model;
    const g = (this.data = gridData(m, this.cache));
    const state = m.get("state");
    const normalize = m.get("normalize");
    this.embedded.update(m.get("heads_data"));
    const note = g ? this.embedded.note() : null;
    this.embedNote.textContent = note ?? "";
    this.embedNote.hidden = !note;
    for (const b of this.normButtons) b.classList.toggle("aa-on", b.dataset.value === normalize);
    const pair = pairScores(m);
    const mode = gridMode(m, g, pair);
    for (const b of this.modeButtons) b.classList.toggle("aa-on", b.dataset.value === mode);
    this.modeButtons[1].disabled = !g?.thumbs;
    this.modeButtons[2].disabled = !pair;
    const scores = g && mode === "pair" && pair && pair.scores.length === g.scores.length ? pair.scores : g?.scores ?? new Float32Array(0);
    const { values, scale } = normalizedScores({ L: g?.L ?? 0, H: g?.H ?? 0, scores }, normalize);
    const toks = this.tokens();
    const what = mode === "pair" && pair ? `attribution of ${displayToken(toks[pair.query] ?? "")} → ${displayToken(this.colTokens()[pair.key] ?? "")}` : "head score (max attribution)";
    this.grid.render({
      data: g, scores, values, maps: mode === "maps", selected: this.selected(), running: state === "running", width,
      legend: {
        scale: normalize === "global" ? scale : { kind: "diverging", lo: -1, hi: 1 },
        caption: normalize === "global" ? truncate(what, 48) : `${truncate(what, 36)} ÷ layer max`,
      },
      emptyText: state === "running" ? "Computing the first layer…" : state === "error" ? "No results." : "Run explorer.explain(text) to attribute a prediction.",
      theme: this.theme.theme, lutDiv: this.theme.lutDiv,
    });
  }

  private gridTip(c: GridHead): TipLine[] {
    const g = this.data!;
    const v = g.scores[c.layer * g.H + c.head];
    const lines: TipLine[] = [h("strong", {}, `Layer ${g.layerIds[c.layer]} · head ${c.head}`)];
    lines.push(Number.isFinite(v) ? `max attribution ${formatValue(v, 4)}` : "not computed yet");
    const pair = pairScores(this.model);
    if (pair) {
      const toks = this.tokens();
      lines.push(`${displayToken(toks[pair.query] ?? "")} → ${displayToken(this.colTokens()[pair.key] ?? "")}: ${formatValue(pair.scores[c.layer * g.H + c.head], 4)}`);
    }
    const zp = g.zeroProbs[c.layer], cp = g.completeness[c.layer];
    if (zp !== null && zp !== undefined) lines.push(`p with layer's attention zeroed ${formatValue(zp, 3)}`);
    if (cp !== null && cp !== undefined) lines.push(integrationLine(cp, g.nodes[c.layer] ?? null, g.converged[c.layer] ?? null,
      g.panels[c.layer] ?? null, g.unresolved[c.layer] ?? false));
    return lines;
  }

  /** The encoder–decoder site switch (hidden for single-stack models): each site with its layers done so far. */
  private renderSites(): void {
    const meta = (this.model.get("meta") ?? {}) as ExplorerMeta;
    const sites = meta.sites ?? [];
    this.siteBar.hidden = !sites.length;
    if (!sites.length) return;
    const shown = this.model.get("site");
    for (const b of this.siteButtons) {
      const v = b.dataset.value as string;
      const p = meta.site_layers?.[v];
      b.hidden = !sites.includes(v);
      b.classList.toggle("aa-on", v === shown);
      b.setAttribute("aria-pressed", String(v === shown));
      b.textContent = p && p[0] < p[1] ? `${v} ${p[0]}/${p[1]}` : v;
    }
    (this.siteBar.lastElementChild as HTMLElement).textContent = `  ${this.siteTitles[shown] ?? ""}`;
  }

  private renderSentence(): void {
    const toks = this.tokens();
    const hd = this.heat.data;
    const q = this.hoverLock.query(true);
    const lock = this.hoverLock.lockedCell();
    const sel = this.selected();
    const meta = (this.model.get("meta") ?? {}) as ExplorerMeta;
    const start = this.answerStart();
    const rect = this.rectangular();
    this.rowSentence.el.hidden = !rect;
    if (rect) {
      // rectangular maps: the row tokens (pick the query row) above the column tokens coloured by its attribution
      const cols = this.colTokens();
      this.rowSentence.render({ answer: null, tokens: toks, special: this.special(), types: [], query: q, key: -1, row: null,
        matches: () => this.heat.matches, onRebuild: (t) => this.heat.refreshMatches(t), gamma: this.heat.gamma, theme: this.theme.theme, note: null,
        title: this.model.get("site") === "cross" ? "Answer (rows) · click a token to make it the query" : "Rows · click a token to make it the query" });
      this.sentence.render({ answer: null, tokens: cols, special: this.colSpecial(), types: [], query: -1, key: lock ? lock.col : -1,
        row: hd && q >= 0 && q < hd.rows ? hd.attr.subarray(q * hd.cols, (q + 1) * hd.cols) : null, queryLabel: q >= 0 ? [toks[q] ?? "", q] : null,
        matches: () => this.heat.colMatches, gamma: this.heat.gamma, theme: this.theme.theme,
        note: toks.length && q >= 0 ? (sel && hd ? `  to every column token · layer ${this.layerId(sel[0])} head ${sel[1]} · click a row token above to change the query` : "  (select a computed head)") : null });
      return;
    }
    this.sentence.render({
      answer: start >= 0 ? { start, shown: meta.answer_token ?? -1, requested: this.model.get("answer_token") ?? -1, ready: meta.answer_ready ?? [],
        running: this.model.get("state") === "running" } : null,
      tokens: toks, special: this.special(), types: this.model.get("token_types") ?? [], query: q, key: lock ? lock.col : -1,
      row: hd && q >= 0 && q < hd.rows ? hd.attr.subarray(q * hd.cols, (q + 1) * hd.cols) : null,
      matches: () => this.heat.matches, onRebuild: (t) => this.heat.refreshMatches(t),
      gamma: this.heat.gamma, theme: this.theme.theme,
      note: toks.length && q >= 0 ? (sel && hd ? `  to every key token · layer ${this.layerId(sel[0])} head ${sel[1]} · click a token to make it the query` : "  (select a computed head)") : null,
    });
  }

  private renderImage(width: number): void {
    const info = imageInfo(this.model.get("image"));
    const wasHidden = this.image.el.hidden;
    if (!info && wasHidden) return; // text runs: nothing to draw
    const hd = this.heat.data;
    const q = this.hoverLock.query(true);
    const sel = this.selected();
    const row = (a: Float32Array | undefined) => (hd && a && q >= 0 && q < hd.rows ? a.subarray(q * hd.cols, (q + 1) * hd.cols) : null);
    this.image.render({
      info, tokens: this.tokens(), query: q, attr: row(hd?.attr), attn: row(hd?.attn),
      width, gamma: this.heat.gamma, theme: this.theme.theme,
      note: sel && hd ? `  · layer ${this.layerId(sel[0])} head ${sel[1]}` : null,
    });
    if (wasHidden && info) this.invalidate("sentence"); // shown now: redraw once at its measured width
  }

  private tokenTip(i: number): TipLine[] {
    const toks = this.colTokens();
    const q = this.hoverLock.query(true);
    const lines: TipLine[] = [h("strong", {}, `“${displayToken(toks[i])}”`), ` #${i}`];
    const hd = this.heat.data;
    const rows = this.tokens();
    if (hd && q >= 0) {
      lines.push(`attribution ${displayToken(rows[q] ?? "")} → ${displayToken(toks[i])}: ${formatValue(hd.attr[q * hd.cols + i], 4)}`);
      lines.push(`attention ${formatValue(hd.attn[q * hd.cols + i], 4)}`);
    }
    lines.push(h("span", { class: "aa-muted" }, "click: make this the query token"));
    return lines;
  }
}
