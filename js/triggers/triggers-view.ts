// TriggersView: mined trigger patterns streaming into a table (tokens, relative positions, segment, the class
// they attack, accuracy before -> after per gold class), a sample of attacked examples for the clicked pattern
// with the inserted tokens highlighted, and a box to apply the trigger to your own sentence live.
import type { AnyModel } from "@anywidget/types";
import { cssRGB, formatValue } from "../shared/color";
import type { Invoke } from "../shared/commands";
import { displayToken, downloadBlob, downloadSvg, h, s, svgToPng, truncate } from "../shared/dom";
import { downloadButtons } from "../shared/image-export";
import type { AttackedSample, ClassAccuracy, PatternRow, Prediction, TriggersModel } from "../shared/protocol";
import { DATASET_HEADER, type Header, percentProgress, progressText } from "../shared/header";
import { ViewBase } from "../shared/view-base";

type Model = AnyModel<TriggersModel>;

export const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(1)}%`);

/** "82.9% → 0.8%" per gold class; the class the trigger attacks hardest is marked. */
export function accuracyCells(per: ClassAccuracy[] | undefined): { text: string; drop: boolean }[] {
  if (!per) return [];
  const worst = Math.max(...per.map((c) => c.drop));
  return per.map((c) => ({ text: `${c.name}: ${pct(c.before)} → ${pct(c.after)}`, drop: c.drop > 0 && c.drop === worst }));
}

/** Tokens as spans, the inserted ones highlighted (`span.aa-ins`), special ones (as the kernel flagged them)
 * muted, text only. */
export function tokenLine(tokens: string[], inserted: boolean[], special: boolean[]): HTMLElement {
  return h("div", { class: "aa-tokline" }, ...tokens.map((t, i) => h("span", {
    class: `${inserted[i] ? "aa-ins" : ""}${special[i] ? " aa-special" : ""}`.trim() || null, "data-inserted": inserted[i] ? 1 : null }, displayToken(t))));
}

function predText(p: Prediction | undefined): string {
  return p ? `${p.label} (${formatValue(p.prob, 3)})` : "";
}

export class TriggersViewUI extends ViewBase<TriggersModel> {
  readonly header: Header;
  private table = h("div", { class: "aa-trig-table" });
  private tableNote = h("span", { class: "aa-muted aa-table-note" });
  private samples = h("section", { class: "aa-panel aa-samples" });
  private own = h("section", { class: "aa-panel aa-own-panel" });
  private ownText = h("input", { class: "aa-own-text", type: "text", placeholder: "Paste or type your own sentence…", spellcheck: "false", "aria-label": "your sentence" });
  private ownPair = h("input", { class: "aa-own-text aa-own-pair", type: "text", placeholder: "Second segment (optional)", spellcheck: "false", "aria-label": "your second segment" });
  private applyBtn = h("button", { class: "aa-btn aa-run aa-apply", type: "button", title: "Insert the selected trigger and predict before / after (Enter)" }, "Apply trigger");
  private ownOut = h("div", { class: "aa-own-out" });

  constructor(model: Model, el: HTMLElement, invoke?: Invoke) {
    super(model, el, "attattr-triggers", invoke);
    const signal = this.signal;
    this.header = this.runHeader(DATASET_HEADER);
    const tablePanel = h("section", { class: "aa-panel aa-patterns" },
      h("div", { class: "aa-panel-head" }, h("div", { class: "aa-panel-title" }, "Trigger patterns ", h("span", { class: "aa-muted" }, "click one to see it attack"), this.tableNote),
        downloadButtons(() => this.downloadSvg(), () => this.downloadPng(), signal)),
      this.table);
    this.own.append(h("div", { class: "aa-panel-title" }, "Try it ", h("span", { class: "aa-muted" }, "insert the selected trigger into your own input")),
      h("div", { class: "aa-own" }, this.ownText, this.ownPair, this.applyBtn), this.ownOut);
    this.root.append(this.header.el, this.header.errorBox, h("div", { class: "aa-trig-body" }, tablePanel, this.samples, this.own));
    const apply = () => void this.commands.call("_cmd_apply", { text: this.ownText.value, text_pair: this.ownPair.value.trim() ? this.ownPair.value : null, pattern: model.get("selected") });
    this.applyBtn.addEventListener("click", apply, { signal });
    for (const i of [this.ownText, this.ownPair]) i.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        apply();
      }
    }, { signal });
    this.onTraits(["state", "error", "phase", "meta", "progress", "patterns", "selected", "samples", "custom"], () => this.schedule());
    this.onResize(() => this.schedule(), 0);
    this.flush();
  }

  /** Draw everything. */
  protected draw(): void {
    const m = this.model;
    const meta = m.get("meta") ?? {};
    const state = m.get("state"), phase = m.get("phase"), prog = m.get("progress") ?? {};
    const pr = phase === "evaluating" ? prog.evaluating : prog.mining;
    const frac = phase === "evaluating" ? 0.5 + 0.5 * (pr && pr.total ? pr.done / pr.total : 0) : 0.5 * (pr && pr.total ? pr.done / pr.total : 0);
    this.header.render({
      title: `AttAttr triggers · ${meta.model_name ?? ""}`,
      subtitle: `mined from ${meta.num_examples ?? 0} examples · attacking ${meta.num_eval ?? 0} held-out examples · top ${meta.evaluate ?? 0} per class evaluated`,
      state, error: m.get("error"), errorDetail: meta.error_detail,
      progress: percentProgress(frac, state,
        state === "running" ? `${phase} ${progressText(pr, phase === "evaluating" ? "patterns" : "examples")}` : state === "cancelled" ? "partial results kept" : ""),
    });
    this.renderTable();
    this.renderSamples();
    this.renderOwn();
    this.renders++;
    const r = this.root.dataset, rows = m.get("patterns") ?? [];
    r.state = state;
    r.phase = phase;
    r.patterns = String(rows.length);
    r.evaluated = String(rows.filter((x) => x.evaluated).length);
    r.selected = String(m.get("selected"));
    r.samples = String((m.get("samples") ?? []).length);
    const c = m.get("custom") ?? {};
    r.customBefore = c.before?.label ?? "";
    r.customAfter = c.after?.label ?? "";
    r.renders = String(this.renders);
  }

  private renderTable(): void {
    const m = this.model;
    const rows = m.get("patterns") ?? [];
    const sel = m.get("selected");
    const pairs = !!m.get("meta")?.pair;
    const total = m.get("meta")?.num_patterns ?? rows.length;
    this.tableNote.textContent = total > rows.length ? ` · showing the ${rows.length} best of ${total}` : "";
    if (!rows.length) {
      this.table.replaceChildren(h("div", { class: "aa-placeholder" }, m.get("state") === "running" ? "Mining: patterns appear as examples are attributed…" : "No patterns yet: view.run()."));
      return;
    }
    const head = h("tr", {}, ...["#", "trigger", "relative position", ...(pairs ? ["segment"] : []), "score", "layer/head", "from class", "accuracy per gold class: before → after", "flipped"].map((t) => h("th", {}, t)));
    const body = h("tbody");
    rows.forEach((p: PatternRow, i: number) => {
      const cells = accuracyCells(p.per_class);
      const tr = h("tr", { class: `aa-row${p.id === sel ? " aa-sel" : ""}`, "data-id": p.id, "data-evaluated": p.evaluated ? 1 : 0 },
        h("td", { class: "aa-num" }, String(i + 1)),
        h("td", {}, h("span", { class: "aa-tokline" }, ...p.tokens.map((t) => h("span", { class: "aa-ins" }, displayToken(t))))),
        h("td", { class: "aa-num" }, p.relative.map((x) => x.toFixed(2)).join(", ")),
        ...(pairs ? [h("td", { class: "aa-num" }, p.segments.map((x) => (x ? "B" : "A")).join(", "))] : []),
        h("td", { class: "aa-num" }, formatValue(p.score, 4)),
        h("td", { class: "aa-num" }, `${p.layer}/${p.head}`),
        h("td", {}, p.pred_label),
        h("td", {}, p.evaluated ? h("span", {}, ...cells.flatMap((c, k) => [k ? " · " : "", h("span", { class: c.drop ? "aa-drop" : null }, c.text)])) : h("span", { class: "aa-muted" }, "not evaluated")),
        h("td", { class: "aa-num" }, p.evaluated ? pct(p.flip_rate) : ""));
      tr.addEventListener("click", () => {
        m.set("selected", p.id);
        m.save_changes();
        this.schedule();
      }, { signal: this.signal });
      body.appendChild(tr);
    });
    const keep = this.table.scrollTop;
    this.table.replaceChildren(h("table", { class: "aa-table" }, h("thead", {}, head), body));
    this.table.scrollTop = keep;
  }

  private renderSamples(): void {
    const m = this.model;
    const sel = m.get("selected");
    const pat = (m.get("patterns") ?? []).find((p) => p.id === sel);
    const rows = m.get("samples") ?? [];
    if (!pat) {
      this.samples.replaceChildren(h("div", { class: "aa-panel-title" }, "Attacked examples ", h("span", { class: "aa-muted" }, "select a pattern")));
      return;
    }
    const names = m.get("meta")?.label_names ?? [];
    this.samples.replaceChildren(
      h("div", { class: "aa-panel-title" }, "Attacked examples ", h("span", { class: "aa-muted" }, `trigger “${pat.tokens.map(displayToken).join(" ")}” from example ${pat.id} (${truncate(pat.text, 60)})`)),
      h("table", { class: "aa-table" }, h("thead", {}, h("tr", {}, ...["gold", "before", "after", "attacked input (inserted tokens highlighted)"].map((t) => h("th", {}, t)))),
        h("tbody", {}, ...rows.map((r: AttackedSample) => h("tr", { "data-index": r.index },
          h("td", {}, r.gold === null ? "" : names[r.gold] ?? String(r.gold)),
          h("td", { class: "aa-pred" }, predText(r.before)),
          h("td", { class: r.after.pred !== r.before.pred ? "aa-flip" : "aa-pred" }, predText(r.after)),
          h("td", {}, tokenLine(r.tokens, r.inserted, r.special ?? [])))))));
  }

  private renderOwn(): void {
    const m = this.model;
    this.ownPair.hidden = !m.get("meta")?.pair;
    this.applyBtn.disabled = m.get("selected") < 0 && !(m.get("patterns") ?? []).length;
    const c = m.get("custom") ?? {};
    if (c.error) {
      this.ownOut.replaceChildren(h("div", { class: "aa-error" }, c.error));
      return;
    }
    if (!c.before || !c.after) {
      this.ownOut.replaceChildren();
      return;
    }
    const flipped = c.before.pred !== c.after.pred;
    this.ownOut.replaceChildren(
      h("div", { class: "aa-own-result" }, "before ", h("span", { class: "aa-pred aa-before" }, predText(c.before)), "  →  after ",
        h("span", { class: `${flipped ? "aa-flip" : "aa-pred"} aa-after` }, predText(c.after)), flipped ? h("span", { class: "aa-flip" }, "  prediction flipped") : ""),
      tokenLine(c.tokens ?? [], c.inserted ?? [], c.special ?? []));
  }

  /** The pattern table as an SVG (text rows), for the downloads. */
  tableSvg(): SVGElement {
    const rows = this.model.get("patterns") ?? [];
    const fg = cssRGB(this.theme.theme.fg), bg = cssRGB(this.theme.theme.bg);
    const W = 900, rh = 18, H = 30 + rh * (rows.length + 1);
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "font-family": "system-ui, sans-serif", "font-size": 11 }, s("rect", { width: W, height: H, fill: bg }));
    const cols = [10, 40, 230, 300, 370, 470];
    const headers = ["#", "trigger", "score", "layer/head", "attacks", "accuracy per gold class: before → after"];
    headers.forEach((t, k) => svg.appendChild(s("text", { x: cols[k], y: 20, fill: fg, "font-weight": 600 }, t)));
    rows.forEach((p, i) => {
      const y = 20 + rh * (i + 1);
      const vals = [String(i + 1), truncate(p.tokens.map(displayToken).join(" "), 30), formatValue(p.score, 4), `${p.layer}/${p.head}`, truncate(p.pred_label, 14),
        p.evaluated ? accuracyCells(p.per_class).map((c) => c.text).join(" · ") : "–"];
      vals.forEach((t, k) => svg.appendChild(s("text", { x: cols[k], y, fill: fg }, t)));
    });
    return svg;
  }

  private downloadSvg(): void {
    downloadSvg(this.tableSvg(), "attattr_triggers.svg");
  }

  private async downloadPng(): Promise<void> {
    const svg = this.tableSvg();
    downloadBlob(await svgToPng(svg, Number(svg.getAttribute("width")), Number(svg.getAttribute("height")), 2, cssRGB(this.theme.theme.bg)), "attattr_triggers.png");
  }

}
