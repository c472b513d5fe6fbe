"""Hostile strings through every export, opened in the real Chromium (offline, file://): each page renders and
shows every token, text, label, model name and title as text — nothing executes, nothing vanishes."""
from __future__ import annotations

import re

import numpy as np
import pytest

from attattr_widgets import export, plots
from attattr_widgets.widgets import Explorer, TreeView

from hostile import expected_text, hostile_strings
from test_hardening_exports import hostile_attribution, hostile_curves, hostile_seq2seq

from .e2e_support import bundle_built, hermetic_context, local_only

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not bundle_built("explorer.js"), reason="front-end bundle not built (npm run build)")]

STRINGS = hostile_strings()


def display_token(t: str) -> str:
    """Python twin of js/shared/dom.ts displayToken (what a token chip shows)."""
    t = t.replace("\n", "↵").replace("\t", "⇥").replace("\r", "")
    t = re.sub("[\x00-\x1f\x7f]", "\ufffd", t)
    if t.startswith(("Ġ", "▁")):
        t = "·" + t[1:]
    return t or "∅"


@pytest.fixture
def offline(browser):
    ctx = hermetic_context(browser, local_only, viewport={"width": 1300, "height": 1000})
    page = ctx.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield ctx, page
    ctx.close()


def _no_injection(ctx, page) -> None:
    assert page.evaluate("() => window.__pwned") is None, "a hostile string executed script"
    assert page.locator("img[src='x'], svg[onload], b:text('bold')").count() == 0, "a hostile string became markup"
    blocked = [u for u in ctx.requests if not local_only(u)] + ctx.blocked
    assert blocked == [], f"network requests: {blocked[:5]}"
    assert not page.console_errors, page.console_errors


def _wait_explorer_and_tree(page) -> None:
    page.wait_for_function("() => { const r = document.querySelector('.attattr-explorer');"
                           " return r && r.dataset.state === 'done' && r.querySelectorAll('.aa-tok').length > 0; }")
    page.wait_for_function("() => document.querySelector('.attattr-tree')?.dataset.state === 'done'")


def test_explorer_and_tree_export_show_hostile_strings_as_text(tmp_path, offline, artifacts):
    ctx, page = offline
    attr = hostile_attribution(STRINGS)
    tree_title = "tree <!-- title </script> \u2028 \ud800"
    title, heading, desc = "<!--title</script>\u2028", "</script><h1>heading & co", "<!-- d \ud800 <b>bold</b>"
    path = export.to_html([Explorer.from_attribution(attr), TreeView(attr, threshold=0.3, title=tree_title)],
                          tmp_path / "hostile.html", title=title, heading=heading, description=desc)
    page.goto(path.as_uri())
    _wait_explorer_and_tree(page)
    chips = page.evaluate("() => [...document.querySelectorAll('.attattr-explorer .aa-tok')].map(e => e.textContent)")
    assert chips == [display_token(expected_text(t)) for t in STRINGS]
    assert page.title() == expected_text(title)
    assert page.locator("h1").first.text_content() == expected_text(heading)
    assert page.locator(".attattr-export-desc").text_content() == expected_text(desc)
    head = page.locator(".attattr-explorer .aa-title").first.text_content()
    assert head == "AttAttr · " + expected_text(attr.model_name)
    text_shown = page.locator(".attattr-explorer .aa-text").first.get_attribute("title")
    assert text_shown == expected_text(attr.text) + "  ‖  " + attr.text_pair
    assert page.locator(".attattr-tree .aa-title").first.text_content() == expected_text(tree_title)
    assert int(page.locator(".attattr-tree").get_attribute("data-nodes")) >= 1
    page.screenshot(path=str(artifacts / "hostile-explorer-tree.png"), full_page=False)
    _no_injection(ctx, page)


def test_explained_answer_export_marks_and_shows_hostile_answer_tokens_as_text(tmp_path, offline, artifacts):
    """An explained answer of hostile tokens: the exported page sets it apart (answer chips, the picker) and shows
    every answer token as text."""
    ctx, page = offline
    attr = hostile_attribution(STRINGS[:40])
    start = 30
    attr.target_kind, attr.answer_start, attr.score = "continuation", start, "logprob"
    attr.target_label = "".join(STRINGS[start:40])
    page.goto(export.to_html(Explorer.from_attribution(attr), tmp_path / "answer.html").as_uri())
    page.wait_for_function("() => { const r = document.querySelector('.attattr-explorer');"
                           " return r && r.dataset.state === 'done' && r.dataset.answerStart === '30'; }")
    answer = page.evaluate("() => [...document.querySelectorAll('.attattr-explorer .aa-tok.aa-answer')].map(e => e.textContent)")
    assert answer == [display_token(expected_text(t)) for t in STRINGS[start:40]]
    picks = page.evaluate("() => [...document.querySelectorAll('.attattr-explorer .aa-answer-bar button')].map(e => e.textContent)")
    assert picks == ["whole answer"] + [display_token(expected_text(t)) for t in STRINGS[start:40]]
    assert "log p = " in page.locator(".attattr-explorer .aa-header").text_content()
    page.screenshot(path=str(artifacts / "hostile-explorer-answer.png"), full_page=False)
    _no_injection(ctx, page)


