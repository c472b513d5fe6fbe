"""The synced trait names, command names and token fields of the Python widgets match the TypeScript protocol
(js/shared/protocol.ts)."""
from __future__ import annotations

import pathlib
import re

from attattr_widgets.widgets import Explorer, HeadsView, TreeView, TriggersView

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = {"_model_name", "_model_module", "_model_module_version", "_view_name", "_view_module",
        "_view_module_version", "_view_count", "_dom_classes", "layout", "tabbable", "tooltip", "_esm", "_css", "_anywidget_id"}


def ts_list(name: str) -> set[str]:
    src = (ROOT / "js" / "shared" / "protocol.ts").read_text()
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


def test_commands_match_typescript():
    """Every browser -> kernel request is an anywidget command the Python class defines, and vice versa."""
    for cls, name in ((Explorer, "EXPLORER_COMMANDS"), (HeadsView, "HEADS_COMMANDS"),
                      (TriggersView, "TRIGGERS_COMMANDS"), (TreeView, "TREE_COMMANDS")):
        assert set(cls._anywidget_commands) == ts_list(name), cls.__name__


def test_no_hand_dispatched_requests_remain():
    """No ``{type: ...}`` request is sent by hand from the views (kernel -> browser ``layer`` pushes stay)."""
    for p in (ROOT / "js").rglob("*.ts"):
        if p.name.endswith(".test.ts") or p.name == "commands.ts":
            continue
        assert "model.send(" not in p.read_text(), f"{p.relative_to(ROOT)} sends a hand-written message"
    for p in (ROOT / "attattr_widgets" / "widgets").glob("*.py"):
        assert "on_msg(" not in p.read_text(), f"{p.relative_to(ROOT)} dispatches messages by hand"


def test_special_mask_is_the_engine_definition():
    """What the kernel sends as ``special`` with every token list (the browser has no regex of its own)."""
    from attattr_widgets.engine.analysis.tree import special_mask
    from attattr_widgets.widgets.serialize import token_fields

    toks = ["[CLS]", "the", " [SEP] ", "</s>", "<|endoftext|>", "<img src=x onerror=alert(1)>", "[not special]", "▁<s"]
    assert special_mask(toks) == [True, False, True, True, True, False, False, False]
    assert token_fields(toks) == {"tokens": toks, "special": special_mask(toks)}
    assert not any("isSpecialToken" in p.read_text() or "SPECIAL" in p.read_text()
                   for p in (ROOT / "js").rglob("*.ts")), "the browser re-derives special tokens"


def test_js_sources_never_use_html_sinks():
    for p in (ROOT / "js").rglob("*.ts"):
        if p.name.endswith(".test.ts"):
            continue
        src = p.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser"):
            assert sink not in src, f"{p.relative_to(ROOT)} uses {sink}"
