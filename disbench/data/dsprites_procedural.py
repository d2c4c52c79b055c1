"""A built-in renderer of the dSprites grid (Matthey et al. 2017), for offline use.

Same factors and sizes as the official release: shape (square, ellipse, heart),
scale linspace(0.5, 1, 6), orientation linspace(0, 2 pi, 40) and 32 x 32
positions on a 64x64 binary canvas. Each of the 720 (shape, scale, orientation)
sprites is rasterised once on a 32x32 patch (4x4 supersampling, coverage >= 1/2)
and then pasted at the 1,024 integer positions (1 pixel apart), so rendering is
a handful of vectorised numpy operations. It is not pixel-identical to the
official PNG-era renderer; runs record their data source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.dsprites import FACTOR_NAMES, FACTOR_SIZES
from disbench.data.files import build_cache, open_cache

PATCH = 32          # sprite patch, pasted at offsets 0..31 in both axes
SPRITE_SIZE = 20.0  # extent in pixels of a scale-1 sprite
SUPERSAMPLE = 4
CACHE_VERSION = 1
CACHE = f"dsprites_procedural/images_v{CACHE_VERSION}.npy"

INFO = DatasetInfo(
    "dsprites_procedural", "the dSprites grid rendered by disbench (offline, not pixel-identical)",
    FACTOR_NAMES, FACTOR_SIZES, channels=1, source="procedural",
    subdirs=("dsprites_procedural",), ready=(CACHE,),
)


def _shape_masks(u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """Inside-tests for the unit-size square, ellipse and heart at coordinates (u, v)."""
    square = np.maximum(np.abs(u), np.abs(v)) <= 0.4
    ellipse = (u / 0.5) ** 2 + (v / 0.25) ** 2 <= 1.0
    # heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3 in [-1.14, 1.14] x [-1, 1.25], fit to the unit box
    x, y = u * 2.3, -v * 2.3 + 0.12
    heart = (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    return [square, ellipse, heart]


def render_sprites() -> np.ndarray:
    """Binary sprite patches, bool array (3, 6, 40, PATCH, PATCH)."""
    scales = np.linspace(0.5, 1.0, FACTOR_SIZES[1])
    angles = np.linspace(0.0, 2 * np.pi, FACTOR_SIZES[2])
    # supersampled pixel centres, relative to the patch centre, in pixels
    ticks = (np.arange(PATCH * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - PATCH / 2
    py, px = np.meshgrid(ticks, ticks, indexing="ij")
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    out = np.zeros((3, len(scales), len(angles), PATCH, PATCH), dtype=bool)
    for i, scale in enumerate(scales):
        size = SPRITE_SIZE * scale
        # rotate the sampling grid by -angle: the sprite turns by +angle
        u = (cos * px + sin * py) / size
        v = (-sin * px + cos * py) / size
        for s, inside in enumerate(_shape_masks(u, v)):
            coverage = inside.reshape(len(angles), PATCH, SUPERSAMPLE, PATCH, SUPERSAMPLE)
            out[s, i] = coverage.mean(axis=(2, 4)) >= 0.5
    return out


def _fill(images: np.ndarray) -> None:
    sprites = render_sprites().astype(np.uint8) * np.uint8(255)
    grid = images.reshape(*FACTOR_SIZES, 64, 64)
    for shape in range(FACTOR_SIZES[0]):
        block = np.zeros((*FACTOR_SIZES[1:], 64, 64), dtype=np.uint8)
        for x in range(FACTOR_SIZES[3]):
            for y in range(FACTOR_SIZES[4]):
                block[:, :, x, y, y:y + PATCH, x:x + PATCH] = sprites[shape]
        grid[shape] = block


def procedural_images(data_dir: Path) -> np.ndarray:
    """The rendered pixels (N, 1, 64, 64), from the cache or rendered on first use."""
    shape = (int(np.prod(FACTOR_SIZES)), 1, 64, 64)
    images = open_cache(data_dir / CACHE, shape)
    if images is None:
        images = build_cache(data_dir / CACHE, shape, _fill)
    return images


def load_procedural(data_dir: Path) -> GridDataset:
    """The rendered grid, from its memory-mapped cache (rendered on first use)."""
    images = procedural_images(data_dir)
    return GridDataset("dsprites_procedural", FACTOR_NAMES, FACTOR_SIZES, images,
                       source="procedural")
