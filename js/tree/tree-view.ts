// The TreeView: attribution tree as SVG (x = token position, y = layer), threshold slider, clickable edges; for an
// image attribution also the same tree on the picture (edges between patch centres, tree-image.ts).
import type { AnyModel } from "@anywidget/types";
import { answerColor, cssRGB, diverging, formatValue } from "../shared/color";
import type { Invoke } from "../shared/commands";
import { displayToken, downloadBlob, downloadSvg, h, s, svgToPng, truncate } from "../shared/dom";
import { inflateArray, isDeflated } from "../shared/inflate";
import type { Seq2SeqLayerSums, TreeDict, TreeEdge, TreeLayerSums, TreeModel } from "../shared/protocol";
import { seq2seqTreeFromLayerSums, treeFromLayerSums, type Seq2SeqTreeInput, type TreeInput } from "./tree-algo";
import { treeImageSvg } from "./tree-image";
import { imageInfo } from "../shared/image";
import { Tooltip, type TipLine } from "../shared/tooltip";
import { ViewBase } from "../shared/view-base";

type Model = AnyModel<TreeModel>;

export interface TreeLayout {
  width: number;
  height: number;
  dx: number;
  x: (i: number) => number;
  y: (layer: number) => number;
  padL: number;
  axisY: number;
}

/** x = token position, y = layer (top layer at the top). */
export function treeLayout(n: number, numLayers: number, availWidth: number): TreeLayout {
  const padL = 44, padR = 24, top = 26, rowH = numLayers > 16 ? 26 : 34, labelH = 78;
  const dx = Math.max(26, Math.min(64, (availWidth - padL - padR) / Math.max(1, n)));
  const width = Math.ceil(padL + padR + dx * Math.max(1, n));
  const axisY = top + (numLayers + 0.5) * rowH;
  return {
    width, height: Math.ceil(axisY + labelH), dx, padL, axisY,
    x: (i) => padL + (i + 0.5) * dx,
    y: (layer) => top + (numLayers - layer) * rowH,
  };
}

export function normalizeTree(t: Partial<TreeDict> | null | undefined): TreeDict {
  return {
    tokens: Array.isArray(t?.tokens) ? t!.tokens.map(String) : [],
    num_layers: Number(t?.num_layers) || 0,
    threshold: Number(t?.threshold) || 0,
    root: t?.root ?? null,
    nodes: Array.isArray(t?.nodes) ? t!.nodes : [],
    edges: Array.isArray(t?.edges) ? t!.edges : [],
    ...(Array.isArray(t?.sides) && t!.sides.length === t!.tokens?.length
      ? { sides: t!.sides, encoder_layers: Number(t!.encoder_layers) || 0 } : {}),
  };
}

/** Colours of the two token sets of an encoder–decoder's tree (source, answer). */
export const SIDE_COLORS = { source: "#1f77b4", answer: "#c2185b" } as const;

/** Name of tree layer `l`: "L3", or for a tree across source and answer "E3" (encoder) / "D1" (decoder). */
export function layerName(t: TreeDict, l: number): string {
  if (!t.sides) return `L${l}`;
  const enc = t.encoder_layers ?? 0;
  return l < enc ? `E${l}` : `D${l - enc}`;
}

/** Where token `i` is: "#i", or "source #p" / "answer #p" (p = index within its side) across source and answer. */
export function tokenIndex(t: TreeDict, i: number): string {
  if (!t.sides) return `#${i}`;
  const ns = t.sides.filter((x) => x === "source").length;
  return `${t.sides[i]} #${t.sides[i] === "source" ? i : i - ns}`;
}

/** A token as named in titles: "tok (#i)" or "tok (answer #p)". */
export function tokenRef(t: TreeDict, i: number): string {
  return `${t.tokens[i] ?? i} (${tokenIndex(t, i)})`;
}

export function edgeKey(e: Pick<TreeEdge, "parent" | "child" | "layer">): string {
  return `${e.parent},${e.child},${e.layer}`;
}

