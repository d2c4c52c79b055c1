"""XYSquares (Michlo, Klein & James 2023, "Overlooked implications of the reconstruction
loss for VAE disentanglement"), as defined by nmichlo/disent's XYSquaresData defaults.

Three 8x8 squares, one per colour channel (red, green, blue), each placed on an
8 x 8 grid of positions 8 pixels apart on a black 64x64 canvas: factors x and y
of each square, 8^6 = 262,144 images. Squares never overlap themselves from one
position to the next, so any two observations that differ in one factor are
equally far apart under a pixel-wise reconstruction loss, whichever the factor
values: nothing in that loss orders the positions. The paper shows that VAEs
then fail to disentangle, and argues that on dSprites and the like the overlap
of neighbouring values is what lets them. Squares of different colours may cover the same
cell (red + green = yellow). Rendered by disbench, pixels 0 / 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.files import build_cache, open_cache

FACTOR_NAMES = ("x_R", "y_R", "x_G", "y_G", "x_B", "y_B")
SQUARE = 8   # square side, and the spacing between positions
POSITIONS = 8
CACHE = "xysquares/xysquares_uint8.npy"

INFO = DatasetInfo(
    "xysquares", "XYSquares (Michlo et al. 2023), adversarial to pixel-wise losses",
    FACTOR_NAMES, (POSITIONS,) * 6, channels=3, source="procedural",
    subdirs=("xysquares",), ready=(CACHE,),
)


def square_masks(positions: int = POSITIONS) -> np.ndarray:
    """uint8 (x, y, 64, 64): 255 on the square at grid position (x, y), 0 elsewhere."""
    masks = np.zeros((positions, positions, 64, 64), dtype=np.uint8)
    for x in range(positions):
        for y in range(positions):
            masks[x, y, y * SQUARE:(y + 1) * SQUARE, x * SQUARE:(x + 1) * SQUARE] = 255
    return masks


def render(images: np.ndarray, positions: int = POSITIONS) -> None:
    """Fill `images` (positions^6, 3, 64, 64): channel c shows square c at (x_c, y_c)."""
    masks = square_masks(positions)
    grid = images.reshape((positions,) * 6 + (3, 64, 64))
    for x in range(positions):  # one red position at a time keeps the writes sequential
        for y in range(positions):
            block = grid[x, y]  # (xG, yG, xB, yB, 3, 64, 64)
            block[..., 0, :, :] = masks[x, y]
            block[..., 1, :, :] = masks[:, :, None, None]
            block[..., 2, :, :] = masks


def load_xysquares(data_dir: Path) -> GridDataset:
    """The rendered grid, from its memory-mapped cache (rendered on first use, 3.2 GB)."""
    shape = (POSITIONS**6, 3, 64, 64)
    images = open_cache(data_dir / CACHE, shape)
    if images is None:
        images = build_cache(data_dir / CACHE, shape, render)
    return GridDataset("xysquares", FACTOR_NAMES, INFO.factor_sizes, images,
                       source="procedural")
