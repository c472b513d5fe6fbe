"""What a model is asked: its adapter (kind of task: inputs, score read, targets, attention sites), encoding,
example collections, batched prediction."""

from . import seq2seq  # registers the encoder-decoder adapter (adapters.py cannot import it: a cycle)

__all__ = ["seq2seq"]