export class TreeView extends ViewBase<TreeModel> {
  private slider = h("input", { class: "aa-slider", type: "range", min: 0, max: 1, step: 0.01, "aria-label": "threshold" });
  private thrText = h("span", { class: "aa-thr" });
  private stats = h("span", { class: "aa-muted aa-stats" });
  private compactBox = h("input", { type: "checkbox", class: "aa-compact" });
  private compact: boolean | null = null; // null = automatic (on for long inputs)
  private scroll = h("div", { class: "aa-tree-scroll" });
  private onImage = h("div", { class: "aa-tree-image", hidden: true });
  private area = h("div", { class: "aa-tree-area" }, this.onImage, this.scroll);
  private errorBox = h("div", { class: "aa-error", role: "alert" });
  private tip: Tooltip;
  private title = h("div", { class: "aa-title" });
  private svg: SVGElement | null = null;
  private layout: TreeLayout | null = null;
  private scrolled = false;
  private debounce = 0;
  /** Threshold shown: the slider's value while the user moves it, else the `threshold` trait. */
  private thr = 0;
  /** Layer sums embedded in the state (`layer_sums`): the tree is then computed here for any threshold. */
  private sums: { src: unknown; input: TreeInput | Seq2SeqTreeInput | null } = { src: undefined, input: null };
  private local: { thr: number; tree: TreeDict } | null = null;

