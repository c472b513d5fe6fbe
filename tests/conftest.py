"""Shared fixtures: tiny models of every supported family, built offline from configs."""
from __future__ import annotations

import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

# Tiny models run fastest on one thread (and do not fight other processes on a shared 2-core machine).
torch.set_num_threads(1)

WORDS = ["the", "a", "movie", "film", "was", "is", "great", "good", "bad", "awful", "boring", "fun", "plot", "actors", "story", "not", "very", "really", "and", "but", "i", "you", "it", "this", "that", "of", "to", "in", "on", "with", "love", "hate", "best", "worst", "ever", "time", "people", "man", "woman", "dog", "cat", "sat", "mat", "paris", "france", "capital", "city", ".", ",", "!", "?", "'", "s"]


def make_tokenizer():
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"])}
    return BertTokenizer(vocab=vocab, do_lower_case=True)


FAMILIES = ("bert", "roberta", "distilbert", "electra", "albert", "gpt2", "llama", "qwen2", "falcon",
            "falcon-alibi")


def make_model(family: str, head: str = "cls", *, layers: int = 3, heads: int = 4, hidden: int = 32,
               num_labels: int = 3, seed: int = 0, vocab_size: int = 100, dtype=torch.float32):
    """A tiny random model of ``family`` with a classification (``"cls"``) or LM (``"lm"``) head, in eval mode."""
    import transformers as T

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, num_labels=num_labels)
    if family in ("bert", "roberta", "electra"):
        cfg_cls = {"bert": T.BertConfig, "roberta": T.RobertaConfig, "electra": T.ElectraConfig}[family]
        cfg = cfg_cls(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=2 * hidden, max_position_embeddings=64, **common)
        if family == "electra":
            cfg.embedding_size = hidden
    elif family == "distilbert":
        cfg = T.DistilBertConfig(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=2 * hidden,
                                 max_position_embeddings=64, **common)
    elif family == "albert":
        cfg = T.AlbertConfig(hidden_size=hidden, embedding_size=16, num_hidden_layers=layers, num_attention_heads=heads,
                             intermediate_size=2 * hidden, max_position_embeddings=64, **common)
    elif family == "gpt2":
        cfg = T.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=64, pad_token_id=0, **common)
    elif family == "llama":
        cfg = T.LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            num_key_value_heads=max(1, heads // 2), intermediate_size=2 * hidden,
                            max_position_embeddings=64, pad_token_id=0, **common)
    elif family == "qwen2":
        cfg = T.Qwen2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            num_key_value_heads=max(1, heads // 2), intermediate_size=2 * hidden,
                            max_position_embeddings=64, pad_token_id=0, **common)
    elif family == "falcon":  # rotary, multi-query (one key/value head), parallel attention + MLP
        cfg = T.FalconConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             max_position_embeddings=64, pad_token_id=0, **common)
    elif family == "falcon-alibi":  # ALiBi bias carried in the additive mask; grouped-query "new" architecture
        cfg = T.FalconConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             num_kv_heads=max(1, heads // 2), new_decoder_architecture=True, alibi=True,
                             max_position_embeddings=64, pad_token_id=0, **common)
    elif family == "modernbert":  # alternating global / sliding-window layers, rotary positions
        cfg = T.ModernBertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                 intermediate_size=2 * hidden, max_position_embeddings=64, local_attention=4,
                                 global_attn_every_n_layers=2, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                                 cls_token_id=2, sep_token_id=3, **common)
    else:
        raise ValueError(family)
    auto = T.AutoModelForSequenceClassification if head == "cls" else T.AutoModelForCausalLM
    model = auto.from_config(cfg)
    return model.to(dtype).eval()


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


# Small labelled sets (3 classes) for the dataset-level engines.
SINGLES = [
    {"text": "the movie was great fun", "label": 0},
    {"text": "bad plot", "label": 1},
    {"text": "i love the dog and the cat , really", "label": 2},
    {"text": "this film is not very good but the actors are", "label": 1},
    {"text": "worst story ever", "label": 0},
]
PAIRS = [
    {"text": "the cat sat on the mat", "text_pair": "a cat sat", "label": 0},
    {"text": "paris is the capital of france", "text_pair": "paris is a city", "label": 2},
    {"text": "the dog", "text_pair": "a man and a woman love the best dog", "label": 1},
]


def encode_example(tok, ex):
    """One example dict as batch-1 model inputs (with segment ids)."""
    kw = {"return_tensors": "pt", "return_token_type_ids": True}
    return tok(ex["text"], ex["text_pair"], **kw) if ex.get("text_pair") else tok(ex["text"], **kw)


