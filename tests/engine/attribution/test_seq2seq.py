"""Encoder–decoders (T5, BART, Marian): encoder, decoder and cross-attention attributed, checked entry by entry
against an independent reference (an attention function of this file's own, registered through
transformers' AttentionInterface, that forms P explicitly and perturbs αP with autograd), in float64."""
from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from conftest import SEQ2SEQ_FAMILIES, alpha_one_probe, make_model, make_seq2seq, make_seq2seq_tokenizer

import attattr_widgets as aw
from attattr_widgets.engine.errors import ArgumentError, AttAttrError, ResultFileError, TargetError, UnsupportedModelError
from attattr_widgets.engine.intercept.controller import controller_for
from attattr_widgets.engine.quadrature import quadrature
from attattr_widgets.engine.results import Seq2SeqAttribution, load_result

SOURCE = "translate english to german : the cat sat on a mat"
ANSWER = "die katze sitzt auf einer matte"


@pytest.fixture(scope="module")
def s2s_tok():
    return make_seq2seq_tokenizer()


@pytest.fixture(scope="module", params=SEQ2SEQ_FAMILIES)
def family(request):
    return request.param


# ------------------------------------------------------------------------------------------------------------
# the independent reference

_REF: dict = {}


def _reference_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                         position_bias=None, **kwargs):
    """Eager attention written here: P = softmax(QKᵀ·scaling + position bias + mask); at the module under test,
    P is replaced by a leaf α·P (detached) whose gradient autograd gives."""
    scores = query @ key.transpose(-1, -2) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if position_bias is not None:
        scores = scores + position_bias
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif getattr(module, "is_causal", False) and query.shape[2] > 1:
        t, s = query.shape[2], key.shape[2]
        scores = scores.masked_fill(torch.ones(t, s, dtype=torch.bool).triu(1 + s - t), torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, -1)
    if module is _REF.get("module"):
        _REF["P"] = probs.detach()
        probs = (probs.detach() * _REF["alpha"].view(-1, 1, 1, 1)).requires_grad_(True)
        _REF["leaf"] = probs
    return (probs @ value).transpose(1, 2).contiguous(), probs


def _register_reference():
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask

    AttentionInterface.register("s2s_reference", _reference_attention)
    AttentionMaskInterface.register("s2s_reference", eager_mask)


def _sites_by_name(model) -> dict[str, list[torch.nn.Module]]:
    """The attention modules of each site, found by their names in the model (not by call order)."""
    out = {"encoder": [], "decoder": [], "cross": []}
    for name, m in model.named_modules():
        if name.endswith(("SelfAttention", "self_attn")):
            out["encoder" if ".encoder." in f".{name}." else "decoder"].append(m)
        elif name.endswith(("EncDecAttention", "encoder_attn")):
            out["cross"].append(m)
    return out


def reference_maps(model, tok, source, answer, site, layer, nodes=6, score="logprob"):
    """Attr = P ⊙ Σ_k w_k ∂F/∂(α_k P) of one module by Gauss–Legendre with ``nodes`` nodes, and P: ([H, r, c] ×2)."""
    _register_reference()
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("s2s_reference")
    enc = tok(source, return_tensors="pt")
    labels = tok(text_target=answer, return_tensors="pt")["input_ids"]
    dec = ref.prepare_decoder_input_ids_from_labels(labels=labels)
    alphas, weights = quadrature("gauss-legendre", nodes)
    k = len(alphas)
    _REF.update(module=_sites_by_name(ref)[site][layer], alpha=torch.tensor(alphas, dtype=torch.float64))
    try:
        logits = ref(input_ids=enc["input_ids"].repeat(k, 1), attention_mask=enc["attention_mask"].repeat(k, 1),
                     decoder_input_ids=dec.repeat(k, 1)).logits
        lp = torch.log_softmax(logits, -1).gather(-1, labels.repeat(k, 1).unsqueeze(-1)).squeeze(-1).sum(-1)
        F = lp.exp() if score == "prob" else lp
        (g,) = torch.autograd.grad(F.sum(), _REF["leaf"])
        P = _REF["P"][0]
    finally:
        _REF.clear()
    gbar = (g * torch.tensor(weights, dtype=g.dtype).view(-1, 1, 1, 1)).sum(0)
    return (P * gbar).numpy(), P.numpy()


