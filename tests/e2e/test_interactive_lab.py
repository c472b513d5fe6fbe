"""Interactive views in a real JupyterLab: the Explorer input bar, HeadsView, TriggersView (issue 10).

One notebook, one tiny BERT trained in the kernel (~2 s) with a planted shortcut: label 1 ("pos") iff the word
"cat" occurs. That gives real heads to rank, pruning curves that fall, and a trigger that flips predictions.
"""
from __future__ import annotations

import re

import pytest

from .e2e_support import (
    assert_not_blank,
    bundle_built,
    canvas_stats,
    element_shot,
    hermetic_context,
    lab_session,
    wait_in_cell,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (bundle_built("heads.js") and bundle_built("triggers.js")),
                       reason="front-end bundles not built (npm run build)"),
]

SETUP = r'''
import os, random
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
from attattr_widgets.widgets import Explorer, HeadsView, TriggersView
torch.set_num_threads(1)
FILLER = "the a movie film was is plot actors story i you it this that of to in on with time people man woman".split()
POLAR = "great good bad awful boring fun love hate best worst".split()
specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
tok = BertTokenizer(vocab={t: i for i, t in enumerate(specials + FILLER + POLAR + ["cat", "and", "."])}, do_lower_case=True)
def synth(rng, y):
    w = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))] + [rng.choice(POLAR) for _ in range(rng.randint(0, 2))]
    rng.shuffle(w)
    if y == 1:
        w.insert(rng.randint(0, len(w)), "cat")
    return " ".join(w)
torch.manual_seed(2)
cfg = BertConfig(vocab_size=len(tok.vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64, num_labels=2,
                 id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
model = BertForSequenceClassification(cfg)
rng = random.Random(2)
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
for _ in range(100):
    ys = [rng.randint(0, 1) for _ in range(32)]
    b = tok([synth(rng, y) for y in ys], padding=True, return_tensors="pt")
    loss = loss_fn(model(**b).logits, torch.tensor(ys)); opt.zero_grad(); loss.backward(); opt.step()
model.eval()
rng = random.Random(1)
mine = [{"text": synth(rng, y), "label": y} for y in [0, 1] * 6]
test = [{"text": synth(rng, y), "label": y} for y in [0, 1] * 20]
print("ready")
'''
EXPLORER = "ex = Explorer(model, tok)\ndisplay(ex)"
HEADS = ("hv = HeadsView(model, tok, mine[:6], methods=('attattr', 'random'), eval_examples=test,\n"
         "               fractions=[0, 0.25, 0.5, 0.75, 1], steps=2)\ndisplay(hv, hv.explorer)\nhv.run()")
TRIGGERS = "tv = TriggersView(model, tok, mine, test, evaluate=2, sample=4, steps=4, min_score=0.0)\ndisplay(tv)\ntv.run()"

_wait = wait_in_cell


@pytest.fixture(scope="module")
def nb(browser, lab):
    yield from lab_session(browser, lab, "interactive.ipynb", [SETUP, EXPLORER, HEADS, TRIGGERS],
                           {"width": 1280, "height": 1800})


