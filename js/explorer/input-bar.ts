// Input bar of the Explorer (when it has a model): the text (and the second segment for pair models) — or, for
// image classifiers, an image file chooser (the file's bytes go to the kernel) —, a target
// selector (every class with its probability, or the top-k next tokens of a causal LM, plus free entry of a
// token / class name; for a causal LM also "answer…", an answer field of several tokens, and "generate N
// tokens…"), Run (or Enter), the history of finished runs to switch back to, and Contrast: a second target (a
// second answer) for the same input whose difference map the attribution heatmap then shows.
// Fed plain props; talks to the kernel only through the callbacks.
import { formatValue } from "../shared/color";
import { decodeArray, type EncodedArray } from "../shared/decode";
import { displayToken, h, truncate } from "../shared/dom";
import type { HeadPayload } from "../shared/protocol";

export interface TargetOption {
  id: number;
  label: string;
  prob: number;
}
export interface TargetsInfo {
  text?: string;
  text_pair?: string | null;
  kind?: "class" | "next-token";
  pred?: number;
  options?: TargetOption[];
}
export interface InputSpec {
  kind?: "class" | "next-token" | "answer"; // "answer": an encoder–decoder (an answer typed or generated)
  pair?: boolean;
  label_names?: string[];
  image?: boolean; // the model reads pictures: a file chooser replaces the text boxes
  answers?: boolean; // a causal LM or an encoder–decoder: the bar offers an answer field and "generate N tokens"
}
export interface HistoryEntry {
  key: number;
  text: string | null;
  text_pair: string | null;
  target: number;
  target_label: string;
  prob: number | null;
  answer?: string | null; // an explained answer's text
}
export interface ContrastInfo {
  target?: number | string;
  target_label?: string;
  prob?: number | null;
  state?: "running" | "done" | "error";
  error?: string;
  common?: number; // two answers: how many leading tokens (prompt + common answer prefix) the difference covers
  answer_start?: number | null;
}
export type ContrastView = "diff" | "target" | "contrast";

export interface InputBarProps {
  spec: InputSpec;
  targets: TargetsInfo;
  history: HistoryEntry[];
  contrast: ContrastInfo;
  contrastView: ContrastView;
  text: string | null; // the text of the run shown (filled into an untouched box)
  textPair: string | null;
  target: number | null; // target of the run shown
  answer: string | null; // the shown run's answer (an explained answer), else null
  runState: string;
}

export interface InputBarCallbacks {
  onRun(text: string, pair: string | null, target: number | string, generate: number | null): void;
  /** Image models: attribute `file` (null: the shown picture again) for `target`. */
  onImage(file: File | null, target: number | string): void;
  onTargets(text: string, pair: string | null): void;
  onHistory(key: number): void;
  onContrast(target: number | string | null): void;
  onContrastView(v: ContrastView): void;
}

const PRED = "__pred__";
const FREE = "__free__";
const ANSWER = "__answer__"; // causal LMs: explain the answer typed in the answer field
const TEXT_HINT = "Type a sentence and press Enter…";
const ANSWER_HINT = "answer, e.g. “ Paris, a city” (leading space matters)";
const GEN = "__generate__"; // causal LMs: generate N tokens, then explain them

/** Option label: "positive  0.912" / "·Paris  0.231" (token text made visible). */
export function optionLabel(o: TargetOption, kind: string | undefined): string {
  const name = kind === "next-token" ? displayToken(o.label) : o.label;
  return `${truncate(name, 28)}  ${formatValue(o.prob, 3)}`;
}

/** The target to send for a select value + free-entry text: "pred", an id, or the typed token / class name
 * (the typed answer for "answer…"). */
export function chosenTarget(value: string, free: string, answer = ""): number | string {
  if (value === PRED || value === "" || value === GEN) return "pred";
  if (value === ANSWER) return answer.length ? answer : "pred";
  if (value === FREE) {
    const t = free;
    if (/^\s*\d+\s*$/.test(t)) return Number(t);
    return t.length ? t : "pred";
  }
  return Number(value);
}

