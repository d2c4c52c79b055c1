"""A tiny ground-truth grid and representations of it, for the metric-suite tests.

Factors (3, 4, 5): 60 images of 1 x 6 x 6 pixels; factor j sets the intensity of rows
2j and 2j + 1 to value / (size - 1). Nothing is rendered or downloaded.
"""

import numpy as np

from disbench.data import GridDataset

SIZES = (3, 4, 5)
_LEAK = np.random.default_rng(5).normal(size=(36, len(SIZES)))


def tiny_grid(**kwargs) -> GridDataset:
    n = int(np.prod(SIZES))
    factors = np.stack(np.unravel_index(np.arange(n), SIZES), axis=1)
    images = np.zeros((n, 1, 6, 6), np.uint8)
    for j, size in enumerate(SIZES):
        images[:, 0, 2 * j:2 * j + 2, :] = (factors[:, j] * 255 // (size - 1))[:, None, None]
    return GridDataset("tiny", ("a", "b", "c"), SIZES, images, "test", **kwargs)


def decoded_factors(x: np.ndarray) -> np.ndarray:
    """The factor values shown by observations (N, 1, 6, 6), as floats."""
    x = np.asarray(x).reshape(len(x), 6, 6)
    return np.stack([np.round(x[:, 2 * j:2 * j + 2].mean(axis=(1, 2)) * (s - 1))
                     for j, s in enumerate(SIZES)], axis=1)


def identity(x: np.ndarray) -> np.ndarray:
    """codes = factors + a tiny deterministic leak of every pixel (an ideal representation)."""
    return decoded_factors(x) + 0.01 * (np.asarray(x).reshape(len(x), -1) @ _LEAK)


def onehot(x: np.ndarray) -> np.ndarray:
    """One-hot codes of every factor (linearly separable classes), D = 12."""
    f = decoded_factors(x).astype(int)
    return np.concatenate([np.eye(s)[f[:, j]] for j, s in enumerate(SIZES)], axis=1)


def gaussian_identity(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, log_var) of a Gaussian encoder with the identity mean and variance 0.25."""
    mean = identity(x)
    return mean, np.full_like(mean, np.log(0.25))


class Noise:
    """Codes that ignore the observation: fresh noise on every call (use on the fly)."""

    def __init__(self, seed: int = 0, dims: int = 3):
        self.rng = np.random.default_rng(seed)
        self.dims = dims

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.rng.normal(size=(len(x), self.dims))


# Small counts: each metric takes well under a second on the tiny grid.
SMALL = {
    "name": "small",
    "beta_vae": {"batch_size": 16, "num_train": 300, "num_eval": 200},
    "factor_vae": {"batch_size": 16, "num_train": 300, "num_eval": 200,
                   "num_variance_estimate": 500},
    "mig": {"num_train": 500},
    "dci": {"num_train": 300, "num_test": 200},
    "sap": {"num_train": 300, "num_test": 200},
    "modularity": {"num_train": 300, "num_test": 200},
    "irs": {"num_train": 500},
    "unsupervised": {"num_train": 500},
    "downstream": {"num_train": [40], "num_test": 100},
    "fairness": {"num_train": 100, "num_test_points_per_class": 5},
    "heldout": {"num_points": 200},
    "udr": {"num_points": 200},
    "fid": {"num_samples": 100, "inception_weights": None, "extractor_steps": 20,
            "extractor_batch_size": 16, "extractor_features": 8},
}