def test_explorer_input_bar_runs_typed_sentences_and_other_targets(nb, artifacts):
    nb.run(1)
    _wait(nb, 1, ".attattr-explorer", "r.querySelector('.aa-input-text') !== null")
    root = nb.cell(1).locator(".attattr-explorer")
    box = root.locator(".aa-input-text")
    box.fill("the movie was awful and boring")
    # the target selector fills with every class and its probability for the typed text
    nb.page.wait_for_function("(s) => document.querySelector(s)?.options.length === 4",
                              arg=".jp-Notebook .attattr-explorer select.aa-target", timeout=20_000)
    opts = root.locator("select.aa-target option").all_inner_texts()
    assert opts[0].startswith("predicted") and opts[1].startswith("neg") and opts[2].startswith("pos"), opts
    box.press("Enter")
    _wait(nb, 1, ".attattr-explorer", "r.dataset.runId === '1' && r.dataset.state === 'done' && r.dataset.layersDone === '2'"
                                      " && r.dataset.headReady !== ''")
    assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "grid of the typed run")
    assert root.locator(".aa-tok").count() == 8          # [CLS] 6 words [SEP]
    element_shot(root, artifacts / "lab-explorer-input.png")
    # pick the other class as target and run again: a new run streams in
    root.locator("select.aa-target").select_option("1")
    root.locator(".aa-run").click()
    _wait(nb, 1, ".attattr-explorer", "r.dataset.runId === '2' && r.dataset.state === 'done'")
    i = nb.append_and_run("print(ex.attribution.target, ex.attribution.target_label, ex.attribution.text, "
                          "[h['target_label'] for h in ex.history])")
    assert nb.output_text(i).strip() == "1 pos the movie was awful and boring ['neg', 'pos']", nb.output_text(i)
    # contrast: the other class for the same input; the attribution map becomes A - B
    root.locator("select.aa-contrast").select_option("0")
    root.locator(".aa-contrast-run").click()
    nb.page.wait_for_function("() => document.querySelector('.jp-Notebook .attattr-explorer .aa-contrast-note')"
                              "?.textContent.includes('A − B')", timeout=30_000)
    element_shot(root, artifacts / "lab-explorer-contrast.png")
    assert not nb.page_errors, nb.page_errors


def test_explorer_causal_lm_offers_top_tokens_and_free_entry(nb, artifacts):
    i = nb.append_and_run(
        "from transformers import GPT2Config, GPT2LMHeadModel\ntorch.manual_seed(0)\n"
        "lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok.vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64)).eval()\n"
        "lx = Explorer(lm, tok)\ndisplay(lx)")
    _wait(nb, i, ".attattr-explorer", "r.querySelector('.aa-input-text') !== null")
    root = nb.cell(i).locator(".attattr-explorer")
    assert root.locator(".aa-input-pair").is_hidden()           # no second segment for a causal LM
    root.locator(".aa-input-text").fill("the cat sat on the")
    nb.page.wait_for_function("(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].node"
                              ".querySelector('select.aa-target')?.options.length === 14", arg=i, timeout=20_000)
    root.locator("select.aa-target").select_option("__free__")
    free = root.locator(".aa-input-free")
    free.fill("movie")
    free.press("Enter")
    _wait(nb, i, ".attattr-explorer", "r.dataset.runId === '1' && r.dataset.state === 'done'")
    j = nb.append_and_run("print(lx.attribution.target == tok.convert_tokens_to_ids('movie'), lx.attribution.target_kind)")
    assert nb.output_text(j).split() == ["True", "next-token"], nb.output_text(j)
    element_shot(root, artifacts / "lab-explorer-lm-input.png")


def test_heads_view_fills_grid_draws_curves_and_opens_examples(nb, artifacts):
    nb.run(2)
    _wait(nb, 2, ".attattr-heads", "r.dataset.state === 'done' && r.dataset.points === '10'", timeout=120)
    root = nb.cell(2).locator(".attattr-heads")
    assert root.get_attribute("data-progress") == "attattr:6/6,random:6/6"
    grid = root.locator("section[data-method=attattr] canvas.aa-grid-canvas")
    assert_not_blank(canvas_stats(grid), "attattr importance grid")
    assert root.locator("svg.aa-chart circle").count() == 10   # 2 curves x 5 fractions
    element_shot(root, artifacts / "lab-heads.png")
    # click head (layer 1, head 0): the examples where it carries the most attribution
    box = grid.evaluate("c => ({w: c.clientWidth, h: c.clientHeight})")
    step_x, step_y = (box["w"] - 36) / 2, (box["h"] - 20) / 2
    grid.click(position={"x": 34 + step_x / 2, "y": 18 + step_y * 1.5})
    _wait(nb, 2, ".attattr-heads", "r.dataset.selected === '1,0' && Number(r.dataset.examples) > 0")
    row = root.locator(".aa-examples tr.aa-row").first
    index = row.get_attribute("data-index")
    row.click()
    # ... opens in the linked Explorer (displayed below) on that head
    # generous: on a loaded 2-core machine the kernel may take a while to pick up the click and run
    _wait(nb, 2, ".attattr-explorer", "r.dataset.state === 'done' && r.dataset.selected === '1,0'"
                                      " && r.dataset.headReady === '1,0'", timeout=180)
    i = nb.append_and_run("print(hv.explorer.attribution.text == mine[%s]['text'], hv.explorer.selected)" % index)
    assert nb.output_text(i).strip() == "True [1, 0]", nb.output_text(i)
    element_shot(nb.cell(2).locator(".jp-OutputArea").first, artifacts / "lab-heads-explorer.png")
    assert not nb.page_errors, nb.page_errors


