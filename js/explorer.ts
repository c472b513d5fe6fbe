// anywidget front end of attattr_widgets.widgets.Explorer.
import type { AnyModel } from "@anywidget/types";
import "./lib/style.css";
import "./lib/interactive.css";
import { ExplorerView } from "./lib/explorer-view";
import type { ExplorerModel } from "./lib/protocol";
import { attachStream } from "./lib/stream";

export default {
  initialize({ model }: { model: AnyModel<ExplorerModel> }) {
    return attachStream(model);
  },
  render({ model, el }: { model: AnyModel<ExplorerModel>; el: HTMLElement }) {
    const view = new ExplorerView(model, el);
    return () => view.destroy();
  },
};
