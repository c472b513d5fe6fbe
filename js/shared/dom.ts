// DOM helpers. Untrusted text (tokens, labels, errors) only ever goes through textContent / text nodes;
// no HTML-string sink is used anywhere in the views.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined>;

export const SVG_NS = "http://www.w3.org/2000/svg";

function setAttrs(el: Element, attrs: Attrs | undefined): void {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (/^on/i.test(k)) throw new Error(`inline event handler attributes are not allowed: ${k}`);
    el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** HTML element; strings become text nodes (escaped by construction). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** SVG element; strings become text nodes. */
export function s(tag: string, attrs?: Attrs, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Visible form of a token: control characters and the usual sub-word markers made readable. */
export function displayToken(tok: string): string {
  let t = String(tok ?? "");
  t = t.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "");
  // eslint-disable-next-line no-control-regex
  t = t.replace(/[\u0000-\u001f\u007f]/g, "�");
  if (t.startsWith("Ġ") || t.startsWith("▁")) t = "·" + t.slice(1);
  return t.length ? t : "∅";
}

export function truncate(t: string, max: number): string {
  return t.length > max ? t.slice(0, Math.max(1, max - 1)) + "…" : t;
}

export function cssVar(el: Element, name: string, fallback: string): string {
  if (typeof getComputedStyle !== "function") return fallback;
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

// ------------------------------------------------------------------------------------------- downloads
export function safeFilename(name: string): string {
  return name.replace(/[^\w.-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 80) || "attattr";
}

export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: safeFilename(filename) });
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function serializeSvg(svg: SVGElement): string {
  const clone = svg.cloneNode(true) as SVGElement;
  clone.setAttribute("xmlns", SVG_NS);
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(clone);
}

export function downloadSvg(svg: SVGElement, filename: string): void {
  downloadBlob(new Blob([serializeSvg(svg)], { type: "image/svg+xml" }), filename);
}

export function canvasToBlob(canvas: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("canvas export failed"))), "image/png"),
  );
}

/** Load an SVG element into an <img> and hand it to `use`; the object URL is revoked afterwards. */
async function withSvgImage<T>(svg: SVGElement, use: (img: HTMLImageElement) => T | Promise<T>): Promise<T> {
  const url = URL.createObjectURL(new Blob([serializeSvg(svg)], { type: "image/svg+xml" }));
  try {
    const img = new Image();
    await new Promise<void>((res, rej) => {
      img.onload = () => res();
      img.onerror = () => rej(new Error("could not rasterise SVG"));
      img.src = url;
    });
    return await use(img);
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** Schedule `cb` for the next animation frame (a 16 ms timer where there is no requestAnimationFrame). */
export function nextFrame(cb: () => void): number {
  if (typeof requestAnimationFrame === "function") return requestAnimationFrame(() => cb());
  return setTimeout(cb, 16) as unknown as number;
}

/** Rasterise an SVG element to a PNG blob at `scale` x its size. */
export function svgToPng(svg: SVGElement, width: number, height: number, scale = 2, background?: string): Promise<Blob> {
  return withSvgImage(svg, (img) => {
    const c = document.createElement("canvas");
    c.width = Math.ceil(width * scale);
    c.height = Math.ceil(height * scale);
    const ctx = c.getContext("2d");
    if (!ctx) throw new Error("no 2D canvas");
    if (background) {
      ctx.fillStyle = background;
      ctx.fillRect(0, 0, c.width, c.height);
    }
    ctx.drawImage(img, 0, 0, c.width, c.height);
    return canvasToBlob(c);
  });
}

/** 2D context or null (happy-dom / jsdom have none). */
export function ctx2d(c: HTMLCanvasElement): CanvasRenderingContext2D | null {
  try {
    return c.getContext("2d");
  } catch {
    return null;
  }
}

/** Size a canvas for the device pixel ratio; returns the context scaled to CSS pixels. */
export function sizeCanvas(c: HTMLCanvasElement, w: number, h: number): CanvasRenderingContext2D | null {
  const dpr = Math.max(1, Math.min(3, (typeof window !== "undefined" && window.devicePixelRatio) || 1));
  c.width = Math.max(1, Math.round(w * dpr));
  c.height = Math.max(1, Math.round(h * dpr));
  c.style.width = `${w}px`;
  c.style.height = `${h}px`;
  const ctx = ctx2d(c);
  if (ctx) {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.imageSmoothingEnabled = false;
  }
  return ctx;
}

/** Draw an SVG element onto a 2D context (async: goes through an <img>). Resolves false if it fails. */
export async function drawSvg(ctx: CanvasRenderingContext2D, svg: SVGElement, x: number, y: number, w: number, h: number): Promise<boolean> {
  try {
    await withSvgImage(svg, (img) => ctx.drawImage(img, x, y, w, h));
    return true;
  } catch {
    return false;
  }
}
