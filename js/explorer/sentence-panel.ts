// Sentence panel: the input tokens as chips (escaped text), coloured by one attribution row (the query token's
// attribution to every key token); query / key / search-match marks; click a token to make it the query.
// An explained answer (tokens = prompt + answer) is set apart: its tokens underlined after a gap, and a picker
// above the sentence — "whole answer" or one answer token, whose own maps the view then shows.
import { colorOf, cssRGB, gammaScale, gammaValue, signedScale, textOn, type Scale, type Theme } from "../shared/color";
import { displayToken, h } from "../shared/dom";
import { legendSvg } from "../shared/legend";
import type { TipLine, Tooltip } from "../shared/tooltip";

export interface SentenceProps {
  tokens: string[];
  special: boolean[]; // per token: a special token (sent by the kernel with the tokens)
  types: number[]; // token_types: a segment boundary is marked before the first token of segment 1
  row: Float32Array | null; // attribution of the query row to each token, null = no colours
  query: number;
  key: number; // locked key token, -1 = none
  matches: () => number[]; // search matches (read after onRebuild)
  onRebuild?: (tokens: string[]) => void; // the chips were rebuilt for new tokens
  gamma: number;
  theme: Theme;
  /** Title after the query pill, or null for the plain "Tokens" title. */
  note: string | null;
  answer: AnswerProps | null; // an explained answer, null = a single target
  /** The query named in the title when it is not one of `tokens` (rectangular maps: a row token of the other
   * axis, [text, index]); absent: tokens[query]. */
  queryLabel?: [string, number] | null;
  title?: string; // the title without a query note (default "Tokens")
}

export interface AnswerProps {
  start: number; // index of the first answer token
  shown: number; // the answer token whose own maps are shown (the kernel's meta), -1 = the whole answer
  requested: number; // the one picked (`answer_token`): differs from `shown` until the kernel sent its maps
  ready: number[]; // answer tokens with maps of their own
  running: boolean; // a run streams: every answer token may be picked (its maps come as they are computed)
}

export interface SentenceOptions {
  onQuery: (i: number) => void; // token clicked
  onAnswer: (t: number) => void; // answer token picked in the answer bar (-1: the whole answer)
  onHoverChange: () => void; // hovered token changed (redraw the heatmap column band)
  tooltip: Tooltip;
  tipLines: (i: number) => TipLine[];
}

export class SentencePanel {
  readonly el: HTMLElement;
  readonly sentence = h("div", { class: "aa-sentence" });
  readonly answerBar = h("div", { class: "aa-answer-bar", role: "group", "aria-label": "answer token" });
  /** Token under the pointer, -1 = none. */
  hover = -1;
  private title = h("div", { class: "aa-panel-title" });
  private legend = h("div", { class: "aa-legend-box" });
  private spans: HTMLSpanElement[] = [];
  private key = "";
  private answerKey = "";

  constructor(opts: SentenceOptions, signal: AbortSignal) {
    this.el = h("section", { class: "aa-panel aa-sentence-panel" },
      h("div", { class: "aa-panel-head" }, this.title, this.legend),
      this.answerBar,
      this.sentence,
    );
    const o = { signal };
    this.answerBar.hidden = true;
    this.answerBar.addEventListener("click", (e) => {
      const b = (e.target as HTMLElement | null)?.closest?.("button[data-t]") as HTMLButtonElement | null;
      if (b && !b.disabled) opts.onAnswer(Number(b.dataset.t));
    }, o);
    const indexOf = (t: EventTarget | null): number => {
      const el = (t as HTMLElement | null)?.closest?.("[data-i]") as HTMLElement | null;
      return el && this.sentence.contains(el) ? Number(el.dataset.i) : -1;
    };
    this.sentence.addEventListener("click", (e) => {
      const i = indexOf(e.target);
      if (i >= 0) opts.onQuery(i);
    }, o);
    this.sentence.addEventListener("pointerover", (e) => {
      const i = indexOf(e.target);
      this.hover = i;
      if (i >= 0) opts.tooltip.show(e as PointerEvent, opts.tipLines(i));
      opts.onHoverChange();
    }, o);
    this.sentence.addEventListener("pointerleave", () => {
      this.hover = -1;
      opts.tooltip.hide();
      opts.onHoverChange();
    }, o);
  }