def test_plots_export_shows_hostile_names_as_text(tmp_path, offline, artifacts):
    ctx, page = offline
    curves, names = hostile_curves()
    fig = plots.pruning_plot(curves, title="<!--title</script> \u2028")
    page.goto(plots_uri(plots.save_html(fig, tmp_path / "plots.html")))
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length === 1 && Object.keys(Bokeh.index).length > 0")
    got = page.evaluate("""() => { const d = Bokeh.documents[0]; const ms = [...d.all_models];
        return { curves: ms.filter(m => (m.name || '').startsWith('curve:')).map(m => m.name.slice(6)),
                 legend: ms.filter(m => m.type === 'LegendItem' || m.constructor.name === 'LegendItem')
                           .map(m => m.label && (m.label.value ?? m.label)),
                 title: ms.filter(m => typeof m.text === 'string' && 'text_font_size' in m).map(m => m.text) }; }""")
    # Bokeh's own JSON keeps an unpaired surrogate as "\ud800" (drawn as U+FFFD): compare as displayed
    shown = lambda xs: sorted(expected_text(x) for x in xs)  # noqa: E731
    want = shown(names)
    assert shown(got["curves"]) == want
    assert shown(got["legend"]) == want
    assert expected_text("<!--title</script> \u2028") in got["title"]
    # the tooltip of the first point of the first curve names its method as text, not as HTML entities
    x, y = page.evaluate("""() => { const v = Object.values(Bokeh.index)[0], r = v.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(0.0), r.top + v.frame.y_scale.compute(0.9)]; }""")
    page.mouse.move(x, y)
    tip = page.wait_for_function("""() => { const all = []; const walk = (root) => root.querySelectorAll('*').forEach(e => {
          if (e.classList && e.classList.contains('bk-Tooltip') && e.shadowRoot) all.push(e.shadowRoot.textContent);
          if (e.shadowRoot) walk(e.shadowRoot); }); walk(document);
        const t = all.find(s => /method/.test(s)); return t || null; }""", timeout=10_000).json_value()
    assert expected_text(names[0]) in tip and "&lt;" not in tip
    page.screenshot(path=str(artifacts / "hostile-plots.png"))
    _no_injection(ctx, page)


def test_demo_page_shows_hostile_strings_as_text(tmp_path, offline, artifacts):
    from attattr_widgets.cli import demo_page

    ctx, page = offline
    attr = hostile_attribution(STRINGS[:60])
    curves, _ = hostile_curves()
    out = demo_page(attr, curves, np.arange(4.0).reshape(2, 2), tmp_path / "demo.html")
    page.goto(out.as_uri())
    _wait_explorer_and_tree(page)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length === 1")
    chips = page.evaluate("() => [...document.querySelectorAll('.attattr-explorer .aa-tok')].map(e => e.textContent)")
    assert chips == [display_token(expected_text(t)) for t in STRINGS[:60]]
    assert expected_text(attr.text) in page.locator(".attattr-export-desc").text_content()
    page.screenshot(path=str(artifacts / "hostile-demo.png"))
    _no_injection(ctx, page)


def test_nonfinite_results_show_a_warning_not_done(tmp_path, offline, artifacts):
    ctx, page = offline
    attr = hostile_attribution(["[CLS]", "the", "movie", "[SEP]"], L=3, nan_layer=1)
    path = export.to_html(Explorer.from_attribution(attr), tmp_path / "nan.html")
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.attattr-explorer')?.dataset.state === 'done'")
    badge = page.locator(".attattr-explorer .aa-badge").first
    assert badge.text_content() == "NaN/inf in results" and badge.get_attribute("data-warn") == "nonfinite"
    warning = page.locator(".attattr-explorer .aa-error").first
    assert warning.is_visible() and "layer 1" in warning.text_content()
    page.locator(".attattr-explorer").first.screenshot(path=str(artifacts / "nonfinite-warning.png"))
    _no_injection(ctx, page)


