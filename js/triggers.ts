// anywidget front end of attattr_widgets.widgets.TriggersView.
import type { AnyModel } from "@anywidget/types";
import "./lib/style.css";
import "./lib/interactive.css";
import type { TriggersModel } from "./lib/protocol";
import { TriggersViewUI } from "./lib/triggers-view";

export default {
  render({ model, el }: { model: AnyModel<TriggersModel>; el: HTMLElement }) {
    const view = new TriggersViewUI(model, el);
    return () => view.destroy();
  },
};
