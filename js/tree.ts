// anywidget front end of attattr_widgets.widgets.TreeView.
import type { AnyModel } from "@anywidget/types";
import "./lib/style.css";
import type { TreeModel } from "./lib/protocol";
import { TreeView } from "./lib/tree-view";

export default {
  render({ model, el }: { model: AnyModel<TreeModel>; el: HTMLElement }) {
    const view = new TreeView(model, el);
    return () => view.destroy();
  },
};