def plots_uri(p) -> str:
    import pathlib

    return pathlib.Path(p).resolve().as_uri()


def _hostile_model():
    from conftest import make_model

    model = make_model("bert", layers=2, heads=2, num_labels=3)
    names = ["neg</script><!--", "<img src=x onerror=\"window.__pwned=1\">", "a&b \u2028 \ud800"]
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.config._name_or_path = "org/<!--model</script>\u2029"
    return model, names


HOSTILE_EXAMPLES = [{"text": "the movie was <!-- great </script> fun", "label": 0},
                    {"text": "bad \" plot \\ \u2028 ever", "label": 1},
                    {"text": "i love the dog 🙂 and the cat", "label": 2},
                    {"text": "this film is not very good", "label": 1}]


def test_heads_and_triggers_views_export_hostile_names_as_text(tmp_path, offline, artifacts):
    from conftest import make_tokenizer

    from attattr_widgets.widgets import HeadsView, TriggersView

    ctx, page = offline
    model, names = _hostile_model()
    tok = make_tokenizer()
    heads = HeadsView(model, tok, HOSTILE_EXAMPLES, methods=("attention", "random"), fractions=[0, 0.5, 1])
    heads.run()
    heads.wait(300)
    trig = TriggersView(model, tok, HOSTILE_EXAMPLES, HOSTILE_EXAMPLES, steps=2, min_score=-1e9, evaluate=2)
    trig.run()
    trig.wait(300)
    assert heads.state == "done" and trig.state == "done", (heads.error, trig.error)
    path = export.to_html([heads, trig], tmp_path / "views.html", title="<!--views</script>")
    page.goto(path.as_uri())
    page.wait_for_function("() => document.querySelector('.attattr-heads')?.dataset.state === 'done'"
                           " && document.querySelector('.attattr-triggers')?.dataset.state === 'done'")
    model_name = expected_text(model.config._name_or_path)
    assert page.locator(".attattr-heads .aa-title").first.text_content() == f"AttAttr heads · {model_name}"
    assert page.locator(".attattr-triggers .aa-title").first.text_content() == f"AttAttr triggers · {model_name}"
    shown = page.locator(".attattr-triggers").first.text_content()
    assert any(expected_text(n) in shown for n in names), "class names are shown as text"
    page.screenshot(path=str(artifacts / "hostile-heads-triggers.png"), full_page=True)
    _no_injection(ctx, page)


def test_encoder_decoder_export_shows_every_site_with_hostile_tokens_as_text(tmp_path, offline, artifacts):
    """An encoder–decoder's export: three views (encoder, decoder, cross-attention), each drawing its maps from the
    embedded heads, every hostile source / answer token shown as text on the sentences and heatmap axes."""
    ctx, page = offline
    res, src, tgt = hostile_seq2seq()
    ex = Explorer.from_attribution(res)
    path = export.to_html(ex, tmp_path / "hostile-s2s.html", title="</script><!--s2s")
    page.goto(path.as_uri())
    page.wait_for_function("() => { const r = [...document.querySelectorAll('.attattr-explorer')];"
                           " return r.length === 3 && r.every((e) => e.dataset.state === 'done'"
                           " && e.dataset.headReady !== '' && e.dataset.headReady === e.dataset.selected); }")
    roots = page.locator(".attattr-explorer")
    sites = [roots.nth(k).get_attribute("data-site") for k in range(3)]
    assert sites == ["encoder", "decoder", "cross"]
    shape = {s: roots.nth(k).get_attribute("data-heat-shape") for k, s in enumerate(sites)}
    assert shape == {"encoder": f"{len(src)}x{len(src)}", "decoder": f"{len(tgt)}x{len(tgt)}",
                     "cross": f"{len(tgt)}x{len(src)}"}
    cross = roots.nth(2)
    rows = cross.locator(".aa-row-sentence .aa-tok").all_text_contents()
    cols = cross.locator(".aa-sentence-panel:not(.aa-row-sentence) .aa-tok").all_text_contents()
    assert rows == [display_token(expected_text(t)) for t in tgt]
    assert cols == [display_token(expected_text(t)) for t in src]
    assert all(int(roots.nth(k).get_attribute("data-embedded")) > 0 for k in range(3))  # any head draws offline
    page.screenshot(path=str(artifacts / "hostile-seq2seq-export.png"), full_page=True)
    _no_injection(ctx, page)