  render(p: SentenceProps): void {
    const toks = p.tokens;
    const a = p.answer && p.answer.start >= 0 && p.answer.start < toks.length ? p.answer : null;
    const key = toks.join("\u0001") + "|" + p.types.join(",") + "|" + p.special.map(Number).join("") + "|" + (a ? a.start : -1);
    if (key !== this.key) {
      this.key = key;
      const types = p.types;
      this.spans = toks.map((t, i) => {
        const span = h("span", { class: "aa-tok", "data-i": i, tabindex: -1 }, displayToken(t));
        if (p.special[i]) span.classList.add("aa-special");
        if (t.startsWith("##")) span.classList.add("aa-cont");
        if (types[i] === 1 && types[i - 1] === 0) span.classList.add("aa-segb");
        if (a && i >= a.start) span.classList.add("aa-answer");
        if (a && i === a.start) span.classList.add("aa-ansb");
        return span;
      });
      this.sentence.replaceChildren(...this.spans);
      p.onRebuild?.(toks);
    }
    const q = p.query, row = p.row;
    const scale: Scale | null = row ? signedScale(row) : null;
    const matchSet = new Set(p.matches());
    const g = p.gamma;
    this.spans.forEach((span, i) => {
      if (row && scale) {
        const c = colorOf(gammaValue(row[i], g), gammaScale(scale, g), p.theme);
        span.style.backgroundColor = cssRGB(c);
        span.style.color = Math.abs(gammaValue(row[i], g)) / gammaValue(scale.hi, g) > 0.45 ? textOn(c) : "";
      } else {
        span.style.backgroundColor = "";
        span.style.color = "";
      }
      span.classList.toggle("aa-query", i === q);
      span.classList.toggle("aa-key", p.key >= 0 && i === p.key);
      span.classList.toggle("aa-match", matchSet.has(i));
      span.classList.toggle("aa-ans-on", !!a && a.shown >= 0 && i === a.start + a.shown);
    });
    this.renderAnswer(toks, a);
    const named = p.queryLabel !== undefined ? p.queryLabel : q >= 0 ? [toks[q], q] as [string, number] : null;
    if (toks.length && named && p.note !== null) {
      this.title.replaceChildren("Attribution from query ", h("span", { class: "aa-tokpill" }, displayToken(named[0] ?? ""), h("sub", {}, String(named[1]))),
        h("span", { class: "aa-muted" }, p.note));
    } else this.title.replaceChildren(p.title ?? "Tokens");
    this.legend.replaceChildren(scale ? legendSvg(scale, p.theme, { width: 200, gamma: g }) : "");
  }

  /** The answer picker: "whole answer" and one button per answer token (token text as text, never markup). */
  private renderAnswer(toks: string[], a: AnswerProps | null): void {
    this.answerBar.hidden = !a;
    if (!a) {
      this.answerKey = "";
      this.answerBar.replaceChildren();
      return;
    }
    const ready = new Set(a.ready);
    const key = `${toks.slice(a.start).join("\u0001")}|${a.start}|${a.shown}|${a.requested}|${a.ready.join(",")}|${a.running}`;
    if (key === this.answerKey) return;
    this.answerKey = key;
    const btn = (t: number, label: string, title: string) => {
      const pending = t === a.requested && t !== a.shown;
      const b = h("button", { class: `aa-btn aa-ans-tok${t === a.shown ? " aa-on" : ""}${pending ? " aa-pending" : ""}`, type: "button", "data-t": t, title, "aria-pressed": String(t === a.shown) }, label);
      b.disabled = t >= 0 && !a.running && !ready.has(t);
      return b;
    };
    this.answerBar.replaceChildren(h("span", { class: "aa-muted" }, "answer: "),
      btn(-1, "whole answer", "Attribution of the whole answer: F = Σ_t log p(y_t | prompt, y_<t)"),
      ...toks.slice(a.start).map((t, k) => btn(k, displayToken(t), `Answer token ${k}: its own maps, F_t = log p(y_t | prompt, y_<t)` +
        (ready.has(k) ? "" : a.running ? " (being computed)" : " (not computed: explain with per_token=True)"))),
      a.requested !== a.shown ? h("span", { class: "aa-muted aa-ans-wait" }, " loading its maps… (from the running kernel: a saved page shows the maps it was saved with)") : "");
  }
}