  constructor(model: Model, el: HTMLElement, invoke?: Invoke) {
    super(model, el, "attattr-tree", invoke);
    this.tip = new Tooltip(this.root);
    const svgBtn = h("button", { class: "aa-btn aa-dl", type: "button", "data-download": "svg", title: "Download as SVG" }, "⤓ SVG");
    const pngBtn = h("button", { class: "aa-btn aa-dl", type: "button", "data-download": "png", title: "Download as PNG" }, "⤓ PNG");
    this.root.append(
      h("div", { class: "aa-header" },
        h("div", { class: "aa-heading" }, this.title, h("div", { class: "aa-subtitle" }, h("span", { class: "aa-muted" }, "x = token position · y = layer · edge: query token (parent) attends to key token (child)"))),
        h("div", { class: "aa-dl-group" }, svgBtn, pngBtn)),
      h("div", { class: "aa-toolbar" }, h("label", { class: "aa-field" }, "threshold τ ", this.slider), this.thrText,
        h("label", { class: "aa-field", title: "Only the tokens that are in the tree on the x axis (long inputs)" }, this.compactBox, "tree tokens only"),
        h("span", { class: "aa-spacer" }), this.stats),
      this.errorBox, this.area, this.tip.el,
    );
    const o = { signal: this.signal };
    svgBtn.addEventListener("click", () => this.svg && downloadSvg(this.svg, this.fileName("svg")), o);
    pngBtn.addEventListener("click", () => void this.downloadPng(), o);
    this.compactBox.addEventListener("change", () => {
      this.compact = this.compactBox.checked;
      this.flush();
    }, o);
    this.slider.addEventListener("input", () => {
      const v = Number(this.slider.value);
      this.thr = v;
      this.thrText.textContent = v.toFixed(2);
      if (this.sums.input) this.schedule(); // the browser has the layer sums: redraw now, kernel or not
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        this.model.set("threshold", v);
        this.model.save_changes();
      }, 120) as unknown as number;
    }, o);
    this.onTraits(["tree", "special", "state", "error", "selected_edge", "title", "linked", "answer_start", "layer_sums", "image"], () => this.schedule());
    const cbThr = () => {
      this.thr = Number(model.get("threshold"));
      this.schedule();
      this.slider.value = String(model.get("threshold"));
      this.thrText.textContent = Number(model.get("threshold")).toFixed(2);
    };
    this.onTraits(["threshold"], cbThr);
    this.onDestroy(() => clearTimeout(this.debounce));
    this.area.addEventListener("click", (e) => {
      const g = (e.target as Element | null)?.closest?.("[data-edge]") as SVGElement | null;
      if (!g) return;
      const [parent, child, layer] = (g.getAttribute("data-edge") ?? "").split(",").map(Number);
      this.model.set("selected_edge", [parent, child, layer]);
      this.model.save_changes();
      void this.commands.call("_cmd_edge", { parent, child, layer });
      this.flush();
    }, o);
    this.area.addEventListener("pointerover", (e) => {
      const g = (e.target as Element | null)?.closest?.("[data-edge]") as SVGElement | null;
      if (!g) return this.tip.hide();
      this.showEdgeTip(e as PointerEvent, g.getAttribute("data-edge") ?? "");
    }, o);
    this.area.addEventListener("pointerleave", () => this.tip.hide(), o);
    this.onResize(() => this.schedule());
    cbThr();
    this.flush();
  }

  private fileName(ext: string): string {
    return `attattr_tree_t${this.thr.toFixed(2)}.${ext}`;
  }

  /** The tree drawn: computed here from the embedded layer sums (same algorithm as the kernel), else the trait. */
  tree(): TreeDict {
    this.loadSums();
    const inp = this.sums.input;
    const trait = normalizeTree(this.model.get("tree"));
    if (!inp) return trait;
    if ("Se" in inp ? inp.tokens.length !== inp.ns + inp.nt : inp.tokens.length !== inp.n) return trait;
    if (!this.local || this.local.thr !== this.thr) {
      this.local = { thr: this.thr, tree: "Se" in inp ? seq2seqTreeFromLayerSums(inp, this.thr) : treeFromLayerSums(inp, this.thr) };
    }
    return this.local.tree;
  }

  /** Decode `layer_sums` once per trait value (async: inflate), then redraw. */
  private loadSums(): void {
    const src = this.model.get("layer_sums");
    if (src === this.sums.src) return;
    const box: { src: unknown; input: TreeInput | Seq2SeqTreeInput | null } = { src, input: null };
    this.sums = box;
    this.local = null;
    if (!src) return;
    const tokens = normalizeTree(this.model.get("tree")).tokens;
    const ready = (input: TreeInput | Seq2SeqTreeInput) => {
      if (this.sums !== box) return;
      box.input = input;
      this.schedule();
    };
    if ("cross" in src) {
      const s2 = src as Seq2SeqLayerSums;
      if (![s2.encoder, s2.decoder, s2.cross].every(isDeflated)) return;
      Promise.all([s2.encoder, s2.decoder, s2.cross].map(inflateArray)).then(([e, d, c]) => {
        const ns = e.shape[1], nt = d.shape[1];
        const ok = e.shape.length === 3 && d.shape.length === 3 && c.shape.length === 3 && e.shape[2] === ns && d.shape[2] === nt
          && c.shape[0] === d.shape[0] && c.shape[1] === nt && c.shape[2] === ns && e.shape[0] === s2.encoder_layers.length && d.shape[0] === s2.decoder_layers.length;
        if (ok) ready({ Se: e.data, Sd: d.data, Sc: c.data, ns, nt, encoder_layers: s2.encoder_layers, decoder_layers: s2.decoder_layers,
          encoder_num_layers: s2.encoder_num_layers, num_layers: s2.num_layers, tokens, exclude_source: s2.exclude_source, exclude_answer: s2.exclude_answer });
      }, () => undefined);
      return;
    }
    const s1 = src as TreeLayerSums;
    if (!isDeflated(s1.sums)) return;
    inflateArray(s1.sums).then((d) => {
      if (d.shape.length === 3) ready({ S: d.data, L: d.shape[0], n: d.shape[2], layers: s1.layers, num_layers: s1.num_layers, tokens, exclude_row: s1.exclude_row });
    }, () => undefined);
  }

  /** Draw the tree. */
  protected draw(): void {
    const t = this.tree();
    const state = this.model.get("state");
    const err = this.model.get("error");
    this.title.textContent = this.model.get("title") || "Attribution tree";
    this.errorBox.replaceChildren();
    if (state === "error" && err) this.errorBox.append(h("strong", {}, "Could not build the tree: "), err);
    this.errorBox.hidden = !(state === "error" && err);
    this.slider.value = String(this.thr);
    this.thrText.textContent = this.thr.toFixed(2);
    const kernelOnly = !this.model.get("layer_sums") ? " · other thresholds need the kernel (layer sums not embedded: over the size budget)" : "";
    this.stats.textContent = t.tokens.length ? `${t.nodes.length} nodes · ${t.edges.length} edges${this.model.get("linked") ? " · click an edge to open its head in the explorer" : ""}${kernelOnly}` : "";
    this.compactBox.checked = this.isCompact(t);
    this.svg = t.tokens.length ? this.buildSvg(t) : null;
    if (this.svg) {
      const keep = this.scroll.scrollLeft;
      this.scroll.replaceChildren(this.svg);
      if (!this.scrolled && this.layout && t.root !== null && this.scroll.clientWidth) {
        this.scrolled = true; // first draw: bring the root into view; later redraws keep the user's scroll
        this.scroll.scrollLeft = Math.max(0, this.layout.x(t.root) - this.scroll.clientWidth / 2);
      } else this.scroll.scrollLeft = keep;
    }
    else this.scroll.replaceChildren(h("div", { class: "aa-placeholder" }, state === "error" ? "No tree." : "No attribution yet."));
    const info = imageInfo(this.model.get("image"));
    this.onImage.hidden = !(info && t.tokens.length);
    this.onImage.replaceChildren(...(info && t.tokens.length ? [treeImageSvg(t, info, { theme: this.theme.theme, selected: (this.model.get("selected_edge") ?? []).join(","), side: 300 })] : []));
    const d = this.root.dataset;
    d.state = state;
    d.nodes = String(t.nodes.length);
    d.edges = String(t.edges.length);
    d.threshold = String(this.thr);
    d.image = info ? `${info.rows},${info.cols}` : "";
    d.treeSource = this.sums.input ? "browser" : "kernel";
    d.selectedEdge = (this.model.get("selected_edge") ?? []).join(",");
  }

  buildSvg(t: TreeDict): SVGElement {
    const L = Math.max(t.num_layers, ...t.nodes.map((x) => x.layer + 1), ...t.edges.map((e) => e.layer + 1), 1);
    const avail = Math.max(480, (this.root.clientWidth || 900) - 30);
    const inTree = new Set<number>(t.nodes.map((x) => x.index));
    if (t.root !== null) inTree.add(t.root);
    for (const e of t.edges) inTree.add(e.parent).add(e.child);
    // x axis: every token, or (compact) only the tokens of the tree, in sentence order
    const compact = this.isCompact(t) && inTree.size > 0;
    const axisTokens = compact ? [...inTree].sort((a, b) => a - b) : t.tokens.map((_, i) => i);
    // across source and answer: source tokens, one empty slot, answer tokens (sides[] lists the source first)
    const sides = t.sides;
    const gapAt = sides ? axisTokens.findIndex((i) => sides[i] === "answer") : -1;
    const slot = new Map<number, number>(axisTokens.map((tok, k) => [tok, k + (gapAt > 0 && k >= gapAt ? 1 : 0)]));
    const n = axisTokens.length + (gapAt > 0 ? 1 : 0);
    const base = treeLayout(n, L, avail);
    const lay: TreeLayout = { ...base, x: (i: number) => base.x(slot.get(i) ?? 0) };
    this.layout = lay;
    const fg = cssRGB(this.theme.theme.fg), bg = cssRGB(this.theme.theme.bg);
    // an explained answer (causal LM): its tokens in the answer colour, a line before it (as the Explorer's axes)
    const ans = this.answerStart(t), ansColor = answerColor(this.theme.theme);
    const ink = (i: number) => (sides ? SIDE_COLORS[sides[i]] : ans >= 0 && i >= ans ? ansColor : fg);
    const hot = this.theme.theme.dark ? "#ffd54a" : "#e65100";
    const svg = s("svg", { class: "aa-tree-svg", width: lay.width, height: lay.height, viewBox: `0 0 ${lay.width} ${lay.height}`, "font-family": "system-ui, -apple-system, 'Segoe UI', sans-serif", role: "img" });
    svg.appendChild(s("rect", { width: lay.width, height: lay.height, fill: bg }));
    // layer guides
    const guides = s("g", { class: "aa-guides" });
    for (let l = 0; l < L; l++) {
      const y = lay.y(l);
      guides.appendChild(s("line", { x1: lay.padL - 6, x2: lay.width - 10, y1: y, y2: y, stroke: fg, "stroke-opacity": l % 2 ? 0.05 : 0.09 }));
      guides.appendChild(s("text", { x: lay.padL - 10, y: y + 3.5, "font-size": 10, "text-anchor": "end", fill: fg, "fill-opacity": 0.55 }, layerName(t, l)));
    }
    svg.appendChild(guides);
    const firstAns = ans > 0 ? axisTokens.find((i) => i >= ans) : undefined;
    if (firstAns !== undefined && axisTokens[0] < ans) {
      const x = lay.x(firstAns) - lay.dx / 2;
      svg.appendChild(s("line", { "data-answer": "boundary", x1: x, x2: x, y1: lay.y(L) - 12, y2: lay.axisY + 4, stroke: ansColor, "stroke-width": 1.5 },
        s("title", {}, `the answer starts at ${tokenRef(t, ans)}`)));
    }
    if (sides) { // name the two token sets under their columns
      for (const side of ["source", "answer"] as const) {
        const xs = axisTokens.filter((i) => sides[i] === side).map((i) => lay.x(i));
        if (xs.length) svg.appendChild(s("text", { class: "aa-side-label", "data-side": side, x: (Math.min(...xs) + Math.max(...xs)) / 2, y: lay.height - 4, "font-size": 11, "font-weight": 600, "text-anchor": "middle", fill: SIDE_COLORS[side] }, side));
      }
    }
    // token axis
    const axis = s("g", { class: "aa-axis" });
    for (const i of axisTokens) {
      const x = lay.x(i);
      axis.appendChild(s("line", { x1: x, x2: x, y1: lay.y(L - 1) - 8, y2: lay.axisY, stroke: fg, "stroke-opacity": inTree.has(i) ? 0.1 : 0.04, "stroke-dasharray": "2 3" }));
      const label = s("text", { x: 0, y: 0, "font-size": 10.5, "text-anchor": "end", fill: ink(i), "fill-opacity": inTree.has(i) ? 0.95 : 0.35, transform: `translate(${x + 3},${lay.axisY + 6}) rotate(-50)` }, truncate(displayToken(t.tokens[i]), 14) + (compact ? ` ${i}` : ""));
      label.appendChild(s("title", {}, tokenRef(t, i)));
      axis.appendChild(label);
    }
    svg.appendChild(axis);
    // edges
    const maxScore = Math.max(1e-9, ...t.edges.map((e) => Math.abs(e.score)));
    const nodeLayer = new Map<number, number>(t.nodes.map((x) => [x.index, x.layer]));
    const sel = (this.model.get("selected_edge") ?? []).join(",");
    const edges = s("g", { class: "aa-edges" });
    const ordered = [...t.edges].sort((a, b) => Math.abs(a.score) - Math.abs(b.score));
    for (const e of ordered) {
      const pLayer = Math.max(e.layer + 1, nodeLayer.get(e.parent) ?? e.layer + 1);
      const x1 = lay.x(e.parent), y1 = lay.y(Math.min(L, pLayer));
      const x2 = lay.x(e.child), y2 = lay.y(nodeLayer.get(e.child) ?? e.layer);
      const my = (y1 + y2) / 2;
      const d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
      const rel = Math.abs(e.score) / maxScore;
      const key = edgeKey(e);
      const isSel = key === sel;
      const color = isSel ? hot : cssRGB(diverging(0.45 + 0.55 * rel, this.theme.theme));
      const g = s("g", { class: `aa-edge${isSel ? " aa-hot" : ""}`, "data-edge": key },
        s("path", { d, class: "aa-edge-hit" }),
        s("path", { d, class: "aa-edge-line", fill: "none", stroke: color, "stroke-width": (1.2 + 3.8 * rel).toFixed(2), "stroke-opacity": isSel ? 1 : 0.55 + 0.4 * rel, "stroke-linecap": "round" }),
        s("title", {}, `${tokenRef(t, e.parent)} → ${tokenRef(t, e.child)} · layer ${layerName(t, e.layer)} · ${formatValue(e.score, 3)}`),
      );
      edges.appendChild(g);
    }
    svg.appendChild(edges);
    // nodes
    const nodes = s("g", { class: "aa-nodes" });
    const drawn = new Set<number>();
    const special = this.model.get("special") ?? []; // the kernel's per-token flags
    const drawNode = (index: number, layer: number, isRoot: boolean) => {
      drawn.add(index);
      const x = lay.x(index), y = lay.y(Math.min(L, layer));
      const tok = t.tokens[index] ?? "";
      const side = sides?.[index];
      const color = ink(index);
      const g = s("g", { class: "aa-node", "data-node": index, ...(side ? { "data-side": side } : {}), transform: `translate(${x},${y})` },
        s("circle", { r: isRoot ? 6.5 : 4.5, fill: isRoot ? hot : bg, stroke: isRoot ? hot : color, "stroke-width": 1.6 }),
        s("text", { x: 0, y: -9, "font-size": 11, "text-anchor": "middle", fill: sides ? fg : color, "font-weight": isRoot ? 700 : 500, "paint-order": "stroke", stroke: bg, "stroke-width": 3, "stroke-linejoin": "round", "fill-opacity": special[index] ? 0.6 : 1 }, truncate(displayToken(tok), 12)),
        s("title", {}, `${tokenRef(t, index)} · enters at layer ${layerName(t, layer)}`),
      );
      nodes.appendChild(g);
    };
    for (const nd of t.nodes) if (!drawn.has(nd.index)) drawNode(nd.index, nd.layer, nd.index === t.root);
    if (t.root !== null && !drawn.has(t.root)) drawNode(t.root, L, true);
    svg.appendChild(nodes);
    if (!t.edges.length) {
      svg.appendChild(s("text", { x: lay.width / 2, y: lay.y(Math.floor(L / 2)), "text-anchor": "middle", "font-size": 12, fill: fg, "fill-opacity": 0.6 }, `No attribution link above τ = ${this.thr.toFixed(2)}: lower the threshold.`));
    }
    return svg;
  }

  /** Index of an explained answer's first token (`answer_start`; -1: none, out of range, or a tree across sides). */
  private answerStart(t: TreeDict): number {
    const a = this.model.get("answer_start");
    return typeof a === "number" && Number.isInteger(a) && a >= 0 && a < t.tokens.length && !t.sides ? a : -1;
  }

  private isCompact(t: TreeDict): boolean {
    return this.compact ?? t.tokens.length > 64;
  }

  private showEdgeTip(e: PointerEvent, key: string): void {
    const t = this.tree();
    const edge = t.edges.find((x) => edgeKey(x) === key);
    if (!edge) return this.tip.hide();
    const lines: TipLine[] = [
      h("strong", {}, `layer ${layerName(t, edge.layer)}`),
      `“${displayToken(t.tokens[edge.parent] ?? "")}” ${tokenIndex(t, edge.parent)} → “${displayToken(t.tokens[edge.child] ?? "")}” ${tokenIndex(t, edge.child)}`,
      `score ${formatValue(edge.score, 4)}`,
    ];
    if (this.model.get("linked")) lines.push(h("span", { class: "aa-muted" }, "click: show in the explorer"));
    this.tip.show(e, lines);
  }

  async downloadPng(): Promise<void> {
    if (!this.svg || !this.layout) return;
    downloadBlob(await svgToPng(this.svg, this.layout.width, this.layout.height, 2, cssRGB(this.theme.theme.bg)), this.fileName("png"));
  }
}
