// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { FakeModel } from "../shared/testing";
import { accuracyCells, tokenLine, TriggersViewUI } from "./triggers-view";

const HOSTILE = "<script>alert(1)</script>";
const ROW = { id: 5, tokens: [HOSTILE, "cat"], segments: [0, 0], relative: [0.2, 0.9], positions: [2, 7], score: 0.01, layer: 1, head: 0,
  pred: 1, pred_label: "pos", gold: 1, text: HOSTILE, text_pair: null, evaluated: true, overall_before: 1, overall_after: 0.5, flip_rate: 0.5,
  per_class: [{ label: 0, name: "neg", n: 4, before: 1, after: 0, drop: 1 }, { label: 1, name: "pos", n: 4, before: 1, after: 1, drop: 0 }] };

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
  document.body.replaceChildren();
});

function mount(extra: Record<string, unknown> = {}) {
  const model = new FakeModel({ state: "done", error: "", run_id: 1, phase: "", meta: { model_name: "m", label_names: ["neg", "pos"], pair: false },
    progress: {}, patterns: [ROW], selected: -1, samples: [], custom: {}, ...extra });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const view = new TriggersViewUI(model as any, el, model.invoke);
  cleanup = () => view.destroy();
  return { model, view, root: el.querySelector(".attattr-triggers") as HTMLElement };
}

describe("TriggersView", () => {
  it("formats accuracy before -> after per gold class and marks the attacked class", () => {
    expect(accuracyCells(ROW.per_class)).toEqual([{ text: "neg: 100.0% → 0.0%", drop: true }, { text: "pos: 100.0% → 100.0%", drop: false }]);
  });

  it("renders tokens as text with the inserted ones highlighted", () => {
    const line = tokenLine(["[CLS]", HOSTILE, "cat", "[SEP]"], [false, false, true, false], [true, false, false, true]);
    expect(line.querySelectorAll("span.aa-ins").length).toBe(1);
    expect(line.querySelector("script")).toBeNull();
    expect(line.textContent).toContain(HOSTILE);
    // special tokens are what the kernel flagged, nothing re-derived here
    expect([...line.querySelectorAll("span.aa-special")].map((e) => e.textContent)).toEqual(["[CLS]", "[SEP]"]);
    const flagged = tokenLine(["<x>", "[CLS]"], [false, false], [false, false]);
    expect(flagged.querySelectorAll("span.aa-special").length).toBe(0);
  });

  it("streams rows, selects a pattern, applies it to a typed sentence", () => {
    const { model, view, root } = mount();
    expect(root.dataset.patterns).toBe("1");
    expect(root.querySelector("script")).toBeNull();
    (root.querySelector("tr.aa-row") as HTMLElement).click();
    expect(model.get("selected")).toBe(5);
    (root.querySelector(".aa-own-text") as HTMLInputElement).value = "the movie was awful";
    (root.querySelector(".aa-apply") as HTMLButtonElement).click();
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_apply", msg: { text: "the movie was awful", text_pair: null, pattern: 5 } });
    model.set("custom", { before: { pred: 0, label: "neg", prob: 0.9 }, after: { pred: 1, label: "pos", prob: 0.8 },
      tokens: ["[CLS]", "the", "cat", "[SEP]"], inserted: [false, false, true, false], error: "" });
    view.flush();
    expect(root.dataset.customBefore).toBe("neg");
    expect(root.dataset.customAfter).toBe("pos");
    expect(root.querySelector(".aa-own-out")!.textContent).toContain("prediction flipped");
    expect(view.tableSvg().querySelectorAll("text").length).toBeGreaterThan(6);
  });

  it("shows an apply error as text", () => {
    const { root } = mount({ custom: { error: `ValueError: ${HOSTILE}` } });
    expect(root.querySelector(".aa-own-out .aa-error")!.textContent).toContain(HOSTILE);
  });
});
