// The Explorer's input bar wired to its model: traits in (input_spec, targets, history, contrast,
// contrast_view, the shown run's text / target), kernel commands out (`_cmd_run`, `_cmd_targets`, `_cmd_history`,
// `_cmd_contrast`), and the head payload the heatmaps draw under the contrast view.
import type { AnyModel } from "@anywidget/types";
import type { Commands } from "../shared/commands";
import { contrastPayload, InputBar, type ContrastInfo, type ContrastView, type HistoryEntry, type InputSpec, type TargetsInfo } from "./input-bar";
import type { ExplorerMeta, ExplorerModel, HeadPayload } from "../shared/protocol";

type Model = AnyModel<ExplorerModel>;

export class ExplorerInput {
  readonly bar: InputBar;

  /** `invalidate(parts)` schedules a redraw of the view; `resetHeat()` makes the heatmaps repaint. */
  constructor(private model: Model, commands: Commands, invalidate: (parts: string) => void, resetHeat: () => void, signal: AbortSignal) {
    this.bar = new InputBar({
      onRun: (text, text_pair, target, generate) => void commands.call("_cmd_run", { text, text_pair, target, ...(generate ? { generate } : {}) }),
      onImage: (file, target) => void sendImage(commands, file, target),
      onTargets: (text, text_pair) => void commands.call("_cmd_targets", { text, text_pair }),
      onHistory: (key) => void commands.call("_cmd_history", { key }),
      onContrast: (target) => void commands.call("_cmd_contrast", { target }),
      onContrastView: (v) => {
        model.set("contrast_view", v);
        model.save_changes();
        resetHeat();
        invalidate("input,heat,sentence");
      },
    }, signal);
    const on = (ev: string, parts: string, heat = false) => {
      const cb = () => {
        if (heat) resetHeat();
        invalidate(parts);
      };
      model.on(ev, cb);
      signal.addEventListener("abort", () => model.off(ev, cb));
    };
    on("change:input_spec", "input");
    on("change:targets", "input");
    on("change:history", "input");
    on("change:contrast", "input,heat,sentence", true);
    on("change:contrast_view", "input,heat,sentence", true);
    on("change:state", "input");
    on("change:meta", "input");
    signal.addEventListener("abort", () => this.bar.destroy());
  }

  render(): void {
    const m = this.model;
    const meta = (m.get("meta") ?? {}) as ExplorerMeta;
    this.bar.render({
      spec: (m.get("input_spec") ?? {}) as InputSpec,
      targets: (m.get("targets") ?? {}) as TargetsInfo,
      history: (m.get("history") ?? []) as unknown as HistoryEntry[],
      contrast: (m.get("contrast") ?? {}) as ContrastInfo,
      contrastView: ((m.get("contrast_view") as ContrastView) ?? "diff"),
      text: (meta.image_name ?? meta.text) ?? null, textPair: meta.text_pair ?? null,
      target: meta.target ?? null, runState: m.get("state"),
      answer: meta.answer_start !== undefined && meta.answer_start !== null ? (meta.answer ?? "") : null,
    });
  }

  /** The payload the heatmaps draw: the head as sent, or its contrast map / difference map. */
  payload(p: HeadPayload | null): HeadPayload | null {
    const c = (this.model.get("contrast") ?? {}) as ContrastInfo;
    const view = (this.model.get("contrast_view") as ContrastView) ?? "diff";
    const out = contrastPayload(p, view, c.state === "done");
    if (!out || out === p) return out;
    const meta = (this.model.get("meta") ?? {}) as ExplorerMeta;
    return { ...out, label: contrastLabel(view, meta.target_label ?? String(meta.target ?? "target"), c.target_label ?? String(c.target ?? "contrast")) };
  }
}

/** `_cmd_image`: the file's bytes as one binary buffer (never JSON), or no buffer for the shown picture again. */
export async function sendImage(commands: Commands, file: File | null, target: number | string): Promise<void> {
  const buffers = file ? [new DataView(await file.arrayBuffer())] : [];
  await commands.call("_cmd_image", { name: file ? file.name : null, target }, buffers);
}

/** The attribution map's caption under a contrast view: "Attr(A) − Attr(B)" or "Attr(B)". */
export function contrastLabel(view: ContrastView, target: string, contrast: string): string {
  return view === "contrast" ? `Attr(${contrast})` : `Attr(${target}) − Attr(${contrast})`;
}
