// What the Explorer's header shows: the model, what is attributed (target, probability, rule), the input text,
// layer progress and the NaN/inf warning, from the Explorer's traits (the header itself is shared/header.ts).
import { formatValue } from "../shared/color";
import { displayToken } from "../shared/dom";
import type { HeaderOptions, HeaderProps } from "../shared/header";
import type { ExplorerMeta, RunState } from "../shared/protocol";

export const EXPLORER_HEADER: HeaderOptions = {
  labels: { empty: "no input yet", running: "running", done: "done", cancelled: "stopped", error: "error" },
  stopTitle: "Stop the attribution run", errorPrefix: "Attribution failed: ", subtitleMax: 160,
};

export interface ExplorerHeaderInput {
  meta: ExplorerMeta;
  state: RunState;
  error: string;
  done: number; // layers finished
  total: number; // layers in the run (0 = unknown)
}

/** "target: positive" / "next token: Paris" / "answer: Paris, a city" / "answer token 1 of 4: ·a" chip text, or null
 * when no target is known yet. */
export function targetText(meta: ExplorerMeta): string | null {
  if (meta.answer_start !== undefined && meta.answer_start !== null) {
    const t = meta.answer_token;
    const answer = meta.answer || meta.target_label || "";
    if (t === null || t === undefined) return answer ? `answer: ${answer}` : "answer: (generating…)";
    return `answer token ${t}: ${displayToken(meta.target_label || "")}`;
  }
  if (meta.target_kind === "continuation") return meta.target_label ? `answer: ${meta.target_label}` : "answer: (generating…)";
  if (meta.target_kind === "answer" && meta.sites) return meta.answer ? `answer: ${meta.answer}` : "answer: (generating…)"; // an encoder–decoder
  if (!(meta.target_label || meta.target !== undefined)) return null;
  const lbl = meta.target_label || (meta.label_names && meta.target !== undefined ? meta.label_names[meta.target] : "") || `class ${meta.target}`;
  return `${meta.target_kind === "next-token" ? "next token" : "target"}: ${lbl}`;
}

export function explorerHeader({ meta, state, error, done, total }: ExplorerHeaderInput): HeaderProps {
  const parts: string[] = [];
  const target = targetText(meta);
  if (target) parts.push(target);
  if (meta.prob !== undefined && meta.prob !== null) parts.push(`${meta.score === "logprob" ? "log p" : "p"} = ${formatValue(meta.prob, 3)}`);
  if (meta.rule) parts.push(`${meta.rule}${meta.steps ? `, ${meta.steps} steps` : ""}`);
  const nonfinite = meta.nonfinite ?? [];
  return {
    title: meta.model_name ? `AttAttr · ${meta.model_name}` : "AttAttr explorer",
    chip: parts.length ? parts.join(" · ") : null,
    subtitle: meta.image_name && !meta.text ? meta.image_name : [meta.text, meta.text_pair].filter((x) => x).join("  ‖  "),
    state, error, errorDetail: meta.error_detail,
    progress: {
      fraction: total ? Math.min(1, done / total) : 0, now: done, max: total,
      text: state === "running" ? (total ? `layer ${done} / ${total}` : "starting…") : state === "empty" ? "" : total ? `${done} / ${total} layers` : "",
    },
    warning: nonfinite.length ? {
      badge: "NaN/inf in results", tag: "nonfinite",
      message: `NaN or infinite values in layer${nonfinite.length > 1 ? "s" : ""} ${nonfinite.join(", ")} — those maps are not meaningful ` +
        "(half precision overflow or a degenerate input); rerun in float32 (precision=\"fp32\") or with another input.",
    } : null,
  };
}
