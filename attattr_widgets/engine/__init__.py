"""Kernel-side engines: attention injection, attribution, importance, pruning, trees, triggers."""
