"""anywidget views of attattr-widgets (thin Python wrappers over the TypeScript bundles in js/)."""
from ._base import BUNDLE_MISSING_MESSAGE, bundle_built
from .explorer import Explorer
from .heads import HeadsResult, HeadsView
from .tree import TreeView
from .triggers import TriggersResult, TriggersView

__all__ = ["Explorer", "HeadsResult", "HeadsView", "TreeView", "TriggersResult", "TriggersView", "BUNDLE_MISSING_MESSAGE", "bundle_built"]
