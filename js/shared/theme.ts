// Theme: the widget's resolved background / foreground colours and the canvas LUTs built around them, so 0
// paints as the widget background. Watches the host page (JupyterLab / VS Code / marimo theme attributes,
// prefers-color-scheme) and calls back when the resolved colours change.
import { makeLUT, makeTheme, parseColor, type Theme } from "./color";

/** Theme from the element's resolved colours (JupyterLab variables, VS Code, Colab, marimo or fallbacks). */
export function readTheme(el: Element): Theme {
  if (typeof getComputedStyle !== "function") return makeTheme(null, null);
  let bg = null;
  for (let e: Element | null = el; e && !bg; e = e.parentElement) bg = parseColor(getComputedStyle(e).backgroundColor);
  if (!bg && typeof document !== "undefined" && document.body) bg = parseColor(getComputedStyle(document.body).backgroundColor);
  const fg = parseColor(getComputedStyle(el).color);
  return makeTheme(bg, fg);
}

export class ThemeWatcher {
  theme: Theme;
  /** 256-entry diverging (signed attribution) and sequential (attention) LUTs for the current theme. */
  lutDiv: Uint32Array;
  lutSeq: Uint32Array;
  private cleanups: (() => void)[] = [];
  /** Whether the last read saw the element in the page (a detached element has no resolved colours). */
  private attached: boolean;

  /**
   * Reads the theme of `el` now; `onChange` runs after a re-read found different colours. Hosts such as
   * JupyterLab and Notebook 7 call render() before the view is attached: the first read then falls back to the
   * page body's colour (the shell's grey, not the widget's background), so views call ensure() before each draw
   * and the first draw after attachment re-reads.
   */
  constructor(private el: Element, private onChange: () => void, signal: AbortSignal) {
    this.attached = el.isConnected;
    this.theme = readTheme(el);
    this.lutDiv = makeLUT("diverging", this.theme);
    this.lutSeq = makeLUT("sequential", this.theme);
    if (typeof MutationObserver !== "undefined" && typeof document !== "undefined" && document.body) {
      const mo = new MutationObserver(() => this.refresh());
      mo.observe(document.body, { attributes: true, attributeFilter: ["class", "data-jp-theme-light", "data-theme", "style"] });
      this.cleanups.push(() => mo.disconnect());
    }
    if (typeof matchMedia === "function") {
      const mq = matchMedia("(prefers-color-scheme: dark)");
      mq.addEventListener?.("change", () => this.refresh(), { signal });
    }
  }

  /** Re-read when the last read was made before the element was attached; returns whether the theme changed. */
  ensure(): boolean {
    if (this.attached || !this.el.isConnected) return false;
    return this.refresh();
  }

  /** Re-read the resolved colours; rebuilds the LUTs and calls onChange when they differ. Returns whether they did. */
  refresh(): boolean {
    this.attached = this.el.isConnected;
    const t = readTheme(this.el);
    if (JSON.stringify(t) === JSON.stringify(this.theme)) return false;
    this.theme = t;
    this.lutDiv = makeLUT("diverging", t);
    this.lutSeq = makeLUT("sequential", t);
    this.onChange();
    return true;
  }

  destroy(): void {
    for (const c of this.cleanups.splice(0)) c();
  }
}
