// anywidget front end of attattr_widgets.widgets.TreeView.
import type { AnyModel, Experimental } from "@anywidget/types";
import "../shared/style.css";
import type { TreeModel } from "../shared/protocol";
import { TreeView } from "./tree-view";

export default {
  render({ model, el, experimental }: { model: AnyModel<TreeModel>; el: HTMLElement; experimental?: Experimental }) {
    const view = new TreeView(model, el, experimental?.invoke);
    return () => view.destroy();
  },
};