export class InputBar {
  readonly el: HTMLElement;
  readonly text = h("input", { class: "aa-input-text", type: "text", placeholder: TEXT_HINT, spellcheck: "false", "aria-label": "input text" });
  readonly pair = h("input", { class: "aa-input-pair", type: "text", placeholder: "Second segment (optional)", spellcheck: "false", "aria-label": "second segment" });
  readonly target = h("select", { class: "aa-select aa-target", "aria-label": "target", title: "What to attribute: the predicted class / next token, or another one" });
  readonly free = h("input", { class: "aa-input-free aa-search", type: "text", placeholder: "token or class", spellcheck: "false", "aria-label": "free target" });
  readonly file = h("input", { class: "aa-input-file", type: "file", accept: "image/*", "aria-label": "image file", title: "Choose a picture to attribute" });
  readonly answer = h("input", { class: "aa-input-answer", type: "text", placeholder: ANSWER_HINT, spellcheck: "false", "aria-label": "answer" });
  readonly gen = h("input", { class: "aa-input-gen aa-search", type: "number", min: "1", max: "512", step: "1", value: "8", title: "How many tokens to generate (greedy; stops at end of sequence)", "aria-label": "tokens to generate" });
  readonly runBtn = h("button", { class: "aa-btn aa-run", type: "button", title: "Attribute this input (Enter)" }, "▶ Run");
  readonly history = h("select", { class: "aa-select aa-history", "aria-label": "history", title: "Switch back to an earlier run" });
  readonly contrastSel = h("select", { class: "aa-select aa-contrast", "aria-label": "contrast target", title: "Why this target and not that one? Attribute a second target for the same input" });
  readonly contrastAnswer = h("input", { class: "aa-contrast-answer aa-search", type: "text", placeholder: "other answer B", spellcheck: "false", "aria-label": "contrast answer" });
  readonly contrastBtn = h("button", { class: "aa-btn aa-contrast-run", type: "button", title: "Attribute the contrast target and show the difference map" }, "Contrast");
  readonly contrastNote = h("span", { class: "aa-muted aa-contrast-note" });
  readonly viewButtons: HTMLButtonElement[];
  private touched = false; // the user edited the box: do not overwrite it with the shown run's text
  private answerTouched = false; // the user edited the answer field: do not overwrite it with the shown answer
  private targetTouched = false; // the user picked a target kind: a shown answer does not switch it to "answer…"
  private pendingTargets = 0;
  private lastTargetsKey = "";
  private props: InputBarProps | null = null;

