"""What a model is asked: its adapter (kind of task: inputs, score read, targets, attention sites), encoding,
example collections, batched prediction."""

from . import seq2seq  # noqa: E402,F401  (registers the encoder-decoder adapter)
