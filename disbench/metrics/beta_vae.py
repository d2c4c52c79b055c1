"""The BetaVAE score.

Higgins, Matthey, Pal, Burgess, Glorot, Botvinick, Mohamed & Lerchner (2017),
"beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR, Section 3 ("disentanglement metric"). Estimator as in
disentanglement_lib ``evaluation/metrics/beta_vae.py`` (``beta_vae_sklearn``).

A point of the classifier's data set: pick a factor k uniformly; draw two batches of
``batch_size`` factor combinations where each pair shares factor k's value (the
other factors drawn independently); the feature is the mean over the batch of the
absolute difference of the two codes, ``mean_b |z1_b - z2_b|``, and the label is
k. A linear classifier (logistic regression) trained on ``num_train`` points must
recover k; the score is its accuracy on the training points and on ``num_eval``
fresh points.

The classifier is scikit-learn's ``LogisticRegression`` with the defaults of the
scikit-learn the reference ran on (0.20): the liblinear solver, one-vs-rest over
the factors, C = 1. scikit-learn >= 0.22 changed the default to a multinomial
L-BFGS model, and >= 1.7 no longer offers one-vs-rest inside
``LogisticRegression``, so it is spelled here as
``OneVsRestClassifier(LogisticRegression(solver="liblinear"))``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from disbench.metrics.utils import MetricInputError

METRIC = "BetaVAE score"


def beta_vae_points(sampler, rng: np.random.Generator, num_points: int, batch_size: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` (feature, label) pairs: features (num_points, D), labels (num_points,).

    ``sampler`` is a ``disbench.metrics.sampling.CodeSampler``. Draw order from ``rng``:
    the labels, the first batches' factors, the second batches' factors, then the
    codes of the first and of the second batches.
    """
    k = sampler.num_factors
    labels = rng.integers(k, size=num_points)
    factors1 = sampler.sample_factors(num_points * batch_size, rng).reshape(
        num_points, batch_size, k)
    factors2 = sampler.sample_factors(num_points * batch_size, rng).reshape(
        num_points, batch_size, k)
    rows = np.arange(num_points)[:, None]
    cols = np.arange(batch_size)[None, :]
    factors2[rows, cols, labels[:, None]] = factors1[rows, cols, labels[:, None]]
    codes1 = sampler.codes(factors1.reshape(-1, k), rng)
    codes2 = sampler.codes(factors2.reshape(-1, k), rng)
    diff = np.abs(codes1 - codes2).reshape(num_points, batch_size, -1)
    return diff.mean(axis=1), labels


def _classifier() -> OneVsRestClassifier:
    return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=0))


def compute_beta_vae(sampler, rng: np.random.Generator, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000) -> dict[str, float]:
    """BetaVAE score of the representation behind ``sampler``.

    Args:
        sampler: a ``disbench.metrics.sampling.CodeSampler`` (dataset + representation).
        rng: the generator every draw comes from.
        batch_size: pairs averaged into one feature vector (64 in the study).
        num_train, num_eval: classifier training and evaluation points.

    Returns:
        ``{"train_accuracy", "eval_accuracy"}``; chance level is 1 / num_factors.
    """
    if sampler.num_factors < 2:
        raise MetricInputError(f"{METRIC}: needs at least 2 factors; the dataset has "
                               f"{sampler.num_factors}.")
    x_train, y_train = beta_vae_points(sampler, rng, num_train, batch_size)
    if np.unique(y_train).size < 2:
        raise MetricInputError(f"{METRIC}: all {num_train} training points fix the same "
                               f"factor; use more training points.")
    model = _classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = beta_vae_points(sampler, rng, num_eval, batch_size)
    eval_accuracy = float(np.mean(model.predict(x_eval) == y_eval))
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}
