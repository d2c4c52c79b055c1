"""Shared toy data for the metric tests: a few discrete factors and simple representations."""

from types import SimpleNamespace

import numpy as np
import pytest

NUM_TRAIN, NUM_TEST, NUM_FACTORS, NUM_CLASSES = 400, 200, 3, 4


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    """Independent uniform factors with 4 classes; identity, rotated and constant codes.

    ``identity`` = factors + tiny noise (one code per factor, perfectly disentangled);
    ``rotated`` = the identity codes times a fixed rotation that mixes every factor into
    every code (entangled but equally informative).
    """
    rng = np.random.default_rng(0)
    n = NUM_TRAIN + NUM_TEST
    factors = rng.integers(0, NUM_CLASSES, size=(n, NUM_FACTORS))
    identity = factors + 0.05 * rng.normal(size=factors.shape)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(NUM_FACTORS,) * 2))
    rotated = identity @ rotation
    train, test = slice(0, NUM_TRAIN), slice(NUM_TRAIN, n)
    return SimpleNamespace(
        factors=factors,
        identity=identity,
        rotated=rotated,
        factors_train=factors[train],
        factors_test=factors[test],
        identity_train=identity[train],
        identity_test=identity[test],
        rotated_train=rotated[train],
        rotated_test=rotated[test],
    )
