// anywidget front end of attattr_widgets.widgets.HeadsView.
import type { AnyModel, Experimental } from "@anywidget/types";
import "../shared/style.css";
import "../shared/interactive.css";
import { HeadsViewUI } from "./heads-view";
import type { HeadsModel } from "../shared/protocol";

export default {
  render({ model, el, experimental }: { model: AnyModel<HeadsModel>; el: HTMLElement; experimental?: Experimental }) {
    const view = new HeadsViewUI(model, el, experimental?.invoke);
    return () => view.destroy();
  },
};
