// Requests from a view to the kernel as anywidget commands: the Python side marks the handlers with
// `@command` (attattr_widgets/widgets/_base.py), the browser calls them with `experimental.invoke` and gets one
// response per request. Every call carries an AbortSignal, aborted when the view (or the model) goes away or
// when a newer call of the same command supersedes it; an aborted call resolves to null and its late response
// is ignored. Without a kernel (exported pages, notebooks reopened without one) nothing answers: calls stay
// pending until superseded or torn down, and the view keeps drawing its synced state, as it always did.
import type { AnyModel, Experimental } from "@anywidget/types";
import type { CommandName } from "./protocol";

export type Invoke = Experimental["invoke"];

/** What every command answers: `ok` false with `error` (text) when the kernel refused the request. */
export interface CommandResponse {
  ok: boolean;
  error?: string;
  [key: string]: unknown;
}

let SEQ = 0;

/** anywidget's wire format of a command sent through `model.send`, for hosts whose `invoke` refuses (marimo
 * 0.25 rejects every call); the kernel side is the same `@command` handler. */
function sendInvoke(model: AnyModel): Invoke {
  return <T>(name: string, msg?: unknown, options: { buffers?: DataView[]; signal?: AbortSignal } = {}) =>
    new Promise<[T, DataView[]]>((resolve, reject) => {
      const id = `aa-${Date.now().toString(36)}-${++SEQ}`;
      const handler = (m: { id?: string; response?: T }, buffers: DataView[]) => {
        if (!m || m.id !== id) return;
        model.off("msg:custom", handler);
        resolve([m.response as T, buffers ?? []]);
      };
      options.signal?.addEventListener("abort", () => {
        model.off("msg:custom", handler);
        reject(options.signal?.reason);
      }, { once: true });
      model.on("msg:custom", handler);
      model.send({ id, kind: "anywidget-command", name, msg }, undefined, options.buffers ?? []);
    });
}

export class Commands {
  private pending = new Map<CommandName, AbortController>();
  private fallback: Invoke | null = null;

  /** `invoke` is the host's `experimental.invoke` (absent: the `model.send` form); `signal` the view's lifetime. */
  constructor(private model: AnyModel, private invoke: Invoke | undefined, private signal: AbortSignal) {}

  /** Call command `name` with `msg` (and binary `buffers`: an uploaded file); resolves to [response, buffers], or
   * null when aborted / superseded. */
  async call<T = CommandResponse>(name: CommandName, msg: object = {}, buffers: DataView[] = []): Promise<[T, DataView[]] | null> {
    if (this.signal.aborted) return null;
    this.pending.get(name)?.abort();
    const ac = new AbortController();
    this.pending.set(name, ac);
    const stop = () => ac.abort();
    this.signal.addEventListener("abort", stop, { once: true });
    try {
      const invoke = this.fallback ?? this.invoke ?? (this.fallback = sendInvoke(this.model));
      try {
        return await invoke<T>(name, msg, { signal: ac.signal, buffers });
      } catch (err) {
        if (ac.signal.aborted || this.fallback) return null;
        this.fallback = sendInvoke(this.model); // the host refused invoke itself: same message through model.send
        return await this.fallback<T>(name, msg, { signal: ac.signal, buffers });
      }
    } catch {
      return null;
    } finally {
      this.signal.removeEventListener("abort", stop);
      if (this.pending.get(name) === ac) this.pending.delete(name);
    }
  }
}
