// A rendered view tells the kernel once that a live widget front end shows its model. The kernel then leaves the
// notebook output alone when a run finishes (attattr_widgets/widgets/_base.py: it refreshes the static fallback
// of a displayed view only where no live view exists, since a display update makes JupyterLab's widget renderer
// add a second view to the output).
export const LIVE_MESSAGE = { type: "attattr-live" } as const;

export function announceLive(model: { send: (content: typeof LIVE_MESSAGE) => void }): void {
  try {
    model.send(LIVE_MESSAGE);
  } catch {
    // no comm (a page exported without a kernel): nothing to tell
  }
}
