// The one header of every view with a run (Explorer, HeadsView, TriggersView): title, an optional chip (what is
// attributed), a line of text (the input, or what runs), the run-state badge, a progress bar with free text, the
// Stop button, and the error box (engine errors and warnings shown as text only).
import { h, truncate } from "./dom";
import type { RunProgress, RunState } from "./protocol";

export interface HeaderWarning {
  badge: string; // shown instead of the state label once the run is not running
  tag: string; // the badge's data-warn
  message: string;
}

export interface HeaderProps {
  title: string;
  chip?: string | null;
  subtitle: string;
  state: RunState;
  error: string;
  errorDetail?: string;
  /** `fraction` in [0, 1] draws the bar; `now` / `max` go to aria-valuenow / aria-valuemax; `text` beside it. */
  progress: { fraction: number; now: number; max: number; text: string };
  /** Results that finished but are not meaningful (NaN/inf): a warning badge + message instead of "done". */
  warning?: HeaderWarning | null;
}

export interface HeaderOptions {
  labels: Record<RunState, string>; // badge text per state
  stopTitle: string;
  errorPrefix: string; // "Attribution failed: "
  subtitleMax: number; // characters of the subtitle shown (the full text is its title)
}

/** "12 / 200 examples · ETA 40 s" (ETA from the kernel's running estimate). */
export function progressText(p: RunProgress | undefined, unit: string): string {
  if (!p) return "";
  const eta = p.eta_s !== null && p.eta_s !== undefined && p.done < p.total ? ` · ETA ${formatSeconds(p.eta_s)}` : "";
  return `${p.done} / ${p.total} ${unit}${eta}`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.max(0, Math.round(s))} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export class Header {
  readonly el: HTMLElement;
  readonly errorBox = h("div", { class: "aa-error", role: "alert" });
  readonly stopBtn: HTMLButtonElement;
  /** True from a Stop click until the run leaves "running". */
  stopping = false;
  private title = h("div", { class: "aa-title" });
  private subtitle = h("div", { class: "aa-subtitle" });
  private badge = h("span", { class: "aa-badge" });
  private bar = h("div", { class: "aa-progress-bar" });
  private progress = h("div", { class: "aa-progress", role: "progressbar", "aria-valuemin": 0 }, this.bar);
  private ptext = h("span", { class: "aa-progress-text" });

  /** `onStop` is called on a Stop click and returns whether a cancel was sent (then the badge says "stopping…"). */
  constructor(onStop: () => boolean, signal: AbortSignal, private options: HeaderOptions) {
    this.stopBtn = h("button", { class: "attattr-stop aa-btn aa-btn-danger", type: "button", title: options.stopTitle }, "■ Stop");
    this.el = h("div", { class: "aa-header" },
      h("div", { class: "aa-heading" }, this.title, this.subtitle),
      h("div", { class: "aa-status" }, this.badge, this.progress, this.ptext, this.stopBtn));
    this.stopBtn.addEventListener("click", () => {
      if (onStop()) this.stopping = true;
    }, { signal });
  }

  render(p: HeaderProps): void {
    const { state } = p;
    if (state !== "running") this.stopping = false;
    this.title.textContent = p.title;
    this.subtitle.replaceChildren(
      p.chip ? h("span", { class: "aa-chip" }, p.chip) : "",
      p.subtitle ? h("span", { class: "aa-text", title: p.subtitle }, truncate(p.subtitle, this.options.subtitleMax)) : "",
    );
    const warn = p.warning && state !== "error" ? p.warning : null;
    this.badge.textContent = this.stopping && state === "running" ? "stopping…"
      : warn && state !== "running" ? warn.badge : this.options.labels[state] ?? state;
    this.badge.dataset.state = state;
    if (warn) this.badge.dataset.warn = warn.tag;
    else delete this.badge.dataset.warn;
    const f = Math.max(0, Math.min(1, state === "done" ? 1 : p.progress.fraction));
    this.bar.style.width = `${f * 100}%`;
    this.progress.setAttribute("aria-valuemax", String(p.progress.max));
    this.progress.setAttribute("aria-valuenow", String(p.progress.now));
    this.progress.dataset.state = state;
    this.ptext.textContent = p.progress.text;
    this.stopBtn.hidden = state !== "running";
    this.stopBtn.disabled = state !== "running" || this.stopping;
    this.errorBox.replaceChildren();
    const failed = state === "error" && !!p.error;
    if (failed) {
      this.errorBox.append(h("strong", {}, this.options.errorPrefix), p.error);
      if (p.errorDetail) this.errorBox.append(h("details", {}, h("summary", {}, "details"), h("pre", {}, p.errorDetail)));
    } else if (warn) {
      this.errorBox.append(h("strong", {}, "Warning: "), warn.message);
    }
    this.errorBox.dataset.kind = warn ? "warning" : "error";
    this.errorBox.hidden = !(failed || warn);
  }
}

/** Header of the dataset-level views (HeadsView, TriggersView). */
export const DATASET_HEADER: HeaderOptions = {
  labels: { empty: "not started", running: "running", done: "done", cancelled: "stopped (partial)", error: "error" },
  stopTitle: "Stop: keep everything computed so far", errorPrefix: "Failed: ", subtitleMax: 180,
};

/** Progress of the dataset-level views in percent (aria-valuenow 0–100). */
export function percentProgress(fraction: number, state: RunState, text: string): HeaderProps["progress"] {
  const f = Math.max(0, Math.min(1, state === "done" ? 1 : fraction));
  return { fraction: f, now: Math.round(f * 100), max: 100, text };
}
