// The attribution tree drawn on the picture of an image attribution: edges between patch centres (parent → child,
// width and colour by score, as in the layered tree), tokens that are not patches ([CLS], DeiT's [DIST]) as nodes
// in a band above the picture. Same `data-edge` keys as the layered tree, so the view's click / hover handlers
// serve both.
import { cssRGB, diverging, formatValue, type Theme } from "../shared/color";
import { displayToken, s, truncate } from "../shared/dom";
import { fitImage, patchCentre, pictureDataUrl, tokenPatch, type ImageInfo } from "../shared/image";
import type { TreeDict } from "../shared/protocol";

export interface TreeImageOptions {
  theme: Theme;
  selected: string; // selected edge key ("parent,child,layer"), "" = none
  side: number; // the picture's largest side in CSS pixels
}

const BAND = 34; // height of the band of non-patch tokens above the picture

/** Where token `t` is drawn: its patch centre, or a slot in the band above the picture (non-patch tokens). */
export function tokenPoint(info: ImageInfo, t: number, box: { x0: number; y0: number; width: number; height: number }): [number, number] {
  const p = tokenPatch(info, t);
  if (p >= 0) return patchCentre(box, info, p);
  const k = Math.max(1, info.first);
  const slot = t < info.first ? t : k - 1;
  return [box.x0 + ((slot + 0.5) * box.width) / k, box.y0 - BAND / 2];
}

export function treeImageSvg(t: TreeDict, info: ImageInfo, o: TreeImageOptions): SVGElement {
  const pad = 8;
  const fit = fitImage(info, o.side, o.side);
  const box = { x0: pad, y0: pad + BAND, width: fit.width, height: fit.height };
  const W = box.width + 2 * pad, H = box.height + BAND + 2 * pad;
  const theme = o.theme, fg = cssRGB(theme.fg), bg = cssRGB(theme.bg);
  const hot = theme.dark ? "#ffd54a" : "#e65100";
  const svg = s("svg", { class: "aa-tree-image-svg", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "font-family": "system-ui, -apple-system, 'Segoe UI', sans-serif" });
  svg.appendChild(s("rect", { width: W, height: H, fill: bg }));
  const url = pictureDataUrl(info);
  if (url) svg.appendChild(s("image", { href: url, x: box.x0, y: box.y0, width: box.width, height: box.height, preserveAspectRatio: "none", style: "image-rendering: pixelated" }));
  svg.appendChild(s("rect", { x: box.x0 - 0.5, y: box.y0 - 0.5, width: box.width + 1, height: box.height + 1, fill: "none", stroke: fg, "stroke-opacity": 0.35 }));
  const maxScore = Math.max(1e-9, ...t.edges.map((e) => Math.abs(e.score)));
  const edges = s("g", { class: "aa-edges" });
  for (const e of [...t.edges].sort((a, b) => Math.abs(a.score) - Math.abs(b.score))) {
    const [x1, y1] = tokenPoint(info, e.parent, box), [x2, y2] = tokenPoint(info, e.child, box);
    // a slight bend, so that an edge and its reverse (or collinear edges) stay apart
    const mx = (x1 + x2) / 2 - (y2 - y1) * 0.15, my = (y1 + y2) / 2 + (x2 - x1) * 0.15;
    const d = `M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`;
    const rel = Math.abs(e.score) / maxScore;
    const key = `${e.parent},${e.child},${e.layer}`;
    const isSel = key === o.selected;
    const color = isSel ? hot : cssRGB(diverging(0.45 + 0.55 * rel, theme));
    edges.appendChild(s("g", { class: `aa-edge${isSel ? " aa-hot" : ""}`, "data-edge": key },
      s("path", { d, class: "aa-edge-hit" }),
      s("path", { d, class: "aa-edge-line", fill: "none", stroke: color, "stroke-width": (1.2 + 3.3 * rel).toFixed(2), "stroke-opacity": isSel ? 1 : 0.7 + 0.3 * rel, "stroke-linecap": "round" }),
      s("circle", { cx: x2, cy: y2, r: 2.2, fill: color }),
      s("title", {}, `${displayToken(t.tokens[e.parent] ?? String(e.parent))} (#${e.parent}) → ${displayToken(t.tokens[e.child] ?? String(e.child))} (#${e.child}) · layer ${e.layer} · ${formatValue(e.score, 3)}`)));
  }
  svg.appendChild(edges);
  const nodes = s("g", { class: "aa-nodes" });
  const seen = new Set<number>();
  const node = (index: number, isRoot: boolean) => {
    if (seen.has(index)) return;
    seen.add(index);
    const [x, y] = tokenPoint(info, index, box);
    const patch = tokenPatch(info, index) >= 0;
    const g = s("g", { class: "aa-node", "data-node": index, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` },
      s("circle", { r: isRoot ? 5.5 : 3.5, fill: isRoot ? hot : bg, stroke: isRoot ? hot : fg, "stroke-width": 1.4 }));
    if (!patch) g.appendChild(s("text", { x: 9, y: 4, "font-size": 11, fill: fg, "paint-order": "stroke", stroke: bg, "stroke-width": 3 }, truncate(displayToken(t.tokens[index] ?? ""), 10)));
    g.appendChild(s("title", {}, `${t.tokens[index] ?? index} (#${index})`));
    nodes.appendChild(g);
  };
  if (t.root !== null) node(t.root, true);
  for (const n of t.nodes) node(n.index, n.index === t.root);
  for (const e of t.edges) {
    node(e.parent, e.parent === t.root);
    node(e.child, e.child === t.root);
  }
  svg.appendChild(nodes);
  return svg;
}
