// Header of a dataset-level view (HeadsView, TriggersView): title, a line of what runs, the run-state badge, a
// progress bar with free text ("attattr 12 / 200 examples · ETA 40 s"), Stop, and the error box (text only).
import { h, truncate } from "./dom";
import type { RunProgress, ViewState } from "./protocol";

const STATE_LABEL: Record<ViewState, string> = { empty: "not started", running: "running", done: "done", cancelled: "stopped (partial)", error: "error" };

export interface RunHeaderProps {
  title: string;
  subtitle: string;
  state: ViewState;
  error: string;
  errorDetail?: string;
  fraction: number; // progress in [0, 1]
  text: string; // progress text
}

/** "12 / 200 · ETA 40 s" (ETA from the kernel's running estimate). */
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

export class RunHeader {
  readonly el: HTMLElement;
  readonly errorBox = h("div", { class: "aa-error", role: "alert" });
  readonly stopBtn = h("button", { class: "attattr-stop aa-btn aa-btn-danger", type: "button", title: "Stop: keep everything computed so far" }, "■ Stop");
  stopping = false;
  private title = h("div", { class: "aa-title" });
  private subtitle = h("div", { class: "aa-subtitle" });
  private badge = h("span", { class: "aa-badge" });
  private bar = h("div", { class: "aa-progress-bar" });
  private progress = h("div", { class: "aa-progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 }, this.bar);
  private ptext = h("span", { class: "aa-progress-text" });

  /** `onStop` returns whether a cancel was sent. */
  constructor(onStop: () => boolean, signal: AbortSignal) {
    this.el = h("div", { class: "aa-header" },
      h("div", { class: "aa-heading" }, this.title, this.subtitle),
      h("div", { class: "aa-status" }, this.badge, this.progress, this.ptext, this.stopBtn));
    this.stopBtn.addEventListener("click", () => {
      if (onStop()) this.stopping = true;
    }, { signal });
  }

  render(p: RunHeaderProps): void {
    if (p.state !== "running") this.stopping = false;
    this.title.textContent = p.title;
    this.subtitle.replaceChildren(p.subtitle ? h("span", { class: "aa-text", title: p.subtitle }, truncate(p.subtitle, 180)) : "");
    this.badge.textContent = this.stopping && p.state === "running" ? "stopping…" : STATE_LABEL[p.state] ?? p.state;
    this.badge.dataset.state = p.state;
    const f = Math.max(0, Math.min(1, p.state === "done" ? 1 : p.fraction));
    this.bar.style.width = `${f * 100}%`;
    this.progress.setAttribute("aria-valuenow", String(Math.round(f * 100)));
    this.progress.dataset.state = p.state;
    this.ptext.textContent = p.text;
    this.stopBtn.hidden = p.state !== "running";
    this.stopBtn.disabled = p.state !== "running" || this.stopping;
    this.errorBox.replaceChildren();
    const show = p.state === "error" && !!p.error;
    if (show) {
      this.errorBox.append(h("strong", {}, "Failed: "), p.error);
      if (p.errorDetail) this.errorBox.append(h("details", {}, h("summary", {}, "details"), h("pre", {}, p.errorDetail)));
    }
    this.errorBox.hidden = !show;
  }
}
