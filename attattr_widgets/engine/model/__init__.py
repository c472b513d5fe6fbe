"""What a model is asked: its kind and targets, encoding, example collections, batched prediction."""