  constructor(private cb: InputBarCallbacks, signal: AbortSignal) {
    const o = { signal };
    const seg = (v: ContrastView, label: string, title: string) => h("button", { class: "aa-seg", type: "button", "data-contrast-view": v, title }, label);
    this.viewButtons = [seg("diff", "A − B", "Attribution of the target minus that of the contrast target"),
      seg("target", "A", "Attribution of the target"), seg("contrast", "B", "Attribution of the contrast target")];
    this.el = h("section", { class: "aa-panel aa-input-bar" },
      h("div", { class: "aa-input-row" }, this.text, this.pair, this.file, h("label", { class: "aa-field" }, "target ", this.target), this.free, this.answer, this.gen, this.runBtn),
      h("div", { class: "aa-input-row aa-input-row2" },
        h("label", { class: "aa-field" }, "history ", this.history),
        h("span", { class: "aa-spacer" }),
        h("label", { class: "aa-field" }, "contrast ", this.contrastSel), this.contrastAnswer, this.contrastBtn,
        h("div", { class: "aa-segmented aa-contrast-views", role: "group", "aria-label": "contrast map" }, ...this.viewButtons),
        this.contrastNote));
    const run = () => {
      const target = chosenTarget(this.target.value, this.free.value, this.answer.value);
      if (this.props?.spec.image) this.cb.onImage(null, target);
      else this.cb.onRun(this.text.value, this.pair.value.trim() ? this.pair.value : null, target,
        this.target.value === GEN ? Math.max(1, Math.floor(Number(this.gen.value) || 1)) : null);
    };
    this.file.addEventListener("change", () => {
      const f = this.file.files?.[0];
      if (f) this.cb.onImage(f, "pred");
    }, o);
    this.runBtn.addEventListener("click", run, o);
    for (const inp of [this.text, this.pair, this.free, this.answer, this.gen]) inp.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        run();
      }
    }, o);
    for (const inp of [this.text, this.pair]) inp.addEventListener("input", () => {
      this.touched = true;
      this.askTargets();
    }, o);
    this.answer.addEventListener("input", () => { this.answerTouched = true; }, o);
    this.target.addEventListener("change", () => {
      this.targetTouched = true;
      this.showTargetFields();
      const f = [this.free, this.answer, this.gen].find((x) => !x.hidden);
      if (f) f.focus();
    }, o);
    this.contrastSel.addEventListener("change", () => {
      this.contrastAnswer.hidden = this.contrastSel.value !== ANSWER;
      if (!this.contrastAnswer.hidden) this.contrastAnswer.focus();
    }, o);
    this.history.addEventListener("change", () => {
      const k = Number(this.history.value);
      if (Number.isFinite(k) && k > 0) {
        this.touched = false;
        this.cb.onHistory(k);
      }
    }, o);
    this.contrastBtn.addEventListener("click", () => {
      const v = this.contrastSel.value;
      this.cb.onContrast(v === "" ? null : v === ANSWER ? (this.contrastAnswer.value || null) : Number(v));
    }, o);
    for (const b of this.viewButtons) b.addEventListener("click", () => this.cb.onContrastView(b.dataset.contrastView as ContrastView), o);
    this.free.hidden = true;
    this.answer.hidden = true;
    this.gen.hidden = true;
    this.contrastAnswer.hidden = true;
  }

  /** The entry field of the chosen target kind: free token / class, answer, or number of tokens to generate. */
  private showTargetFields(): void {
    this.free.hidden = this.target.value !== FREE;
    this.answer.hidden = this.target.value !== ANSWER;
    this.gen.hidden = this.target.value !== GEN;
  }

  /** Ask the kernel for the target options of the text in the box, debounced (300 ms). */
  private askTargets(): void {
    if (this.pendingTargets) clearTimeout(this.pendingTargets);
    this.pendingTargets = setTimeout(() => {
      this.pendingTargets = 0;
      const key = `${this.text.value}\u0001${this.pair.value}`;
      if (key === this.lastTargetsKey || !this.text.value.trim() || this.props?.spec.kind === "answer") return; // encoder–decoders: no list
      this.lastTargetsKey = key;
      this.cb.onTargets(this.text.value, this.pair.value.trim() ? this.pair.value : null);
    }, 300) as unknown as number;
  }

  destroy(): void {
    if (this.pendingTargets) clearTimeout(this.pendingTargets);
  }

  render(p: InputBarProps): void {
    const prev = this.props;
    this.props = p;
    const image = !!p.spec.image;
    this.pair.hidden = !p.spec.pair || image;
    this.text.hidden = image;
    this.file.hidden = !image;
    this.answer.placeholder = p.spec.kind === "answer" ? "answer (the target text, e.g. a translation)" : ANSWER_HINT;
    this.text.placeholder = p.spec.kind === "answer" ? "Type the source and press Enter…" : TEXT_HINT;
    if (!this.touched && p.text !== null && p.text !== undefined && this.text.value !== p.text) {
      this.text.value = p.text;
      this.pair.value = p.textPair ?? "";
    }
    if (!this.answerTouched && p.answer && this.answer.value !== p.answer) this.answer.value = p.answer;
    // target options: from `targets` when they describe the box's text, else the class names
    const t = p.targets;
    const forBox = t.options && t.text === (image ? p.text ?? "" : this.text.value);
    const opts: TargetOption[] = forBox ? t.options! : (p.spec.label_names ?? []).map((label, id) => ({ id, label, prob: NaN }));
    const keep = this.target.value;
    const kind = t.kind ?? p.spec.kind;
    const predName = forBox && t.pred !== undefined ? opts.find((o) => o.id === t.pred)?.label : undefined;
    // an encoder–decoder (kind "answer") explains an answer: typed, or generated
    const children = kind === "answer" ? [h("option", { value: ANSWER }, "answer…"), h("option", { value: GEN }, "generate N tokens…")] : [h("option", { value: PRED }, predName !== undefined ? `predicted (${truncate(kind === "next-token" ? displayToken(predName) : predName, 24)})` : "predicted"),
      ...opts.map((o) => h("option", { value: String(o.id) }, Number.isFinite(o.prob) ? optionLabel(o, kind) : o.label)),
      h("option", { value: FREE }, kind === "next-token" ? "other token…" : "other…"),
      ...(p.spec.answers ? [h("option", { value: ANSWER }, "answer (several tokens)…"), h("option", { value: GEN }, "generate N tokens…")] : [])];
    if (!prev || JSON.stringify(prev.targets) !== JSON.stringify(t) || JSON.stringify(prev.spec) !== JSON.stringify(p.spec) || this.target.options.length !== children.length) {
      this.target.replaceChildren(...children);
      this.target.value = [...this.target.options].some((x) => x.value === keep) ? keep : (kind === "answer" ? ANSWER : PRED);
    }
    // a shown answer: the bar offers it again ("answer…" with its text), unless the user chose otherwise
    if (!this.targetTouched && p.answer !== null && p.answer !== prev?.answer && p.spec.answers) this.target.value = ANSWER;
    this.showTargetFields();
    // history
    const hk = p.history.map((e) => e.key).join(",");
    if (!prev || prev.history.map((e) => e.key).join(",") !== hk) {
      this.history.replaceChildren(h("option", { value: "" }, p.history.length ? `${p.history.length} run${p.history.length > 1 ? "s" : ""}` : "—"),
        ...[...p.history].reverse().map((e) => h("option", { value: String(e.key) },
          `${truncate([e.text, e.text_pair].filter((x) => x).join(" ‖ "), 40)} → ${truncate(e.answer ?? e.target_label, e.answer ? 28 : 16)}${e.prob !== null && Number.isFinite(e.prob) ? ` (${formatValue(e.prob, 2)})` : ""}`)));
    }
    this.history.value = "";
    this.history.disabled = !p.history.length;
    // contrast: other classes / the LM's top tokens of the shown run
    const shownOpts = t.options && t.text === (p.text ?? "") ? t.options : opts;
    const cKeep = this.contrastSel.value;
    // an explained answer is contrasted with another answer (typed), a single target with another class / token
    this.contrastSel.replaceChildren(h("option", { value: "" }, "none"),
      ...(p.answer !== null ? [h("option", { value: ANSWER }, "other answer…")]
        : shownOpts.filter((o) => o.id !== p.target).map((o) => h("option", { value: String(o.id) }, Number.isFinite(o.prob) ? optionLabel(o, kind) : o.label))));
    const c = p.contrast;
    const cur = c.target !== undefined && c.state ? (p.answer !== null ? ANSWER : String(c.target)) : cKeep;
    this.contrastSel.value = [...this.contrastSel.options].some((x) => x.value === cur) ? cur : "";
    this.contrastAnswer.hidden = this.contrastSel.value !== ANSWER;
    const ready = p.runState === "done" && p.spec.kind !== "answer"; // encoder–decoders: no contrast (compare runs in the history)
    this.contrastSel.disabled = !ready;
    this.contrastBtn.disabled = !ready || c.state === "running";
    const on = c.state === "done";
    for (const b of this.viewButtons) {
      b.classList.toggle("aa-on", on && b.dataset.contrastView === p.contrastView);
      b.disabled = !on;
    }
    (this.viewButtons[0].parentElement as HTMLElement).hidden = !on;
    const shared = on && p.answer !== null && c.common !== undefined ? ` · over the ${c.common} tokens both share` : "";
    this.contrastNote.textContent = c.state === "running" ? "computing the contrast…" : c.state === "error" ? (c.error ?? "contrast failed")
      : on ? (p.contrastView === "diff" ? `attribution map: A − B (B = ${truncate(c.target_label ?? "", 20)})${shared}` : p.contrastView === "contrast" ? `attribution map: B = ${truncate(c.target_label ?? "", 20)}${shared}` : "attribution map: A") : "";
  }
}

