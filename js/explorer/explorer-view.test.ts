// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import widget from "./index";
import { formatValue } from "../shared/color";
import { gridData, integrationLine } from "./explorer-state";
import { ExplorerView } from "./explorer-view";
import { normalizedScores } from "../shared/grid-panel";
import { cacheFor } from "./stream";
import { f16, f32, FakeModel, rng, toHalf } from "../shared/testing";

const TOKENS = ["[CLS]", "<img src=x onerror=alert(1)>", "a&amp;b", "</script><b>x", "[SEP]"];

function doneState(L = 3, H = 2, tokens = TOKENS) {
  const n = tokens.length, r = rng(7);
  const scores = Array.from({ length: L * H }, () => r() * 2 - 1);
  const attn = Array.from({ length: n * n }, () => r());
  const attr = Array.from({ length: n * n }, () => r() - 0.5);
  return {
    tokens, token_types: tokens.map(() => 0), run_id: 1, state: "done", error: "", layers_done: L, layers_total: L,
    meta: { model_name: "tiny-bert", target_label: "positive", prob: 0.9, layers: Array.from({ length: L }, (_, i) => i), default_query: 0, text: "<b>hi</b>" },
    head_scores: f32(scores, [L, H]), thumbs: f16(Array.from({ length: L * H * 4 }, () => r() * 2 - 1), [L, H, 2, 2]),
    head: { layer: 1, head: 0, attention: f32(attn, [n, n]), attribution: f32(attr, [n, n]) },
    selected: [1, 0], query: -1, locked: [], normalize: "global", grid_mode: "scores",
  };
}

let cleanup: (() => void) | null = null;
afterEach(() => {
  cleanup?.();
  cleanup = null;
  document.body.replaceChildren();
});

let KEY = 0;
/** anywidget gives initialize() and render() different proxies of one model: mirror that. */
function proxy(m: FakeModel): any {
  return { get: (k: string) => m.get(k), set: (k: string, v: any) => m.set(k, v), save_changes: () => m.save_changes(),
    send: (c: any, cb?: any, b?: any) => m.send(c, cb, b), on: (e: string, f: any) => m.on(e, f), off: (e?: any, f?: any) => m.off(e, f) };
}

function mount(state: Record<string, any>) {
  const model = new FakeModel({ _stream_key: `k${++KEY}`, ...state });
  const el = document.createElement("div");
  document.body.appendChild(el);
  const init = (widget as any).initialize({ model: proxy(model), experimental: { invoke: model.invoke } });
  const view = new ExplorerView(proxy(model), el, model.invoke);
  cleanup = () => {
    view.destroy();
    if (typeof init === "function") init();
  };
  return { model, el, view, root: el.querySelector(".attattr-explorer") as HTMLElement };
}