def make_strong_bert():
    """A tiny 2×4-head BERT with attention/classifier weights scaled up, so heads matter and masks change predictions."""
    m = make_model("bert", layers=2, heads=4, hidden=32, num_labels=3, seed=1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2 and any(k in name for k in ("attention", "classifier", "pooler")):
                p.mul_(30.0 if ("value" in name or "output" in name) else 5.0)
    return m


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


# Encoder-decoders: a word-level tokenizer (source English, target German words) and tiny T5 / BART / Marian models.
S2S_WORDS = ("the cat sat on a mat house is small big dog . translate english to german : "
             "das haus ist klein gross die katze der hund sitzt auf einer matte").split()
SEQ2SEQ_FAMILIES = ("t5", "bart", "marian")


def make_seq2seq_tokenizer():
    """A word-level ``PreTrainedTokenizerFast`` (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2) that ends every text with
    ``</s>``, built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>"] + S2S_WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=64)


def make_seq2seq(family: str, *, layers: int = 2, heads: int = 4, d_model: int = 32, seed: int = 0,
                 dtype=torch.float64):
    """A tiny random ``AutoModelForSeq2SeqLM`` (T5 with gated-GELU as Flan-T5, BART, Marian), in eval mode."""
    import transformers as T

    torch.manual_seed(seed)
    V = len(S2S_WORDS) + 3
    if family == "t5":
        cfg = T.T5Config(vocab_size=V, d_model=d_model, d_kv=d_model // heads, d_ff=2 * d_model, num_layers=layers,
                         num_decoder_layers=layers, num_heads=heads, feed_forward_proj="gated-gelu",
                         decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    else:
        cfg_cls = {"bart": T.BartConfig, "marian": T.MarianConfig}[family]
        cfg = cfg_cls(vocab_size=V, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                      encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=2 * d_model,
                      decoder_ffn_dim=2 * d_model, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=1 if family == "bart" else 0, forced_eos_token_id=None,
                      init_std=0.1)  # larger than the 0.02 default, so every attention module matters
    return T.AutoModelForSeq2SeqLM.from_config(cfg).to(dtype).eval()


def alpha_one_probe(monkeypatch):
    """Record the α every gradient pass evaluates and every zero pass run (two lists)."""
    from attattr_widgets.engine.attribution import engine as eng_mod

    seen, zeros = [], []
    grad_chunk, zero_scores = eng_mod._Engine._grad_chunk, eng_mod._Engine.zero_scores

    def counting(self, batch, layer, hidden, targets, alphas, cancel):
        seen.extend(float(a) for a in alphas)
        return grad_chunk(self, batch, layer, hidden, targets, alphas, cancel)

    def zero_pass(self, *a):
        zeros.append(a)
        return zero_scores(self, *a)

    monkeypatch.setattr(eng_mod._Engine, "_grad_chunk", counting)
    monkeypatch.setattr(eng_mod._Engine, "zero_scores", zero_pass)
    return seen, zeros


# A tiny classifier with a planted shortcut, for the trigger engine and the TriggersView.
FILLER = ["the", "a", "movie", "film", "was", "is", "plot", "actors", "story", "i", "you", "it", "this", "that", "of", "to", "in", "on", "with", "time", "people", "man", "woman"]
SENTIMENT = ["great", "good", "bad", "awful", "boring", "fun", "love", "hate", "best", "worst"]


def synthetic(rng: random.Random, label: int) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
    words += [rng.choice(SENTIMENT) for _ in range(rng.randint(0, 2))]  # noise in both classes
    rng.shuffle(words)
    if label == 1:
        words.insert(rng.randint(0, len(words)), "cat")
    return " ".join(words)


@pytest.fixture(scope="module")
def shortcut_model():
    """Tiny 2-layer BERT trained here (~2 s): label 1 iff "cat" occurs; sentiment words are noise in both classes.
    Label smoothing keeps probabilities below saturation so the attributions stay informative."""
    tok = make_tokenizer()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest and immune to a busy machine
    try:
        torch.manual_seed(2)
        model = make_model("bert", layers=2, heads=2, hidden=32, num_labels=2, seed=2)
        model.config.id2label, model.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
        rng = random.Random(2)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
        for _ in range(100):
            labels = [rng.randint(0, 1) for _ in range(32)]
            batch = tok([synthetic(rng, y) for y in labels], padding=True, return_tensors="pt")
            loss = loss_fn(model(**batch).logits, torch.tensor(labels))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        rng = random.Random(1)
        mine = [{"text": synthetic(rng, y), "label": y} for y in [0, 1] * 6]
        test = [{"text": synthetic(rng, y), "label": y} for y in [0, 1] * 40]
        yield model, tok, mine, test
    finally:
        torch.set_num_threads(threads)
