// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from "vitest";
import { edgeKey, normalizeTree, SIDE_COLORS, treeLayout, TreeView } from "./tree-view";
import { FakeModel } from "../shared/testing";
import { answerColor, cssRGB } from "../shared/color";
import type { TreeDict } from "../shared/protocol";

const TREE = {
  tokens: ["[CLS]", "<svg onload=alert(1)>", "good", "&lt;", "[SEP]"],
  num_layers: 3, threshold: 0.4, root: 2,
  nodes: [{ index: 2, token: "good", layer: 3 }, { index: 1, token: "<svg onload=alert(1)>", layer: 2 }, { index: 3, token: "&lt;", layer: 0 }],
  edges: [{ parent: 2, child: 1, layer: 2, score: 0.9 }, { parent: 1, child: 3, layer: 0, score: 0.5 }],
};

let view: TreeView | null = null;
afterEach(() => {
  view?.destroy();
  view = null;
  vi.useRealTimers();
  document.body.replaceChildren();
});

function mount(state: Record<string, any> = {}) {
  const model = new FakeModel({ tree: TREE, threshold: 0.4, state: "done", error: "", selected_edge: [], linked: true, title: "", ...state });
  const el = document.createElement("div");
  document.body.appendChild(el);
  view = new TreeView(model as any, el, model.invoke);
  return { model, root: el.querySelector(".attattr-tree") as HTMLElement };
}

describe("TreeView", () => {
  it("draws nodes and edges as SVG with hooks", () => {
    const { root } = mount();
    expect(root.dataset.state).toBe("done");
    expect(root.dataset.edges).toBe("2");
    expect(root.dataset.nodes).toBe("3");
    expect(root.querySelectorAll("svg [data-edge]").length).toBe(2);
    expect(root.querySelectorAll("svg [data-node]").length).toBe(3);
  });

  it("escapes token text", () => {
    const { root } = mount();
    const texts = [...root.querySelectorAll("svg text")].map((t) => t.textContent);
    expect(texts.some((t) => t!.includes("<svg onload"))).toBe(true);
    expect(root.querySelectorAll("svg svg").length).toBe(0);
    expect(texts).toContain("&lt;");
  });

  it("edge click sends the edge and highlights it", () => {
    const { root, model } = mount();
    const edge = root.querySelector('[data-edge="1,3,0"] path') as SVGElement;
    edge.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_edge", msg: { parent: 1, child: 3, layer: 0 } });
    expect(model.get("selected_edge")).toEqual([1, 3, 0]);
    expect(root.dataset.selectedEdge).toBe("1,3,0");
    expect(root.querySelector('[data-edge="1,3,0"]')!.getAttribute("class")).toContain("aa-hot");
  });

  it("slider writes the threshold, debounced", () => {
    vi.useFakeTimers();
    const { root, model } = mount();
    const slider = root.querySelector(".aa-slider") as HTMLInputElement;
    for (const v of ["0.5", "0.55", "0.6"]) {
      slider.value = v;
      slider.dispatchEvent(new Event("input"));
    }
    expect(model.get("threshold")).toBe(0.4);
    vi.advanceTimersByTime(200);
    expect(model.get("threshold")).toBe(0.6);
    expect(model.saves).toBe(1);
  });

  it("shows an empty-tree hint and errors", () => {
    const { root } = mount({ tree: { ...TREE, edges: [], nodes: [] } });
    expect(root.textContent).toContain("lower the threshold");
    view!.destroy();
    const { root: r2 } = mount({ state: "error", error: "RuntimeError: <i>x</i>", tree: {} });
    expect(r2.querySelector(".aa-error")!.textContent).toContain("<i>x</i>");
    expect(r2.querySelector("i")).toBeNull();
  });

  it("cleans up model listeners", () => {
    const { model } = mount();
    expect(model.listenerCount).toBeGreaterThan(0);
    view!.destroy();
    view = null;
    expect(model.listenerCount).toBe(0);
  });
});

