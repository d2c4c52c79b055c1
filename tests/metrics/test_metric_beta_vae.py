"""BetaVAE score (Higgins et al. 2017): values on a tiny grid, and the feature construction."""

import numpy as np
import pytest
from suite_fixtures import SMALL, Noise, identity, tiny_grid

from disbench.metrics import MetricInputError, compute_beta_vae, evaluate
from disbench.metrics.beta_vae import beta_vae_points
from disbench.metrics.sampling import CodeSampler, Representation


def _score(representation_fn, **kw):
    scores = evaluate(tiny_grid(), representation_fn, names="beta_vae", config=SMALL, **kw)
    return scores["beta_vae.train_accuracy"], scores["beta_vae.eval_accuracy"]


def test_identity_representation_scores_one():
    train, eval_ = _score(identity)
    assert train == 1.0 and eval_ == 1.0


def test_noise_representation_scores_chance():
    train, eval_ = _score(Noise(), encode_once=False)
    # three factors: chance is 1/3
    assert abs(eval_ - 1 / 3) < 0.1
    assert train < 0.5


def test_points_share_the_fixed_factor():
    """For the identity codes the feature of the fixed factor is the leak only (< 0.1),
    the others are O(1); so the label is the argmin of the feature."""
    sampler = CodeSampler(tiny_grid(), Representation(identity))
    features, labels = beta_vae_points(sampler, np.random.default_rng(0), 200, 8)
    assert features.shape == (200, 3) and labels.shape == (200,)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.all(features[np.arange(200), labels] < 0.1)
    assert np.array_equal(np.argmin(features, axis=1), labels)


def test_single_factor_is_rejected():
    class OneFactor:
        factor_sizes = (4,)

        def sample_factors(self, num, rng):
            return rng.integers(4, size=(num, 1))

        def sample_observations_from_factors(self, factors, rng):
            return factors.astype(np.float32)

    sampler = CodeSampler(OneFactor(), Representation(lambda x: x))
    with pytest.raises(MetricInputError, match="at least 2 factors"):
        compute_beta_vae(sampler, np.random.default_rng(0), num_train=10, num_eval=10)
