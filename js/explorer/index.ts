// anywidget front end of attattr_widgets.widgets.Explorer.
import type { AnyModel, Experimental } from "@anywidget/types";
import "../shared/style.css";
import "../shared/interactive.css";
import { ExplorerView } from "./explorer-view";
import type { ExplorerModel } from "../shared/protocol";
import { attachStream } from "./stream";

export default {
  initialize({ model, experimental }: { model: AnyModel<ExplorerModel>; experimental?: Experimental }) {
    return attachStream(model, experimental?.invoke);
  },
  render({ model, el, experimental }: { model: AnyModel<ExplorerModel>; el: HTMLElement; experimental?: Experimental }) {
    const view = new ExplorerView(model, el, experimental?.invoke);
    return () => view.destroy();
  },
};
