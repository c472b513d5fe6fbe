// Image export of the panels: the SVG / PNG download buttons and PNG composition of canvases with their legends
// on the theme background. Vector (SVG) builders live with the panel that knows the geometry.
import { cssRGB, type Theme } from "./color";
import { ctx2d, drawSvg, h } from "./dom";

/** The "⤓ SVG" / "⤓ PNG" button pair (`button[data-download=svg|png]`). */
export function downloadButtons(onSvg: () => void, onPng: () => void | Promise<void>, signal: AbortSignal): HTMLElement {
  const svg = h("button", { class: "aa-btn aa-dl", type: "button", "data-download": "svg", title: "Download as SVG" }, "⤓ SVG");
  const png = h("button", { class: "aa-btn aa-dl", type: "button", "data-download": "png", title: "Download as PNG" }, "⤓ PNG");
  svg.addEventListener("click", () => onSvg(), { signal });
  png.addEventListener("click", () => void onPng(), { signal });
  return h("div", { class: "aa-dl-group" }, svg, png);
}

/** Canvases side by side (device pixels), each with its legend SVG underneath, on the theme background. */
export async function composite(theme: Theme, canvases: HTMLCanvasElement[], legends: (SVGElement | null)[] = [], title?: string): Promise<HTMLCanvasElement> {
  const dpr = canvases[0].width / (parseFloat(canvases[0].style.width) || canvases[0].width);
  const pad = Math.round(12 * dpr), top = title ? Math.round(28 * dpr) : pad;
  const legH = legends.some((l) => l) ? Math.round(44 * dpr) : 0;
  const W = canvases.reduce((a, c) => a + c.width, 0) + pad * (canvases.length + 1);
  const H = Math.max(...canvases.map((c) => c.height)) + top + legH + pad;
  const out = document.createElement("canvas");
  out.width = W;
  out.height = H;
  const ctx = ctx2d(out);
  if (!ctx) return out;
  ctx.fillStyle = cssRGB(theme.bg);
  ctx.fillRect(0, 0, W, H);
  if (title) {
    ctx.fillStyle = cssRGB(theme.fg);
    ctx.font = `600 ${Math.round(13 * dpr)}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    ctx.fillText(title, pad, top / 2 + 2);
  }
  let x = pad;
  const ch = Math.max(...canvases.map((c) => c.height));
  for (let i = 0; i < canvases.length; i++) {
    const c = canvases[i];
    ctx.drawImage(c, x, top);
    const leg = legends[i];
    if (leg) {
      const lw = Number(leg.getAttribute("width")) || 200, lh = Number(leg.getAttribute("height")) || 30;
      await drawSvg(ctx, leg, x + 4 * dpr, top + ch + 6 * dpr, lw * dpr, lh * dpr);
    }
    x += c.width + pad;
  }
  return out;
}
