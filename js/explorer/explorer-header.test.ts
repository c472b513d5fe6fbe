// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { Header } from "../shared/header";
import { EXPLORER_HEADER, explorerHeader, targetText, type ExplorerHeaderInput } from "./explorer-header";

function panel() {
  const header = new Header(() => true, new AbortController().signal, EXPLORER_HEADER);
  const badge = header.el.querySelector(".aa-badge") as HTMLElement;
  const p = { errorBox: header.errorBox, render: (x: ExplorerHeaderInput) => header.render(explorerHeader(x)) };
  return { p, badge };
}

describe("Explorer header run state", () => {
  it("a finished run with NaN/inf layers shows a warning, not 'done'", () => {
    const { p, badge } = panel();
    p.render({ meta: { nonfinite: [2, 5] }, state: "done", error: "", done: 6, total: 6 });
    expect(badge.textContent).toBe("NaN/inf in results");
    expect(badge.dataset.state).toBe("done");
    expect(badge.dataset.warn).toBe("nonfinite");
    expect(p.errorBox.hidden).toBe(false);
    expect(p.errorBox.dataset.kind).toBe("warning");
    expect(p.errorBox.textContent).toContain("layers 2, 5");
  });

  it("finite results say 'done' with no warning; the warning clears on the next run", () => {
    const { p, badge } = panel();
    p.render({ meta: { nonfinite: [1] }, state: "done", error: "", done: 2, total: 2 });
    p.render({ meta: {}, state: "done", error: "", done: 2, total: 2 });
    expect(badge.textContent).toBe("done");
    expect(badge.dataset.warn).toBeUndefined();
    expect(p.errorBox.hidden).toBe(true);
  });

  it("an error wins over the warning; untrusted text stays text", () => {
    const { p, badge } = panel();
    p.render({ meta: { nonfinite: [0] }, state: "error", error: "<img src=x onerror=alert(1)>", done: 0, total: 2 });
    expect(badge.textContent).toBe("error");
    expect(p.errorBox.dataset.kind).toBe("error");
    expect(p.errorBox.querySelector("img")).toBeNull();
    expect(p.errorBox.textContent).toContain("<img src=x onerror=alert(1)>");
  });
});

describe("target text", () => {
  it("an encoder–decoder names its answer (streaming: the typed one; generated: once known)", () => {
    const sites = ["encoder", "decoder", "cross"];
    expect(targetText({ target_kind: "answer", sites, answer: "die katze", target_label: "die katze" })).toBe("answer: die katze");
    expect(targetText({ target_kind: "answer", sites, answer: "" })).toBe("answer: (generating…)");
    // one square site made an Attribution (as_attribution): its own label
    expect(targetText({ target_kind: "answer", target_label: "decoder self-attention · answer 'x'" })).toBe("target: decoder self-attention · answer 'x'");
  });
});