describe("tree layout", () => {
  it("puts higher layers higher and tokens left to right", () => {
    const lay = treeLayout(10, 4, 800);
    expect(lay.y(3)).toBeLessThan(lay.y(0));
    expect(lay.x(1)).toBeGreaterThan(lay.x(0));
    expect(lay.dx).toBeGreaterThanOrEqual(26);
    expect(treeLayout(500, 12, 800).width).toBeGreaterThan(800); // long inputs scroll horizontally
  });
  it("normalises partial dicts", () => {
    expect(normalizeTree(undefined).edges).toEqual([]);
    expect(edgeKey({ parent: 1, child: 2, layer: 3 })).toBe("1,2,3");
  });
});

describe("compact axis", () => {
  it("long inputs show only the tree's tokens on the x axis (toggle)", () => {
    const tokens = Array.from({ length: 300 }, (_, i) => `w${i}`);
    const tree = { tokens, num_layers: 3, threshold: 0.4, root: 5, nodes: [{ index: 5, token: "w5", layer: 3 }, { index: 200, token: "w200", layer: 1 }], edges: [{ parent: 5, child: 200, layer: 1, score: 0.7 }] };
    const model = new FakeModel({ tree, threshold: 0.4, state: "done", error: "", selected_edge: [], linked: false, title: "" });
    const el = document.createElement("div");
    document.body.appendChild(el);
    view = new TreeView(model as any, el, model.invoke);
    const labels = () => el.querySelectorAll(".aa-axis text").length;
    expect(labels()).toBe(2);
    const box = el.querySelector(".aa-compact") as HTMLInputElement;
    expect(box.checked).toBe(true);
    box.checked = false;
    box.dispatchEvent(new Event("change"));
    expect(labels()).toBe(300);
  });
});

describe("tree computed in the browser from the embedded layer sums", () => {
  async function deflate(bytes: Uint8Array): Promise<DataView> {
    const s = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
    return new DataView(await new Response(s).arrayBuffer());
  }

  it("follows the slider without the kernel and agrees with tree-algo", async () => {
    const n = 5, L = 3, S = new Float32Array(L * n * n);
    for (let k = 0; k < S.length; k++) S[k] = Math.sin(k * 1.7) * 2;
    const layer_sums = { sums: { codec: "deflate", dtype: "float32", shape: [L, n, n], view: await deflate(new Uint8Array(S.buffer)) }, layers: [0, 1, 2], num_layers: 3, exclude_row: 0 };
    const { root, model } = mount({ layer_sums });
    expect(root.dataset.treeSource).toBe("kernel"); // decoding
    for (let i = 0; i < 100 && root.dataset.treeSource !== "browser"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      view!.flush();
    }
    expect(root.dataset.treeSource).toBe("browser");
    const { treeFromLayerSums } = await import("./tree-algo");
    const counts = new Set<string>();
    for (const v of ["0", "0.3", "0.9"]) {
      const slider = root.querySelector(".aa-slider") as HTMLInputElement;
      slider.value = v;
      slider.dispatchEvent(new Event("input"));
      view!.flush();
      const want = treeFromLayerSums({ S, L, n, layers: [0, 1, 2], num_layers: 3, tokens: TREE.tokens, exclude_row: 0 }, Number(v));
      expect(root.dataset.threshold).toBe(v);
      expect(root.dataset.edges).toBe(String(want.edges.length));
      expect([...root.querySelectorAll("[data-edge]")].map((g) => g.getAttribute("data-edge")).sort()).toEqual(want.edges.map(edgeKey).sort());
      counts.add(root.dataset.edges!);
    }
    expect(counts.size).toBeGreaterThan(1);
    expect(model.get("threshold")).toBe(0.4); // the kernel hears about it after the debounce only
  });
});

