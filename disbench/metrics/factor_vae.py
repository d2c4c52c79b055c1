"""The FactorVAE score.

Kim & Mnih (2018), "Disentangling by Factorising", ICML, Section 4 (the
disentanglement metric). Estimator as in disentanglement_lib
``evaluation/metrics/factor_vae.py`` (``factor_vae_score``, with the study's
``prune_dims.threshold = 0.05``).

1. The global variance of each code dimension is estimated on
   ``num_variance_estimate`` random observations (``np.var``, ddof = 1). Dimensions
   with standard deviation below ``prune_threshold`` (collapsed to the prior) are
   inactive: ``sqrt(var) >= prune_threshold`` keeps a dimension.
2. A vote: pick a factor k uniformly, draw ``batch_size`` factor combinations that
   all share one value of factor k, and take the active dimension with the smallest
   variance within the batch (ddof = 1) divided by its global variance. The vote is
   (k, that dimension).
3. The classifier maps each dimension to the factor with the most training votes
   (ties and dimensions without votes go to the lowest factor index, as ``np.argmax``
   in the reference); its accuracy on the training votes and on ``num_eval`` fresh
   votes is the score.

Differences from the reference: ``num_active_dims`` is the NUMBER of active
dimensions; the reference reports ``len(active_dims)`` of a boolean mask, i.e. the
total number of dimensions (a bug). When no dimension is active the reference
returns accuracies of 0 (and 0 active dimensions); so does this function, with a
``MetricWarning``.
"""

from __future__ import annotations

import warnings

import numpy as np

from disbench.metrics.utils import MetricInputError, MetricWarning

METRIC = "FactorVAE score"


def factor_vae_votes(sampler, rng: np.random.Generator, num_points: int, batch_size: int,
                     global_variances: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Vote counts, int array (num_factors, num_codes): votes[k, d] = how many of
    ``num_points`` batches with factor k fixed had dimension d as their argmin.

    Draw order from ``rng``: the fixed factors, the batches' factors, then the codes.
    """
    k = sampler.num_factors
    fixed = rng.integers(k, size=num_points)
    factors = sampler.sample_factors(num_points * batch_size, rng).reshape(
        num_points, batch_size, k)
    rows = np.arange(num_points)
    factors[rows, :, fixed] = factors[rows, 0, fixed][:, None]
    codes = sampler.codes(factors.reshape(-1, k), rng).reshape(num_points, batch_size, -1)
    local_variances = np.var(codes, axis=1, ddof=1)
    active_dims = np.flatnonzero(active)
    ratio = local_variances[:, active_dims] / global_variances[active_dims]
    argmin = active_dims[np.argmin(ratio, axis=1)]
    votes = np.zeros((k, global_variances.size), dtype=np.int64)
    np.add.at(votes, (fixed, argmin), 1)
    return votes


def compute_factor_vae(sampler, rng: np.random.Generator, batch_size: int = 64,
                       num_train: int = 10000, num_eval: int = 5000,
                       num_variance_estimate: int = 10000,
                       prune_threshold: float = 0.05) -> dict[str, float]:
    """FactorVAE score of the representation behind ``sampler``.

    Args:
        sampler: a ``disbench.metrics.sampling.CodeSampler`` (dataset + representation).
        rng: the generator every draw comes from.
        batch_size: observations per vote (64 in the study); at least 2.
        num_train, num_eval: training and evaluation votes.
        num_variance_estimate: observations for the global variances.
        prune_threshold: dimensions with a global standard deviation below this are
            inactive (0.05 in the study).

    Returns:
        ``{"train_accuracy", "eval_accuracy", "num_active_dims"}``; chance level is
        about 1 / num_factors.
    """
    if batch_size < 2:
        raise MetricInputError(f"{METRIC}: batch_size must be at least 2 (a variance is "
                               f"taken within each batch); got {batch_size}.")
    _, codes = sampler.sample(num_variance_estimate, rng)
    global_variances = np.var(codes, axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        warnings.warn(
            f"{METRIC}: no code dimension has a standard deviation of at least "
            f"{prune_threshold} (all collapsed); the score is 0, as in the reference.",
            MetricWarning,
            stacklevel=2,
        )
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}

    train_votes = factor_vae_votes(sampler, rng, num_train, batch_size, global_variances,
                                   active)
    classifier = np.argmax(train_votes, axis=0)  # the factor each dimension predicts
    dims = np.arange(train_votes.shape[1])
    train_accuracy = train_votes[classifier, dims].sum() / train_votes.sum()
    eval_votes = factor_vae_votes(sampler, rng, num_eval, batch_size, global_variances,
                                  active)
    eval_accuracy = eval_votes[classifier, dims].sum() / eval_votes.sum()
    return {
        "train_accuracy": float(train_accuracy),
        "eval_accuracy": float(eval_accuracy),
        "num_active_dims": float(active.sum()),
    }
