"""Offline HTML export: structure of the file (the browser check is tests/e2e/test_export_offline.py)."""
from __future__ import annotations

import json
import re

import anywidget
import ipywidgets as ipw
import numpy as np
import pytest
import traitlets

from attattr_widgets import export


class Swatch(export.HTMLExportMixin, anywidget.AnyWidget):
    _esm = "export default { render({ model, el }) { el.textContent = model.get('label'); } }"
    label = traitlets.Unicode("</script><script>alert(1)</script>").tag(sync=True)
    data = traitlets.Bytes(b"\x00\x01\x02\x03").tag(sync=True)


def _scripts(text):
    return re.findall(r"<script([^>]*)>(.*?)</script>", text, flags=re.DOTALL)


def test_vendor_paths_found():
    v = export.vendor_paths()
    assert set(v) == {"require", "anywidget", "embed"}
    assert all(p.is_file() for p in v.values())


def test_named_anywidget_define():
    src = 'var x = 1;\ndefine(["@jupyter-widgets/base"], widget_default);\n'
    out = export._named_anywidget(src)
    assert 'define("anywidget", ["@jupyter-widgets/base"], widget_default)' in out
    assert export._named_anywidget(out) == out
    with pytest.raises(export.ExportError, match="AMD"):
        export._named_anywidget("export default {}")


def test_html_is_self_contained(tmp_path):
    w = Swatch()
    path = w.to_html(tmp_path / "w.html", title="T <1>")
    text = path.read_text(encoding="utf-8")
    assert "<title>T &lt;1&gt;</title>" in text
    # no external resources at all
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"<link[^>]*\bhref=", text)
    assert "cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager" not in re.sub(r"<script>.*?</script>", "", text,
                                                                              flags=re.DOTALL)
    scripts = _scripts(text)
    kinds = [attrs.strip() for attrs, _ in scripts]
    assert kinds[:3] == ["", "", ""]                                   # require, anywidget, embed-amd inline
    assert 'define("anywidget"' in scripts[1][1]
    state = json.loads(next(b for a, b in scripts if export.WIDGET_STATE_MIME in a).replace("<\\/", "</"))
    mstate = state["state"][w.model_id]
    assert mstate["model_name"] == "AnyModel" and "_esm" in mstate["state"]
    assert mstate["state"]["label"].startswith("</script>")             # escaped in the file, intact in JSON
    assert "</script><script>alert" not in text
    view = json.loads(next(b for a, b in scripts if export.WIDGET_VIEW_MIME in a))
    assert view["model_id"] == w.model_id
    # one HTML parser pass sees exactly our scripts (no premature </script> in vendor code)
    assert text.count("<script") - text.count("<\\/script") >= len(scripts)


def test_containers_and_dependency_state(tmp_path):
    a, b = Swatch(label="a"), Swatch(label="b")
    unrelated = Swatch(label="zzz-unrelated")
    box = ipw.VBox([ipw.HTML("<b>x</b>"), ipw.HBox([a, b])])
    text = export.to_html(box)
    assert isinstance(text, str)
    state = json.loads(next(b for a_, b in _scripts(text) if export.WIDGET_STATE_MIME in a_).replace("<\\/", "</"))
    ids = set(state["state"])
    assert {a.model_id, b.model_id, box.model_id} <= ids
    assert unrelated.model_id not in ids


def test_bokeh_items_and_mixed(tmp_path):
    from attattr_widgets import plots
    fig = plots.correlation_plot(np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3) ** 2, ("a", "b"))
    only_bokeh = export.to_html(fig)
    assert "Bokeh" in only_bokeh and export.WIDGET_STATE_MIME not in only_bokeh
    assert "require.js" not in only_bokeh[:2000]
    mixed = export.to_html([Swatch(), fig], tmp_path / "m.html", heading="Report <x>").read_text()
    assert "<h1>Report &lt;x&gt;</h1>" in mixed
    assert mixed.index("Bokeh") < mixed.index('define("anywidget"')       # BokehJS before require.js
    assert len(re.findall(r'class="attattr-export-item"', mixed)) == 2
    assert not re.search(r"<script[^>]*\bsrc=\"http", mixed)


def test_bokehmodel_is_unwrapped():
    jb = pytest.importorskip("jupyter_bokeh")
    from attattr_widgets import plots
    fig = plots.pruning_plot({"method": "m", "fractions": [0, 1], "accuracy": [1, 0]})
    text = export.to_html(jb.BokehModel(fig))
    assert export.WIDGET_STATE_MIME not in text
    assert "data-root-id" in text


def test_rejects_unknown_items():
    with pytest.raises(export.ExportError, match="cannot export"):
        export.to_html([object()])
    with pytest.raises(export.ExportError, match="nothing"):
        export.to_html([])


def test_missing_vendor_files_explain_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(export, "_VENDOR", tmp_path / "nope")
    monkeypatch.setattr(export, "_REPO_NM", tmp_path / "nope")
    with pytest.raises(export.ExportError, match="npm run build"):
        export.vendor_paths()


@pytest.mark.parametrize("name", ["Explorer", "TreeView"])
def test_widget_classes_have_to_html(name):
    from attattr_widgets import widgets

    cls = getattr(widgets, name)
    assert issubclass(cls, export.HTMLExportMixin)
    assert callable(cls.to_html) and callable(cls.to_png)


def test_warns_when_exporting_a_running_widget():
    class Busy(anywidget.AnyWidget):
        _esm = "export default { render() {} }"
        state = traitlets.Unicode("running").tag(sync=True)

    with pytest.warns(RuntimeWarning, match="still running"):
        export.to_html(Busy())
