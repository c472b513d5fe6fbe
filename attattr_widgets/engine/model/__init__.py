"""What a model is asked: its adapter (kind of task: inputs, score read, targets, attention sites), encoding,
example collections, batched prediction."""
