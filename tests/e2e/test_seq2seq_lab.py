"""An encoder–decoder in a real JupyterLab (issue 22): a tiny Marian model explains a teacher-forced translation
live; the view opens on the cross-attention alignment view (answer rows × source columns, attention and
attribution side by side), shows the answer and source sentences, switches to the encoder and decoder sites, and
the input bar's "generate N tokens" explains the answer the model writes."""
from __future__ import annotations

import pytest

from .e2e_support import (assert_not_blank, bundle_built, canvas_stats, element_shot,
                           lab_session, wait_explorer)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

SETUP = r'''
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np, torch
import transformers as T
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from attattr_widgets import attribute
from attattr_widgets.widgets import Explorer
torch.set_num_threads(1)
WORDS = ("the cat sat on a mat house is small big dog . <b>x</b> "
         "das haus ist klein gross die katze der hund sitzt auf einer matte").split()
vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>"] + WORDS)}
tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
tok = T.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                model_max_length=64)
torch.manual_seed(0)
cfg = T.MarianConfig(vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                     pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=None, init_std=0.1)
mt = T.MarianMTModel(cfg).eval()
print("ready")
'''
SOURCE = "the cat <b>x</b> sat on a mat"
EXPLAIN = f'ex = Explorer(mt, tok)\ndisplay(ex)\nex.explain("{SOURCE}", target="die katze sitzt auf einer matte", steps=4);'


@pytest.fixture(scope="module")
def nb(browser, lab):
    yield from lab_session(browser, lab, "seq2seq.ipynb", [SETUP, EXPLAIN])


def test_alignment_view_sites_and_generate(nb, artifacts):
    nb.run(1)
    wait_explorer(nb, 1, "r.dataset.state === 'done' && r.dataset.site === 'cross' && r.dataset.headReady !== ''"
                 " && r.dataset.headReady === r.dataset.selected")
    root = nb.cell(1).locator(".attattr-explorer")
    src = ["the", "cat", "<b>x</b>", "sat", "on", "a", "mat", "</s>"]
    dec = ["<pad>", "die", "katze", "sitzt", "auf", "einer", "matte"]
    # the alignment view: 7 answer rows × 8 source columns, both maps drawn, both sentences as text
    assert root.get_attribute("data-heat-shape") == f"{len(dec)}x{len(src)}"
    for which in ("attention", "attribution"):
        assert_not_blank(canvas_stats(root.locator(f"canvas[data-map={which}]")), f"{which} heatmap")
    assert root.locator(".aa-row-sentence .aa-tok").all_inner_texts() == dec
    assert root.locator(".aa-sentence-panel:not(.aa-row-sentence) .aa-tok").all_inner_texts() == src
    assert root.locator("b").count() == 0  # the token "<b>x</b>" is text
    assert root.locator(".aa-site-bar button.aa-on").inner_text() == "cross"
    assert "answer rows × source columns" in root.locator(".aa-heat-panel .aa-panel-title").inner_text()
    attn_box = root.locator("canvas[data-map=attention]").bounding_box()
    assert attn_box["width"] > attn_box["height"]  # wider than tall: more source columns than answer rows
    # click the last source column of the last answer row: the readout names both tokens and what the row predicts
    # (it reads "matte", the answer shifted right, and predicts the answer's last label token "</s>")
    x0, y0, side = (float(v) for v in root.get_attribute("data-heat-box").split(","))
    cs = side / max(len(src), len(dec))
    canvas = root.locator("canvas[data-map=attribution]")
    canvas.click(position={"x": x0 + (len(src) - 0.5) * cs, "y": y0 + (len(dec) - 0.5) * cs})
    wait_explorer(nb, 1, f"r.dataset.locked === '{len(dec) - 1},{len(src) - 1}'")
    readout = root.locator(".aa-readout").inner_text()
    assert "matte6 (predicts </s>) attends to </s>7" in " ".join(readout.split()), readout
    i = nb.append_and_run("li, h = ex.selected\nprint(ex.site, np.array_equal(ex.head['attribution'], "
                          "ex.attribution.cross.scores[li, h].astype(np.float32)), ex.pair['scores'].shape)")
    assert nb.output_text(i).split() == ["cross", "True", "(2,", "4)"], nb.output_text(i)
    element_shot(root, artifacts / "lab-explorer-seq2seq-cross.png")
    # the encoder site: source × source, square
    root.locator(".aa-site-bar button[data-value=encoder]").click()
    wait_explorer(nb, 1, f"r.dataset.site === 'encoder' && r.dataset.heatShape === '{len(src)}x{len(src)}'"
                 " && r.dataset.headReady === r.dataset.selected")
    assert root.locator(".aa-row-sentence").is_hidden()
    assert root.locator(".aa-sentence-panel:not(.aa-row-sentence) .aa-tok").all_inner_texts() == src
    element_shot(root, artifacts / "lab-explorer-seq2seq-encoder.png")
    root.locator(".aa-site-bar button[data-value=decoder]").click()
    wait_explorer(nb, 1, f"r.dataset.site === 'decoder' && r.dataset.heatShape === '{len(dec)}x{len(dec)}'")
    # the input bar: "generate N tokens" explains the model's own translation
    run = int(root.get_attribute("data-run-id"))
    target = root.locator("select.aa-target")
    assert target.locator("option").all_inner_texts() == ["answer…", "generate N tokens…"]
    target.select_option("__generate__")
    root.locator(".aa-input-gen").fill("3")
    root.locator(".aa-run").click()
    wait_explorer(nb, 1, f"r.dataset.runId === '{run + 1}' && r.dataset.state === 'done' && r.dataset.site === 'cross'"
                 " && r.dataset.headReady !== ''")
    i = nb.append_and_run("ref = attribute(mt, tok, " + repr(SOURCE) + ", generate=3, steps=4)\n"
                          "a = ex.attribution\nprint(a.label_ids == ref.label_ids, len(ex.history))")
    assert nb.output_text(i).split() == ["True", "2"], nb.output_text(i)
    assert not nb.page_errors, nb.page_errors
