"""anywidget views of attattr-widgets (thin Python wrappers over the TypeScript bundles in js/)."""
from ._base import BUNDLE_MISSING_MESSAGE, bundle_built
from .explorer import Explorer
from .tree import TreeView

__all__ = ["Explorer", "TreeView", "BUNDLE_MISSING_MESSAGE", "bundle_built"]