# ------------------------------------------------------------------------------------------------------------
# correctness


def test_every_entry_of_every_site_equals_the_reference_fp64(family, s2s_tok):
    model = make_seq2seq(family)
    res = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=6)
    assert isinstance(res, Seq2SeqAttribution) and res.score == "logprob"
    n_src, n_tgt = len(res.source_tokens), len(res.label_tokens)
    shapes = {"encoder": (n_src, n_src), "decoder": (n_tgt, n_tgt), "cross": (n_tgt, n_src)}
    for site in ("encoder", "decoder", "cross"):
        maps = res.site(site)
        assert maps.scores.shape == (2, 4, *shapes[site]) and maps.scores.dtype == np.float64
        for layer in range(2):
            want, P = reference_maps(model, s2s_tok, SOURCE, ANSWER, site, layer)
            np.testing.assert_allclose(maps.attention[layer], P, atol=1e-12)
            scale = np.abs(want).max()
            assert scale > 1e-3  # a map that says something
            assert np.abs(maps.scores[layer] - want).max() <= 1e-6 * scale, (site, layer)


def test_joint_probability_score_equals_the_reference(s2s_tok):
    model = make_seq2seq("bart")
    res = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=6, score="prob", layers=[1])
    want, _ = reference_maps(model, s2s_tok, SOURCE, ANSWER, "cross", 1, score="prob")
    scale = np.abs(want).max()  # F = e^(Σ log p) is small here: compare relative to the map
    assert scale > 0 and np.abs(res.cross.scores[0] - want).max() <= 1e-6 * scale
    assert res.cross.layers == [1] and res.encoder.layers == [1] and res.decoder.layers == [1]


def test_F_is_the_sum_of_the_labels_log_probabilities_the_hf_way(family, s2s_tok):
    """labels = tokenizer(text_target=answer); the model's own loss is the mean label NLL, so F = -loss · A."""
    model = make_seq2seq(family)
    res = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=2, layers=[0])
    enc = s2s_tok(SOURCE, return_tensors="pt")
    labels = s2s_tok(text_target=ANSWER, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(**enc, labels=labels).loss
    assert res.label_ids == labels[0].tolist() and res.label_tokens[-1] == "</s>"
    assert res.prob == pytest.approx(-float(loss) * labels.shape[1], rel=1e-10)
    assert res.decoder_tokens[1:] == res.label_tokens[:-1]  # the decoder reads the labels shifted right
    joint = aw.attribute(model, s2s_tok, SOURCE, target=labels[0].tolist(), steps=2, layers=[0], score="prob")
    assert joint.prob == pytest.approx(np.exp(res.prob), rel=1e-10)


def test_each_module_is_complete_on_its_own(family, s2s_tok):
    """Σ Attr_l = F(1) − F(0) per module with steps='auto'. T5's RMSNorm takes its variance in float32 even in a
    float64 model, which leaves ~1e-7 relative noise in F itself: its bound is 1e-5 (BART, Marian: 1e-7)."""
    model = make_seq2seq(family)
    res = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps="auto", tol=1e-8 if family != "t5" else 1e-6,
                       max_steps=64)
    bound = 1e-5 if family == "t5" else 1e-7
    for site in ("encoder", "decoder", "cross"):
        s = res.site(site)
        assert len(s.completeness) == 2 and (s.completeness <= bound).all(), (site, s.completeness)
        delta = res.prob - s.zero_probs
        sums = s.scores.reshape(2, -1).sum(-1)
        np.testing.assert_allclose(sums, delta, rtol=bound)