describe("Explorer view", () => {
  it("mounts under .attattr-explorer with test hooks set after drawing", () => {
    const { root } = mount(doneState());
    expect(root).not.toBeNull();
    expect(root.dataset.state).toBe("done");
    expect(root.dataset.layersDone).toBe("3");
    expect(root.dataset.selected).toBe("1,0");
    expect(root.dataset.headReady).toBe("1,0");
    expect(root.dataset.query).toBe("0");
    expect(root.querySelectorAll("canvas.aa-grid-canvas, canvas.aa-heat-canvas").length).toBe(3);
    expect((root.querySelector(".aa-minimap") as HTMLElement).hidden).toBe(true); // not zoomed
    expect(root.querySelector(".attattr-stop")).not.toBeNull();
  });

  it("shows tokens as text, never as markup", () => {
    const { root } = mount(doneState());
    const toks = [...root.querySelectorAll(".aa-sentence .aa-tok")].map((e) => e.textContent);
    expect(toks).toEqual(TOKENS);
    expect(root.querySelector("img, b, script")).toBeNull();
    expect(document.querySelector("img")).toBeNull();
    expect(root.querySelector(".aa-text")!.textContent).toBe("<b>hi</b>");
  });

  it("grid click selects a head; sentence click sets the query", () => {
    const { root, model, view } = mount(doneState());
    const canvas = root.querySelector(".aa-grid-canvas") as HTMLCanvasElement;
    const gl = view.grid.layout!;
    const step = gl.cell + gl.gap;
    canvas.dispatchEvent(new MouseEvent("click", { clientX: gl.x0 + step + 2, clientY: gl.y0 + 2 * step + 2, bubbles: true }));
    expect(model.get("selected")).toEqual([2, 1]);
    expect(model.saves).toBeGreaterThan(0);
    view.flush();
    expect(root.dataset.selected).toBe("2,1");
    expect(root.dataset.headReady).toBe(""); // waits for the kernel to send that head
    const tok = root.querySelectorAll(".aa-tok")[3] as HTMLElement;
    tok.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(model.get("query")).toBe(3);
    expect(model.get("locked")).toEqual([]);
  });

  it("normalise / mode toggles write the traits", () => {
    const { root, model } = mount(doneState());
    (root.querySelector('[data-value="layer"]') as HTMLButtonElement).click();
    (root.querySelector('[data-value="maps"]') as HTMLButtonElement).click();
    expect(model.get("normalize")).toBe("layer");
    expect(model.get("grid_mode")).toBe("maps");
  });

  it("streams: drops chunks of other runs, fills the grid layer by layer, Stop sends cancel", () => {
    const { root, model, view } = mount({ ...doneState(), state: "running", run_id: 5, head_scores: null, thumbs: null, head: null, selected: [], layers_done: 0, layers_total: 3 });
    const stop = root.querySelector(".attattr-stop") as HTMLButtonElement;
    expect(stop.disabled).toBe(false);
    const chunk = (run_id: number, index: number) => [
      { type: "layer", run_id, index, layer: index, total: 3, heads: 2, zero_prob: 0.5, completeness: 0.9, steps: 4 + index, converged: index === 0, tokens: TOKENS, scores: { dtype: "float32", shape: [2] }, thumbs: { dtype: "float32", shape: [2, 1, 1] } },
      [new DataView(Float32Array.from([0.5, -0.25]).buffer), new Uint8Array(Float32Array.from([1, -1]).buffer)],
    ];
    model.emit("msg:custom", ...chunk(4, 0)); // late chunk of an old run
    view.flush();
    expect(root.dataset.layersDone).toBe("0");
    expect(cacheFor(model).dropped).toBe(1);
    model.emit("msg:custom", ...chunk(5, 0));
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
    model.emit("msg:custom", ...chunk(5, 1));
    view.flush();
    expect(root.dataset.layersDone).toBe("2");
    const g = gridData(model as any, cacheFor(model))!;
    expect(g.L).toBe(3);
    expect(Array.from(g.scores.slice(0, 4))).toEqual([0.5, -0.25, 0.5, -0.25]);
    expect(Number.isNaN(g.scores[4])).toBe(true);
    expect(g.nodes).toEqual([4, 5, null]);
    expect(g.converged).toEqual([true, false, null]);
    expect(integrationLine(g.completeness[1]!, g.nodes[1], g.converged[1])).toBe("IG completeness 0.9 · 5 nodes · not converged (raise steps)");
    expect(integrationLine(0.0001234, 1, true)).toBe(`IG completeness ${formatValue(0.0001234, 3)} · 1 node`);
    expect(g.panels).toEqual([null, null, null]);
    expect(g.unresolved).toEqual([false, false, false]);
    const panels: [number, number][] = [[0, 0.015625], [0.015625, 0.03125], [0.03125, 0.0625], [0.0625, 0.125], [0.125, 0.25], [0.25, 0.5], [0.5, 1]];
    expect(integrationLine(0.0002, 17, true, panels)).toBe(`IG completeness ${formatValue(0.0002, 3)} · 17 nodes · 7 α-panels, finest [0, 1/64]`);
    expect(integrationLine(0.3, 5, true, [[0, 1]], true)).toBe(`IG completeness 0.3 · 5 nodes · ΔF below the dtype's resolution: completeness not meaningful`);
    stop.click();
    expect(model.calls().at(-1)).toEqual({ name: "_cmd_cancel", msg: { run_id: 5 } });
    view.flush();
    expect(stop.disabled).toBe(true);
    model.update({ state: "cancelled" });
    view.flush();
    expect(root.dataset.state).toBe("cancelled");
    expect(stop.hidden).toBe(true);
  });

  it("asks for a resend when it appears in the middle of a run", () => {
    const { model } = mount({ ...doneState(), state: "running", run_id: 9, head_scores: null });
    expect(model.calls().some((c) => c.name === "_cmd_resend" && c.msg.run_id === 9)).toBe(true);
  });

  it("shows engine errors as text", () => {
    const { root } = mount({ ...doneState(), state: "error", error: "ValueError: <b>bad</b> input", meta: { error_detail: "Traceback..." } });
    const box = root.querySelector(".aa-error") as HTMLElement;
    expect(box.hidden).toBe(false);
    expect(box.textContent).toContain("ValueError: <b>bad</b> input");
    expect(box.querySelector("b")).toBeNull();
    expect(root.dataset.state).toBe("error");
  });

  it("search marks matching tokens and Enter makes the match the query", () => {
    const { root, model, view } = mount(doneState());
    const input = root.querySelector(".aa-search") as HTMLInputElement;
    input.value = "script";
    input.dispatchEvent(new Event("input"));
    view.flush();
    expect(root.dataset.matches).toBe("1");
    expect(root.querySelectorAll(".aa-tok.aa-match").length).toBe(1);
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(model.get("query")).toBe(3);
  });

  it("long inputs open zoomed into a window", () => {
    const n = 300;
    const toks = Array.from({ length: n }, (_, i) => `t${i}`);
    const st = doneState(2, 2, toks);
    const { root } = mount(st);
    expect(root.dataset.tokens).toBe("300");
    expect(root.dataset.zoom).toBe("64");
    const opts = [...root.querySelectorAll(".aa-select option")].map((o) => (o as HTMLOptionElement).value);
    expect(opts).toEqual(["300", "128", "64", "32", "16"]);
    expect((root.querySelector(".aa-minimap") as HTMLElement).hidden).toBe(false);
  });

  it("normalises per layer or globally", () => {
    const g = { L: 2, H: 2, scores: Float32Array.from([1, -2, 0.5, 0.25]), thumbs: null, t: 0, layerIds: [0, 1], zeroProbs: [], completeness: [], nodes: [], converged: [], done: 2 };
    expect(Array.from(normalizedScores(g, "global").values)).toEqual([0.5, -1, 0.25, 0.125]);
    expect(Array.from(normalizedScores(g, "layer").values)).toEqual([0.5, -1, 1, 0.5]);
  });

  it("removes every listener on teardown", () => {
    const { model, el } = mount(doneState());
    const cache = cacheFor(model);
    expect(model.listenerCount).toBeGreaterThan(0);
    expect(cache.listenerCount).toBe(1);
    const input = el.querySelector(".aa-search") as HTMLInputElement;
    cleanup!();
    cleanup = null;
    expect(model.listenerCount).toBe(0);
    expect(cache.listenerCount).toBe(0);
    expect(el.querySelector(".attattr-explorer")).toBeNull();
    const saves = model.saves;
    input.value = "x";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    model.set("state", "done"); // no handler left: nothing throws, nothing is saved
    expect(model.saves).toBe(saves);
  });
});

