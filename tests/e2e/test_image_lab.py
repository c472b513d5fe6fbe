"""Image attributions in a real JupyterLab and in an exported page: the Explorer's image panel (picture with the
query's per-patch attribution / attention, hover values, click a patch), an uploaded picture through the file
input, the tree drawn on the picture, a ViT-B/16-sized (197-token) result's heatmap redraws, and the same views in
an offline export and the script-free snapshot."""
from __future__ import annotations

import json

import pytest

from .e2e_support import (
    assert_not_blank,
    bundle_built,
    canvas_stats,
    element_shot,
    hermetic_context,
    lab_session,
    local_only,
    wait_in_cell,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

# A tiny ViT (32 x 32 pictures, 4 x 4 patches: [CLS] + 64 patch tokens) and a drawn picture (a disc and a bar).
SETUP = r'''
import os, io
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np, torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
from attattr_widgets.widgets import Explorer
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = ViTConfig(image_size=32, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=64, num_labels=10, id2label={i: f"class <{i}>" for i in range(10)},
                label2id={f"class <{i}>": i for i in range(10)})
model = ViTForImageClassification(cfg).eval()
proc = ViTImageProcessor(size={"height": 32, "width": 32})

def drawing(shift=0):
    y, x = np.mgrid[0:32, 0:32]
    img = np.zeros((32, 32, 3), np.uint8); img[...] = (235, 235, 225)
    disc = (x - 11 - shift) ** 2 + (y - 12) ** 2 < 49
    img[disc] = (30, 90, 200)
    img[22:27, 6:28] = (200, 60, 40)
    return Image.fromarray(img)

drawing(4).save("upload.png")
print("ready")
'''
EXPLAIN = "ex = Explorer(model, proc)\ndisplay(ex)\nex.explain(drawing(), steps=4)"
TREE = "ex.wait(120)\ntv = ex.tree_view(threshold=0.05)\ndisplay(tv)"
# ViT-B/16 token count: [CLS] + 14 x 14 patches = 197, 12 heads (two layers keep the kernel's memory small)
BIG = r'''
from attattr_widgets.engine.results import Attribution, ImageGrid
rng = np.random.default_rng(1)
L, H, n = 2, 12, 197
att = rng.random((L, H, n, n)).astype(np.float32); att /= att.sum(-1, keepdims=True)
big = Attribution(scores=(rng.normal(size=(L, H, n, n)) * att).astype(np.float32), attention=att,
                  tokens=["[CLS]"] + [f"({r},{c})" for r in range(14) for c in range(14)], token_type_ids=np.zeros(n, np.int64),
                  target=3, target_label="tabby", prob=0.7, layer_zero_probs=np.zeros(L), completeness=np.zeros(L),
                  layers=[0, 1], num_layers=L, rule="gauss-legendre", steps=4, text=None,
                  image=ImageGrid(grid=(14, 14), first_patch=1, patch_size=16,
                                  pixels=np.asarray(drawing().resize((112, 112)))))
exb = Explorer.from_attribution(big)
display(exb)
import dataclasses
display(Explorer.from_attribution(dataclasses.replace(big, image=None)))  # the same maps as text: the baseline
'''

def _wait(nb, i, cond, timeout=120, sel=".attattr-explorer"):
    wait_in_cell(nb, i, sel, cond, timeout)


@pytest.fixture(scope="module")
def nb(browser, lab):
    yield from lab_session(browser, lab, "images.ipynb", [SETUP, EXPLAIN, TREE, BIG], {"width": 1280, "height": 1600})


def _image_stats(root) -> dict:
    return {m: canvas_stats(root.locator(f"canvas[data-map=image-{m}]")) for m in ("attribution", "attention")}


def test_image_panel_overlays_hover_click_and_upload(nb, artifacts):
    nb.run(1)
    _wait(nb, 1, "r.dataset.state === 'done' && r.dataset.image === '8,8' && r.dataset.headReady !== ''")
    root = nb.cell(1).locator(".attattr-explorer")
    stats = _image_stats(root)
    for which, st in stats.items():
        assert_not_blank(st, f"image panel ({which})", min_colors=8, min_frac=0.1)
    assert stats["attribution"]["fp"] != stats["attention"]["fp"]
    assert root.locator("canvas[data-map=image-attribution]").get_attribute("data-patches") == "64"
    element_shot(root, artifacts / "lab-image-explorer.png")
    # hover patch (2,5): the tooltip names it with both values; click makes it the query
    c = root.locator("canvas[data-map=image-attribution]")
    box = c.bounding_box()
    x, y = box["width"] * (5.5 / 8), box["height"] * (2.5 / 8)
    c.hover(position={"x": x, "y": y})
    tip = root.locator(".aa-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "patch (2,5)" in text and "token #22" in text and "attribution" in text and "attention" in text, text
    element_shot(root.locator(".aa-image-panel"), artifacts / "lab-image-hover.png")
    c.click(position={"x": x, "y": y})
    _wait(nb, 1, "r.dataset.query === '22'")
    assert "(2,5)" in root.locator(".aa-image-panel .aa-panel-title").inner_text()
    # upload a picture through the file input: a new run on it, the top-k classes in the selector
    run_id = int(root.get_attribute("data-run-id"))
    root.locator("input.aa-input-file").set_input_files(str(nb.lab.root / "upload.png"))
    _wait(nb, 1, f"Number(r.dataset.runId) > {run_id} && r.dataset.state === 'done' && r.dataset.image === '8,8'")
    _wait(nb, 1, "r.querySelectorAll('select.aa-target option').length === 12")
    opts = root.locator("select.aa-target option").all_inner_texts()
    assert opts[0].startswith("predicted (class <") and "class <" in opts[1], opts   # labels shown as text
    assert "upload.png" in root.locator(".aa-header").inner_text()
    after = _image_stats(root)
    assert after["attribution"]["fp"] != stats["attribution"]["fp"]   # the new picture is drawn
    element_shot(root, artifacts / "lab-image-upload.png")
    assert not nb.page_errors, nb.page_errors


def test_tree_on_the_picture(nb, artifacts):
    nb.run(2)
    _wait(nb, 2, "r.dataset.image === '8,8' && Number(r.dataset.edges) > 0", sel=".attattr-tree")
    root = nb.cell(2).locator(".attattr-tree")
    pic = root.locator(".aa-tree-image svg")
    assert pic.locator("image").count() == 1
    assert pic.locator("[data-edge]").count() == int(root.get_attribute("data-edges"))
    element_shot(root, artifacts / "lab-image-tree.png")
    assert not nb.page_errors, nb.page_errors


def test_vit_b16_sized_result_redraws_fast(nb, artifacts):
    """197 x 197 maps, 12 heads: hovering the heatmap, selecting heads and hovering the picture each repaint in a
    frame or two (times reported, not asserted: the machine is shared)."""
    nb.run(3, timeout=180)
    _wait(nb, 3, "r.dataset.state === 'done' && r.dataset.image === '14,14' && r.dataset.headReady !== ''")
    root = nb.cell(3).locator(".attattr-explorer").first
    base = nb.cell(3).locator(".attattr-explorer").nth(1)
    measure = """async (r) => {
      const frame = () => new Promise((res) => requestAnimationFrame(() => res()));
      const heat = r.querySelector('canvas[data-map=attribution]');
      const img = r.querySelector('canvas[data-map=image-attribution]');
      const move = async (c, fx, fy) => {
        const b = c.getBoundingClientRect();
        c.dispatchEvent(new PointerEvent('pointermove', { clientX: b.left + fx * b.width, clientY: b.top + fy * b.height, bubbles: true }));
        await frame();
      };
      const time = async (c, k) => { const t0 = performance.now(); for (let i = 0; i < k; i++) await move(c, 0.2 + 0.6 * (i % 17) / 17, 0.2 + 0.6 * (i % 13) / 13); return (performance.now() - t0) / k; };
      await frame();
      return { heat: await time(heat, 40), image: img ? await time(img, 40) : null };
    }"""
    times = root.evaluate(measure)
    times["heat_without_image"] = base.evaluate(measure)["heat"]
    (artifacts / "vit-b16-redraw.json").write_text(json.dumps(times))
    print("ViT-B/16-sized redraws (ms per pointer move incl. one frame):", times)
    assert times["heat"] > 0 and times["image"] > 0
    element_shot(root, artifacts / "lab-image-vit-b16.png")
    assert not nb.page_errors, nb.page_errors


def test_export_and_snapshot_show_the_picture(nb, browser, artifacts, tmp_path):
    """The exported page (offline) draws the image panel; the script-free snapshot shows picture + overlays."""
    out = tmp_path / "image-export.html"
    snap = tmp_path / "image-snapshot.html"
    i = nb.append_and_run(f"ex.to_html({str(out)!r})\n"
                          "from attattr_widgets.snapshot import explorer_html\n"
                          f"open({str(snap)!r}, 'w').write('<!doctype html><meta charset=utf-8>' + explorer_html(ex))\n"
                          "print('exported')", timeout=180)
    assert "exported" in nb.output_text(i), nb.output_text(i)
    ctx = hermetic_context(browser, local_only, viewport={"width": 1280, "height": 1500})
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_function("() => { const r = document.querySelector('.attattr-explorer');"
                               " return r && r.dataset.state === 'done' && r.dataset.image === '8,8' && r.dataset.headReady !== ''; }",
                               timeout=60_000)
        root = page.locator(".attattr-explorer")
        for which, st in _image_stats(root).items():
            assert_not_blank(st, f"exported image panel ({which})", min_colors=8, min_frac=0.1)
        root.screenshot(path=str(artifacts / "export-image-explorer.png"))
        page.goto(snap.as_uri())
        fig = page.locator(".attattr-static-explorer")
        assert fig.locator("svg image").count() >= 2 and fig.locator("svg rect title").count() >= 2 * 64
        fig.screenshot(path=str(artifacts / "snapshot-image-explorer.png"))
        assert not errors, errors
        assert not ctx.blocked and not [u for u in ctx.requests if not local_only(u)], ctx.blocked
    finally:
        ctx.close()