def test_t5_position_bias_and_causal_mask_are_part_of_P(s2s_tok):
    """The attention kept equals T5's own eager attentions (relative position bias added, decoder causal)."""
    model = make_seq2seq("t5")
    res = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=2)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    enc = s2s_tok(SOURCE, return_tensors="pt")
    labels = s2s_tok(text_target=ANSWER, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = eager(**enc, labels=labels, output_attentions=True)
    for site, key in (("encoder", "encoder_attentions"), ("decoder", "decoder_attentions"),
                      ("cross", "cross_attentions")):
        np.testing.assert_allclose(res.site(site).attention, torch.stack(getattr(out, key))[:, 0].numpy(), atol=1e-14)
    assert np.allclose(np.triu(res.decoder.attention, 1), 0) and np.allclose(np.triu(res.decoder.scores, 1), 0)


def test_discovery_tells_the_three_kinds_apart(family):
    model = make_seq2seq(family)
    lay = controller_for(model).layout
    assert lay.blocks is None and lay.roles.count("encoder") == 2
    assert [r for r in lay.roles if r != "encoder"] == ["decoder", "cross"] * 2
    assert lay.heads == [4] * 6


# ------------------------------------------------------------------------------------------------------------
# the model is the user's


def _state(model):
    return {
        "impl": model.config._attn_implementation, "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "modules": [(n, id(m), type(m)) for n, m in model.named_modules()],
        "attrs": [sorted(vars(m)) for m in model.modules()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
        "params": [p.detach().clone() for p in model.parameters()],
    }


def test_model_untouched_and_user_forwards_exact_during_a_background_run(s2s_tok):
    model = make_seq2seq("bart")
    before = _state(model)
    enc = s2s_tok(SOURCE, return_tensors="pt")
    labels = s2s_tok(text_target=ANSWER, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = model(**enc, labels=labels).logits
    seen, errors, done = [], [], threading.Event()

    def layer_done(r):
        seen.append(r.site)

    def run():
        try:
            aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=4, progress=layer_done)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        done.set()

    t = threading.Thread(target=run)
    t.start()
    mine = []
    while not done.is_set() or not mine:
        with torch.no_grad():
            mine.append(model(**enc, labels=labels).logits)
    t.join(120)
    assert not errors, errors
    assert all(torch.equal(m, ref) for m in mine)
    assert seen == ["encoder"] * 2 + ["decoder"] * 2 + ["cross"] * 2
    after = _state(model)
    assert all(torch.equal(a, b) for a, b in zip(after.pop("params"), before.pop("params")))
    assert after == before


# ------------------------------------------------------------------------------------------------------------
# results


def test_save_load_round_trip_keeps_all_three_sites(tmp_path, s2s_tok):
    res = aw.attribute(make_seq2seq("marian"), s2s_tok, SOURCE, target=ANSWER, steps=2)
    path = res.save(tmp_path / "r.npz")
    back = load_result(path)
    assert isinstance(back, Seq2SeqAttribution)
    for site in ("encoder", "decoder", "cross"):
        a, b = res.site(site), back.site(site)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.attention, b.attention)
        assert a.meta == b.meta and a.row_tokens == b.row_tokens and a.col_tokens == b.col_tokens
        np.testing.assert_array_equal(b.layer(1), a.scores[1])
    assert (back.text, back.answer, back.label_ids, back.prob) == (res.text, res.answer, res.label_ids, res.prob)


def test_a_file_whose_cross_maps_do_not_fit_the_tokens_is_refused(tmp_path, s2s_tok):
    res = aw.attribute(make_seq2seq("bart"), s2s_tok, SOURCE, target=ANSWER, steps=2, layers=[0])
    res.cross_scores = res.cross_scores[:, :, :, :-1]
    res.cross_attention = res.cross_attention[:, :, :, :-1]
    path = res.save(tmp_path / "bad.npz")
    with pytest.raises(ResultFileError, match="cross_scores"):
        load_result(path)


# ------------------------------------------------------------------------------------------------------------
# clear errors


def test_bad_targets_and_arguments_are_refused_clearly(s2s_tok):
    model = make_seq2seq("bart")
    with pytest.raises(TargetError, match="attributes an answer"):
        aw.attribute(model, s2s_tok, SOURCE)  # target="pred"
    with pytest.raises(TargetError, match="outside the model's vocabulary"):
        aw.attribute(model, s2s_tok, SOURCE, target=[3, 10_000])
    with pytest.raises(AttAttrError, match="the answer is 70 tokens but the model reads at most 64"):
        aw.attribute(model, s2s_tok, SOURCE, target=[3] * 70)
    with pytest.raises(AttAttrError, match="generate=65: an answer of 65 tokens but the model reads at most 64 "
                                           "positions: pass generate=64 or fewer"):
        aw.attribute(model, s2s_tok, SOURCE, generate=65)  # refused before decoding
    with pytest.raises(ArgumentError, match="text_pair does not apply"):
        aw.attribute(model, s2s_tok, SOURCE, "other", target=ANSWER)
    with pytest.raises(ArgumentError, match="store="):
        aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, store="/tmp/somewhere")
    with pytest.raises(AttAttrError, match="encoder-decoder"):
        list(aw.iter_attributions(model, s2s_tok, [{"text": SOURCE, "label": 0}]))
    with pytest.raises(AttAttrError, match="encoder-decoder"):
        aw.head_importance(model, s2s_tok, [{"text": SOURCE, "label": 0}], steps=2)