describe("pair mode", () => {
  it("colours heads by the locked pair once the kernel sent it", () => {
    const { root, model, view } = mount(doneState());
    const pairBtn = root.querySelector('[data-value="pair"]') as HTMLButtonElement;
    expect(pairBtn.disabled).toBe(true);
    model.update({ locked: [2, 3], grid_mode: "pair" });
    view.flush();
    expect(root.dataset.gridMode).toBe("scores"); // falls back until the pair arrives
    model.update({ pair: { query: 2, key: 3, scores: f32([0.1, -0.2, 0.3, 0.4, 0.5, -0.6], [3, 2]) } });
    view.flush();
    expect(pairBtn.disabled).toBe(false);
    expect(root.dataset.gridMode).toBe("pair");
    expect(root.dataset.pair).toBe("2,3");
    expect(root.querySelector(".aa-legend-box")!.textContent).toContain("→");
    model.update({ locked: [] }); // a stale pair is ignored
    view.flush();
    expect(root.dataset.gridMode).toBe("scores");
  });
});

describe("stream ordering", () => {
  const chunk = (run_id: number, index: number) => [
    { type: "layer", run_id, index, layer: index, total: 2, heads: 2, zero_prob: 0.5, completeness: 0.9, tokens: TOKENS, scores: { dtype: "float32", shape: [2] } },
    [new DataView(Float32Array.from([0.5, -0.25]).buffer)],
  ];

  it("keeps chunks that overtake their run_id update (ipywidgets applies traits asynchronously)", () => {
    const { root, model, view } = mount({ ...doneState(), state: "running", run_id: 1, head_scores: null, thumbs: null, head: null, selected: [], layers_total: 2 });
    model.emit("msg:custom", ...chunk(2, 0)); // run 2 started in the kernel; its run_id update is still in flight
    view.flush();
    expect(root.dataset.layersDone).toBe("0");
    model.update({ run_id: 2 });
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
    model.emit("msg:custom", ...chunk(1, 1)); // a late chunk of run 1 is dropped
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
  });

  it("the resend command's response fills the layers the page missed", async () => {
    const { root, model, view } = mount({ ...doneState(), state: "running", run_id: 4, head_scores: null, thumbs: null, head: null, selected: [], layers_done: 2, layers_total: 2 });
    const ask = model.invoked.find((c) => c.name === "_cmd_resend")!;
    expect(ask.msg).toEqual({ run_id: 4 });
    const layers = [0, 1].map((i) => ({ ...chunk(4, i)[0], resend: true, special: [true, false, false, false, true] }));
    ask.reply({ ok: true, run_id: 4, layers }, [...(chunk(4, 0)[1] as DataView[]), new DataView(new ArrayBuffer(0)), ...(chunk(4, 1)[1] as DataView[]), new DataView(new ArrayBuffer(0))]);
    await new Promise((r) => setTimeout(r, 0));
    view.flush();
    expect(root.dataset.layersDone).toBe("2");
    // the tokens come from the streamed layers, with the kernel's special flags
    expect([...root.querySelectorAll(".aa-sentence .aa-tok.aa-special")].map((e) => e.textContent)).toEqual([]);
    model.update({ tokens: [] });
    view.flush();
    expect([...root.querySelectorAll(".aa-sentence .aa-tok.aa-special")].map((e) => e.textContent)).toEqual(["[CLS]", "[SEP]"]);
  });

  it("marks the special tokens the kernel flagged (the `special` trait), nothing re-derived", () => {
    const { root, model, view } = mount({ ...doneState(), special: [false, true, false, false, true] });
    const special = () => [...root.querySelectorAll(".aa-sentence .aa-tok.aa-special")].map((e) => e.textContent);
    expect(special()).toEqual(["<img src=x onerror=alert(1)>", "[SEP]"]);
    model.update({ special: [true, false, false, false, false] });
    view.flush();
    expect(special()).toEqual(["[CLS]"]);
  });

  it("asks the kernel to resend when it knows of more finished layers than it received", () => {
    const { model } = mount({ ...doneState(), state: "done", run_id: 2, head_scores: null, layers_done: 0 });
    model.update({ run_id: 3, state: "running" });
    expect(model.calls()).toEqual([]);
    model.update({ layers_done: 2 });
    expect(model.calls()).toEqual([{ name: "_cmd_resend", msg: { run_id: 3 } }]);
    model.update({ layers_done: 3 }); // throttled
    expect(model.calls().length).toBe(1);
  });
});

