// Colour legends as small SVGs (exportable, crisp), ticks from niceTicks.
import { cssRGB, diverging, formatValue, gammaValue, niceTicks, sequential, type Scale, type Theme } from "./color";
import { s } from "./dom";

let GID = 0;

/** Nice ticks inside the domain; asks for more candidates until at least 3 fall inside (both ends + 0). */
export function legendTicks(scale: Scale, count = 5): number[] {
  let best: number[] = [];
  for (let c = Math.max(3, count); c <= count + 6; c++) {
    const eps = (scale.hi - scale.lo) * 1e-9;
    best = niceTicks(scale.lo, scale.hi, c).filter((v) => v >= scale.lo - eps && v <= scale.hi + eps);
    if (best.length >= 3) break;
  }
  return best;
}

/** Horizontal colour bar with ticks and an optional caption. */
export function legendSvg(scale: Scale, theme: Theme, opts: { width?: number; caption?: string; fg?: string; gamma?: number } = {}): SVGElement {
  const g = opts.gamma ?? 1;
  const width = opts.width ?? 200, barH = 9, pad = 6;
  const fg = opts.fg ?? cssRGB(theme.fg);
  const id = `aa-grad-${++GID}`;
  const stops: SVGElement[] = [];
  for (let i = 0; i <= 16; i++) {
    const u = i / 16; // position along the bar = position in the (transformed) colour scale
    const c = scale.kind === "diverging" ? diverging(u * 2 - 1, theme) : sequential(u, theme);
    stops.push(s("stop", { offset: `${u * 100}%`, "stop-color": cssRGB(c) }));
  }
  const ticks = legendTicks(scale, Math.max(3, Math.min(7, Math.floor(width / 45))));
  const T = (v: number) => gammaValue(v, g);
  const x = (v: number) => pad + ((T(v) - T(scale.lo)) / (T(scale.hi) - T(scale.lo) || 1)) * (width - 2 * pad);
  const top = opts.caption ? 14 : 2;
  const svg = s("svg", { width, height: top + barH + 16, viewBox: `0 0 ${width} ${top + barH + 16}`, class: "aa-legend", role: "img", "font-family": "system-ui, -apple-system, 'Segoe UI', sans-serif" },
    s("defs", {}, s("linearGradient", { id, x1: "0", x2: "1", y1: "0", y2: "0" }, ...stops)),
    opts.caption ? s("text", { x: pad, y: 10, "font-size": 10, fill: fg, "fill-opacity": 0.75 }, opts.caption) : null,
    s("rect", { x: pad, y: top, width: width - 2 * pad, height: barH, fill: `url(#${id})`, stroke: fg, "stroke-opacity": 0.25, rx: 2 }),
  );
  let lastX = -Infinity;
  for (const v of ticks) {
    if (x(v) - lastX < 26) continue; // √ scale squeezes ticks near 0
    lastX = x(v);
    svg.appendChild(s("line", { x1: x(v), x2: x(v), y1: top + barH, y2: top + barH + 3, stroke: fg, "stroke-opacity": 0.6 }));
    svg.appendChild(s("text", { x: x(v), y: top + barH + 13, "font-size": 9.5, "text-anchor": "middle", fill: fg, "fill-opacity": 0.8 }, formatValue(v, 2)));
  }
  return svg;
}
