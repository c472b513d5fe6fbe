"""The picture behind an image model's tokens (:class:`ImageGrid`): which tokens are patches, where each patch
sits, and a small copy of the input as the model saw it. numpy only, no torch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import Record, array

__all__ = ["MAX_PIXELS_SIDE", "ImageGrid", "patch_token"]

#: The longest side of :attr:`ImageGrid.pixels` (the views' copy of the input, not the model's input).
MAX_PIXELS_SIDE = 224


def patch_token(row: int, col: int) -> str:
    """The display token of the patch in grid row ``row``, column ``col``: ``"(r,c)"``."""
    return f"({int(row)},{int(col)})"


@dataclass
class ImageGrid(Record, closed=True):
    """Where an image model's patch tokens come from (``Attribution.image``).

    ``grid``: ``(rows, cols)`` of the patch grid; ``first_patch``: the token index of patch (0, 0) — the patches
    follow it row-major, so patch (r, c) is token ``first_patch + r * cols + c``. An image classifier's patches are
    its last tokens (before them: the model's own ``[CLS]``, DeiT's ``[DIST]``); a vision–language prompt's are
    its image tokens, with text before and after; ``patch_size``: the side of one patch in the model's input, in
    pixels; ``pixels``: uint8 ``[h, w, 3]`` RGB, the input as the model saw it (resized by the processor,
    normalisation undone), shrunk to at most :data:`MAX_PIXELS_SIDE` pixels a side — what views draw under the
    patches (its ``h × w`` need not be ``rows · patch_size × cols · patch_size``: scale by the ratio).
    """

    grid: tuple[int, ...]
    first_patch: int
    patch_size: int
    pixels: np.ndarray = array(int, 3)

    def __post_init__(self):
        self.grid = tuple(int(x) for x in self.grid)
        self.pixels = np.asarray(self.pixels).astype(np.uint8, copy=False)

    @property
    def num_patches(self) -> int:
        """rows · cols."""
        return int(self.grid[0]) * int(self.grid[1])

    def token_of(self, row: int, col: int) -> int:
        """The token index of patch (``row``, ``col``)."""
        return self.first_patch + int(row) * self.grid[1] + int(col)

    def patch_values(self, values) -> np.ndarray:
        """Per-token values ``[n]`` → the patches' ``[rows, cols]`` (e.g. a query row of a map)."""
        v = np.asarray(values)
        return v[self.first_patch : self.first_patch + self.num_patches].reshape(self.grid)
