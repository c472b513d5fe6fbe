// anywidget front end of attattr_widgets.widgets.TriggersView.
import type { AnyModel, Experimental } from "@anywidget/types";
import "../shared/style.css";
import "../shared/interactive.css";
import type { TriggersModel } from "../shared/protocol";
import { TriggersViewUI } from "./triggers-view";

export default {
  render({ model, el, experimental }: { model: AnyModel<TriggersModel>; el: HTMLElement; experimental?: Experimental }) {
    const view = new TriggersViewUI(model, el, experimental?.invoke);
    return () => view.destroy();
  },
};
