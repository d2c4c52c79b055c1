"""FactorVAE score (Kim & Mnih 2018): values on a tiny grid, active dims, collapse."""

import numpy as np
import pytest
from suite_fixtures import SMALL, Noise, identity, tiny_grid

from disbench.metrics import MetricInputError, MetricWarning, compute_factor_vae, evaluate
from disbench.metrics.factor_vae import factor_vae_votes
from disbench.metrics.sampling import CodeSampler, Representation


def _scores(representation_fn, **kw):
    scores = evaluate(tiny_grid(), representation_fn, names=["factor_vae"], config=SMALL, **kw)
    return {k.split(".", 1)[1]: v for k, v in scores.items()}


def test_identity_representation_scores_one():
    s = _scores(identity)
    assert s == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3.0}


def test_noise_representation_scores_chance():
    s = _scores(Noise(dims=4), encode_once=False)
    assert abs(s["eval_accuracy"] - 1 / 3) < 0.12
    assert s["num_active_dims"] == 4.0


def test_collapsed_dims_are_pruned_and_counted():
    """Two extra dims: one constant, one with std 0.01 < 0.05. Both are inactive; the
    count is the number of active dims (the reference reports the total, 5)."""
    def with_collapsed(x):
        codes = identity(x)
        tiny = 0.01 * np.sin(7.0 * codes[:, 1] + codes[:, 2])
        return np.c_[codes, np.zeros(len(x)), tiny]

    s = _scores(with_collapsed)
    assert s == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3.0}


def test_all_dims_collapsed_scores_zero_with_a_warning():
    with pytest.warns(MetricWarning, match="collapsed"):
        s = _scores(lambda x: np.full((len(x), 3), 0.5))
    assert s == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_votes_go_to_the_fixed_factors_dimension():
    sampler = CodeSampler(tiny_grid(), Representation(identity))
    votes = factor_vae_votes(sampler, np.random.default_rng(0), 90, 8,
                             np.ones(3), np.array([True, True, True]))
    assert votes.sum() == 90
    assert np.count_nonzero(votes - np.diag(np.diag(votes))) == 0  # only (k, k) votes


def test_batch_size_one_is_rejected():
    sampler = CodeSampler(tiny_grid(), Representation(identity))
    with pytest.raises(MetricInputError, match="batch_size must be at least 2"):
        compute_factor_vae(sampler, np.random.default_rng(0), batch_size=1)