def test_whisper_is_refused_with_the_reason():
    """Decision (docs/architecture.md): speech encoder-decoders are refused; their source is audio frames."""
    import transformers as T

    cfg = T.WhisperConfig(vocab_size=60, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=8,
                          max_source_positions=16, max_target_positions=16, pad_token_id=0, bos_token_id=1,
                          eos_token_id=1, decoder_start_token_id=1)
    model = T.WhisperForConditionalGeneration(cfg).eval()
    with pytest.raises(UnsupportedModelError, match="speech encoder-decoder.*audio feature frames"):
        aw.attribute(model, make_seq2seq_tokenizer(), SOURCE, target=ANSWER)


def test_single_stack_models_are_unchanged_by_the_seq2seq_adapter(tokenizer):
    res = aw.attribute(make_model("bert", "cls"), tokenizer, "the movie was great", steps=2, layers=[0])
    assert res.score == "prob" and res.scores.shape[-1] == res.scores.shape[-2]


def test_generate_attributes_the_greedy_answer_and_leaves_the_generation_config(family, s2s_tok):
    model = make_seq2seq(family)
    gen_before = model.generation_config.to_dict()
    res = aw.attribute(model, s2s_tok, SOURCE, generate=4, steps=2, layers=[0])
    enc = s2s_tok(SOURCE, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False, num_beams=1)
    want = out[0, 1:].tolist()  # after the decoder's start token
    if 1 in want:
        want = want[: want.index(1) + 1]  # up to the end-of-sequence token, kept
    assert res.label_ids == want and 1 <= len(res.label_ids) <= 4
    assert model.generation_config.to_dict() == gen_before
    with pytest.raises(ArgumentError, match="not both"):
        aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, generate=4)


def test_a_square_site_is_an_attribution_and_the_cross_site_is_refused_clearly(s2s_tok):
    res = aw.attribute(make_seq2seq("marian"), s2s_tok, SOURCE, target=ANSWER, steps=2)
    dec = res.as_attribution("decoder")
    assert dec.tokens == res.decoder_tokens and dec.target_kind == "answer" and dec.layers == [0, 1]
    np.testing.assert_array_equal(dec.scores, res.decoder.scores)
    np.testing.assert_array_equal(dec.completeness, res.decoder.completeness)
    tree = aw.attribution_tree(res.as_attribution("encoder"), threshold=0.0)
    assert tree.tokens == res.source_tokens
    with pytest.raises(AttAttrError, match="cross-attention"):
        res.as_attribution("cross")
    both = aw.attribution_tree(res, threshold=0.0)  # the tree across source and answer (test_tree_seq2seq.py)
    assert both.tokens == res.source_tokens + res.decoder_tokens
    assert set(both.sides) == {"source", "answer"}


