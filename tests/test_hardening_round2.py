"""Hardening, round 2 (issue 20): shared ``store=`` folders, tokenizer/model mismatches, label names, wrapped
models, bad Explorer arguments, unsorted pruning fractions and the weak list — each asserting the error class
AND that the message names the problem, or the right answer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SINGLES, make_model, make_tokenizer

import attattr_widgets as aw
from attattr_widgets.widgets import Explorer


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def bert():
    return make_model("bert", layers=2, heads=2, num_labels=3)


# ---------------------------------------------------------------------------------------------- 1. shared store
def test_two_results_in_one_store_folder_each_get_their_own_files(tok, bert, tmp_path):
    ref1 = aw.attribute(bert, tok, "the movie was great", steps=2)
    ref2 = aw.attribute(bert, tok, "a bad plot", steps=2)
    a1 = aw.attribute(bert, tok, "the movie was great", steps=2, store=tmp_path)
    a2 = aw.attribute(bert, tok, "a bad plot", steps=2, store=tmp_path)
    assert a1.store != a2.store and {a1.store, a2.store} <= {str(p) for p in tmp_path.iterdir()}
    np.testing.assert_array_equal(np.asarray(a1.scores), ref1.scores)  # the first is still readable, unchanged
    np.testing.assert_array_equal(np.asarray(a2.scores), ref2.scores)


def test_explorer_history_with_a_store_folder_keeps_every_run_readable(tok, bert, tmp_path):
    ex = Explorer(bert, tok)
    texts = ["the movie was great", "a bad plot", "i love the dog"]
    refs = [aw.attribute(bert, tok, t, steps=2) for t in texts]
    for t in texts:
        ex.explain(t, steps=2, store=str(tmp_path))
        ex.wait(60)
    assert ex.state == "done"
    keys = [h["key"] for h in ex.history]
    assert len(keys) == 3
    for key, ref in zip(keys, refs):
        ex.show_run(key)
        np.testing.assert_array_equal(np.asarray(ex.attribution.scores), ref.scores)
    assert len({ex._history[k].store for k in keys}) == 3


# ------------------------------------------------------------------------------ 3. tokenizer / model mismatch
@pytest.fixture(scope="module")
def small_vocab():
    return make_model("bert", layers=2, heads=2, vocab_size=50)  # the tokenizer has 84 tokens


HIGH = "paris is the capital city"  # ids up to 51: past a 50-row embedding table


def _names_sizes(exc):
    msg = str(exc.value)
    assert "84" in msg and "50 rows" in msg and "tokenizer" in msg, msg


def test_tokenizer_mismatch_attribute(tok, small_vocab):
    with pytest.raises(aw.TokenizerMismatchError) as exc:
        aw.attribute(small_vocab, tok, HIGH, steps=2)
    _names_sizes(exc)
    assert aw.attribute(small_vocab, tok, "the movie was great", steps=2).num_tokens == 6  # ids in range: fine


def test_tokenizer_mismatch_head_importance_and_iter(tok, small_vocab):
    from attattr_widgets.engine.analysis.importance import head_importance

    data = [{"text": "the movie", "label": 0}, {"text": HIGH, "label": 1}]
    for method in ("attention", "taylor", "attattr"):
        with pytest.raises(aw.TokenizerMismatchError) as exc:
            head_importance(small_vocab, tok, data, method=method, steps=2)
        _names_sizes(exc)
    with pytest.raises(aw.TokenizerMismatchError):
        list(aw.iter_attributions(small_vocab, tok, data, steps=2))


def test_tokenizer_mismatch_explorer(tok, small_vocab):
    ex = Explorer(small_vocab, tok)
    ex.explain(HIGH, steps=2)
    with pytest.raises(aw.TokenizerMismatchError):
        ex.wait(60)
    assert ex.state == "error" and "50 rows" in ex.error
    with pytest.raises(aw.TokenizerMismatchError):
        ex.predict_targets(HIGH)


# ----------------------------------------------------------------------------------------------- 4. label names
def _relabelled(id2label, num_labels=2):
    m = make_model("bert", layers=2, heads=2, num_labels=num_labels)
    m.config.id2label = id2label
    return m


def test_no_id2label_names_classes_label_i_never_tokens(tok):
    m = _relabelled(None)
    a = aw.attribute(m, tok, "the movie was great", target=1, steps=2)
    assert a.target_label == "LABEL_1" and a.label_names == ["LABEL_0", "LABEL_1"]
    from attattr_widgets.engine.model.predict import target_options

    assert [o["label"] for o in target_options(m, tok, "the movie")["options"]] == ["LABEL_0", "LABEL_1"]
    assert aw.attribute(m, tok, "the movie", target="LABEL_1", steps=2).target == 1
    assert Explorer(m, tok).input_spec["label_names"] == ["LABEL_0", "LABEL_1"]


@pytest.mark.parametrize("id2label", [{0: "a", 1: "b"}, {0: "neg", 5: "pos", 1: "x"}, {0: "a", 1: "b", 2: "c", 3: "d"},
                                      {"0": "neg", "2": "pos", "1": "mid", "x": "?"}])
def test_label_names_that_do_not_name_the_outputs_are_refused_before_any_work(tok, id2label):
    m = _relabelled(id2label, num_labels=3)
    m.config.id2label = id2label
    aw.controller_for(m)  # discovery (its two 3-token forwards) once
    seen = []
    m.register_forward_pre_hook(lambda mod, args: seen.append(1))
    from attattr_widgets.engine.analysis.importance import head_importance

    for call in (lambda: aw.attribute(m, tok, "the movie", steps=2),
                 lambda: head_importance(m, tok, SINGLES[:2], method="taylor"),
                 lambda: list(aw.iter_attributions(m, tok, SINGLES[:2], steps=2))):
        seen.clear()
        with pytest.raises(aw.LabelNamesError) as exc:
            call()
        assert "3 outputs" in str(exc.value) and "id2label" in str(exc.value)
        assert not seen  # no pass ran


def test_non_contiguous_keys_are_not_silently_renamed(tok):
    m = _relabelled({0: "neg", 5: "pos"})
    with pytest.raises(aw.LabelNamesError, match=r"5: 'pos'"):
        aw.attribute(m, tok, "the movie", steps=2)
    m.config.id2label = {0: "neg", 1: "pos"}  # the fix the message names
    assert aw.attribute(m, tok, "the movie", target="pos", steps=2).target_label == "pos"


def test_string_keys_naming_every_output_are_fine(tok):
    m = _relabelled({"0": "neg", "1": "pos"})
    assert aw.attribute(m, tok, "the movie", target=1, steps=2).target_label == "pos"


# ------------------------------------------------------------------------------------------ 5. wrapped models
def test_compiled_model_refused_at_once_naming_orig_mod(tok, bert):
    compiled = torch.compile(bert)
    from attattr_widgets.engine.analysis.importance import head_importance

    for call in (lambda: aw.attribute(compiled, tok, "the movie", steps=2),
                 lambda: head_importance(compiled, tok, SINGLES[:2], method="attention"),
                 lambda: Explorer(compiled, tok).explain("the movie")):
        with pytest.raises(aw.UnsupportedModelError, match=r"model\._orig_mod"):
            call()
    assert aw.attribute(compiled._orig_mod, tok, "the movie", steps=2).num_tokens == 4


@pytest.mark.parametrize("wrap", ["dp", "ddp"])
def test_data_parallel_wrappers_point_to_module(tok, bert, wrap):
    if wrap == "dp":
        wrapped = torch.nn.DataParallel(bert)
    else:
        wrapped = torch.nn.parallel.DistributedDataParallel.__new__(torch.nn.parallel.DistributedDataParallel)
        torch.nn.Module.__init__(wrapped)
        wrapped.module = bert
    with pytest.raises(aw.UnsupportedModelError, match=r"model\.module"):
        aw.attribute(wrapped, tok, "the movie", steps=2)
    from attattr_widgets.engine.analysis.pruning import compare_pruning

    with pytest.raises(aw.UnsupportedModelError, match=r"model\.module"):
        compare_pruning(wrapped, tok, SINGLES[:2], {"r": np.ones((2, 2))})


@pytest.mark.parametrize("model", ["bert-base-uncased", None, 3])
def test_not_a_model_is_named(tok, model):
    with pytest.raises(aw.AttAttrError, match="model must be a transformers model"):
        aw.attribute(model, tok, "the movie", steps=2)


# ------------------------------------------------------------------------------ 6. Explorer bad run arguments
@pytest.mark.parametrize("layers", ["0", [0, 0], [], [9], 1.5, object(), [True]])
def test_explorer_bad_layers_raise_at_once_and_do_not_leave_it_running(tok, bert, layers):
    ex = Explorer(bert, tok)
    with pytest.raises(aw.AttAttrError, match="layer"):
        ex.explain("the movie", layers=layers)
    assert ex.state == "empty" and not ex.running
    ex.explain("the movie", layers=iter([1]), steps=2)  # an iterator is read once, not consumed twice
    ex.wait(60)
    assert ex.state == "done" and ex.attribution.layers == [1] and ex.layers_total == 1


def test_explorer_stop_clears_a_running_state_with_no_run_behind_it(tok, bert):
    ex = Explorer(bert, tok)
    ex.state = "running"  # e.g. a failure between the state change and the thread start
    ex.stop()
    assert ex.state == "cancelled"


def test_explorer_close_stops_the_run(tok):
    import threading

    model = make_model("bert", layers=3, heads=2)
    ex = Explorer(model, tok)
    started = threading.Event()
    orig_on_layer = ex._on_layer

    def on_layer(run_id, r):
        started.set()
        orig_on_layer(run_id, r)

    ex._on_layer = on_layer
    ex.explain("the movie was great fun and the plot was good " * 3, steps=64, rule="left")
    assert started.wait(60)
    ex.close()
    ex._thread.join(60)
    assert not ex.running and ex._cancel.is_set()


# ----------------------------------------------------------------------------------- 7. unsorted pruning fractions
def test_unsorted_fractions_are_sorted_so_area_is_right(tok):
    from attattr_widgets.engine.analysis.pruning import compare_pruning, pruning_curve
    from attattr_widgets.engine.results import PruningCurve
    from conftest import make_strong_bert

    m = make_strong_bert()
    imp = np.arange(8.0).reshape(2, 4)
    data = SINGLES + SINGLES
    ref = pruning_curve(m, tok, data, imp, fractions=[0.0, 0.25, 0.5, 0.75, 1.0])
    got = pruning_curve(m, tok, data, imp, fractions=[0.5, 1.0, 0.0, 0.75, 0.25])
    np.testing.assert_array_equal(got.fractions, ref.fractions)
    np.testing.assert_array_equal(got.accuracy, ref.accuracy)
    assert got.area() == ref.area()
    (cp,) = compare_pruning(m, tok, data, {"i": imp}, fractions=(1.0, 0.0, 0.5))
    assert list(cp.fractions) == [0.0, 0.5, 1.0]
    # a curve built by hand (or loaded) in any order has the same area as sorted
    x, y = np.array([0.0, 0.5, 0.25, 1.0]), np.array([0.9, 0.5, 0.8, 0.3])
    k = np.argsort(x)
    mk = lambda xs, ys: PruningCurve(method="m", fractions=xs, accuracy=ys, pruned=np.zeros((4, 2, 2), bool))
    assert mk(x, y).area() == pytest.approx(mk(x[k], y[k]).area())
    assert mk(x[k], y[k]).area() == pytest.approx(np.trapezoid(y[k], x[k]))


# ------------------------------------------------------------------------------------------------- weak list
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_flags_layers_whose_delta_f_the_dtype_does_not_resolve(tok, dtype, tmp_path):
    m32 = make_model("bert", layers=3, heads=2, num_labels=3, seed=4)
    m16 = make_model("bert", layers=3, heads=2, num_labels=3, seed=4, dtype=dtype)
    text = "the movie was not very good but the actors are"
    a32 = aw.attribute(m32, tok, text, steps=4, target=0)
    a16 = aw.attribute(m16, tok, text, steps=4, target=0)
    eps = torch.finfo(dtype).eps
    for i, layer in enumerate(a16.layers):
        delta = abs(a16.prob - a16.layer_zero_probs[i])
        below = delta <= 8 * eps * max(abs(a16.prob), abs(a16.layer_zero_probs[i]))
        assert (layer in a16.unresolved) == below
    # this tiny random model moves F by ~4e-5 per layer: fp32 resolves it, half precision does not
    assert a32.unresolved == [] and a16.unresolved == a16.layers
    back = aw.Attribution.load(a16.save(tmp_path / "a.npz"))
    assert back.unresolved == a16.unresolved
    assert "resolution" in repr(a16)
    assert Explorer.from_attribution(a16).meta["unresolved"] == a16.unresolved


def test_unresolved_flag_is_set_where_delta_f_is_zero(tok, monkeypatch):
    """A layer whose zeroing does not move F (its attention output scaled to nothing that matters): ΔF = 0."""
    from attattr_widgets.engine.attribution import engine as engine_mod

    m = make_model("bert", layers=2, heads=2, num_labels=3, dtype=torch.bfloat16)
    monkeypatch.setattr(engine_mod._Engine, "zero_scores",
                        lambda self, batch, layer, hidden, targets, cancel: engine_mod.target_score(
                            self.clean_forward(batch, [layer], cancel)[2], targets, self.score, self.acc_dtype))
    a = aw.attribute(m, tok, "the movie", steps=2)
    assert a.unresolved == a.layers  # ΔF == 0 on every layer: not reported as a meaningful completeness


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d\ufeff", "\x00\x01\x07", " \u2060 \t\n", "\u202e\u200f"])
def test_invisible_text_is_empty_input(tok, bert, text):
    with pytest.raises(aw.EmptyInputError):
        aw.attribute(bert, tok, text, steps=2)
    with pytest.raises(aw.EmptyInputError):
        aw.attribute(bert, tok, "the movie", text, steps=2)


def test_text_the_tokenizer_drops_entirely_is_empty_input(tok, bert):
    with pytest.raises(aw.EmptyInputError, match="no token"):
        aw.attribute(bert, tok, "\u0301\u0301", steps=2)  # combining marks only: BERT strips accents


def test_text_pair_on_a_language_model_points_to_target(tok):
    lm = make_model("gpt2", "lm", layers=2, heads=2)
    with pytest.raises(aw.AttAttrError, match="target="):
        aw.attribute(lm, tok, "the capital of france is", "paris", steps=2)


@pytest.mark.parametrize("target", [torch.tensor(True), np.bool_(True), True, torch.tensor([True])])
def test_boolean_targets_are_not_class_one(tok, bert, target):
    with pytest.raises(aw.TargetError):
        aw.attribute(bert, tok, "the movie", target=target, steps=2)


@pytest.mark.parametrize("bad", ["   ", "\u200b", "\t\n"])
def test_whitespace_example_in_a_dataset_is_named_by_index(tok, bert, bad):
    from attattr_widgets.engine.analysis.importance import head_importance

    data = [{"text": "the movie", "label": 0}, {"text": "a film", "label": 1}, {"text": bad, "label": 0}]
    for call in (lambda: list(aw.iter_attributions(bert, tok, data, steps=2)),
                 lambda: head_importance(bert, tok, data, method="attention")):
        with pytest.raises(aw.EmptyInputError, match="example 2"):
            call()


def test_dataset_example_dropped_by_the_tokenizer_is_named_by_index(tok, bert):
    data = [{"text": "the movie", "label": 0}, {"text": "\u0301", "label": 1}]
    with pytest.raises(aw.EmptyInputError, match="example 1"):
        list(aw.iter_attributions(bert, tok, data, steps=2))


@pytest.mark.parametrize("max_length", [1, 2])
def test_tiny_max_length_advice_is_one_that_works(tok, bert, max_length):
    for truncation in (False, True):
        with pytest.raises(aw.InputTooLongError, match="at least 3") as exc:
            aw.attribute(bert, tok, "the movie was great", max_length=max_length, truncation=truncation, steps=2)
        assert "truncation=True" not in str(exc.value)
    assert aw.attribute(bert, tok, "the movie was great", max_length=3, truncation=True, steps=2).truncated


@pytest.mark.parametrize("bad", [None, 3, b"a.npz", "", ["a.npz"]])
def test_load_of_a_non_path_is_a_clear_error(bad):
    from attattr_widgets.engine.results import ResultFileError

    with pytest.raises(ResultFileError, match="path of a result file"):
        aw.Attribution.load(bad)


def test_load_of_a_folder_says_it_is_a_folder(tmp_path, tok, bert):
    from attattr_widgets.engine.results import ResultFileError

    aw.attribute(bert, tok, "the movie", steps=2).save(tmp_path / "mine.npz")
    with pytest.raises(ResultFileError, match=r"is a folder.*mine\.npz"):
        aw.Attribution.load(tmp_path)


def test_corrupted_large_member_names_the_file(tmp_path, tok):
    from attattr_widgets.engine.results import ResultFileError

    model = make_model("bert", layers=3, heads=4)
    a = aw.attribute(model, tok, " ".join(["the movie was great fun"] * 8), steps=2)
    path = a.save(tmp_path / "big.npz")
    raw = bytearray(path.read_bytes())
    hits = 0
    for frac in (0.3, 0.5, 0.7):
        bad = bytearray(raw)
        k = int(len(bad) * frac)
        bad[k:k + 64] = bytes(64)  # zeroed bytes inside a member's data
        p = tmp_path / f"bad{frac}.npz"
        p.write_bytes(bytes(bad))
        try:
            got = aw.Attribution.load(p)
        except ResultFileError as exc:
            assert str(p) in str(exc)
            hits += 1
        else:  # only acceptable if the damage missed every byte that matters (it cannot: CRCs cover the data)
            np.testing.assert_array_equal(got.scores, a.scores)
    assert hits == 3


# ---------------------------------------------------------------------------------------------- CLI data specs
def _cli_data(tmp_path, monkeypatch, capsys, data, *extra):
    import attattr_widgets.demo as demo
    from attattr_widgets import cli

    monkeypatch.setattr(demo, "load_model", lambda name: (make_model("bert", layers=1, heads=2), make_tokenizer()))
    rc = cli.main(["importance", "--model", "sentiment", "--data", data, "--method", "attention",
                   "--out", str(tmp_path / "o.npz"), *extra])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("content,words", [
    (b'{"text": "caf\xe9", "label": 0}\n', "not UTF-8"),
    (b'\xff\xfe{\x00}\x00', "not UTF-8"),
    (b'{"text": "a", "label": 0}\n{"text": "\xc3\x28"}\n', "line 2 is not UTF-8"),
    (b'{"text": "   ", "label": 0}\n', "example 0"),
    (b'{"text": "the movie", "label": 0}\n{"text": "\xe2\x80\x8b", "label": 0}\n', "example 1"),
    (b'not json\n', "line 1 is not JSON"),
])
def test_cli_undecodable_or_empty_data_is_one_line(tmp_path, monkeypatch, capsys, content, words):
    f = tmp_path / "d.jsonl"
    f.write_bytes(content)
    rc, err = _cli_data(tmp_path, monkeypatch, capsys, str(f))
    assert rc == 2 and words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("spec,words", [("demo:nope", "unknown demo dataset"), ("demo:sentiment:bogus", "split"),
                                        ("demo:", "demo:NAME"), ("demo::test", "demo:NAME")])
def test_cli_bad_demo_specs_are_one_line(tmp_path, monkeypatch, capsys, spec, words):
    rc, err = _cli_data(tmp_path, monkeypatch, capsys, spec)
    assert rc == 2 and words in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("limit", ["-1", "0", "-100"])
def test_cli_bad_limit_blames_limit(tmp_path, monkeypatch, capsys, limit):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "the movie", "label": 0}\n', encoding="utf-8")
    rc, err = _cli_data(tmp_path, monkeypatch, capsys, str(f), "--limit", limit)
    assert rc == 2 and f"--limit {limit}" in err and "--data" not in err, err


def test_data_lines_keep_unicode_line_separators_and_a_bom(tmp_path):
    from attattr_widgets.batch import load_examples

    f = tmp_path / "d.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"text": "a\xe2\x80\xa8b\xc2\x85c", "label": 0}\r\n{"text": "d", "label": 1}\n')
    assert load_examples(str(f)) == [{"text": "a\u2028b\x85c", "label": 0}, {"text": "d", "label": 1}]


def test_closing_a_heads_view_stops_its_run(tok):
    import threading

    from attattr_widgets.widgets import HeadsView

    model = make_model("bert", layers=2, heads=2)
    data = [{"text": "the movie was great fun and the plot", "label": i % 3} for i in range(400)]
    view = HeadsView(model, tok, data, methods=("attattr",))
    view.run()
    threading.Event().wait(0.5)  # let it start
    assert view.running  # 400 examples × 2 layers of attribution take far longer than that
    view.close()
    view._thread.join(60)
    assert not view.running and view.state == "cancelled"