describe("keyboard", () => {
  it("arrow keys on a heatmap move the locked cell", () => {
    const { root, model } = mount({ ...doneState(), locked: [1, 1], query: 1 });
    const c = root.querySelector("canvas[data-map=attribution]") as HTMLCanvasElement;
    c.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    c.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    expect(model.get("locked")).toEqual([2, 2]);
    expect(model.get("query")).toBe(2);
    for (let i = 0; i < 9; i++) c.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    expect(model.get("locked")).toEqual([4, 2]); // clamped to n - 1
  });
});

describe("heatmap SVG export", () => {
  it("is a real vector: rects per colour run, tokens as text, no embedded raster", () => {
    const { view } = mount(doneState());
    const svg = view.heat.toSvg()!;
    expect(svg.querySelectorAll("image").length).toBe(0);
    const att = svg.querySelector('[data-map="attention"]')!, atr = svg.querySelector('[data-map="attribution"]')!;
    const n = TOKENS.length;
    for (const g of [att, atr]) {
      const rects = g.querySelectorAll("[shape-rendering] rect");
      expect(rects.length).toBeGreaterThanOrEqual(n); // at least one run per row
      expect(rects.length).toBeLessThanOrEqual(n * n);
      const cover = [...rects].reduce((a, r) => a + Number(r.getAttribute("width")) * Number(r.getAttribute("height")), 0);
      const side = view.heat.layout!.side;
      expect(cover).toBeCloseTo(side * side, 0); // the runs tile the whole map
    }
    const texts = [...svg.querySelectorAll("text")].map((t) => t.textContent);
    expect(texts).toContain("<img src=x onerror=alert(1)>");
    expect(svg.querySelector("img, script")).toBeNull();
  });
});

