"""Answers of causal LMs (issue 21): teacher-forced continuations against an independent reference — a decoder
forward written out here (embeddings, norms, q/k/v, RoPE, softmax, MLP: no transformers attention code) with
integrated gradients over one layer's attention probabilities by autograd — per-token maps and their sum
identity, generate=N against ``model.generate``, save/load, and the refusals."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import alpha_one_probe, make_model

import attattr_widgets as aw
from attattr_widgets.engine.attribution.scores import register_score, unregister_score
from attattr_widgets.engine.errors import ResultFileError
from attattr_widgets.engine.quadrature import quadrature

PROMPT = "the capital of france is"
ANSWER = " paris is a city"


# ------------------------------------------------------------------------------------------------------------
# the reference: a hand-written decoder forward whose layer `layer` uses X (its attention probabilities) as given


def _gpt2_forward(m, ids, layer, X):
    """GPT-2: ``(logits [T, V], block ``layer``'s clean attention probabilities [H, T, T])``; ``X`` [H, T, T]
    replaces those probabilities in the forward (None: keep them)."""
    cfg, sd = m.config, dict(m.named_parameters())
    T, H = ids.shape[0], cfg.n_head
    d = cfg.n_embd // H
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (x.shape[-1],), sd[p + ".weight"], sd[p + ".bias"],
                                                     cfg.layer_norm_epsilon)
    gelu = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    h = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][torch.arange(T)]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    P_clean = None
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        a = ln(h, p + "ln_1")
        qkv = a @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]
        q, k, v = (t.view(T, H, d).transpose(0, 1) for t in qkv.split(cfg.n_embd, -1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        P = torch.softmax(s.masked_fill(~causal, -math.inf), -1)
        if i == layer:
            P_clean, P = P.detach(), P if X is None else X
        o = (P @ v).transpose(0, 1).reshape(T, cfg.n_embd)
        h = h + o @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
        a = ln(h, p + "ln_2")
        h = h + gelu(a @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"]) @ sd[p + "mlp.c_proj.weight"] \
            + sd[p + "mlp.c_proj.bias"]
    h = ln(h, "transformer.ln_f")
    return h @ sd["transformer.wte.weight"].T, P_clean


def _llama_forward(m, ids, layer, X):
    """Llama (RMSNorm, rotary positions, grouped-query attention, SiLU-gated MLP): logits [T, V]."""
    cfg, sd = m.config, dict(m.named_parameters())
    T, H, Hk = ids.shape[0], cfg.num_attention_heads, cfg.num_key_value_heads
    d = cfg.hidden_size // H
    eps = cfg.rms_norm_eps
    rms = lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    # the rotary tables as the model defines them: float32 angles (even in a float64 model), cast to float64
    theta = cfg.rope_parameters["rope_theta"]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos().double(), torch.cat([ang, ang], -1).sin().double()
    rot = lambda x: torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1)
    rope = lambda x: x * cos + rot(x) * sin
    h = sd["model.embed_tokens.weight"][ids]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    P_clean = None
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        a = rms(h, sd[p + "input_layernorm.weight"])
        q = (a @ sd[p + "self_attn.q_proj.weight"].T).view(T, H, d).transpose(0, 1)
        k = (a @ sd[p + "self_attn.k_proj.weight"].T).view(T, Hk, d).transpose(0, 1)
        v = (a @ sd[p + "self_attn.v_proj.weight"].T).view(T, Hk, d).transpose(0, 1)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // Hk, 0), v.repeat_interleave(H // Hk, 0)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        P = torch.softmax(s.masked_fill(~causal, -math.inf), -1)
        if i == layer:
            P_clean, P = P.detach(), P if X is None else X
        o = (P @ v).transpose(0, 1).reshape(T, H * d)
        h = h + o @ sd[p + "self_attn.o_proj.weight"].T
        a = rms(h, sd[p + "post_attention_layernorm.weight"])
        gate, up = a @ sd[p + "mlp.gate_proj.weight"].T, a @ sd[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ sd[p + "mlp.down_proj.weight"].T
    h = rms(h, sd["model.norm.weight"])
    return h @ sd["lm_head.weight"].T, P_clean


FORWARDS = {"gpt2": _gpt2_forward, "llama": _llama_forward}


def _float64_model(family, **kw):
    """A tiny float64 causal LM of ``family``. Llama's RMSNorm computes in float32 even in a float64 model (so its
    gradients carry float32 rounding, ~1e-6 relative in small map entries); the test's own model gets a float64
    norm — the same formula — so the comparison measures the engine, not that cast."""
    import types

    model = make_model(family, "lm", dtype=torch.float64, **kw)
    for mod in model.modules():
        if type(mod).__name__.endswith("RMSNorm"):
            mod.forward = types.MethodType(
                lambda self, x: self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon),
                mod)
    return model


def _reference(family, m, ids, start, layer, steps, weights, score="logprob"):
    """IG over layer ``layer``'s attention probabilities of F = Σ_t w_t log p(y_t | y_<t) (exp of it for
    ``"prob"``): P ⊙ Σ_k w_k ∂F/∂X |_(X = α_k P), [H, T, T] float64; and F at α = 1."""
    fwd = FORWARDS[family]
    with torch.no_grad():
        _, P = fwd(m, ids, layer, None)  # the clean P of the layer
    y = ids[start:]
    w = torch.as_tensor(weights, dtype=torch.float64)

    def F(X):
        logits, _ = fwd(m, ids, layer, X)
        lp = torch.log_softmax(logits[start - 1: len(ids) - 1], -1).gather(-1, y[:, None])[:, 0]
        total = (lp * w).sum()
        return total.exp() if score == "prob" else total

    alphas, node_w = quadrature("gauss-legendre", steps)
    acc = torch.zeros_like(P)
    for a, wk in zip(alphas, node_w):
        X = (float(a) * P).requires_grad_(True)
        (g,) = torch.autograd.grad(F(X), X)
        acc += float(wk) * g
    with torch.no_grad():
        return (P * acc).numpy(), float(F(P))


def _ids(tok, prompt, answer):
    p = tok(prompt)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    return torch.tensor(p + a), len(p)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("score", ["logprob", "prob"])
def test_answer_maps_equal_a_hand_written_decoder_reference(family, score, tokenizer):
    model = _float64_model(family, layers=3, heads=4, hidden=32)
    ids, start = _ids(tokenizer, PROMPT, ANSWER)
    A = len(ids) - start
    assert A >= 3
    kw = {} if score == "logprob" else {"score": score}
    attr = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=4, per_token=True, **kw)
    assert attr.target_kind == "continuation" and attr.score == score and attr.answer_start == start
    assert attr.num_tokens == len(ids) and attr.answer_token is None and len(attr.per_token) == A
    for index, layer in enumerate(attr.layers):
        ref, F = _reference(family, model, ids, start, layer, 4, np.ones(A), score)
        assert attr.prob == pytest.approx(F, rel=1e-10)
        np.testing.assert_allclose(attr.scores[index], ref, rtol=1e-6, atol=1e-12 * np.abs(ref).max())
        t = A - 1  # the last answer token's own F_t, from the same batch
        ref_t, F_t = _reference(family, model, ids, start, layer, 4, np.eye(A)[t], score)
        assert attr.per_token[t].prob == pytest.approx(F_t, rel=1e-10)
        np.testing.assert_allclose(attr.per_token[t].scores[index], ref_t, rtol=1e-6,
                                   atol=1e-12 * np.abs(ref_t).max())
    assert attr.completeness.max() < 1e-3  # Gauss–Legendre 4 on a tiny float64 model: a quadrature error


@pytest.mark.parametrize("steps", [3, "auto"])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_per_token_maps_sum_to_the_whole_answer_at_the_same_nodes(family, steps, tokenizer):
    model = _float64_model(family, layers=3, heads=4, hidden=32)
    streamed = []
    attr = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=steps, per_token=True,
                        progress=streamed.append)
    A = attr.num_tokens - attr.answer_start
    assert [p.answer_token for p in attr.per_token] == list(range(A))
    for t, p in enumerate(attr.per_token):
        assert p.answer_start == attr.answer_start and p.tokens == attr.tokens and p.per_token is None
        assert p.layer_steps == attr.layer_steps  # the nodes are shared: one batch, one rule
        assert p.target == tokenizer(ANSWER, add_special_tokens=False)["input_ids"][t]
    assert sum(p.prob for p in attr.per_token) == pytest.approx(attr.prob, rel=1e-12)
    total = sum(p.scores for p in attr.per_token)
    np.testing.assert_allclose(total, attr.scores, rtol=1e-9, atol=1e-12 * np.abs(attr.scores).max())
    # whole answer and each token streamed, per layer, marked by answer_token
    L = len(attr.layers)
    assert len(streamed) == L * (A + 1)
    assert sorted({(r.layer, r.answer_token) for r in streamed}, key=str) == sorted(
        {(layer, t) for layer in attr.layers for t in [None, *range(A)]}, key=str)
    # the whole answer without per_token is the same map
    alone = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=3)
    if steps == 3:
        np.testing.assert_allclose(alone.scores, attr.scores, rtol=1e-9, atol=1e-13)


def test_answer_given_as_ids_equals_the_string(tokenizer):
    model = make_model("gpt2", "lm", layers=2, dtype=torch.float64)
    ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    a = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=2)
    b = aw.attribute(model, tokenizer, PROMPT, target=ids, steps=2)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.tokens == b.tokens and a.target_label == b.target_label == tokenizer.decode(ids)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generate_attributes_the_greedy_tokens_of_model_generate(family, tokenizer):
    model = make_model(family, "lm", layers=2, heads=4, hidden=32, dtype=torch.float64, seed=1)
    enc = tokenizer(PROMPT, return_tensors="pt")
    want = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], max_new_tokens=5,
                          do_sample=False, num_beams=1, pad_token_id=0)[0, enc["input_ids"].shape[1]:].tolist()
    attr = aw.attribute(model, tokenizer, PROMPT, generate=5, steps=2)
    got = tokenizer(PROMPT)["input_ids"]
    assert attr.answer_start == len(got)
    forced = aw.attribute(model, tokenizer, PROMPT, target=want, steps=2)
    assert attr.tokens == forced.tokens and len(attr.tokens) == len(got) + 5
    np.testing.assert_array_equal(attr.scores, forced.scores)


def test_generate_stops_after_the_end_of_sequence_token(tokenizer):
    model = make_model("llama", "lm", layers=2, dtype=torch.float64, seed=1)
    enc = tokenizer(PROMPT, return_tensors="pt")
    free = model.generate(**{k: enc[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=4,
                          do_sample=False, pad_token_id=0)[0, enc["input_ids"].shape[1]:].tolist()
    before = model.generation_config.to_dict()
    k = next(i for i in range(1, len(free)) if free[i] not in free[:i])  # seed 1: a varied answer
    model.generation_config.eos_token_id = free[k]  # the model's own config says: stop at token k
    stop = aw.attribute(model, tokenizer, PROMPT, generate=4, steps=2)
    assert stop.num_tokens - stop.answer_start == k + 1  # the end-of-sequence token is part of the answer
    model.generation_config.eos_token_id = before["eos_token_id"]
    assert model.generation_config.to_dict() == before


def test_generate_leaves_the_users_model_and_generation_config_as_they_were(tokenizer):
    model = make_model("llama", "lm", layers=2, dtype=torch.float64).train()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg, gen = model.config.to_dict(), model.generation_config.to_dict()
    seen = []
    handle = model.register_forward_pre_hook(lambda mod, args: seen.append(mod is model))
    try:
        aw.attribute(model, tokenizer, PROMPT, generate=3, steps=2, per_token=True)
    finally:
        handle.remove()
    assert seen and not any(seen), "the user's own model was run"
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert model.config.to_dict() == cfg and model.generation_config.to_dict() == gen
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters())


def test_save_load_round_trips_answers_and_per_token(tmp_path, tokenizer):
    model = make_model("gpt2", "lm", layers=2)
    attr = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=2, per_token=True)
    back = aw.Attribution.load(attr.save(tmp_path / "a.npz"))
    for a, b in [(attr, back)] + list(zip(attr.per_token, back.per_token)):
        assert (b.answer_start, b.answer_token, b.target, b.target_label, b.target_kind, b.tokens, b.prob) == (
            a.answer_start, a.answer_token, a.target, a.target_label, a.target_kind, a.tokens, a.prob)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.attention, b.attention)
    assert back.per_token[0].per_token is None and len(back.per_token) == len(attr.per_token)


def test_a_forged_per_token_record_is_refused(tmp_path, tokenizer):
    import json
    import zipfile

    model = make_model("gpt2", "lm", layers=2)
    attr = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=2, per_token=True)
    path = attr.save(tmp_path / "a.npz")
    data = dict(np.load(path))
    meta = json.loads(str(data["__meta__"]))
    meta["fields"]["per_token"][1]["fields"]["answer_token"] = 0
    data["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "b.npz", **data)
    with pytest.raises(ResultFileError, match="per_token"):
        aw.Attribution.load(tmp_path / "b.npz")
    assert zipfile.is_zipfile(path)


def test_refusals_name_the_fix(tokenizer):
    lm = make_model("gpt2", "lm", layers=1)
    with pytest.raises(aw.AttAttrError, match="per_token"):
        aw.attribute(lm, tokenizer, PROMPT, target=" paris", per_token=True, steps=2)
    with pytest.raises(aw.AttAttrError, match="either generate"):
        aw.attribute(lm, tokenizer, PROMPT, target=ANSWER, generate=3, steps=2)
    with pytest.raises(aw.AttAttrError, match="generate"):
        aw.attribute(lm, tokenizer, PROMPT, generate=0, steps=2)
    register_score("twice", lambda logits, targets: 2 * logits.gather(-1, targets[:, None])[:, 0])
    try:
        with pytest.raises(aw.AttAttrError, match="does not apply to a continuation"):
            aw.attribute(lm, tokenizer, PROMPT, target=ANSWER, score="twice", steps=2)
    finally:
        unregister_score("twice")
    with pytest.raises(aw.AttAttrError, match="out of range"):
        aw.attribute(lm, tokenizer, PROMPT, target=[5, 10_000], steps=2)
    with pytest.raises(aw.AttAttrError, match="at most"):
        aw.attribute(lm, tokenizer, PROMPT, target=[5] * 70, steps=2)
    cls = make_model("gpt2", "cls", layers=1)
    with pytest.raises(aw.AttAttrError, match="causal language model"):
        aw.attribute(cls, tokenizer, PROMPT, generate=3, steps=2)


def test_generate_past_the_position_limit_is_refused_before_decoding(tokenizer, monkeypatch):
    from attattr_widgets.engine.attribution import engine as engine_mod

    lm = make_model("gpt2", "lm", layers=1)  # reads at most 64 positions
    used = len(tokenizer(PROMPT)["input_ids"])
    decoded = []
    monkeypatch.setattr(engine_mod, "greedy_answer", lambda *a, **k: decoded.append(1) or [5])
    with pytest.raises(aw.InputTooLongError, match=f"pass generate={64 - used} or fewer"):
        aw.attribute(lm, tokenizer, PROMPT, generate=65 - used, steps=2)
    with pytest.raises(aw.InputTooLongError, match="at most 10"):
        aw.attribute(lm, tokenizer, PROMPT, generate=11 - used, steps=2, max_length=10)
    assert not decoded, "decoding ran although the answer could not fit"
    aw.attribute(lm, tokenizer, PROMPT, generate=64 - used, steps=2)  # exactly full: decodes (here: one token)
    assert decoded == [1]


def test_per_token_maps_equal_the_papers_algorithm(tokenizer):
    """The shared per-token passes (one forward per node, one backward per answer token) give what
    ``method="naive"`` gives (the P leaf of every α row, its own backward)."""
    model = _float64_model("llama", layers=2, heads=4, hidden=32)
    fast = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=3, per_token=True)
    naive = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps=3, per_token=True, method="naive")
    for a, b in [(fast, naive)] + list(zip(fast.per_token, naive.per_token)):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-8, atol=1e-12 * np.abs(b.scores).max())


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_per_token_auto_takes_alpha_one_from_the_clean_backward(family, tokenizer, monkeypatch):
    """steps='auto' with per-token rows: every row's α = 1 comes from the clean pass's backward (one per slot) and
    F(0) from the α = 0 rows — no gradient pass at α = 1, no zero pass — with the same nodes, zero scores and maps
    as evaluating α = 1 per layer; the token rows still sum to the whole answer at the same nodes."""
    from attattr_widgets.engine.attribution import engine as eng_mod

    model = _float64_model(family, layers=3, heads=4, hidden=32)
    seen, zeros = alpha_one_probe(monkeypatch)
    shared = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps="auto", per_token=True)
    assert 1.0 not in seen and zeros == [] and seen
    seen.clear()
    monkeypatch.setattr(eng_mod._Engine, "shares_alpha_one", lambda self, batch: False)
    alone = aw.attribute(model, tokenizer, PROMPT, target=ANSWER, steps="auto", per_token=True)
    assert seen.count(1.0) == len(alone.layers) and zeros == []
    for a, b in zip([shared, *shared.per_token], [alone, *alone.per_token]):
        assert a.layer_steps == b.layer_steps and a.layer_panels == b.layer_panels
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-9, atol=1e-12 * np.abs(b.scores).max())
        np.testing.assert_allclose(a.layer_zero_probs, b.layer_zero_probs, rtol=1e-12)
    total = sum(p.scores for p in shared.per_token)
    np.testing.assert_allclose(total, shared.scores, rtol=1e-9, atol=1e-12 * np.abs(shared.scores).max())
    assert shared.completeness.max() < 1e-3
