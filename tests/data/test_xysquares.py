"""XYSquares against nmichlo/disent's definition: square c of side 8 at (8 x_c, 8 y_c)
in channel c, on an 8 x 8 grid of positions."""

from __future__ import annotations

import numpy as np

from disbench import data
from disbench.data import xysquares


def disent_observation(factors) -> np.ndarray:
    """XYSquaresMinimalData._get_observation, (64, 64, 3)."""
    obs = np.zeros((64, 64, 3), np.uint8)
    for i, (fx, fy) in enumerate(np.reshape(factors, (-1, 2))):
        x, y = 8 * fx, 8 * fy
        obs[y:y + 8, x:x + 8, i] = 255
    return obs


def test_render_small_grid():
    images = np.zeros((2**6, 3, 64, 64), np.uint8)
    xysquares.render(images, positions=2)
    for i, factors in enumerate(np.stack(np.unravel_index(np.arange(64), (2,) * 6), 1)):
        np.testing.assert_array_equal(images[i], disent_observation(factors).transpose(2, 0, 1))


def test_full_dataset(xysquares_dir):
    ds = data.load("xysquares", xysquares_dir)
    assert ds.factor_sizes == (8,) * 6 and ds.images.shape == (262144, 3, 64, 64)
    assert ds.deterministic and ds.factor_names == ("x_R", "y_R", "x_G", "y_G", "x_B", "y_B")
    rng = np.random.default_rng(0)
    factors = ds.sample_factors(32, rng)
    obs = ds.sample_observations_from_factors(factors, rng)
    for f, o in zip(factors, obs):
        np.testing.assert_array_equal(o, disent_observation(f).transpose(2, 0, 1) / 255.0)
    # equally far apart: one step or seven along any factor moves 2 x 64 pixels
    base = np.array([[3, 3, 3, 3, 3, 3]])
    for k in range(6):
        for value in (0, 4, 7):
            other = base.copy()
            other[0, k] = value
            a, b = ds.sample_observations_from_factors(np.concatenate([base, other]), rng)
            assert np.abs(a - b).sum() == 128
