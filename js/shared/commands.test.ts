import { describe, expect, it } from "vitest";
import { Commands } from "./commands";
import { FakeModel } from "./testing";

describe("Commands (anywidget invoke with an abort signal)", () => {
  it("resolves to the kernel's response", async () => {
    const model = new FakeModel({});
    const c = new Commands(model as any, model.invoke, new AbortController().signal);
    const p = c.call("_cmd_run", { text: "hi" });
    expect(model.calls()).toEqual([{ name: "_cmd_run", msg: { text: "hi" } }]);
    const buf = new DataView(new ArrayBuffer(4));
    model.invoked[0].reply({ ok: true }, [buf]);
    expect(await p).toEqual([{ ok: true }, [buf]]);
  });

  it("a newer call of the same command aborts the older one; other commands are independent", async () => {
    const model = new FakeModel({});
    const c = new Commands(model as any, model.invoke, new AbortController().signal);
    const first = c.call("_cmd_targets", { text: "a" });
    const other = c.call("_cmd_open", { index: 1 });
    const second = c.call("_cmd_targets", { text: "ab" });
    expect(model.invoked[0].signal!.aborted).toBe(true);
    expect(model.invoked[1].signal!.aborted).toBe(false);
    expect(await first).toBeNull();
    model.invoked[2].reply({ ok: true });
    model.invoked[1].reply({ ok: false, error: "IndexError: 1" });
    expect(await second).toEqual([{ ok: true }, []]);
    expect(await other).toEqual([{ ok: false, error: "IndexError: 1" }, []]);
  });

  it("removing the view aborts what is pending and sends nothing more (no kernel: nothing ever answers)", async () => {
    const model = new FakeModel({});
    const view = new AbortController();
    const c = new Commands(model as any, model.invoke, view.signal);
    const p = c.call("_cmd_edge", { parent: 1 });
    view.abort();
    expect(model.invoked[0].signal!.aborted).toBe(true);
    expect(await p).toBeNull();
    expect(await c.call("_cmd_edge", { parent: 2 })).toBeNull();
    expect(model.invoked.length).toBe(1);
  });

  it("hosts whose invoke refuses (marimo) get the same command message through model.send", async () => {
    const model = new FakeModel({});
    const refuse = () => Promise.reject(new Error("anywidget.invoke not supported"));
    const c = new Commands(model as any, refuse as any, new AbortController().signal);
    const p = c.call("_cmd_cancel", { run_id: 3 });
    await Promise.resolve();
    await Promise.resolve();
    const sent = model.sent.at(-1)!.content;
    expect(sent).toMatchObject({ kind: "anywidget-command", name: "_cmd_cancel", msg: { run_id: 3 } });
    model.emit("msg:custom", { id: "someone else", kind: "anywidget-command-response", response: {} }, []);
    model.emit("msg:custom", { id: sent.id, kind: "anywidget-command-response", response: { ok: true } }, []);
    expect(await p).toEqual([{ ok: true }, []]);
    expect(model.listenerCount).toBe(0);
  });
});
