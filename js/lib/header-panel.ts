// Header of a run view: title, what is attributed (target, probability, rule), the input text, the run state
// badge, layer progress, the Stop button, and the error box (engine errors shown as text).
import { formatValue } from "./color";
import { h, truncate } from "./dom";
import type { ExplorerMeta, RunState } from "./protocol";

const STATE_LABEL: Record<RunState, string> = { empty: "no input yet", running: "running", done: "done", cancelled: "stopped", error: "error" };

export interface HeaderProps {
  meta: ExplorerMeta;
  state: RunState;
  error: string;
  done: number; // layers finished
  total: number; // layers in the run (0 = unknown)
}

/** "target: positive" / "next token: Paris" chip text, or null when no target is known yet. */
export function targetText(meta: ExplorerMeta): string | null {
  if (!(meta.target_label || meta.target !== undefined)) return null;
  const lbl = meta.target_label || (meta.label_names && meta.target !== undefined ? meta.label_names[meta.target] : "") || `class ${meta.target}`;
  return `${meta.target_kind === "next-token" ? "next token" : "target"}: ${lbl}`;
}

export class HeaderPanel {
  readonly el: HTMLElement;
  readonly errorBox = h("div", { class: "aa-error", role: "alert" });
  readonly stopBtn = h("button", { class: "attattr-stop aa-btn aa-btn-danger", type: "button", title: "Stop the attribution run" }, "■ Stop");
  /** True from a Stop click until the run leaves "running". */
  stopping = false;
  private title = h("div", { class: "aa-title" });
  private subtitle = h("div", { class: "aa-subtitle" });
  private badge = h("span", { class: "aa-badge" });
  private progressBar = h("div", { class: "aa-progress-bar" });
  private progress = h("div", { class: "aa-progress", role: "progressbar", "aria-valuemin": 0 }, this.progressBar);
  private progressText = h("span", { class: "aa-progress-text" });

  /** `onStop` is called on a Stop click and returns whether a cancel was sent (then the badge says "stopping…"). */
  constructor(onStop: () => boolean, signal: AbortSignal, private defaultTitle = "AttAttr explorer") {
    this.el = h("div", { class: "aa-header" },
      h("div", { class: "aa-heading" }, this.title, this.subtitle),
      h("div", { class: "aa-status" }, this.badge, this.progress, this.progressText, this.stopBtn),
    );
    this.stopBtn.addEventListener("click", () => {
      if (onStop()) this.stopping = true;
    }, { signal });
  }

  render(p: HeaderProps): void {
    const { meta, state } = p;
    if (state !== "running") this.stopping = false;
    this.title.textContent = meta.model_name ? `AttAttr · ${meta.model_name}` : this.defaultTitle;
    const parts: string[] = [];
    const target = targetText(meta);
    if (target) parts.push(target);
    if (meta.prob !== undefined && meta.prob !== null) parts.push(`p = ${formatValue(meta.prob, 3)}`);
    if (meta.rule) parts.push(`${meta.rule}${meta.steps ? `, ${meta.steps} steps` : ""}`);
    const text = [meta.text, meta.text_pair].filter((x) => x).join("  ‖  ");
    this.subtitle.replaceChildren(
      parts.length ? h("span", { class: "aa-chip" }, parts.join(" · ")) : "",
      text ? h("span", { class: "aa-text", title: text }, truncate(text, 160)) : "",
    );
    const nonfinite = meta.nonfinite ?? [];
    const warn = nonfinite.length > 0 && state !== "error";
    this.badge.textContent = this.stopping && state === "running" ? "stopping…" : warn && state !== "running" ? "NaN/inf in results" : STATE_LABEL[state] ?? state;
    this.badge.dataset.state = state;
    if (warn) this.badge.dataset.warn = "nonfinite";
    else delete this.badge.dataset.warn;
    const { done, total } = p;
    const frac = total ? Math.min(1, done / total) : 0;
    this.progressBar.style.width = `${(state === "done" ? 1 : frac) * 100}%`;
    this.progress.setAttribute("aria-valuemax", String(total));
    this.progress.setAttribute("aria-valuenow", String(done));
    this.progress.dataset.state = state;
    this.progressText.textContent = state === "running" ? (total ? `layer ${done} / ${total}` : "starting…") : state === "empty" ? "" : total ? `${done} / ${total} layers` : "";
    this.stopBtn.disabled = state !== "running" || this.stopping;
    this.stopBtn.hidden = state !== "running";
    const err = p.error;
    this.errorBox.replaceChildren();
    if (state === "error" && err) {
      this.errorBox.append(h("strong", {}, "Attribution failed: "), err);
      if (meta.error_detail) this.errorBox.append(h("details", {}, h("summary", {}, "details"), h("pre", {}, meta.error_detail)));
    } else if (warn) {
      this.errorBox.append(h("strong", {}, "Warning: "),
        `NaN or infinite values in layer${nonfinite.length > 1 ? "s" : ""} ${nonfinite.join(", ")} — those maps are not meaningful ` +
        "(half precision overflow or a degenerate input); rerun in float32 (precision=\"fp32\") or with another input.");
    }
    this.errorBox.dataset.kind = warn ? "warning" : "error";
    this.errorBox.hidden = !((state === "error" && err) || warn);
  }
}
