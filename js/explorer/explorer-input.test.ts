// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { ExplorerView } from "./explorer-view";
import { f32, FakeModel } from "../shared/testing";

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
  document.body.replaceChildren();
});

function mount(extra: Record<string, unknown>) {
  const tokens = ["[CLS]", "good", "[SEP]"];
  const model = new FakeModel({
    _stream_key: `ei${Math.random()}`, tokens, token_types: [0, 0, 0], run_id: 1, state: "done", error: "", layers_done: 1, layers_total: 1,
    meta: { model_name: "m", text: "good", target: 1, target_label: "pos", label_names: ["neg", "pos"], layers: [0], default_query: 0 },
    head_scores: f32([0.1, 0.2], [1, 2]), thumbs: null,
    head: { layer: 0, head: 0, attention: f32(Array(9).fill(1 / 3), [3, 3]), attribution: f32([0, 0.5, 0, 0, 0, 0, 0, 0, 0], [3, 3]),
      contrast: f32([0, 0.2, 0, 0, 0, 0, 0, 0, 0], [3, 3]) },
    selected: [0, 0], query: 0, locked: [], normalize: "global", grid_mode: "scores", pair: null,
    interactive: true, input_spec: { kind: "class", pair: false, label_names: ["neg", "pos"] },
    targets: { text: "good", kind: "class", pred: 1, options: [{ id: 0, label: "neg", prob: 0.3 }, { id: 1, label: "pos", prob: 0.7 }] },
    history: [{ key: 1, text: "good", text_pair: null, target: 1, target_label: "pos", prob: 0.7 }], contrast: {}, contrast_view: "diff", ...extra,
  });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const view = new ExplorerView(model as any, el, model.invoke);
  cleanup = () => view.destroy();
  return { model, view, root: el.querySelector(".attattr-explorer") as HTMLElement };
}

describe("Explorer with a model: input bar", () => {
  it("shows the run's text, the classes with probabilities, and sends typed runs", () => {
    const { model, root } = mount({});
    const text = root.querySelector(".aa-input-text") as HTMLInputElement;
    expect(text.value).toBe("good");
    expect([...root.querySelectorAll("select.aa-target option")].map((o) => o.textContent)).toEqual(["predicted (pos)", "neg  0.3", "pos  0.7", "other…"]);
    text.value = "bad plot";
    (root.querySelector("select.aa-target") as HTMLSelectElement).value = "0";
    (root.querySelector(".aa-run") as HTMLButtonElement).click();
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_run", msg: { text: "bad plot", text_pair: null, target: 0 } });
  });

  it("has no input bar without a model", () => {
    const { root } = mount({ interactive: false });
    expect(root.querySelector(".aa-input-bar")).toBeNull();
  });

  it("draws the difference map once the contrast is done", () => {
    const { model, view } = mount({ contrast: { target: 0, target_label: "neg", state: "done", error: "" } });
    view.flush();
    const attr = view.heat.data!.attr;
    const caption = () => document.querySelector(".aa-attr-what")!.textContent;
    expect(attr[1]).toBeCloseTo(0.3, 6);         // A - B = 0.5 - 0.2
    expect(caption()).toBe("Attr(pos) − Attr(neg)");
    model.set("contrast_view", "contrast");
    view.flush();
    expect(view.heat.data!.attr[1]).toBeCloseTo(0.2, 6);
    expect(caption()).toBe("Attr(neg)");
    model.set("contrast_view", "target");
    view.flush();
    expect(view.heat.data!.attr[1]).toBeCloseTo(0.5, 6);
    expect(caption()).toBe("A ⊙ ∫∂F/∂A");
  });
});
