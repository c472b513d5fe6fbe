"""Fuzz pass over the classes of issue 20 (shared stores, the user's model untouched, tokenizer/model
mismatches, label names, wrapped models, Explorer run arguments, pruning fractions, the weak list) with cases
invented for it. Every case must end in the right answer or an :class:`AttAttrError` whose message names the
problem — never another exception, a hang or a crash.

``python tests/test_hardening_fuzz.py`` prints every case with its outcome (what the closing note lists)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SINGLES, make_model, make_tokenizer

import attattr_widgets as aw
from attattr_widgets.engine.errors import AttAttrError

TOK = make_tokenizer()
_MODELS: dict = {}


def model(family="bert", head="cls", **kw):
    key = (family, head, tuple(sorted(kw.items())))
    if key not in _MODELS:
        _MODELS[key] = make_model(family, head, layers=2, heads=2, **kw)
    return _MODELS[key]


def fresh(family="bert", head="cls", **kw):
    return make_model(family, head, layers=2, heads=2, **kw)


def attr(m, text="the movie was great", **kw):
    return aw.attribute(m, TOK, text, steps=kw.pop("steps", 2), **kw)


# ------------------------------------------------------------------------------------------------ the cases
# Each case: (name, expected, fn). expected "ok": fn runs and returns True (its own check of the right answer);
# an AttAttrError subclass: fn raises it and the message contains the word(s) given.

def _store_three(tmp: Path):
    refs = [attr(model(), t) for t in ("the movie", "a bad plot", "i love the dog")]
    got = [attr(model(), t, store=tmp) for t in ("the movie", "a bad plot", "i love the dog")]
    return len({g.store for g in got}) == 3 and all(np.array_equal(np.asarray(g.scores), r.scores)
                                                    for g, r in zip(got, refs))


def _store_batch(tmp: Path):
    data = [{"text": t, "label": 0} for t in ("the movie", "a bad plot", "i love the dog and the cat")]
    got = list(aw.iter_attributions(model(), TOK, data, steps=2, batch_size=2, store=tmp))
    again = list(aw.iter_attributions(model(), TOK, data, steps=2, batch_size=2, store=tmp))
    return len({g.store for g in got + again}) == 6 and all(
        np.array_equal(np.asarray(a.scores), np.asarray(b.scores)) for a, b in zip(got, again))


def _store_from_layers(tmp: Path):
    a = attr(model())
    from attattr_widgets.engine.results import LayerResult

    lrs = [LayerResult(layer=l, index=i, total=2, tokens=a.tokens, scores=a.scores[i], attention=a.attention[i],
                       zero_prob=0.0, completeness=0.0, target=a.target, prob=a.prob) for i, l in enumerate(a.layers)]
    b1 = aw.Attribution.from_layers(lrs, store=tmp, target_label="x", token_type_ids=a.token_type_ids,
                                    num_layers=2, rule="gauss-legendre", steps=2)
    b2 = aw.Attribution.from_layers(lrs, store=tmp, target_label="x", token_type_ids=a.token_type_ids,
                                    num_layers=2, rule="gauss-legendre", steps=2)
    return b1.store != b2.store and np.array_equal(np.asarray(b1.scores), a.scores)


def _store_is_a_file(tmp: Path):
    (tmp / "f").write_text("x")
    return attr(model(), store=tmp / "f")


def _store_save_inside(tmp: Path):
    a = attr(model(), store=tmp)
    p = a.save(Path(a.store) / "copy.npz")
    b = attr(model(), "a bad plot", store=tmp)
    return np.array_equal(aw.Attribution.load(p).scores, np.asarray(a.scores)) and b.store != a.store


def _untouched(family, head="cls", pad=True, train=True):
    m = fresh(family, head)
    if not pad:
        m.config.pad_token_id = None
    if train:
        m.train()
    for i, p in enumerate(m.parameters()):
        p.requires_grad_(i % 2 == 0)
    cfg, flags = m.config.to_dict(), [p.requires_grad for p in m.parameters()]
    modes = [x.training for x in m.modules()]
    torch_rng, np_rng, py_rng = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    attr(m, steps="auto")
    if head == "cls":
        list(aw.iter_attributions(m, TOK, SINGLES[:2], steps=2, batch_size=2))
        from attattr_widgets.engine.analysis.importance import head_importance
        head_importance(m, TOK, SINGLES[:2], method="taylor")
    return (m.config.to_dict() == cfg and [p.requires_grad for p in m.parameters()] == flags
            and [x.training for x in m.modules()] == modes and torch.equal(torch.get_rng_state(), torch_rng)
            and np.array_equal(np.random.get_state()[1], np_rng) and random.getstate() == py_rng)


def _train_mode_attribution_is_eval_attribution():
    m = fresh("bert")
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.5
    m.config.attention_probs_dropout_prob = 0.5
    ref = attr(m, steps=4)
    m.train()
    got = attr(m, steps=4)
    return np.allclose(got.scores, ref.scores, rtol=1e-5, atol=1e-7) and m.training


def _added_token_tokenizer():
    tok = make_tokenizer()
    tok.add_tokens(["zorblax"] * 1 + [f"tok{i}" for i in range(30)])
    return tok


def _mismatch(call):
    m = fresh("bert", vocab_size=60)
    tok = _added_token_tokenizer()
    return call(m, tok)


def _label_model(id2label, n=3):
    m = fresh("bert", num_labels=n)
    m.config.id2label = id2label
    return m


def _explorer_run(text="the movie", **kw):
    from attattr_widgets.widgets import Explorer

    ex = Explorer(model(), TOK)
    try:
        ex.explain(text, **kw)
    except AttAttrError:
        assert ex.state == "empty" and not ex.running
        raise
    try:
        ex.wait(60)
    except AttAttrError:
        assert ex.state == "error" and not ex.running and ex.error
        raise
    return ex.state == "done"


def _fractions(fr):
    from attattr_widgets.engine.analysis.pruning import pruning_curve

    c = pruning_curve(model(), TOK, SINGLES, np.arange(4.0).reshape(2, 2), fractions=fr)
    x = np.asarray(c.fractions)
    return bool((np.diff(x) >= 0).all() and np.isfinite(c.area()))


def _load_bytes(tmp: Path, data: bytes):
    p = tmp / "x.npz"
    p.write_bytes(data)
    return aw.Attribution.load(p)


def _saved_bytes(tmp: Path) -> bytes:
    return attr(model()).save(tmp / "ok.npz").read_bytes()


from attattr_widgets.engine.results import ResultFileError  # noqa: E402

E = aw
CASES = [
    # shared store folders
    ("store: three results in one folder", "ok", lambda t: _store_three(t)),
    ("store: batched iter_attributions twice into one folder", "ok", lambda t: _store_batch(t)),
    ("store: Attribution.from_layers twice into one folder", "ok", lambda t: _store_from_layers(t)),
    ("store: the folder is a file", (AttAttrError, "store="), lambda t: _store_is_a_file(t)),
    ("store: save a result inside its own map folder, then another run", "ok", lambda t: _store_save_inside(t)),
    # the user's model: config, flags, modes, RNG (torch, numpy, random) unchanged
    *[(f"untouched: {f} {h}{'' if pad else ' no pad id'} train()", "ok",
       lambda t, f=f, h=h, pad=pad: _untouched(f, h, pad))
      for f, h, pad in [("bert", "cls", True), ("distilbert", "cls", True), ("albert", "cls", True),
                        ("gpt2", "cls", False), ("llama", "cls", False), ("gpt2", "lm", True),
                        ("qwen2", "lm", True)]],
    ("untouched: a train() model with dropout 0.5 is attributed as in eval()", "ok",
     lambda t: _train_mode_attribution_is_eval_attribution()),
    # tokenizer / model mismatch
    ("mismatch: added token used in the text", (E.TokenizerMismatchError, "60 rows"),
     lambda t: _mismatch(lambda m, tok: aw.attribute(m, tok, "the zorblax", steps=2))),
    ("mismatch: added tokens not used in the text (right answer)", "ok",
     lambda t: _mismatch(lambda m, tok: aw.attribute(m, tok, "the movie", steps=2).num_tokens == 4)),
    ("mismatch: text pair with the added token", (E.TokenizerMismatchError, "tokenizer"),
     lambda t: _mismatch(lambda m, tok: aw.attribute(m, tok, "the movie", "tok7", steps=2))),
    ("mismatch: pruning_curve", (E.TokenizerMismatchError, "rows"),
     lambda t: _mismatch(lambda m, tok: __import__("attattr_widgets.engine.analysis.pruning", fromlist=["x"])
                         .pruning_curve(m, tok, [{"text": "tok3", "label": 0}], np.ones((2, 2))))),
    ("mismatch: evaluate_trigger", (E.TokenizerMismatchError, "rows"),
     lambda t: _mismatch(lambda m, tok: __import__("attattr_widgets.engine.analysis.triggers", fromlist=["x"])
                         .evaluate_trigger(m, tok, [{"text": "tok3 movie", "label": 0}],
                                           {"tokens": ["movie"], "token_ids": [7], "positions": [1], "segments": [0],
                                            "relative": [0.5], "score": 0.1, "layer": 0, "head": 0, "pairs": [],
                                            "pred": 0, "pred_label": "x", "gold": None, "prob": 0.5,
                                            "example_index": 0, "text": "movie"}))),
    ("mismatch: a trigger pattern whose token ids the model does not have", (E.TokenizerMismatchError, "60 rows"),
     lambda t: __import__("attattr_widgets.engine.analysis.triggers", fromlist=["x"])
     .evaluate_trigger(fresh("bert", vocab_size=60), TOK, [{"text": "the movie", "label": 0}],
                       {"tokens": ["far"], "token_ids": [75], "positions": [1], "segments": [0], "relative": [0.5],
                        "score": 0.1, "layer": 0, "head": 0, "pairs": [], "pred": 0, "pred_label": "x", "gold": None,
                        "prob": 0.5, "example_index": 0, "text": "far"})),
    ("mismatch: Explorer target selector", (E.TokenizerMismatchError, "rows"),
     lambda t: _mismatch(lambda m, tok: __import__("attattr_widgets.widgets", fromlist=["x"]).Explorer(m, tok)
                         .predict_targets("tok9"))),
    ("mismatch: causal LM", (E.TokenizerMismatchError, "rows"),
     lambda t: aw.attribute(fresh("gpt2", "lm", vocab_size=60), _added_token_tokenizer(), "tok1 tok2", steps=2)),
    # label names
    ("labels: id2label None -> LABEL_i", "ok",
     lambda t: attr(_label_model(None), target=2).target_label == "LABEL_2"),
    ("labels: id2label {} -> LABEL_i", "ok", lambda t: attr(_label_model({}), target=1).target_label == "LABEL_1"),
    ("labels: string keys '0'..'2'", "ok",
     lambda t: attr(_label_model({"0": "a", "1": "b", "2": "c"}), target="c").target == 2),
    ("labels: one name for three outputs", (E.LabelNamesError, "3 outputs"), lambda t: attr(_label_model({0: "a"}))),
    ("labels: five names for three outputs", (E.LabelNamesError, "5 name"),
     lambda t: attr(_label_model({i: str(i) for i in range(5)}))),
    ("labels: keys 1..3 (off by one)", (E.LabelNamesError, "keys 0..2"),
     lambda t: attr(_label_model({1: "a", 2: "b", 3: "c"}))),
    ("labels: negative key", (E.LabelNamesError, "-1"), lambda t: attr(_label_model({-1: "a", 0: "b", 1: "c"}))),
    ("labels: word keys", (E.LabelNamesError, "neg"),
     lambda t: attr(_label_model({"neg": 0, "pos": 1, "mid": 2}))),
    ("labels: non-contiguous, head_importance", (E.LabelNamesError, "id2label"),
     lambda t: __import__("attattr_widgets.engine.analysis.importance", fromlist=["x"])
     .head_importance(_label_model({0: "a", 2: "b", 4: "c"}), TOK, SINGLES[:2], method="attention")),
    ("labels: non-contiguous, Explorer", (E.LabelNamesError, "id2label"),
     lambda t: __import__("attattr_widgets.widgets", fromlist=["x"]).Explorer(_label_model({0: "a", 9: "b", 1: "c"}),
                                                                              TOK).explain("the movie")),
    ("labels: non-contiguous, HeadsView constructor", (E.LabelNamesError, "id2label"),
     lambda t: __import__("attattr_widgets.widgets", fromlist=["x"]).HeadsView(_label_model({0: "a", 7: "b", 1: "c"}),
                                                                              TOK, SINGLES)),
    ("labels: non-contiguous, TriggersView constructor", (E.LabelNamesError, "id2label"),
     lambda t: __import__("attattr_widgets.widgets", fromlist=["x"]).TriggersView(
         _label_model({0: "a", 7: "b", 1: "c"}), TOK, SINGLES, SINGLES)),
    ("labels: a 1-output head (regression-style) with id2label None", "ok",
     lambda t: attr(_label_model(None, n=1)).target_label == "LABEL_0"),
    # wrapped models and things that are not models
    ("wrap: torch.compile of a causal LM", (E.UnsupportedModelError, "_orig_mod"),
     lambda t: attr(torch.compile(model("gpt2", "lm")))),
    ("wrap: DataParallel of a causal LM", (E.UnsupportedModelError, "model.module"),
     lambda t: attr(torch.nn.DataParallel(model("gpt2", "lm")))),
    ("wrap: DataParallel(torch.compile(model))", (E.UnsupportedModelError, "model.module._orig_mod"),
     lambda t: attr(torch.nn.DataParallel(torch.compile(model())))),
    ("wrap: HeadsView on a compiled model", (E.UnsupportedModelError, "_orig_mod"),
     lambda t: __import__("attattr_widgets.widgets", fromlist=["x"]).HeadsView(torch.compile(model()), TOK, SINGLES)),
    ("not a model: nn.Linear", (AttAttrError, "transformers model"), lambda t: attr(torch.nn.Linear(2, 2))),
    ("not a model: (model, tokenizer) tuple", (AttAttrError, "transformers model"), lambda t: attr((model(), TOK))),
    ("not a model: model and tokenizer swapped", (AttAttrError, "transformers model"),
     lambda t: aw.attribute(TOK, model(), "the movie")),
    ("not a tokenizer: a string", (AttAttrError, "tokenizer"), lambda t: aw.attribute(model(), "bert", "the movie")),
    # Explorer run arguments
    ("explorer: layers=-1 (the top layer)", "ok", lambda t: _explorer_run(layers=-1, steps=2)),
    ("explorer: layers=np.array([0, 1])", "ok", lambda t: _explorer_run(layers=np.array([0, 1]), steps=2)),
    ("explorer: layers=range(2)", "ok", lambda t: _explorer_run(layers=range(2), steps=2)),
    ("explorer: layers=torch.tensor([1])", "ok", lambda t: _explorer_run(layers=torch.tensor([1]), steps=2)),
    ("explorer: layers=[-3]", (AttAttrError, "does not exist"), lambda t: _explorer_run(layers=[-3])),
    ("explorer: layers={1: 'x'} (a dict: its keys, as Python iterates it)", "ok",
     lambda t: _explorer_run(layers={1: "x"}, steps=2)),
    ("explorer: layers=[0.5]", (AttAttrError, "layers entry"), lambda t: _explorer_run(layers=[0.5])),
    ("explorer: steps=0 (refused by the run, view not stuck)", (AttAttrError, "steps"),
     lambda t: _explorer_run(steps=0)),
    ("explorer: text=None (refused by the run, view not stuck)", (AttAttrError, "text"),
     lambda t: _explorer_run(text=None)),
    # pruning fractions
    ("fractions: duplicates [0.5, 0.5, 0]", "ok", lambda t: _fractions([0.5, 0.5, 0.0])),
    ("fractions: descending numpy array", "ok", lambda t: _fractions(np.linspace(1, 0, 5))),
    ("fractions: a generator", "ok", lambda t: _fractions(x / 4 for x in (3, 1, 2))),
    ("fractions: one value", "ok", lambda t: _fractions([0.3])),
    ("fractions: 1.5", (AttAttrError, "[0, 1]"), lambda t: _fractions([0.2, 1.5])),
    ("fractions: NaN", (AttAttrError, "[0, 1]"), lambda t: _fractions([0.2, float("nan")])),
    # weak list: inputs
    ("text: soft hyphen only", (E.EmptyInputError, "empty"), lambda t: attr(model(), "\u00ad")),
    ("text: zero-width space + word (right answer)", "ok", lambda t: attr(model(), "\u200bmovie").num_tokens == 3),
    ("text: emoji only (an [UNK] token: attributed)", "ok", lambda t: attr(model(), "\U0001f600").num_tokens == 3),
    ("text: RTL override around words", "ok", lambda t: attr(model(), "\u202ethe movie\u202c").num_tokens == 4),
    ("text_pair: empty string", (E.EmptyInputError, "text_pair"), lambda t: attr(model(), "the movie", text_pair="")),
    ("text_pair: on a causal LM", (AttAttrError, "target="),
     lambda t: aw.attribute(model("gpt2", "lm"), TOK, "the capital is", "paris", steps=2)),
    ("target: np.int64(1) (right answer)", "ok", lambda t: attr(model(), target=np.int64(1)).target == 1),
    ("target: torch.tensor(2) (right answer)", "ok", lambda t: attr(model(), target=torch.tensor(2)).target == 2),
    ("target: torch.tensor(False)", (E.TargetError, "bool"), lambda t: attr(model(), target=torch.tensor(False))),
    ("target: np.array(True)", (E.TargetError, "bool"), lambda t: attr(model(), target=np.array(True))),
    ("target: np.float64(1.5)", (E.TargetError, "target"), lambda t: attr(model(), target=np.float64(1.5))),
    ("dataset: example 3 of a DataFrame-like dict is tabs only", (E.EmptyInputError, "example 3"),
     lambda t: list(aw.iter_attributions(model(), TOK, {"text": ["a", "b", "c", "\t\t"], "label": [0, 1, 2, 0]},
                                         steps=2))),
    ("dataset: text_pair of example 1 is zero-width", (E.EmptyInputError, "example 1"),
     lambda t: list(aw.iter_attributions(model(), TOK, [{"text": "a", "text_pair": "b", "label": 0},
                                                          {"text": "a", "text_pair": "\u200b", "label": 0}],
                                         steps=2))),
    ("max_length=3 with a pair (needs 5)", (E.InputTooLongError, "at least 5"),
     lambda t: attr(model(), "the movie", text_pair="a film", max_length=3, truncation=True)),
    # weak list: result files
    ("load: an empty file", (ResultFileError, "x.npz"), lambda t: _load_bytes(t, b"")),
    ("load: the first half of a result file", (ResultFileError, "x.npz"),
     lambda t: _load_bytes(t, _saved_bytes(t)[: len(_saved_bytes(t)) // 2])),
    ("load: every 97th byte flipped", (ResultFileError, "x.npz"),
     lambda t: _load_bytes(t, bytes(b ^ 0xFF if i % 97 == 50 else b for i, b in enumerate(_saved_bytes(t))))),
    ("load: a pathlib.Path to a folder with no .npz", (ResultFileError, "folder"), lambda t: aw.Attribution.load(t)),
    ("load: an int", (ResultFileError, "path of a result file"), lambda t: aw.Attribution.load(7)),
]


def _run(case, tmp: Path):
    """(outcome, message) of one case: "ok", "wrong answer", or the exception class name."""
    name, expected, fn = case
    try:
        out = fn(tmp)
    except AttAttrError as exc:
        return type(exc).__name__, str(exc)
    except Exception as exc:  # noqa: BLE001 - a raw error is what the fuzz pass looks for
        return f"RAW {type(exc).__name__}", str(exc)
    return ("ok" if out is True else "wrong answer"), ""


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fuzz_case(case, tmp_path):
    name, expected, fn = case
    outcome, msg = _run(case, tmp_path)
    if expected == "ok":
        assert outcome == "ok", (outcome, msg)
    else:
        cls, words = expected
        assert outcome == cls.__name__ or (not outcome.startswith("RAW") and outcome != "ok"
                                           and issubclass(getattr(aw, outcome, AttAttrError), cls)), (outcome, msg)
        assert words in msg, msg


if __name__ == "__main__":
    import tempfile

    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            outcome, msg = _run(case, Path(d))
        print(f"{case[0]} -> {outcome}" + (f": {' '.join(msg.split())[:150]}" if msg else ""))
