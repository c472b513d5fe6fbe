// One floating tooltip per view, positioned next to the pointer inside the view's root. Lines are text or
// elements built with h() (never HTML strings).
import { h } from "./dom";

export type TipLine = string | HTMLElement;

export class Tooltip {
  readonly el = h("div", { class: "aa-tip", role: "tooltip", hidden: true });

  /** `root` is the positioned ancestor the tooltip is placed in (append `el` to it). */
  constructor(private root: HTMLElement) {}

  /** Show `lines` (one per row) 14 px below-right of the pointer, flipped left near the right edge. */
  show(e: MouseEvent, lines: TipLine[]): void {
    this.el.replaceChildren(...lines.flatMap((l, i) => (i ? [h("br"), l] : [l])));
    const r = this.root.getBoundingClientRect();
    let x = e.clientX - r.left + 14;
    const y = e.clientY - r.top + 14;
    if (x + 260 > r.width) x = Math.max(0, x - 280);
    this.el.style.left = `${x}px`;
    this.el.style.top = `${y}px`;
    this.el.hidden = false;
  }

  hide(): void {
    this.el.hidden = true;
  }
}