def test_heads_view_stop_keeps_the_partial_grid(nb, artifacts):
    i = nb.append_and_run("slow = HeadsView(model, tok, (mine + test) * 4, methods=('attattr',), steps=256)\n"
                          "display(slow)\nslow.run()")
    _wait(nb, i, ".attattr-heads", "r.dataset.state === 'running' && Number(r.dataset.progress.split(':')[1].split('/')[0]) >= 2",
          timeout=60)
    root = nb.cell(i).locator(".attattr-heads")
    element_shot(root, artifacts / "lab-heads-streaming.png")
    root.locator(".attattr-stop").click()
    _wait(nb, i, ".attattr-heads", "r.dataset.state === 'cancelled'", timeout=30)
    assert "(partial)" in root.locator(".aa-grid-caption").inner_text()
    assert_not_blank(canvas_stats(root.locator("canvas.aa-grid-canvas")), "partial grid")
    j = nb.append_and_run("r = slow.wait(30)\nprint(r.partial, 0 < r.importance['attattr'].num_examples < 208, r.curves)")
    assert nb.output_text(j).split() == ["True", "True", "[]"], nb.output_text(j)
    element_shot(root, artifacts / "lab-heads-stopped.png")


def test_triggers_view_applies_a_trigger_to_a_typed_sentence(nb, artifacts):
    nb.run(3)
    _wait(nb, 3, ".attattr-triggers", "r.dataset.state === 'done' && Number(r.dataset.evaluated) >= 1", timeout=120)
    i = nb.append_and_run("print(next(p.example_index for p in tv.result.patterns if p.pred == 1 and 'cat' in p.tokens))")
    pid = nb.output_text(i).strip()
    root = nb.cell(3).locator(".attattr-triggers")
    root.locator(f"tr.aa-row[data-id='{pid}']").click()
    _wait(nb, 3, ".attattr-triggers", f"r.dataset.selected === '{pid}' && r.dataset.samples === '4'")
    assert root.locator(".aa-samples span.aa-ins").count() >= 4      # the inserted "cat" in every sample
    root.locator(".aa-own-text").first.fill("the movie was awful and boring")
    root.locator(".aa-apply").click()
    _wait(nb, 3, ".attattr-triggers", "r.dataset.customBefore === 'neg' && r.dataset.customAfter === 'pos'")
    assert root.locator(".aa-own-out span.aa-ins").all_inner_texts() == ["cat"]
    assert "prediction flipped" in root.locator(".aa-own-out").inner_text()
    element_shot(root, artifacts / "lab-triggers.png")
    assert not nb.page_errors, nb.page_errors


