"""Watching the model's own attention through transformers' AttentionInterface, without changing the model."""
