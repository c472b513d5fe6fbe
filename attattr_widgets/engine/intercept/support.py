"""Which model families the interception reaches (named in every "unsupported" error)."""
from __future__ import annotations

SUPPORTED_FAMILIES = (
    "BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA, ALBERT, ModernBERT (encoders); GPT-2, Llama, Mistral, Qwen2, "
    "Gemma 1/2, Falcon (transformers >= 5.25) and other decoders whose attention calls transformers' "
    "AttentionInterface; T5, BART, Marian and other text encoder-decoders"
)


# Families whose attention moved onto the interface in a later transformers release than the one installed.
_ROUTED_SINCE = {"falcon": (5, 25)}
