// Colour legends as small SVGs (exportable, crisp), ticks from niceTicks.
import { colorOf, cssRGB, formatValue, niceTicks, type Scale, type Theme } from "./color";
import { s } from "./dom";

let GID = 0;

export function legendTicks(scale: Scale, count = 5): number[] {
  const t = niceTicks(scale.lo, scale.hi, count);
  return t.filter((v) => v >= scale.lo - 1e-12 && v <= scale.hi + 1e-12);
}

/** Horizontal colour bar with ticks and an optional caption. */
export function legendSvg(scale: Scale, theme: Theme, opts: { width?: number; caption?: string; fg?: string } = {}): SVGElement {
  const width = opts.width ?? 200, barH = 9, pad = 6;
  const fg = opts.fg ?? cssRGB(theme.fg);
  const id = `aa-grad-${++GID}`;
  const stops: SVGElement[] = [];
  for (let i = 0; i <= 16; i++) {
    const v = scale.lo + ((scale.hi - scale.lo) * i) / 16;
    stops.push(s("stop", { offset: `${(i / 16) * 100}%`, "stop-color": cssRGB(colorOf(v, scale, theme)) }));
  }
  const ticks = legendTicks(scale, Math.max(3, Math.min(7, Math.floor(width / 45))));
  const x = (v: number) => pad + ((v - scale.lo) / (scale.hi - scale.lo || 1)) * (width - 2 * pad);
  const top = opts.caption ? 14 : 2;
  const svg = s("svg", { width, height: top + barH + 16, viewBox: `0 0 ${width} ${top + barH + 16}`, class: "aa-legend", role: "img" },
    s("defs", {}, s("linearGradient", { id, x1: "0", x2: "1", y1: "0", y2: "0" }, ...stops)),
    opts.caption ? s("text", { x: pad, y: 10, "font-size": 10, fill: fg, "fill-opacity": 0.75 }, opts.caption) : null,
    s("rect", { x: pad, y: top, width: width - 2 * pad, height: barH, fill: `url(#${id})`, stroke: fg, "stroke-opacity": 0.25, rx: 2 }),
  );
  for (const v of ticks) {
    svg.appendChild(s("line", { x1: x(v), x2: x(v), y1: top + barH, y2: top + barH + 3, stroke: fg, "stroke-opacity": 0.6 }));
    svg.appendChild(s("text", { x: x(v), y: top + barH + 13, "font-size": 9.5, "text-anchor": "middle", fill: fg, "fill-opacity": 0.8 }, formatValue(v, 2)));
  }
  return svg;
}