/** The head payload the heatmaps draw under the contrast view: the target's map (A), the contrast's (B) or A − B. */
let memo: { p: HeadPayload; view: ContrastView; out: HeadPayload } | null = null;
export function contrastPayload(p: HeadPayload | null, view: ContrastView, contrastDone: boolean): HeadPayload | null {
  if (p && memo && memo.p === p && memo.view === view && contrastDone) return memo.out;
  const out = contrastPayloadUncached(p, view, contrastDone);
  if (p && out) memo = { p, view, out };
  return out;
}

function contrastPayloadUncached(p: HeadPayload | null, view: ContrastView, contrastDone: boolean): HeadPayload | null {
  const c = (p as (HeadPayload & { contrast?: EncodedArray }) | null)?.contrast;
  if (!p || !c || !contrastDone || view === "target") return p;
  const b = decodeArray(c);
  if (!b) return p;
  if (view === "contrast") return { ...p, attribution: { dtype: "float32", shape: b.shape, view: b.data } };
  const a = decodeArray(p.attribution);
  if (!a || a.data.length !== b.data.length) return p;
  const d = new Float32Array(a.data.length);
  for (let i = 0; i < d.length; i++) d[i] = a.data[i] - b.data[i];
  return { ...p, attribution: { dtype: "float32", shape: a.shape, view: d } };
}