describe("an explained answer", () => {
  // tokens = prompt + answer; the answer's tokens are untrusted strings too
  const ANS = ["The", " capital", " is", " <img src=x onerror=alert(1)>", " &amp;", " </script>"];
  const answerState = (extra: Record<string, any> = {}) => {
    const s = doneState(3, 2, ANS);
    return { ...s, special: ANS.map(() => false), answer_token: -1, ...extra,
      meta: { ...s.meta, target_kind: "continuation", target_label: ANS.slice(3).join(""), score: "logprob", prob: -2.5,
        answer_start: 3, answer_token: null, answer: ANS.slice(3).join(""), answer_ready: [0, 1, 2], default_query: 2, ...(extra.meta ?? {}) } };
  };
  const chunk = (run_id: number, index: number, answer_token: number | null) => [
    { type: "layer", run_id, answer_token, index, layer: index, total: 3, heads: 2, zero_prob: 0.5, completeness: 0.9, tokens: ANS,
      scores: { dtype: "float32", shape: [2] }, thumbs: { dtype: "float32", shape: [2, 1, 1] } },
    [new DataView(Float32Array.from([0.5, -0.25]).buffer), new Uint8Array(Float32Array.from([1, -1]).buffer)],
  ];

  it("sets the answer apart in the sentence, as text, and the header says what F is", () => {
    const { root } = mount(answerState());
    expect(root.dataset.answerStart).toBe("3");
    const answer = [...root.querySelectorAll(".aa-sentence .aa-tok.aa-answer")].map((e) => e.textContent);
    expect(answer).toEqual(ANS.slice(3));
    expect(root.querySelector(".aa-sentence .aa-tok.aa-ansb")!.textContent).toBe(ANS[3]);
    expect(root.querySelector("img, script")).toBeNull();
    const chip = root.querySelector(".aa-header")!.textContent!;
    expect(chip).toContain(`answer: ${ANS.slice(3).join("")}`);
    expect(chip).toContain("log p = ");
    const picks = [...root.querySelectorAll(".aa-answer-bar button")] as HTMLButtonElement[];
    expect(picks.map((b) => b.textContent)).toEqual(["whole answer", ...ANS.slice(3)]);
    expect(picks[0].classList.contains("aa-on")).toBe(true);
  });

  it("picking an answer token writes `answer_token`; tokens without maps of their own are disabled", () => {
    const { root, model, view } = mount(answerState({ meta: { answer_ready: [0, 2] } }));
    const picks = () => [...root.querySelectorAll(".aa-answer-bar button")] as HTMLButtonElement[];
    expect(picks().map((b) => b.disabled)).toEqual([false, false, true, false]);
    picks()[3].click();
    expect(model.get("answer_token")).toBe(2);
    view.flush();
    expect(root.dataset.answerToken).toBe("2");
    // until the kernel sent answer token 2's maps the picker says so (a saved page never gets them)
    expect(picks()[3].classList.contains("aa-pending")).toBe(true);
    expect(picks()[0].classList.contains("aa-on")).toBe(true);
    expect(root.querySelector(".aa-ans-wait")!.textContent).toContain("running kernel");
    model.update({ meta: { ...model.get("meta"), answer_token: 2 } });
    view.flush();
    expect(picks()[3].classList.contains("aa-on")).toBe(true);
    expect(root.querySelector(".aa-ans-wait")).toBeNull();
    expect(root.querySelector(".aa-sentence .aa-tok.aa-ans-on")!.textContent).toBe(ANS[5]);
    picks()[0].click();
    expect(model.get("answer_token")).toBe(-1);
  });

  it("repaints when the kernel sends another answer token's maps for the same head and run", () => {
    const { model, view } = mount(answerState());
    const before = Array.from(view.heat.data!.attr);
    const n = ANS.length;
    const other = Array.from({ length: n * n }, (_, k) => (k % n) / n - 0.5);
    model.set("answer_token", 1);
    model.update({ head: { layer: 1, head: 0, attention: f32(Array(n * n).fill(0.1), [n, n]), attribution: f32(other, [n, n]) } });
    view.flush();
    expect(Array.from(view.heat.data!.attr)).not.toEqual(before);
    expect(view.heat.data!.attr[1]).toBeCloseTo(other[1]);
  });

  it("an exported page switches answer tokens by itself from `answer_states`: the kernel's traits, the embedded maps", async () => {
    const n = ANS.length, L = 3, H = 2, base = answerState();
    const deflate = async (a: Uint16Array) => {
      const st = new Blob([new Uint8Array(a.buffer) as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
      return new DataView(await new Response(st).arrayBuffer());
    };
    const heads = async (v: number) => ({ format: 1, L, H, n, heads: [[1, 0]], scales: [[1, 1]], requested: L * H, omitted: L * H - 1,
      chunks: [{ codec: "deflate", dtype: "float16", shape: [2, n, n], view: await deflate(Uint16Array.from({ length: 2 * n * n }, () => toHalf(v))) }],
      policy: "all", budget: 1000, bytes: 40 });
    const scores1 = [0.1, 0.2, 0.9, 0.3, 0.4, 0.5];
    const states = {
      "-1": { meta: base.meta, head_scores: base.head_scores, thumbs: base.thumbs, heads_data: await heads(0.25) },
      "1": { meta: { ...base.meta, answer_token: 1, prob: -0.75, answer: "", default_query: 3 }, head_scores: f32(scores1, [L, H]),
        thumbs: base.thumbs, heads_data: await heads(0.5) },
    };
    const { root, model, view } = mount({ ...base, answer_states: states, locked: [2, 1] });
    const picks = () => [...root.querySelectorAll(".aa-answer-bar button")] as HTMLButtonElement[];
    const settle = async (want: number) => {
      for (let i = 0; i < 100 && !(root.dataset.headSource === "embedded" && view.heat.data?.attr[0] === want); i++) {
        await new Promise((r) => setTimeout(r, 20));
        view.flush();
      }
    };
    picks()[2].click(); // answer token 1
    expect(model.get("answer_token")).toBe(1);
    expect(model.get("meta").answer_token).toBe(1);
    expect(model.get("head_scores")).toBe(states["1"].head_scores);
    expect([model.get("head"), model.get("pair"), model.get("locked"), model.get("query")]).toEqual([null, null, [], 3]);
    await settle(0.5);
    expect(root.dataset.headSource).toBe("embedded");
    expect(view.heat.data!.attr[0]).toBe(0.5); // answer token 1's own map, drawn from the page
    expect(root.querySelector(".aa-ans-wait")).toBeNull(); // nothing waits for a kernel
    expect(picks()[2].classList.contains("aa-on")).toBe(true);
    picks()[0].click(); // back to the whole answer
    expect(model.get("answer_token")).toBe(-1);
    expect(model.get("meta").answer_token).toBeNull();
    await settle(0.25);
    expect(view.heat.data!.attr[0]).toBe(0.25);
    expect(picks()[0].classList.contains("aa-on")).toBe(true);
  });

  it("without `answer_states` (a live kernel) picking only writes `answer_token`", () => {
    const { root, model } = mount(answerState());
    const head = model.get("head");
    ([...root.querySelectorAll(".aa-answer-bar button")][2] as HTMLButtonElement).click();
    expect(model.get("answer_token")).toBe(1);
    expect(model.get("head")).toBe(head);
    expect(model.get("meta").answer_token).toBeNull(); // until the kernel answers
  });

  it("no answer, no picker and no marks", () => {
    const { root } = mount(doneState());
    expect((root.querySelector(".aa-answer-bar") as HTMLElement).hidden).toBe(true);
    expect(root.querySelector(".aa-tok.aa-answer")).toBeNull();
    expect(root.dataset.answerStart).toBe("-1");
  });

  it("streams only the shown answer token; picking another empties the cache and asks for its layers", () => {
    const { root, model, view } = mount(answerState({ state: "running", run_id: 5, head_scores: null, thumbs: null, head: null, selected: [], layers_done: 0 }));
    const before = model.calls().length;
    model.emit("msg:custom", ...chunk(5, 0, null));
    model.emit("msg:custom", ...chunk(5, 0, 1)); // answer token 1's own layer: not shown
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
    expect(cacheFor(model).dropped).toBe(1);
    model.set("answer_token", 1);
    expect(cacheFor(model).layers.size).toBe(0);
    expect(model.calls().slice(before).filter((c) => c.name === "_cmd_resend").length).toBeGreaterThanOrEqual(1);
    model.emit("msg:custom", ...chunk(5, 0, 1));
    model.emit("msg:custom", ...chunk(5, 1, null)); // the whole answer's: not shown now
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
    expect(cacheFor(model).stream).toBe(":1");
  });

  it("marks the answer on the heatmap SVG: a boundary line and the answer labels in the answer colour", () => {
    const { view } = mount(answerState());
    const svg = view.heat.toSvg()!;
    expect(svg.querySelectorAll('[data-answer="col"], [data-answer="row"]').length).toBe(4); // both maps, both axes
    const texts = [...svg.querySelectorAll('[data-map="attention"] text')];
    const fill = (s: string) => texts.find((t) => t.textContent === s)!.getAttribute("fill");
    expect(fill(ANS[4])).not.toBe(fill(ANS[1]));
    expect(fill(ANS[4])).toBe(fill(ANS[5]));
    expect(svg.querySelector("img, script")).toBeNull();
  });
});

describe("an encoder–decoder (three sites, rectangular cross-attention)", () => {
  const SRC = ["the", "<img src=x onerror=alert(1)>", "cat", "</script><b>s", "sat", "on", "</s>"];
  const TGT = ["<pad>", "die", "a&amp;b", "katze"];
  function crossState(extra: Record<string, any> = {}) {
    const L = 2, H = 2, rows = TGT.length, cols = SRC.length, r = rng(3);
    const attn = Array.from({ length: rows * cols }, () => r());
    const attr = Array.from({ length: rows * cols }, () => r() - 0.5);
    return {
      ...doneState(L, H, TGT), token_types: [], site: "cross", col_tokens: SRC, col_special: SRC.map((t) => t === "</s>"),
      meta: { model_name: "tiny-marian", target_kind: "answer", answer: "die katze", prob: -3.2, score: "logprob", layers: [0, 1],
        default_query: 0, text: "the cat sat", sites: ["encoder", "decoder", "cross"], site_layers: { encoder: [2, 2], decoder: [2, 2], cross: [2, 2] } },
      head: { layer: 1, head: 0, attention: f32(attn, [rows, cols]), attribution: f32(attr, [rows, cols]) },
      ...extra,
    };
  }

  it("draws the rectangular maps with answer rows and source columns, and both sentences as text", () => {
    const { root, view } = mount(crossState());
    expect(root.dataset.site).toBe("cross");
    expect(root.dataset.heatShape).toBe(`${TGT.length}x${SRC.length}`);
    expect(root.dataset.tokens).toBe(String(TGT.length));
    expect(root.dataset.cols).toBe(String(SRC.length));
    const hl = view.heat.layout!;
    expect([hl.rows, hl.cols]).toEqual([TGT.length, SRC.length]);
    const canvas = root.querySelector("canvas[data-map=attention]") as HTMLCanvasElement;
    expect(parseFloat(canvas.style.width)).toBeGreaterThan(parseFloat(canvas.style.height)); // wider than tall: 7 cols × 4 rows
    // the row sentence (answer tokens: pick the query) and the column sentence (source, coloured by the query row)
    const rowChips = [...root.querySelectorAll(".aa-row-sentence .aa-tok")].map((e) => e.textContent);
    const colPanel = [...root.querySelectorAll(".aa-sentence-panel")].find((p) => !p.classList.contains("aa-row-sentence"))!;
    const colChips = [...colPanel.querySelectorAll(".aa-tok")] as HTMLElement[];
    expect(rowChips).toEqual(TGT);
    expect(colChips.map((e) => e.textContent)).toEqual(SRC);
    expect(colChips.every((e) => e.style.backgroundColor !== "")).toBe(true); // coloured by row 0's attribution
    expect(colChips[6].classList.contains("aa-special")).toBe(true);
    expect(root.querySelector("img, b, script")).toBeNull();
    expect(document.querySelector("img")).toBeNull();
    // the heatmap SVG labels rows with answer tokens and columns with source tokens, as text
    const svg = view.heat.toSvg()!;
    const texts = [...svg.querySelectorAll('[data-map="attention"] text')].map((t) => t.textContent);
    for (const t of [...SRC, ...TGT]) expect(texts).toContain(t);
    const rects = svg.querySelectorAll('[data-map="attribution"] [shape-rendering] rect');
    const cover = [...rects].reduce((a, r) => a + Number(r.getAttribute("width")) * Number(r.getAttribute("height")), 0);
    const cs = hl.side / hl.win.size;
    expect(Math.abs(cover / (TGT.length * SRC.length * cs * cs) - 1)).toBeLessThan(1e-3); // the runs tile the rows × cols map (coordinates rounded to 0.01 px)
    expect(svg.querySelector("img, script")).toBeNull();
  });

  it("hover, click and arrow keys address rows and columns separately (the last source column is reachable)", () => {
    const { root, model, view } = mount(crossState());
    const c = root.querySelector("canvas[data-map=attribution]") as HTMLCanvasElement;
    const hl = view.heat.layout!, cs = hl.side / hl.win.size;
    c.getBoundingClientRect = () => ({ left: 0, top: 0, right: 0, bottom: 0, width: 0, height: 0, x: 0, y: 0, toJSON: () => ({}) });
    const at = (row: number, col: number) => ({ clientX: hl.x0 + (col + 0.5) * cs, clientY: hl.y0 + (row + 0.5) * cs, bubbles: true, pointerId: 1 });
    c.dispatchEvent(new PointerEvent("pointerdown", at(3, 6)));
    c.dispatchEvent(new PointerEvent("pointerup", at(3, 6)));
    expect(model.get("locked")).toEqual([3, 6]);
    c.dispatchEvent(new PointerEvent("pointermove", at(3, SRC.length + 1))); // right of the map: no cell
    view.flush();
    expect(root.dataset.hover).toBe("");
    for (let i = 0; i < 5; i++) c.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    for (let i = 0; i < 5; i++) c.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(model.get("locked")).toEqual([TGT.length - 1, SRC.length - 1]); // clamped per axis
    view.flush();
    expect(view.heat.el.querySelector(".aa-readout")!.textContent).toContain(SRC[SRC.length - 1]);
  });

  it("the readout says which answer token a row predicts, as text; no claim when the kernel sent none per row", () => {
    const PRED = ["die", "a&amp;b", "katze", "<img src=x onerror=alert(2)>"]; // row i reads TGT[i], predicts PRED[i]
    const st = crossState();
    const { root, model, view } = mount({ ...st, meta: { ...st.meta, predicts: PRED } });
    const readout = () => view.heat.el.querySelector(".aa-readout")!;
    model.set("locked", [3, 1]);
    view.flush();
    expect(readout().querySelector(".aa-predicts")!.textContent).toBe(` (predicts ${PRED[3]})`);
    expect(readout().textContent).toContain(`${TGT[3]}3 (predicts ${PRED[3]}) attends to ${SRC[1]}1`);
    model.set("locked", [0, 2]);
    view.flush();
    expect(readout().querySelector(".aa-predicts")!.textContent).toBe(" (predicts die)");
    expect(root.querySelector("img, script")).toBeNull();
    model.update({ meta: { ...model.get("meta"), predicts: PRED.slice(1) } }); // not one per row: nothing is claimed
    view.flush();
    expect(readout().querySelector(".aa-predicts")).toBeNull();
    expect(readout().textContent).toContain(`${TGT[0]}0 attends to ${SRC[2]}2`);
  });

  it("the site switch writes `site`; streamed layers of another site are not shown", () => {
    const { root, model, view } = mount(crossState({ state: "running", run_id: 4, head_scores: null, thumbs: null, head: null, selected: [],
      tokens: [], col_tokens: [], layers_done: 0, layers_total: 2 }));
    const buttons = [...root.querySelectorAll(".aa-site-bar button")] as HTMLButtonElement[];
    expect(buttons.map((b) => b.dataset.value)).toEqual(["encoder", "decoder", "cross"]);
    expect(buttons[2].classList.contains("aa-on")).toBe(true);
    const chunk = (site: string, index: number) => [
      { type: "layer", run_id: 4, site, index, layer: index, total: 2, heads: 2, zero_prob: -5, completeness: 1e-9, tokens: site === "encoder" ? SRC : TGT,
        ...(site === "cross" ? { col_tokens: SRC, col_special: SRC.map(() => false) } : {}), scores: { dtype: "float32", shape: [2] } },
      [new DataView(Float32Array.from([0.5, -0.25]).buffer)],
    ];
    model.emit("msg:custom", ...chunk("encoder", 0)); // the encoder streams first; the cross view waits
    view.flush();
    expect(root.dataset.layersDone).toBe("0");
    model.emit("msg:custom", ...chunk("cross", 0));
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
    expect(root.dataset.cols).toBe(String(SRC.length)); // column tokens from the streamed layer before the traits
    const before = model.calls().length;
    buttons[0].click();
    expect(model.get("site")).toBe("encoder");
    expect(cacheFor(model).layers.size).toBe(0); // the cross stream is dropped; the encoder's is asked for
    expect(model.calls().slice(before).some((c) => c.name === "_cmd_resend")).toBe(true);
    model.emit("msg:custom", ...chunk("encoder", 1));
    view.flush();
    expect(root.dataset.layersDone).toBe("1");
    expect(cacheFor(model).stream).toBe("encoder:-1");
  });

  it("a single-stack model has no site switch", () => {
    const { root } = mount(doneState());
    expect((root.querySelector(".aa-site-bar") as HTMLElement).hidden).toBe(true);
    expect((root.querySelector(".aa-row-sentence") as HTMLElement).hidden).toBe(true);
    expect(root.dataset.heatShape).toBe(`${TOKENS.length}x${TOKENS.length}`);
  });
});

describe("search on rectangular maps", () => {
  it("marks row and column matches on their own axes", () => {
    const SRC = ["the", "cat", "sat", "</s>"], TGT = ["<pad>", "die", "katze"];
    const r = rng(5);
    const { root, view } = mount({ ...doneState(2, 2, TGT), token_types: [], site: "cross", col_tokens: SRC, col_special: SRC.map(() => false),
      meta: { layers: [0, 1], default_query: 0, sites: ["encoder", "decoder", "cross"], target_kind: "answer", answer: "die katze" },
      head: { layer: 1, head: 0, attention: f32(Array.from({ length: 12 }, () => r()), [3, 4]), attribution: f32(Array.from({ length: 12 }, () => r() - 0.5), [3, 4]) } });
    const search = view.heat.search;
    search.value = "cat";
    search.dispatchEvent(new Event("input"));
    view.flush();
    expect(view.heat.matches).toEqual([]); // no answer token contains "cat"
    expect(view.heat.colMatches).toEqual([1]);
    const colPanel = [...root.querySelectorAll(".aa-sentence-panel")].find((p) => !p.classList.contains("aa-row-sentence"))!;
    expect([...colPanel.querySelectorAll(".aa-tok.aa-match")].map((e) => e.textContent)).toEqual(["cat"]);
    search.value = "katze";
    search.dispatchEvent(new Event("input"));
    view.flush();
    expect(view.heat.matches).toEqual([2]);
    expect(view.heat.colMatches).toEqual([]);
    expect([...root.querySelectorAll(".aa-row-sentence .aa-tok.aa-match")].map((e) => e.textContent)).toEqual(["katze"]);
  });
});