describe("TreeView on an image", () => {
  // [CLS] + 2 x 2 patches; the tree: [CLS] -> (1,1) -> (0,0)
  const IMG_TREE = { tokens: ["[CLS]", "(0,0)", "(0,1)", "(1,0)", "(1,1)"], num_layers: 2, threshold: 0.4, root: 0,
    nodes: [{ index: 0, token: "[CLS]", layer: 2 }, { index: 4, token: "(1,1)", layer: 1 }, { index: 1, token: "(0,0)", layer: 0 }],
    edges: [{ parent: 0, child: 4, layer: 1, score: 0.9 }, { parent: 4, child: 1, layer: 0, score: 0.5 }] };

  it("draws the tree on the picture: edges between patch centres, [CLS] above the picture, clickable", async () => {
    const { imagePayload } = await import("../shared/testing");
    const { root, model } = mount({ tree: IMG_TREE, image: imagePayload(8, 8, 2, 2) });
    expect(root.dataset.image).toBe("2,2");
    const pic = root.querySelector(".aa-tree-image") as HTMLElement;
    expect(pic.hidden).toBe(false);
    const svg = pic.querySelector("svg")!;
    expect(svg.querySelectorAll("[data-edge]").length).toBe(2);
    expect([...svg.querySelectorAll("[data-node]")].map((n) => n.getAttribute("data-node")).sort()).toEqual(["0", "1", "4"]);
    // picture 300 x 300 at (8, 8 + 34): patch (1,1) centre = (8 + 225, 42 + 225); (0,0) = (8 + 75, 42 + 75); [CLS] in the band
    const d = svg.querySelector('[data-edge="4,1,0"] path')!.getAttribute("d")!;
    expect(d.startsWith("M233.0,267.0")).toBe(true);
    expect(d.endsWith("83.0,117.0")).toBe(true);
    expect(svg.querySelector('[data-node="0"]')!.getAttribute("transform")).toBe("translate(158.0,25.0)");
    expect(svg.querySelector('[data-node="0"] text')!.textContent).toBe("[CLS]");
    svg.querySelector('[data-edge="0,4,1"] path')!.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.get("selected_edge")).toEqual([0, 4, 1]);
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_edge", msg: { parent: 0, child: 4, layer: 1 } });
  });

  it("has no picture for text trees", () => {
    const { root } = mount();
    expect((root.querySelector(".aa-tree-image") as HTMLElement).hidden).toBe(true);
  });
});

// An encoder–decoder's tree across source and answer (engine seq2seq_tree): source tokens first, then the answer.
const S2S: TreeDict = {
  tokens: ["<img src=x onerror=alert(1)>", "cat", "</s>", "</s>", "die", "&amp;"],
  num_layers: 4, threshold: 0.4, root: 4, encoder_layers: 2,
  sides: ["source", "source", "source", "answer", "answer", "answer"],
  nodes: [{ index: 4, token: "die", layer: 4, side: "answer", position: 1 },
    { index: 5, token: "&amp;", layer: 3, side: "answer", position: 2 },
    { index: 1, token: "cat", layer: 3, side: "source", position: 1 },
    { index: 0, token: "<img src=x onerror=alert(1)>", layer: 0, side: "source", position: 0 }],
  edges: [{ parent: 4, child: 5, layer: 3, score: 0.8 }, { parent: 4, child: 1, layer: 3, score: 0.9 },
    { parent: 1, child: 0, layer: 0, score: 0.5 }],
};

