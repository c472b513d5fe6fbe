"""Special tokens: one rule, from ids (a tokenizer) and from display strings, and the engine uses it everywhere."""
from __future__ import annotations

import pytest
from conftest import PAIRS, SINGLES, make_model, make_tokenizer

from attattr_widgets.engine.analysis.tree import resolve_exclude_row
from attattr_widgets.engine.model.encode import encode
from attattr_widgets.engine.model.tokens import is_special_token, special_ids, special_mask


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def test_structural_tokens_are_special_words_are_content(tok):
    ids = special_ids(tok)
    for t in ("[CLS]", "[SEP]", "[PAD]"):
        assert tok.convert_tokens_to_ids(t) in ids
    for t in ("[UNK]", "[MASK]"):  # they stand for a word of the text
        assert tok.convert_tokens_to_ids(t) not in ids
    assert special_mask(["[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "<|endoftext|>", " <s>"]) == [True] * 8
    assert special_mask(["[UNK]", "[MASK]", "<unk>", "<mask>", "[unk]", "cat", "##s", "[", "<3", "a <b> c"]) == [
        False] * 10


@pytest.mark.parametrize("ex", SINGLES + PAIRS + [{"text": "the [MASK] sat on a zebra", "text_pair": "[UNK] cat"}])
def test_ids_and_display_strings_agree_on_encoded_inputs(tok, ex):
    model = make_model("bert")
    enc = encode(model, tok, ex["text"], ex.get("text_pair"))
    ids = enc.input_ids[0].tolist()
    assert special_mask(enc.tokens) == [i in special_ids(tok) for i in ids]


class _WordIsFraming:
    """GPT-2's shape: one token is the unknown, begin and end token at once (it stays special)."""

    all_special_ids = [7]
    unk_token_id = bos_token_id = eos_token_id = 7
    cls_token_id = sep_token_id = pad_token_id = mask_token_id = None


def test_a_word_token_that_frames_the_text_stays_special():
    assert special_ids(_WordIsFraming()) == {7}
    assert is_special_token("<|endoftext|>")


def test_tree_excludes_the_row_of_a_leading_special_token():
    assert resolve_exclude_row(["[CLS]", "a", "[SEP]"], "auto", 3) == 0
    assert resolve_exclude_row(["<s>", "a"], "auto", 2) == 0
    assert resolve_exclude_row(["[UNK]", "a"], "auto", 2) is None  # a word, not a read-out token
    assert resolve_exclude_row(["the", "a"], "auto", 2) is None


def test_a_byte_level_tokenizer_agrees_too():
    """SmolLM2's tokenizer (the demo decoder's, when its assets are cached): chat markers are special by both."""
    from attattr_widgets.demo.assets import cache_dir

    path = cache_dir() / "smollm2-135m-instruct"
    if not (path / "tokenizer.json").exists():
        pytest.skip("the demo decoder's tokenizer is not cached (make assets)")
    from transformers import AutoTokenizer

    from attattr_widgets.engine.model.encode import display_tokens

    bpe = AutoTokenizer.from_pretrained(path)
    for text in ("<|im_start|>user\nThe capital of France is<|im_end|>", "a [CLS] b <s> c"):
        ids = bpe(text)["input_ids"]
        assert special_mask(display_tokens(bpe, ids)) == [i in special_ids(bpe) for i in ids]
    assert special_mask(display_tokens(bpe, bpe("<|im_start|>hi")["input_ids"]))[0]
