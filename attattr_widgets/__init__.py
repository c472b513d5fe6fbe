"""attattr-widgets: Self-Attention Attribution (AttAttr) engines and Jupyter widgets.

See which attention links a Transformer's prediction actually depends on (Hao et al., AAAI 2021).
"""
from __future__ import annotations

__version__ = "0.1.0"
