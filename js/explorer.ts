// anywidget front end of attattr_widgets.widgets.Explorer.
import type { AnyModel } from "@anywidget/types";
import "./lib/style.css";
import "./lib/interactive.css";
import { ExplorerView } from "./lib/explorer-view";
import type { ExplorerModel } from "./lib/protocol";
import { attachStream } from "./lib/stream";
import { announceLive } from "./lib/live";

export default {
  initialize({ model }: { model: AnyModel<ExplorerModel> }) {
    return attachStream(model);
  },
  render({ model, el }: { model: AnyModel<ExplorerModel>; el: HTMLElement }) {
    announceLive(model);
    const view = new ExplorerView(model, el);
    return () => view.destroy();
  },
};
