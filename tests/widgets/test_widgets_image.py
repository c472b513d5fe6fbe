"""Image attributions in the views: the ``image`` trait (pixels as a binary buffer), uploads through ``_cmd_image``,
the top-k target selector, history / contrast with pictures, the TreeView's picture and the static snapshots.

The model and processor are a real tiny ViT and ViTImageProcessor (the Explorer reads its input kind from the
processor); one test runs the real engine through an upload, the others substitute a fast fake engine that returns
Attributions of the same shape (tokens "[CLS]" + one per patch "(r,c)", ``image`` with grid / first_patch /
patch_size / pixels)."""
from __future__ import annotations

import io
import re
import time
import types

import numpy as np
import pytest
import widget_comm as wc

from attattr_widgets.engine.results import Attribution
from attattr_widgets.snapshot import explorer_html, tree_html
from attattr_widgets.widgets import Explorer, TreeView
from attattr_widgets.widgets import explorer as explorer_mod
from attattr_widgets.widgets.image import decode_upload, image_payload

ROWS = COLS = 2


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch):
    wc.install(monkeypatch)


def picture(h=8, w=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def image_attr(pixels=None, target=7, seed=0, L=2, H=2) -> Attribution:
    """An image Attribution as the engine promises it: [CLS] + a 2 x 2 patch grid."""
    tokens = ["[CLS]"] + [f"({r},{c})" for r in range(ROWS) for c in range(COLS)]
    n = len(tokens)
    rng = np.random.default_rng(seed)
    a = Attribution(scores=rng.normal(size=(L, H, n, n)).astype(np.float32),
                    attention=rng.random(size=(L, H, n, n)).astype(np.float32), tokens=tokens,
                    token_type_ids=np.zeros(n, np.int64), target=target, target_label=str(target), prob=0.8,
                    layer_zero_probs=np.zeros(L), completeness=np.zeros(L), layers=list(range(L)), num_layers=L,
                    rule="gauss-legendre", steps=4, text=None, label_names=[str(i) for i in range(10)])
    a.image = types.SimpleNamespace(grid=(ROWS, COLS), first_patch=1, patch_size=4,
                                    pixels=picture() if pixels is None else pixels)
    return a


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def vit():
    """A tiny ViT image classifier (10 classes, 8 x 8 pictures, 4 x 4 patches) and its image processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    cfg = ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=32, num_labels=10,
                    id2label={i: str(i) for i in range(10)}, label2id={str(i): i for i in range(10)})
    proc = ViTImageProcessor(size={"height": 8, "width": 8}, do_rescale=True, do_normalize=True)
    return ViTForImageClassification(cfg).eval(), proc


# ------------------------------------------------------------------------------------------------ payload
def test_image_payload_shapes_and_errors():
    px = picture(6, 4)
    p = image_payload({"pixels": px, "grid": (3, 2), "first_patch": 2, "patch_size": 16})
    assert p["grid"] == [3, 2] and p["first_patch"] == 2 and p["patch_size"] == 16
    assert p["pixels"].dtype == np.uint8 and p["pixels"].shape == (6, 4, 3)
    grey = image_payload({"pixels": px[:, :, 0], "grid": (1, 1)})["pixels"]
    assert grey.shape == (6, 4, 3) and (grey[:, :, 2] == px[:, :, 0]).all()
    f = image_payload({"pixels": px.astype(np.float64) + 0.4, "grid": (1, 1)})["pixels"]
    assert f.dtype == np.uint8 and (f == px).all()
    assert image_payload(None) is None
    with pytest.raises(ValueError, match="pixels"):
        image_payload({"grid": (1, 1)})
    with pytest.raises(ValueError, match=r"\[h, w, 3\]"):
        image_payload({"pixels": np.zeros((2, 2, 2)), "grid": (1, 1)})
    with pytest.raises(ValueError, match="grid"):
        image_payload({"pixels": px, "grid": (0, 2)})
    with pytest.raises(ValueError, match="finite"):
        image_payload({"pixels": np.full((2, 2, 3), np.nan), "grid": (1, 1)})


def test_decode_upload_reads_images_and_refuses_other_files():
    px = picture(5, 7)
    img = decode_upload(png(px))
    assert img.mode == "RGB" and img.size == (7, 5) and (np.asarray(img) == px).all()
    with pytest.raises(ValueError, match="not an image"):
        decode_upload(b"this is not a picture")
    with pytest.raises(ValueError, match="empty"):
        decode_upload(b"")


# ------------------------------------------------------------------------------------------------ Explorer
def test_pixels_travel_as_one_binary_buffer_not_json():
    attr = image_attr()
    w = Explorer.from_attribution(attr)
    state, paths = wc.open_state(w)
    assert state["image"]["grid"] == [2, 2] and state["image"]["first_patch"] == 1
    assert state["image"]["pixels"]["dtype"] == "uint8" and state["image"]["pixels"]["shape"] == [8, 8, 3]
    buf = paths[("image", "pixels", "view")]
    assert np.frombuffer(buf, np.uint8).reshape(8, 8, 3).tolist() == attr.image.pixels.tolist()
    assert state["meta"]["image_name"] == "image 8×8" and state["meta"]["text"] is None
    # a text attribution has no picture
    from result_samples import make_attr

    assert wc.open_state(Explorer.from_attribution(make_attr()))[0]["image"] is None


def test_input_spec_of_an_image_classifier(vit):
    model, proc = vit
    ex = Explorer(model, proc)
    assert ex.interactive and ex.input_spec["image"] is True and ex.input_spec["pair"] is False
    assert ex.input_spec["answers"] is False  # no answer field / "generate N" for a picture


def test_upload_runs_the_picture_and_lists_top_k(vit, monkeypatch):
    model, proc = vit
    seen = []

    def fake_attribute(m, p, image, text_pair=None, **kw):
        seen.append((image, kw.get("target")))
        attr = image_attr(pixels=np.asarray(image), target=3 if kw.get("target") == "pred" else kw["target"])
        for i in range(2):
            kw["progress"](types.SimpleNamespace(index=i, layer=i, total=2, tokens=attr.tokens, scores=attr.scores[i],
                                                 attention=attr.attention[i], zero_prob=0.1, completeness=0.0,
                                                 target=attr.target, prob=0.8, image=attr.image))
        return attr

    def fake_targets(m, p, image, text_pair=None, k=10, max_length=None):  # the engine's top-k, most probable first
        return {"kind": "class", "pred": 9, "truncated": False,
                "options": [{"id": i, "label": str(i), "prob": (i + 1) / 55} for i in range(9, 9 - k, -1)]}

    monkeypatch.setattr(explorer_mod, "_attribute", fake_attribute)
    monkeypatch.setattr("attattr_widgets.engine.model.predict.target_options", fake_targets)
    ex = Explorer(model, proc)
    px = picture(8, 8, seed=3)
    resp, _ = wc.command_from_front_end(ex, "_cmd_image", {"name": "three.png", "target": "pred"}, [png(px)])
    assert resp["ok"], resp
    ex.wait(30)
    for _ in range(100):  # the top-k are asked in the background once the run started
        if ex.targets:
            break
        time.sleep(0.05)
    image, target = seen[-1]
    assert target == "pred" and image.size == (8, 8) and (np.asarray(image) == px).all()
    assert ex.state == "done" and ex.meta["image_name"] == "three.png" and ex.meta["text"] is None
    assert (ex.image["pixels"] == px).all() and ex.image["grid"] == [2, 2]
    # the selector: the most probable classes for this picture, named by its file
    opts = ex.targets["options"]
    assert [o["id"] for o in opts] == list(range(9, -1, -1)) and ex.targets["text"] == "three.png"
    assert ex.history[-1]["text"] == "three.png"
    # Run with another target: the same picture again, no upload
    resp, _ = wc.command_from_front_end(ex, "_cmd_image", {"name": None, "target": 5})
    ex.wait(30)
    assert resp["ok"] and seen[-1][1] == 5 and (np.asarray(seen[-1][0]) == px).all()
    assert ex.meta["target"] == 5 and ex.meta["image_name"] == "three.png"
    # contrast attributes the shown picture, not a text
    ex.compare(2)
    ex.wait_contrast(30)
    assert seen[-1][1] == 2 and (np.asarray(seen[-1][0]) == px).all()
    # history: back to the first run, its picture comes back with it
    other = picture(8, 8, seed=9)
    wc.command_from_front_end(ex, "_cmd_image", {"name": "other.png", "target": "pred"}, [png(other)])
    ex.wait(30)
    first_key = ex.history[0]["key"]
    wc.command_from_front_end(ex, "_cmd_history", {"key": first_key})
    assert ex.meta["image_name"] == "three.png" and (ex.image["pixels"] == px).all()
    wc.command_from_front_end(ex, "_cmd_image", {"name": None, "target": 1})
    ex.wait(30)
    assert (np.asarray(seen[-1][0]) == px).all()


def test_upload_through_the_real_engine(vit):
    """An uploaded PNG → the real engine → the image trait holds the picture the model saw, the tokens its patches;
    the selector lists the classes by probability; the model is left as it was."""
    model, proc = vit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ex = Explorer(model, proc)
    px = picture(8, 8, seed=5)
    resp, _ = wc.command_from_front_end(ex, "_cmd_image", {"name": "five.png", "target": "pred"}, [png(px)])
    assert resp["ok"], resp
    attr = ex.wait(120)
    assert ex.state == "done" and ex.tokens == ["[CLS]", "(0,0)", "(0,1)", "(1,0)", "(1,1)"]
    assert ex.image["grid"] == [2, 2] and ex.image["first_patch"] == 1 and ex.image["patch_size"] == 4
    assert (ex.image["pixels"] == np.asarray(attr.image.pixels)).all() and ex.meta["image_name"] == "five.png"
    t = ex.predict_targets(decode_upload(png(px)))
    probs = [o["prob"] for o in t["options"]]
    assert len(probs) == 10 and probs == sorted(probs, reverse=True) and t["options"][0]["id"] == attr.target
    assert all(torch_equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    assert "to each patch" in explorer_html(ex)


def _picture_then_layers(w, since: int) -> tuple[int, int, np.ndarray]:
    """In the comm log after entry ``since``: the positions of the first update that sets ``image`` to a picture
    and of the first streamed ``layer`` message, and that picture's pixels as the front end decodes them."""
    seen_image = first_layer = None
    pixels = None
    for i, (kind, data, bufs) in enumerate(w.comm.log[since:], start=since):
        if kind != "comm_msg":
            continue
        if data.get("method") == "update" and seen_image is None and data["state"].get("image"):
            paths = {tuple(p): b for p, b in zip(data.get("buffer_paths", []), bufs)}
            seen_image = i
            pixels = wc.decode(data["state"]["image"]["pixels"], paths[("image", "pixels", "view")])
        if data.get("method") == "custom" and data["content"].get("type") == "layer" and first_layer is None:
            first_layer = i
    assert seen_image is not None and first_layer is not None, (seen_image, first_layer)
    return seen_image, first_layer, pixels


def test_a_live_image_run_shows_its_picture_before_the_first_layer(vit):
    """The real engine: the picture the model saw reaches the view before the first streamed layer (the image
    panel fills its overlays layer by layer), from explain() and from an upload, and it is the final result's."""
    model, proc = vit
    ex = Explorer(model, proc)
    since = len(ex.comm.log)
    ex.explain(picture(8, 8, seed=7), steps=2)
    attr = ex.wait(120)
    image_at, layer_at, pixels = _picture_then_layers(ex, since)
    assert ex.state == "done" and image_at < layer_at
    assert pixels.tolist() == np.asarray(attr.image.pixels).tolist() == ex.image["pixels"].tolist()
    since = len(ex.comm.log)
    resp, _ = wc.command_from_front_end(ex, "_cmd_image", {"name": "eight.png", "target": "pred"},
                                        [png(picture(8, 8, seed=8))])
    assert resp["ok"], resp
    attr = ex.wait(120)
    image_at, layer_at, pixels = _picture_then_layers(ex, since)
    assert image_at < layer_at and pixels.tolist() == np.asarray(attr.image.pixels).tolist()
    assert ex.meta["image_name"] == "eight.png"


def test_a_saved_image_attribution_reopens_with_its_picture(vit, tmp_path):
    model, proc = vit
    from attattr_widgets.engine.attribution.api import attribute

    attr = attribute(model, proc, picture(8, 8, seed=6), steps=2)
    attr.save(tmp_path / "digit.npz")
    w = Explorer.from_attribution(Attribution.load(tmp_path / "digit.npz"))
    state, paths = wc.open_state(w)
    assert state["image"]["grid"] == [2, 2] and state["meta"]["image_name"] == "image 8×8"
    assert np.frombuffer(paths[("image", "pixels", "view")], np.uint8).reshape(state["image"]["pixels"]["shape"]).tolist() \
        == np.asarray(attr.image.pixels).tolist()


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_bad_uploads_answer_an_error_and_show_it(vit, monkeypatch):
    model, proc = vit
    monkeypatch.setattr(explorer_mod, "_attribute", lambda *a, **k: pytest.fail("must not run"))
    ex = Explorer(model, proc)
    resp, _ = wc.command_from_front_end(ex, "_cmd_image", {"name": None, "target": "pred"})
    assert not resp["ok"] and "choose an image file" in resp["error"] and ex.state == "error"
    resp, _ = wc.command_from_front_end(ex, "_cmd_image", {"name": "notes.txt", "target": "pred"}, [b"hello"])
    assert not resp["ok"] and "not an image" in resp["error"] and "notes.txt" not in ex.meta.get("image_name", "")
    # a text model refuses pictures
    from result_samples import make_attr

    w = Explorer.from_attribution(make_attr())
    w.interactive = True
    resp, _ = wc.command_from_front_end(w, "_cmd_image", {"name": "x.png", "target": "pred"}, [png(picture())])
    assert not resp["ok"] and "does not read images" in resp["error"]


# ------------------------------------------------------------------------------------------------ TreeView
def test_tree_view_carries_the_picture(monkeypatch):
    attr = image_attr()
    tree = {"tokens": attr.tokens, "num_layers": 2, "threshold": 0.4, "root": 0,
            "nodes": [{"index": 0, "token": "[CLS]", "layer": 2}, {"index": 4, "token": "(1,1)", "layer": 1}],
            "edges": [{"parent": 0, "child": 4, "layer": 1, "score": 0.7}]}
    monkeypatch.setattr("attattr_widgets.widgets.tree._attribution_tree", lambda a, t: tree)
    tv = TreeView(attr)
    state, paths = wc.open_state(tv)
    assert state["image"]["grid"] == [2, 2] and ("image", "pixels", "view") in paths
    html = tree_html(tv)
    assert "attribution tree on the image" in html and "data:image/png;base64," in html
    # [CLS] sits in the band above the picture, (1,1) at the centre of the bottom-right patch (260 px picture)
    assert re.search(r'<line x1="130.0" y1="15.0" x2="195.0" y2="225.0"', html), html


# ------------------------------------------------------------------------------------------------ snapshot
def test_snapshot_draws_the_picture_with_per_patch_overlays():
    attr = image_attr()
    w = Explorer.from_attribution(attr)
    html = explorer_html(w)
    assert "Attribution from “[CLS]” to each patch" in html and "Attention from “[CLS]” to each patch" in html
    assert "image 8×8" in html  # a picture without a file name: named by its size
    patch_rects = re.findall(r"<title>patch \((\d),(\d)\): ([^<]+)</title>", html)
    assert len(patch_rects) == 2 * ROWS * COLS  # attribution + attention, one rect per patch
    li, h = w.selected
    q = w.query
    row = np.asarray(attr.scores)[li, h, q]
    from attattr_widgets.snapshot import fmt

    assert [v for *_, v in patch_rects[:4]] == [fmt(x) for x in row[1:5]]
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "Tokens coloured" not in html  # the patches are the pictures, no token chips


def test_snapshot_of_a_prompt_around_an_image_keeps_its_words():
    """A vision–language prompt: text tokens around the image tokens (first_patch > 1) — the pictures and the
    sentence are both shown."""
    attr = image_attr()
    words = ["USER", ":"] + attr.tokens[1:] + ["ASSISTANT", ":"]
    n = len(words)
    rng = np.random.default_rng(2)
    attr.tokens, attr.token_type_ids = words, np.zeros(n, np.int64)
    attr.scores = rng.normal(size=(2, 2, n, n)).astype(np.float32)
    attr.attention = rng.random(size=(2, 2, n, n)).astype(np.float32)
    attr.text, attr.image.first_patch = "USER: <image> ASSISTANT:", 2
    html = explorer_html(Explorer.from_attribution(attr))
    assert "to each patch" in html and "Tokens coloured" in html and "ASSISTANT" in html


def test_hostile_picture_names_are_text():
    w = Explorer.from_attribution(image_attr())
    w.meta = {**w.meta, "image_name": "<img src=x onerror=alert(1)>.png"}
    html = explorer_html(w)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;.png" in html


def test_pictures_are_named_by_file_or_size():
    import torch
    from PIL import Image

    name = explorer_mod._image_name
    assert name("/data/cats/tabby.png") == "tabby.png"
    assert name(Image.new("RGB", (32, 24))) == "image 32×24"
    assert name(np.zeros((24, 32, 3), np.uint8)) == "image 32×24"
    assert name(torch.zeros(1, 3, 24, 32)) == "image 32×24"
    assert name(object()) == "image"
