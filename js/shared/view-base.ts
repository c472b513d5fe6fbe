// The base of the four views: the root element, one AbortController for every listener, trait subscriptions
// (model.on / off), a ResizeObserver on the root's width, the host theme, kernel commands, and frame scheduling
// (`schedule()` coalesces redraws into one `flush()` per animation frame; `flush()` re-reads the theme once the host
// attached the view, then calls the subclass's `draw()`). Subclasses build their panels, then call `flush()` once at
// the end of their constructor.
import type { AnyModel } from "@anywidget/types";
import { Commands, type Invoke } from "./commands";
import { h, nextFrame } from "./dom";
import { Header, type HeaderOptions } from "./header";
import { ThemeWatcher } from "./theme";

export abstract class ViewBase<T extends Record<string, any>> {
  readonly root: HTMLDivElement;
  readonly theme: ThemeWatcher;
  protected readonly ac = new AbortController();
  protected readonly commands: Commands;
  protected renders = 0;
  private raf = 0;
  private cleanups: (() => void)[] = [];

  /** `rootClass`: "attattr-explorer" etc.; `invoke`: the host's `experimental.invoke` (absent in unit tests). */
  constructor(protected readonly model: AnyModel<T>, el: HTMLElement, rootClass: string, invoke?: Invoke) {
    this.root = h("div", { class: `attattr-root ${rootClass}`, "data-state": "empty" });
    el.appendChild(this.root);
    this.commands = new Commands(model as AnyModel, invoke, this.ac.signal);
    this.theme = new ThemeWatcher(this.root, () => this.themeChanged(), this.ac.signal);
  }

  protected get signal(): AbortSignal {
    return this.ac.signal;
  }

  /** Draw what is due now (tests call it directly). */
  flush(): void {
    if (this.ac.signal.aborted) return;
    // hosts call render() before attaching the view: the first draw after attachment re-reads the colours
    this.draw(this.theme.ensure());
  }

  /** The view's drawing; `themeReread`: the colours were just re-read (everything must be redrawn). */
  protected abstract draw(themeReread: boolean): void;

  /** The host theme changed: redraw (subclasses drop cached colours first). */
  protected themeChanged(): void {
    this.schedule();
  }

  /** One `flush()` on the next animation frame, however many calls before it. */
  schedule(): void {
    if (this.raf || this.ac.signal.aborted) return;
    this.raf = nextFrame(() => {
      this.raf = 0;
      this.flush();
    });
  }

  /** Call `cb` on every change of these traits (removed on destroy). */
  protected onTraits(traits: readonly string[], cb: () => void): void {
    for (const t of traits) this.onEvent(`change:${t}`, cb);
  }

  /** Call `cb` on a model event (removed on destroy). */
  protected onEvent(ev: string, cb: (...args: any[]) => void): void {
    this.model.on(ev, cb);
    this.cleanups.push(() => this.model.off(ev, cb));
  }

  /** Call `cb` when the root's width changes by more than `minDelta` px (and once it is first laid out). */
  protected onResize(cb: () => void, minDelta = 4): void {
    if (typeof ResizeObserver === "undefined") return;
    let last = 0;
    const ro = new ResizeObserver(() => {
      const w = this.root.clientWidth;
      if (!w) last = 0; // hidden / detached: redraw once laid out again
      else if (Math.abs(w - last) > minDelta) {
        last = w;
        cb();
      }
    });
    ro.observe(this.root);
    this.cleanups.push(() => ro.disconnect());
  }

  /** Run `fn` on destroy. */
  protected onDestroy(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** The header of a view with a run: its Stop sends `_cmd_cancel` for the current run, then `redraw()`. */
  protected runHeader(options: HeaderOptions, redraw: () => void = () => this.schedule()): Header {
    const m = this.model as AnyModel;
    return new Header(() => {
      if (m.get("state") !== "running") return false;
      void this.commands.call("_cmd_cancel", { run_id: m.get("run_id") });
      redraw();
      return true;
    }, this.signal, options);
  }

  /** Set a front-end owned trait, sync it to the kernel, redraw. */
  protected setTrait<K extends keyof T & string>(k: K, v: T[K]): void {
    this.model.set(k, v);
    this.model.save_changes();
    this.schedule();
  }

  destroy(): void {
    this.ac.abort();
    if (this.raf) {
      (typeof cancelAnimationFrame === "function" ? cancelAnimationFrame : clearTimeout)(this.raf);
      this.raf = 0;
    }
    for (const c of this.cleanups.splice(0)) c();
    this.theme.destroy();
    this.root.remove();
  }
}