describe("TreeView across source and answer", () => {
  it("draws source and answer apart: own colours, a gap between them, E/D layer names", () => {
    const { root } = mount({ tree: S2S, layer_sums: null });
    expect(root.dataset.nodes).toBe("4");
    expect(root.dataset.edges).toBe("3");
    const side = (i: number) => root.querySelector(`[data-node="${i}"]`)!.getAttribute("data-side");
    expect([side(4), side(5), side(1), side(0)]).toEqual(["answer", "answer", "source", "source"]);
    const stroke = (i: number) => root.querySelector(`[data-node="${i}"] circle`)!.getAttribute("stroke");
    expect(stroke(5)).toBe(SIDE_COLORS.answer);
    expect(stroke(1)).toBe(SIDE_COLORS.source);
    const x = (i: number) => Number(/translate\(([\d.]+),/.exec(root.querySelector(`[data-node="${i}"]`)!.getAttribute("transform")!)![1]);
    const dx = x(1) - x(0);
    expect(x(4) - x(1)).toBeCloseTo(4 * dx); // source 1, source 2, gap, answer 3, answer 4
    const labels = [...root.querySelectorAll(".aa-side-label")].map((t) => t.textContent);
    expect(labels).toEqual(["source", "answer"]);
    const guides = [...root.querySelectorAll(".aa-guides text")].map((t) => t.textContent);
    expect(guides).toEqual(["E0", "E1", "D0", "D1", "D2"]); // D2: the root, above the top decoder layer (as L{n})
    const titles = [...root.querySelectorAll("[data-edge] title")].map((t) => t.textContent);
    expect(titles).toContain("die (answer #1) → cat (source #1) · layer D1 · 0.9");
  });

  it("keeps hostile source and answer tokens as text", () => {
    const { root } = mount({ tree: S2S, layer_sums: null });
    expect(root.querySelector("img")).toBeNull();
    const texts = [...root.querySelectorAll("svg text")].map((t) => t.textContent);
    expect(texts.some((t) => t!.includes("<img src=x"))).toBe(true);
    expect(texts).toContain("&amp;");
  });

  it("follows the slider without the kernel from the three sites' embedded sums (same algorithm as the kernel)", async () => {
    const deflate = async (a: Float32Array) => {
      const st = new Blob([new Uint8Array(a.buffer) as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
      return new DataView(await new Response(st).arrayBuffer());
    };
    const ns = 3, nt = 3, Le = 2, Ld = 2;
    const fill = (len: number, f: number) => Float32Array.from({ length: len }, (_, k) => Math.sin(k * f + 0.3) * 2);
    const Se = fill(Le * ns * ns, 1.3), Sd = fill(Ld * nt * nt, 2.1), Sc = fill(Ld * nt * ns, 0.7);
    const arr = async (a: Float32Array, shape: number[]) => ({ codec: "deflate", dtype: "float32", shape, view: await deflate(a) });
    const meta = { encoder_layers: [0, 1], decoder_layers: [0, 1], encoder_num_layers: 2, num_layers: 4, exclude_source: null, exclude_answer: 0 };
    const layer_sums = { encoder: await arr(Se, [Le, ns, ns]), decoder: await arr(Sd, [Ld, nt, nt]), cross: await arr(Sc, [Ld, nt, ns]), ...meta };
    const { root } = mount({ tree: S2S, layer_sums });
    for (let i = 0; i < 100 && root.dataset.treeSource !== "browser"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      view!.flush();
    }
    expect(root.dataset.treeSource).toBe("browser");
    const { seq2seqTreeFromLayerSums } = await import("./tree-algo");
    const kinds = new Set<string>(), counts = new Set<string>();
    for (const v of ["0", "0.2", "0.6"]) {
      const slider = root.querySelector(".aa-slider") as HTMLInputElement;
      slider.value = v;
      slider.dispatchEvent(new Event("input"));
      view!.flush();
      const want = seq2seqTreeFromLayerSums({ Se, Sd, Sc, ns, nt, tokens: S2S.tokens, ...meta }, Number(v));
      expect([...root.querySelectorAll("[data-edge]")].map((g) => g.getAttribute("data-edge")).sort()).toEqual(want.edges.map(edgeKey).sort());
      for (const e of want.edges) kinds.add(`${want.sides![e.parent]}>${want.sides![e.child]}`);
      counts.add(String(want.edges.length));
    }
    expect(kinds).toEqual(new Set(["answer>answer", "answer>source", "source>source"]));
    expect(counts.size).toBeGreaterThan(1);
    expect(root.querySelector(".aa-stats")!.textContent).toMatch(/^\d+ nodes · \d+ edges/);
    expect(root.querySelector(".aa-stats")!.textContent).not.toContain("need the kernel");
    expect(root.querySelector("img")).toBeNull();
  });

  it("a one-site tree has no sides", () => {
    expect(normalizeTree(TREE).sides).toBeUndefined();
    expect(normalizeTree(S2S).sides).toEqual(S2S.sides);
    expect(normalizeTree({ ...S2S, sides: ["source"] }).sides).toBeUndefined(); // wrong length: ignored
  });
});

// A causal LM's explained answer (Attribution.answer_start): prompt tokens, then the answer's.
const LM: TreeDict = {
  tokens: ["the", "cat", "<b>sat</b>", " on", "&lt;mat"],
  num_layers: 2, threshold: 0.4, root: 4,
  nodes: [{ index: 4, token: "&lt;mat", layer: 2 }, { index: 3, token: " on", layer: 1 }, { index: 1, token: "cat", layer: 0 }],
  edges: [{ parent: 4, child: 3, layer: 1, score: 0.8 }, { parent: 3, child: 1, layer: 0, score: 0.6 }],
};

describe("TreeView of an explained answer", () => {
  const theme = () => (view as any).theme.theme;
  const axisFill = (root: HTMLElement) => [...root.querySelectorAll(".aa-axis text")].map((t) => t.getAttribute("fill"));
  const nodeX = (root: HTMLElement, i: number) => Number(/translate\(([\d.]+),/.exec(root.querySelector(`[data-node="${i}"]`)!.getAttribute("transform")!)![1]);

  it("draws the answer's labels in the answer colour after a boundary line, tokens kept as text", () => {
    const { root } = mount({ tree: LM, answer_start: 3, layer_sums: null });
    const ans = answerColor(theme()), fg = cssRGB(theme().fg);
    expect(ans).not.toBe(fg);
    expect(axisFill(root)).toEqual([fg, fg, fg, ans, ans]);
    const nodeFill = (i: number) => root.querySelector(`[data-node="${i}"] text`)!.getAttribute("fill");
    expect([nodeFill(4), nodeFill(3), nodeFill(1)]).toEqual([ans, ans, fg]);
    const line = root.querySelectorAll('svg [data-answer="boundary"]');
    expect(line.length).toBe(1);
    expect(line[0].getAttribute("stroke")).toBe(ans);
    const x = Number(line[0].getAttribute("x1"));
    expect(x).toBeGreaterThan(nodeX(root, 1)); // between token 2 and token 3
    expect(x).toBeLessThan(nodeX(root, 3));
    expect(x).toBeCloseTo(nodeX(root, 3) - (nodeX(root, 3) - nodeX(root, 1)) / 4);
    expect(line[0].querySelector("title")!.textContent).toBe("the answer starts at  on (#3)");
    expect(root.querySelector("svg b")).toBeNull();
    const texts = [...root.querySelectorAll("svg text")].map((t) => t.textContent);
    expect(texts.some((t) => t!.includes("<b>sat"))).toBe(true);
    expect(texts).toContain("&lt;mat");
  });

  it("marks nothing without an answer, for an out-of-range start, or on a tree across source and answer", () => {
    for (const state of [{ tree: LM }, { tree: LM, answer_start: null }, { tree: LM, answer_start: 9 }, { tree: S2S, answer_start: 3 }]) {
      const { root } = mount({ ...state, layer_sums: null });
      expect(root.querySelector('[data-answer="boundary"]')).toBeNull();
      expect(axisFill(root)).not.toContain(answerColor(theme()));
      view!.destroy();
      view = null;
      document.body.replaceChildren();
    }
  });

  it("follows the trait and keeps the boundary on the compact axis (only the tree's tokens)", () => {
    const tokens = Array.from({ length: 100 }, (_, i) => `w${i}`);
    const tree = { tokens, num_layers: 2, threshold: 0.4, root: 90, nodes: [{ index: 90, token: "w90", layer: 2 }, { index: 10, token: "w10", layer: 0 }], edges: [{ parent: 90, child: 10, layer: 0, score: 0.7 }] };
    const { root, model } = mount({ tree, layer_sums: null });
    expect(root.querySelector('[data-answer="boundary"]')).toBeNull();
    model.set("answer_start", 80);
    view!.flush();
    expect(axisFill(root)).toEqual([cssRGB(theme().fg), answerColor(theme())]); // w10 | w90
    const x = Number(root.querySelector('[data-answer="boundary"]')!.getAttribute("x1"));
    expect(x).toBeCloseTo((nodeX(root, 10) + nodeX(root, 90)) / 2);
  });
});
