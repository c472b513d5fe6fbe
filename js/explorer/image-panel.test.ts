// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { ExplorerView } from "./explorer-view";
import { f32, FakeModel, imagePayload } from "../shared/testing";

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
  document.body.replaceChildren();
});

// [CLS] + a 2 x 2 patch grid: the query [CLS] attributes -0.4 / 0.1 / 0.2 / 0.8 to the patches
const TOKENS = ["[CLS]", "(0,0)", "(0,1)", "(1,0)", "(1,1)"];
function maps() {
  const n = TOKENS.length;
  const attr = new Array(n * n).fill(0), attn = new Array(n * n).fill(0.2);
  [0, -0.4, 0.1, 0.2, 0.8].forEach((v, j) => (attr[j] = v));
  return { attention: f32(attn, [n, n]), attribution: f32(attr, [n, n]) };
}

function mount(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({
    _stream_key: `img${Math.random()}`, tokens: TOKENS, special: [true, false, false, false, false], token_types: [], run_id: 1, state: "done", error: "",
    layers_done: 1, layers_total: 1, meta: { model_name: "vit", text: null, image_name: "digit.png", target: 7, target_label: "7", layers: [0], default_query: 0 },
    head_scores: f32([0.1, 0.2], [1, 2]), thumbs: null, head: { layer: 0, head: 0, ...maps() }, selected: [0, 0], query: 0, locked: [],
    normalize: "global", grid_mode: "scores", pair: null, interactive: true, input_spec: { kind: "class", pair: false, label_names: ["0", "7"], image: true },
    targets: {}, history: [], contrast: {}, contrast_view: "diff", image: imagePayload(8, 8, 2, 2), ...extra,
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const view = new ExplorerView(model as any, el, model.invoke);
  view.flush();
  cleanup = () => view.destroy();
  return { model, view, root: el.querySelector(".attattr-explorer") as HTMLElement };
}

describe("Explorer image panel", () => {
  it("shows the picture twice (attribution, attention) with the query's patch values", () => {
    const { view, root } = mount();
    const panel = root.querySelector(".aa-image-panel") as HTMLElement;
    expect(panel.hidden).toBe(false);
    expect(root.dataset.image).toBe("2,2");
    expect(root.querySelector(".aa-body")!.classList.contains("aa-has-image")).toBe(true);
    expect(root.querySelector(".aa-body")!.classList.contains("aa-image-only")).toBe(true);
    expect(root.querySelector(".aa-subtitle, .aa-header")!.textContent).toContain("digit.png");
    const canvases = [...panel.querySelectorAll("canvas")] as HTMLCanvasElement[];
    expect(canvases.map((c) => c.dataset.map)).toEqual(["image-attribution", "image-attention"]);
    expect(canvases.map((c) => c.dataset.patches)).toEqual(["4", "4"]);
    expect(panel.querySelector(".aa-panel-title")!.textContent).toContain("[CLS]");
    expect(panel.querySelectorAll(".aa-legend-box svg").length).toBe(2);
    const lines = view.image.tipLines(3).map((l) => (typeof l === "string" ? l : l.textContent)).join("\n");
    expect(lines).toContain("patch (1,1)");
    expect(lines).toContain("token #4");
    expect(lines).toContain("attribution [CLS] → (1,1): 0.8");
    expect(lines).toContain("attention 0.2");
  });

  it("a vision–language prompt keeps its sentence and maps the image tokens onto the picture", () => {
    const tokens = ["USER", ":", "(0,0)", "(0,1)", "(1,0)", "(1,1)", "ASSISTANT", ":"];
    const n = tokens.length;
    const attr = new Array(n * n).fill(0);
    [0, 0, 0.1, -0.2, 0.3, 0.9, 0, 0].forEach((v, j) => (attr[(n - 1) * n + j] = v));
    const { view, root } = mount({ tokens, special: new Array(n).fill(false), query: n - 1, image: imagePayload(8, 8, 2, 2, 2),
      head: { layer: 0, head: 0, attention: f32(new Array(n * n).fill(1 / n), [n, n]), attribution: f32(attr, [n, n]) },
      meta: { model_name: "llava", text: "USER: <image> ASSISTANT:", target: 5, target_label: " cat", target_kind: "next-token", layers: [0], default_query: n - 1 } });
    const body = root.querySelector(".aa-body")!;
    expect(body.classList.contains("aa-has-image")).toBe(true);
    expect(body.classList.contains("aa-image-only")).toBe(false); // the sentence stays: the query is picked there
    expect(root.querySelectorAll(".aa-sentence .aa-tok").length).toBe(n);
    expect(view.image.el.querySelectorAll("button[data-query]").length).toBe(0);
    const lines = view.image.tipLines(3).map((l) => (typeof l === "string" ? l : l.textContent)).join("\n");
    expect(lines).toContain("token #5");
    expect(lines).toContain("attribution : → (1,1): 0.9");
  });

  it("is hidden for text runs", () => {
    const { root } = mount({ image: null });
    expect((root.querySelector(".aa-image-panel") as HTMLElement).hidden).toBe(true);
    expect(root.dataset.image).toBe("");
  });

  it("clicking a patch makes its token the query", () => {
    const { model, view } = mount();
    const c = view.image.canvases[0];
    const box = view.image.box!;
    c.dispatchEvent(new MouseEvent("click", { clientX: box.x0 + box.width * 0.75, clientY: box.y0 + box.height * 0.25, bubbles: true }));
    expect(model.get("query")).toBe(2); // patch (0,1) = token 2
    view.flush();
    const cls = view.image.el.querySelector("button[data-query]") as HTMLButtonElement;
    expect(cls.textContent).toBe("[CLS]");
    expect(cls.classList.contains("aa-on")).toBe(false);
    cls.click();
    expect(model.get("query")).toBe(0);
  });

  it("an uploaded file goes to the kernel as one binary buffer with its name", async () => {
    const { model, root } = mount();
    const file = root.querySelector(".aa-input-file") as HTMLInputElement;
    expect(file.hidden).toBe(false);
    expect((root.querySelector(".aa-input-text") as HTMLInputElement).hidden).toBe(true);
    const bytes = new Uint8Array([137, 80, 78, 71, 1, 2, 3]);
    Object.defineProperty(file, "files", { value: [new File([bytes], "cat.png", { type: "image/png" })] });
    file.dispatchEvent(new Event("change"));
    for (let i = 0; i < 20 && !model.invoked.length; i++) await new Promise((r) => setTimeout(r, 5));
    const call = model.invoked.at(-1)!;
    expect(call.name).toBe("_cmd_image");
    expect(call.msg).toEqual({ name: "cat.png", target: "pred" });
    expect(call.buffers.length).toBe(1);
    expect(Array.from(new Uint8Array(call.buffers[0].buffer))).toEqual(Array.from(bytes));
  });
});
