// anywidget front end of attattr_widgets.widgets.HeadsView.
import type { AnyModel } from "@anywidget/types";
import "./lib/style.css";
import "./lib/interactive.css";
import { HeadsViewUI } from "./lib/heads-view";
import type { HeadsModel } from "./lib/protocol";

export default {
  render({ model, el }: { model: AnyModel<HeadsModel>; el: HTMLElement }) {
    const view = new HeadsViewUI(model, el);
    return () => view.destroy();
  },
};
