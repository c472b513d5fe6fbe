"""The synced trait names of the Python widgets match the TypeScript protocol (js/lib/protocol.ts)."""
from __future__ import annotations

import pathlib
import re

from attattr_widgets.widgets import Explorer, HeadsView, TreeView, TriggersView

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = {"_model_name", "_model_module", "_model_module_version", "_view_name", "_view_module",
        "_view_module_version", "_view_count", "_dom_classes", "layout", "tabbable", "tooltip", "_esm", "_css", "_anywidget_id"}


def ts_list(name: str) -> set[str]:
    src = (ROOT / "js" / "lib" / "protocol.ts").read_text()
    m = re.search(name + r" = \[(.*?)\] as const", src, re.S)
    assert m, name
    return set(re.findall(r'"(_?[a-z_]+)"', m.group(1)))


def synced(cls) -> set[str]:
    return {k for k in cls.class_trait_names(sync=True) if k not in BASE}


def test_explorer_traits_match_typescript():
    assert synced(Explorer) == ts_list("EXPLORER_TRAITS")


def test_tree_traits_match_typescript():
    assert synced(TreeView) == ts_list("TREE_TRAITS")


def test_heads_and_triggers_traits_match_typescript():
    assert synced(HeadsView) == ts_list("HEADS_TRAITS")
    assert synced(TriggersView) == ts_list("TRIGGERS_TRAITS")


def test_js_sources_never_use_html_sinks():
    for p in (ROOT / "js").rglob("*.ts"):
        if p.name.endswith(".test.ts"):
            continue
        src = p.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser"):
            assert sink not in src, f"{p.relative_to(ROOT)} uses {sink}"