def test_encoder_decoders_whose_attention_does_not_all_reach_the_interface_are_refused():
    import transformers as T
    from torch import nn

    from attattr_widgets.engine.intercept.discover import _roles

    led = T.LEDForConditionalGeneration(T.LEDConfig(
        vocab_size=60, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_encoder_position_embeddings=64,
        max_decoder_position_embeddings=64, attention_window=4, pad_token_id=0, eos_token_id=1, bos_token_id=1,
        decoder_start_token_id=0)).eval()
    with pytest.raises(UnsupportedModelError, match="does not route its attention"):
        aw.attribute(led, make_seq2seq_tokenizer(), SOURCE, target=ANSWER)
    m = nn.Identity()
    with pytest.raises(UnsupportedModelError, match="no cross attention reached it"):
        _roles([(m, 2, 3, 3), (m, 2, 2, 2)])  # an encoder and a decoder self-attention, no cross-attention
    with pytest.raises(UnsupportedModelError, match="attends 2 queries to 5 keys"):
        _roles([(m, 2, 3, 3), (m, 2, 2, 5)])


def test_cancel_stops_the_run_after_the_layer_in_progress(s2s_tok):
    from attattr_widgets.engine.errors import AttributionCancelled

    cancel, seen = threading.Event(), []

    def layer_done(r):
        seen.append((r.site, r.layer))
        cancel.set()

    with pytest.raises(AttributionCancelled):
        aw.attribute(make_seq2seq("t5"), s2s_tok, SOURCE, target=ANSWER, steps=2, progress=layer_done, cancel=cancel)
    assert seen == [("encoder", 0)]


def test_models_without_their_own_shift_are_teacher_forced_the_same_way(s2s_tok):
    """M2M100 and Blenderbot have no prepare_decoder_input_ids_from_labels: the adapter shifts the labels right
    with decoder_start_token_id itself, as their forward does with labels= (F = -loss · A)."""
    import transformers as T

    torch.manual_seed(0)
    cfg = T.M2M100Config(vocab_size=len(s2s_tok), d_model=32, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=1,
                         decoder_start_token_id=2)
    model = T.M2M100ForConditionalGeneration(cfg).to(torch.float64).eval()
    assert not hasattr(model, "prepare_decoder_input_ids_from_labels")
    res = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=2)
    enc = s2s_tok(SOURCE, return_tensors="pt")
    labels = s2s_tok(text_target=ANSWER, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(**enc, labels=labels).loss
    assert res.decoder_tokens == ["<unk>"] + res.label_tokens[:-1]  # id 2 starts the decoder
    assert res.prob == pytest.approx(-float(loss) * labels.shape[1], rel=1e-10)


def test_the_papers_algorithm_gives_the_same_maps(s2s_tok):
    """method='naive' (gradient w.r.t. the materialised P of each module) equals the output form on all sites."""
    model = make_seq2seq("t5")
    fast = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=3)
    naive = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps=3, method="naive")
    for site in ("encoder", "decoder", "cross"):
        a, b = fast.site(site).scores, naive.site(site).scores
        assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max(), site


def test_auto_takes_alpha_one_of_all_three_sites_from_the_clean_backward(family, s2s_tok, monkeypatch):
    """steps='auto' on an encoder-decoder: the clean pass's one backward gives α = 1 of every encoder, decoder and
    cross-attention module, F(0) comes from the α = 0 rows (no zero pass): the same nodes, zero scores and maps as
    evaluating α = 1 per module (the fallback when the clean backward does not fit)."""
    from attattr_widgets.engine.attribution import engine as eng_mod

    model = make_seq2seq(family)
    seen, zeros = alpha_one_probe(monkeypatch)
    shared = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps="auto", tol=1e-6)
    assert seen and 1.0 not in seen and zeros == []
    seen.clear()
    monkeypatch.setattr(eng_mod._Engine, "shares_alpha_one", lambda self, batch: False)
    alone = aw.attribute(model, s2s_tok, SOURCE, target=ANSWER, steps="auto", tol=1e-6)
    assert seen.count(1.0) == 6 and zeros == []  # two layers in each of the three sites
    for site in ("encoder", "decoder", "cross"):
        a, b = shared.site(site), alone.site(site)
        assert a.meta.steps == b.meta.steps
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-8, atol=1e-12 * np.abs(b.scores).max())
        np.testing.assert_allclose(a.zero_probs, b.zero_probs, rtol=1e-12)
