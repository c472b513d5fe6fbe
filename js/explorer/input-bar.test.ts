// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { chosenTarget, contrastPayload, InputBar, optionLabel } from "./input-bar";
import { f32 } from "../shared/testing";

function bar() {
  const calls: any[] = [];
  const b = new InputBar({
    onRun: (...a) => calls.push(["run", ...a]), onTargets: (...a) => calls.push(["targets", ...a]),
    onImage: (f, t) => calls.push(["image", f ? f.name : null, t]),
    onHistory: (k) => calls.push(["history", k]), onContrast: (t) => calls.push(["contrast", t]), onContrastView: (v) => calls.push(["view", v]),
  }, new AbortController().signal);
  document.body.appendChild(b.el);
  return { b, calls };
}

const PROPS = { spec: { kind: "class" as const, pair: true, label_names: ["neg", "<b>pos</b>"] }, targets: {}, history: [], contrast: {},
  contrastView: "diff" as const, text: null, textPair: null, target: null, answer: null, runState: "empty" };
const LM = { ...PROPS, spec: { kind: "next-token" as const, pair: false, label_names: [], answers: true } };

describe("input bar", () => {
  it("turns the selector and free entry into a target", () => {
    expect(chosenTarget("__pred__", "")).toBe("pred");
    expect(chosenTarget("2", "")).toBe(2);
    expect(chosenTarget("__free__", " Paris")).toBe(" Paris");
    expect(chosenTarget("__free__", "17")).toBe(17);
    expect(optionLabel({ id: 1, label: "Ġworld", prob: 0.25 }, "next-token")).toContain("·world");
  });

  it("runs on Enter with text, pair and target; lists classes as text", () => {
    const { b, calls } = bar();
    b.render(PROPS);
    expect([...b.target.options].map((o) => o.textContent)).toEqual(["predicted", "neg", "<b>pos</b>", "other…"]);
    expect(b.el.querySelector("b")).toBeNull();
    b.text.value = "a fine film";
    b.pair.value = "so good";
    b.target.value = "1";
    b.text.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(calls.at(-1)).toEqual(["run", "a fine film", "so good", 1, null]);
  });

  it("offers an answer field and generate N tokens for causal LMs only", () => {
    const { b, calls } = bar();
    b.render(PROPS);
    expect([...b.target.options].map((o) => o.value)).not.toContain("__answer__");
    b.render(LM);
    expect([...b.target.options].map((o) => o.value).slice(-2)).toEqual(["__answer__", "__generate__"]);
    b.text.value = "The capital of France is";
    b.target.value = "__answer__";
    b.target.dispatchEvent(new Event("change"));
    expect(b.answer.hidden).toBe(false);
    expect(b.gen.hidden).toBe(true);
    b.answer.value = " Paris, a city";
    b.answer.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(calls.at(-1)).toEqual(["run", "The capital of France is", null, " Paris, a city", null]);
    b.target.value = "__generate__";
    b.target.dispatchEvent(new Event("change"));
    expect(b.gen.hidden).toBe(false);
    expect(b.answer.hidden).toBe(true);
    b.gen.value = "5";
    b.runBtn.click();
    expect(calls.at(-1)).toEqual(["run", "The capital of France is", null, "pred", 5]);
  });

  it("contrasts an answer with a typed second answer and lists answers in the history as text", () => {
    const { b, calls } = bar();
    const hostile = "<img src=x onerror=alert(1)>";
    b.render({ ...LM, runState: "done", text: "Q", answer: " Paris", contrast: {},
      history: [{ key: 1, text: "Q", text_pair: null, target: -1, target_label: hostile, prob: -1.5, answer: hostile }] });
    expect(b.answer.value).toBe(" Paris");
    expect(b.target.value).toBe("__answer__"); // the shown answer is what Enter explains again
    expect(b.answer.hidden).toBe(false);
    expect([...b.contrastSel.options].map((o) => o.value)).toEqual(["", "__answer__"]);
    expect(b.history.options[1].textContent).toContain("<img");
    expect(b.el.querySelector("img")).toBeNull();
    b.contrastSel.value = "__answer__";
    b.contrastSel.dispatchEvent(new Event("change"));
    expect(b.contrastAnswer.hidden).toBe(false);
    b.contrastAnswer.value = " Lyon";
    b.contrastBtn.click();
    expect(calls.at(-1)).toEqual(["contrast", " Lyon"]);
    b.render({ ...LM, runState: "done", text: "Q", answer: " Paris", history: [],
      contrast: { target: " Lyon", target_label: " Lyon", state: "done", common: 5 } });
    expect(b.contrastNote.textContent).toContain("over the 5 tokens both share");
  });

  it("offers the history and the contrast targets; contrast sends the other class", () => {
    const { b, calls } = bar();
    b.render({ ...PROPS, runState: "done", text: "x", target: 0, history: [{ key: 3, text: "x", text_pair: null, target: 0, target_label: "neg", prob: 0.9 }],
      targets: { text: "x", kind: "class", pred: 0, options: [{ id: 0, label: "neg", prob: 0.9 }, { id: 1, label: "pos", prob: 0.1 }] } });
    expect(b.history.options.length).toBe(2);
    b.history.value = "3";
    b.history.dispatchEvent(new Event("change"));
    expect(calls.at(-1)).toEqual(["history", 3]);
    expect([...b.contrastSel.options].map((o) => o.value)).toEqual(["", "1"]);
    b.contrastSel.value = "1";
    b.contrastBtn.click();
    expect(calls.at(-1)).toEqual(["contrast", 1]);
  });

  it("image models: a file chooser instead of the text; top-k of the shown picture; Run re-runs the picture", () => {
    const { b, calls } = bar();
    b.render({ ...PROPS, spec: { kind: "class", pair: false, label_names: ["0", "1", "2"], image: true }, text: "seven.png", runState: "done", target: 7,
      targets: { text: "seven.png", kind: "class", pred: 7, options: [{ id: 7, label: "7", prob: 0.8 }, { id: 1, label: "1", prob: 0.15 }] } });
    expect(b.text.hidden).toBe(true);
    expect(b.pair.hidden).toBe(true);
    expect(b.file.hidden).toBe(false);
    expect(b.file.accept).toBe("image/*");
    expect([...b.target.options].map((o) => o.value)).toEqual(["__pred__", "7", "1", "__free__"]);
    b.target.value = "1";
    b.runBtn.click();
    expect(calls.at(-1)).toEqual(["image", null, 1]);
    const f = new File([new Uint8Array([137, 80, 78, 71])], "cat.png", { type: "image/png" });
    Object.defineProperty(b.file, "files", { value: [f] });
    b.file.dispatchEvent(new Event("change"));
    expect(calls.at(-1)).toEqual(["image", "cat.png", "pred"]);
  });

  it("computes the difference map A - B for the contrast view", () => {
    const p = { layer: 0, head: 0, attention: f32([1, 0, 0, 1], [2, 2]), attribution: f32([0.5, 0.1, 0, 0.2], [2, 2]), contrast: f32([0.1, 0.1, 0.3, 0], [2, 2]) };
    const d = contrastPayload(p, "diff", true)!;
    const v = new Float32Array((d.attribution.view as Float32Array).buffer);
    expect(Array.from(v).map((x) => Math.round(x * 10) / 10)).toEqual([0.4, 0, -0.3, 0.2]);
    expect(contrastPayload(p, "target", true)).toBe(p);
    expect(contrastPayload(p, "diff", false)).toBe(p);
  });
});
