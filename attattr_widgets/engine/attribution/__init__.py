"""Self-Attention Attribution: :func:`attribute` (one example) and :func:`iter_attributions` (many)."""
from .api import attribute, completeness_gap, iter_attributions

__all__ = ["attribute", "completeness_gap", "iter_attributions"]
