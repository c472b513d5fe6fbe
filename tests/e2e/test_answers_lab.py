"""An explained answer in a real JupyterLab (issue 21): a tiny causal LM explains a teacher-forced answer, the
answer is set apart in the sentence and on the heatmap axes, clicking an answer token shows its own maps, and the
input bar's "generate N tokens" explains the answer the model writes."""
from __future__ import annotations

import pytest

from .e2e_support import (CELL_NODE, assert_not_blank, bundle_built, canvas_stats, element_shot,
                           lab_session, wait_explorer)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)"),
]

SETUP = r'''
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np, torch
from transformers import BertTokenizer, GPT2Config, GPT2LMHeadModel
from attattr_widgets import attribute
from attattr_widgets.widgets import Explorer
torch.set_num_threads(1)
WORDS = ("the a movie film was is great good bad awful boring fun plot actors story not very really and but "
         "i you it this that of to in on with love hate best worst ever time people . , !").split()
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
tok = BertTokenizer(vocab={t: i for i, t in enumerate(specials + WORDS)}, do_lower_case=True)
torch.manual_seed(0)
lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok.vocab), n_embd=32, n_layer=3, n_head=4, n_positions=64,
                                bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)).eval()
print("ready")
'''
EXPLAIN = 'ax = Explorer(lm, tok)\ndisplay(ax)\nax.explain("the movie was", target="not very good", steps=4);'


def _cell_rgb(root, row: int, col: int) -> list[int]:
    """The attribution heatmap's pixel at the centre of cell (row, col) (layout from the root's ``data-heat-box``)."""
    x0, y0, side = (float(v) for v in root.get_attribute("data-heat-box").split(","))
    n = int(root.get_attribute("data-tokens"))
    return root.locator("canvas[data-map=attribution]").evaluate(
        "(c, [x, y]) => { const k = c.width / c.clientWidth; const ctx = c.getContext('2d');"
        " return Array.from(ctx.getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data.slice(0, 3)); }",
        [x0 + (col + 0.5) * side / n, y0 + (row + 0.5) * side / n])


@pytest.fixture(scope="module")
def nb(browser, lab):
    yield from lab_session(browser, lab, "answers.ipynb", [SETUP, EXPLAIN])


def test_answer_is_explained_marked_and_each_token_has_its_maps(nb, artifacts):
    nb.run(1)
    wait_explorer(nb, 1, "r.dataset.state === 'done' && r.dataset.answerStart === '5' && r.dataset.headReady !== ''"
                 " && r.dataset.headReady === r.dataset.selected")
    root = nb.cell(1).locator(".attattr-explorer")
    # [CLS] the movie was [SEP] | not very good: the answer set apart in the sentence, a picker above it
    assert root.locator(".aa-sentence .aa-tok.aa-answer").all_inner_texts() == ["not", "very", "good"]
    picks = root.locator(".aa-answer-bar button")
    assert picks.all_inner_texts() == ["whole answer", "not", "very", "good"]
    assert "answer: not very good" in root.locator(".aa-header").inner_text()
    for which in ("attention", "attribution"):
        assert_not_blank(canvas_stats(root.locator(f"canvas[data-map={which}]")), f"{which} heatmap")
    # the input bar offers the shown answer again
    assert root.locator("select.aa-target").input_value() == "__answer__"
    assert root.locator(".aa-input-answer").input_value() == "not very good"
    element_shot(root, artifacts / "lab-explorer-answer.png")
    whole = canvas_stats(root.locator("canvas[data-map=attribution]"))
    # row "very" (6) of the whole answer's map carries attribution (it predicts "good"); F_1 = log p(very | …)
    # is read at row 5, so a causal model gives row 6 none: its cells must turn to the background
    assert _cell_rgb(root, 6, 2) != _cell_rgb(root, 0, 7)
    # answer token 1 ("very"): the kernel swaps in its own maps, the same head stays selected
    selected = root.get_attribute("data-selected")
    picks.nth(2).click()
    wait_explorer(nb, 1, "r.dataset.answerToken === '1' && r.dataset.headReady === r.dataset.selected"
                 f" && r.dataset.selected === '{selected}' && r.dataset.query === '5'")
    nb.page.wait_for_function("(i) => !(" + CELL_NODE + ")(i).querySelector('.aa-header').textContent.includes('answer: ')",
                              arg=1, timeout=30_000)
    assert "answer token 1: very" in root.locator(".aa-header").inner_text()
    assert canvas_stats(root.locator("canvas[data-map=attribution]"))["fp"] != whole["fp"]
    assert _cell_rgb(root, 6, 2) == _cell_rgb(root, 0, 7)  # zero: the widget background
    i = nb.append_and_run("li, h = ax.selected\nprint(ax.answer_token, np.array_equal(ax.head['attribution'], "
                          "ax.attribution.per_token[1].scores[li, h]), ax.attribution.answer_start)")
    assert nb.output_text(i).split() == ["1", "True", "5"], nb.output_text(i)
    element_shot(root, artifacts / "lab-explorer-answer-token.png")
    assert not nb.page_errors, nb.page_errors


def test_generate_from_the_input_bar(nb, artifacts):
    root = nb.cell(1).locator(".attattr-explorer")
    run = int(root.get_attribute("data-run-id"))
    root.locator("select.aa-target").select_option("__generate__")
    gen = root.locator(".aa-input-gen")
    assert gen.is_visible() and root.locator(".aa-input-answer").is_hidden()
    gen.fill("3")
    root.locator(".aa-run").click()
    wait_explorer(nb, 1, f"r.dataset.runId === '{run + 1}' && r.dataset.state === 'done' && r.dataset.headReady !== ''")
    i = nb.append_and_run("ref = attribute(lm, tok, 'the movie was', generate=3, steps=4)\n"
                          "a = ax.attribution\nprint(a.target_kind, a.tokens == ref.tokens, a.answer_start, "
                          "len(a.per_token), ax.answer_token)")
    out = nb.output_text(i).split()
    assert out[:3] == ["continuation", "True", "5"] and int(out[3]) >= 1 and out[4] == "-1", out
    assert root.locator(".aa-answer-bar button").count() == int(out[3]) + 1
    element_shot(root, artifacts / "lab-explorer-generated.png")
    assert not nb.page_errors, nb.page_errors