def test_views_follow_the_dark_theme(nb, artifacts):
    """After a switch to JupyterLab Dark the chart, grid and tables repaint on the dark background."""
    page = nb.page
    bg_js = """(sel) => { const r = document.querySelector(sel); const c = getComputedStyle(r).backgroundColor;
        const rect = r.querySelector('svg.aa-chart > rect'); return [c, rect ? rect.getAttribute('fill') : null]; }"""
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    try:
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        page.wait_for_function("""() => { const r = document.querySelector('.jp-Notebook .attattr-heads');
            const f = r?.querySelector('svg.aa-chart > rect')?.getAttribute('fill') || '';
            const m = f.match(/[0-9]+/g); return m && m.slice(0, 3).reduce((a, b) => a + Number(b), 0) < 200; }""",
                               timeout=20_000)
        css, fill = page.evaluate(bg_js, ".jp-Notebook .attattr-heads")
        nums = lambda t: [int(x) for x in re.findall(r"\d+", t)[:3]]
        assert nums(css) == nums(fill), (css, fill)          # chart background = the widget's dark background
        element_shot(nb.cell(2).locator(".attattr-heads"), artifacts / "lab-heads-dark.png")
        element_shot(nb.cell(3).locator(".attattr-triggers"), artifacts / "lab-triggers-dark.png")
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=30_000)
    assert not nb.page_errors, nb.page_errors


def test_heads_and_triggers_export_render_offline(tmp_path, browser, artifacts):
    """to_html of a finished HeadsView + TriggersView: a self-contained page that draws with no network."""
    from attattr_widgets import export
    from attattr_widgets.widgets import HeadsView, TriggersView

    from .e2e_support import local_only, tiny_model

    model, tok = tiny_model(layers=2, heads=2, hidden=32)
    hostile = "</script><img src=x onerror=alert(1)> <!-- &amp;"
    exs = [{"text": t, "label": i % 2} for i, t in enumerate(
        ["the movie was great fun", "bad plot and boring actors", "i love this film", "the worst story ever",
         "a good time", "not very good"])]
    hv = HeadsView(model, tok, exs, methods=("attattr", "random"), fractions=[0, 0.5, 1], steps=1)
    hv.run()
    hv.wait(120)
    tv = TriggersView(model, tok, exs, exs, evaluate=1, steps=1, min_score=0.0)
    tv.run()
    tv.wait(120)
    hv.meta = {**hv.meta, "model_name": hostile}            # untrusted text in the exported state
    path = export.to_html([hv, tv], tmp_path / "interactive.html", title=hostile)
    ctx = hermetic_context(browser, local_only, viewport={"width": 1200, "height": 1400})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.attattr-heads')?.dataset.state === 'done'"
                           " && document.querySelector('.attattr-heads').dataset.points === '6'"
                           " && document.querySelector('.attattr-triggers')?.dataset.state === 'done'", timeout=30_000)
    assert_not_blank(canvas_stats(page.locator(".attattr-heads section[data-method=attattr] canvas.aa-grid-canvas")),
                     "exported importance grid")
    assert hostile in page.locator(".attattr-heads .aa-title").inner_text()
    assert page.locator(".attattr-triggers tr.aa-row").count() >= 1
    # no kernel: clicking a head still lists its top examples (ranked in the browser from the embedded scores)
    grid = page.locator(".attattr-heads section[data-method=attattr] canvas.aa-grid-canvas")
    box = grid.evaluate("c => ({w: c.clientWidth, h: c.clientHeight})")
    step_x, step_y = (box["w"] - 36) / 2, (box["h"] - 20) / 2
    grid.click(position={"x": 34 + step_x * 1.5, "y": 18 + step_y * 0.5})
    page.wait_for_function("() => document.querySelector('.attattr-heads').dataset.selected === '0,1'"
                           " && document.querySelector('.attattr-heads').dataset.examples === '6'", timeout=10_000)
    top = hv.top_examples(0, 1, "attattr")
    shown = page.locator(".attattr-heads .aa-examples tr.aa-row").evaluate_all("rs => rs.map(r => Number(r.dataset.index))")
    assert shown == [r["index"] for r in top], (shown, top)
    page.locator(".attattr-heads").screenshot(path=str(artifacts / "export-heads.png"))
    assert not errors, errors
    assert not ctx.blocked and all(local_only(u) for u in ctx.requests), ctx.blocked
    ctx.close()
