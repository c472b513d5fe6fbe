"""Dataset-level analyses built on attribution: head importance, pruning, attribution trees, triggers."""
