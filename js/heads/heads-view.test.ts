// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { HeadsViewUI, prunedHeads, rankColors, rankNormalize } from "./heads-view";
import { f32, FakeModel } from "../shared/testing";

const HOSTILE = "<img src=x onerror=alert(1)></script>&amp;";

function u8(values: number[], shape: number[]) {
  const a = Uint8Array.from(values);
  return { view: new DataView(a.buffer), dtype: "uint8", shape };
}

function state(extra: Record<string, unknown> = {}) {
  return {
    state: "running", error: "", run_id: 1, phase: "importance",
    meta: { model_name: HOSTILE, num_layers: 2, num_heads: 2, methods: ["attattr", "random"], num_examples: 4, num_eval: 8, target: "gold" },
    progress: { attattr: { done: 2, total: 4, elapsed_s: 1, eta_s: 1 } },
    importance: { attattr: f32([0.1, 0.4, 0.2, 0.3], [2, 2]) }, curves: [], effectiveness: {}, correlation: {},
    view: "importance", method: "attattr", arrangement: "side", selected: [], head_examples: [], ...extra,
  };
}

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
  document.body.replaceChildren();
});

function mount(st: Record<string, unknown>) {
  const model = new FakeModel(st);
  const el = document.createElement("div");
  document.body.appendChild(el);
  const view = new HeadsViewUI(model as any, el, model.invoke);
  cleanup = () => view.destroy();
  return { model, view, root: el.querySelector(".attattr-heads") as HTMLElement };
}

describe("rank normalisation", () => {
  it("ranks finite values in [0, 1], ties share a rank, NaN stays NaN", () => {
    expect(Array.from(rankNormalize([3, 1, 2, NaN]))).toEqual([1, 0, 0.5, NaN]);
    expect(Array.from(rankNormalize([5, 5, 1]))).toEqual([0.75, 0.75, 0]);
    expect(Array.from(rankColors([3, 1, 2]))).toEqual([1, -1, 0]);
  });
  it("lists the pruned heads of a curve point", () => {
    const pruned = Float32Array.from([0, 0, 0, 0, 1, 0, 0, 1]);
    expect(prunedHeads(pruned, 0, 2, 2)).toEqual([]);
    expect(prunedHeads(pruned, 1, 2, 2)).toEqual(["L0H0", "L1H1"]);
  });
});

describe("HeadsView", () => {
  it("draws one grid per method with progress, hostile text as text", () => {
    const { root } = mount(state());
    expect(root.dataset.state).toBe("running");
    expect(root.dataset.progress).toBe("attattr:2/4,random:0/0");
    expect(root.querySelectorAll("section[data-method]").length).toBe(2);
    expect(root.querySelector(".aa-title")!.textContent).toContain(HOSTILE);
    expect(root.querySelector("img")).toBeNull();
    expect(root.querySelector(".aa-grid-caption")!.textContent).toContain("2 / 4 examples");
    expect(root.querySelector(".attattr-stop")!.hasAttribute("hidden")).toBe(false);
  });

  it("draws the pruning curves point by point and Stop sends a cancel", () => {
    const curve = (acc: number[]) => ({ method: "attattr", order: "least-first", fractions: [0, 0.5, 1], counts: [0, 2, 4],
      accuracy: f32(acc, [3]), pruned: u8([0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1], [3, 2, 2]) });
    const { model, view, root } = mount(state({ phase: "pruning", curves: [curve([0.9, NaN, NaN])] }));
    expect(root.dataset.points).toBe("1");
    model.set("curves", [curve([0.9, 0.7, NaN])]);
    view.flush();
    expect(root.dataset.points).toBe("2");
    expect(root.querySelectorAll("svg.aa-chart circle").length).toBe(2);
    (root.querySelector(".attattr-stop") as HTMLButtonElement).click();
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_cancel", msg: { run_id: 1 } });
  });

  it("lists a head's top examples and opens one in the Explorer on that head", () => {
    const rows = [{ index: 3, text: HOSTILE, text_pair: null, label: 1, score: 0.5 }];
    const { model, root } = mount(state({ state: "done", selected: [1, 0], head_examples: rows }));
    expect(root.dataset.examples).toBe("1");
    const tr = root.querySelector(".aa-examples tr.aa-row") as HTMLElement;
    expect(tr.textContent).toContain(HOSTILE);
    tr.click();
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_open", msg: { index: 3, layer: 1, head: 0 } });
  });

  it("shows partial results after a Stop and removes its listeners on destroy", () => {
    const { model, view, root } = mount(state({ state: "cancelled" }));
    expect(root.querySelector(".aa-badge")!.textContent).toBe("stopped (partial)");
    expect(root.querySelector(".aa-grid-caption")!.textContent).toContain("(partial)");
    view.destroy();
    cleanup = null;
    expect(model.listenerCount).toBe(0);
  });
});
