"""Modularity and explicitness.

Ridgeway & Mozer (2018), "Learning Deep Disentangled Embeddings With the F-Statistic
Loss", NeurIPS, Section 3 (metrics). Estimator as in disentanglement_lib
``evaluation/metrics/modularity_explicitness.py``.

Explicitness fits the reference's ``linear_model.LogisticRegression()`` with the
defaults of the scikit-learn it ran on (0.20): the liblinear solver, one-vs-rest over
the factor's classes, C = 1. Its ``predict_proba`` is the logistic sigmoid of each
class's binary model, normalised to sum to 1 over the classes; the ROC-AUC is taken on
those normalised probabilities. scikit-learn >= 0.22 defaults to a multinomial L-BFGS
model and >= 1.7 no longer offers one-vs-rest inside ``LogisticRegression``, so it is
spelled here ``OneVsRestClassifier(LogisticRegression(solver="liblinear"))``, whose
``predict_proba`` normalises the same way (as the BetaVAE score's classifier).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.multiclass import OneVsRestClassifier

from disbench.metrics.utils import (
    MetricInputError,
    MetricWarning,
    check_num_bins,
    check_train_test,
    discrete_mutual_info,
    discretize,
    nonconstant_factors,
    warn_unseen_test_classes,
)

METRIC = "Modularity/explicitness"


def modularity_from_mutual_info(mutual_info: np.ndarray) -> float:
    """Modularity from a (D, K) code-factor mutual-information matrix.

    For code i with theta_ij = I(z_i; v_j) and f = argmax_j theta_ij:
    delta_i = sum_{j != f} theta_ij^2 / (theta_if^2 (K - 1)), modularity_i = 1 - delta_i,
    and a code with no information about any factor scores 0 (as disentanglement_lib).
    The score is the mean over codes. With K = 1 modularity is undefined: NaN with a
    ``MetricWarning``.
    """
    mutual_info = np.asarray(mutual_info, dtype=np.float64)
    if mutual_info.ndim != 2 or mutual_info.size == 0 or not np.all(np.isfinite(mutual_info)):
        raise MetricInputError(
            f"{METRIC}: mutual_info must be a finite, non-empty (num_codes, num_factors) "
            f"matrix; got shape {mutual_info.shape}."
        )
    num_factors = mutual_info.shape[1]
    if num_factors < 2:
        warnings.warn(
            f"{METRIC}: modularity is undefined with a single factor; returning NaN.",
            MetricWarning,
            stacklevel=2,
        )
        return float("nan")
    squared = mutual_info**2
    top = squared.max(axis=1)
    per_code = np.zeros(squared.shape[0])
    informative = top > 0
    delta = (squared.sum(axis=1) - top)[informative] / (top[informative] * (num_factors - 1))
    per_code[informative] = 1.0 - delta
    return float(np.mean(per_code))


def explicitness_classifier() -> OneVsRestClassifier:
    """scikit-learn 0.20's ``LogisticRegression()``: liblinear, one-vs-rest, C = 1.

    ``random_state=0`` for determinism; liblinear's primal solver for the L2 logistic
    loss does not draw from it.
    """
    return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=0))


def _one_vs_rest_auc(classes: np.ndarray, y: np.ndarray, proba: np.ndarray, split: str) -> float:
    """Macro-average over classes of the ROC-AUC of ``proba[:, c]`` for ``y == c``.

    Equals disentanglement_lib's ``roc_auc_score(MultiLabelBinarizer(y), proba)`` when
    every class occurs in ``y``; a class absent from ``y`` has no defined AUC and is
    skipped with a ``MetricWarning`` (the reference crashes on a shape mismatch).
    """
    aucs = []
    for c, cls in enumerate(classes):
        positive = y == cls
        if positive.all() or not positive.any():
            continue
        aucs.append(roc_auc_score(positive, proba[:, c]))
    if len(aucs) < len(classes):
        warnings.warn(
            f"{METRIC}: {len(classes) - len(aucs)} factor class(es) do not occur (or are the "
            f"only class) in the {split} set; explicitness averages over the others.",
            MetricWarning,
            stacklevel=3,
        )
    if not aucs:
        return float("nan")
    return float(np.mean(aucs))


def compute_modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    num_bins: int = 20,
) -> dict[str, float]:
    """Modularity (on train) and explicitness (train and test) of a representation.

    * modularity: ``modularity_from_mutual_info`` of the plug-in MI between the
      histogram-discretised ``codes_train`` (``num_bins`` bins) and ``factors_train``;
    * explicitness: per factor, ``explicitness_classifier()`` (the reference's
      ``LogisticRegression()`` under scikit-learn 0.20: liblinear, one-vs-rest) on codes
      standardised with the train mean/std predicts the factor class; the score is the
      ROC-AUC of each class's normalised probability, averaged over classes, then over
      factors.

    Args:
        codes_train, codes_test: (N, D) float representations.
        factors_train, factors_test: (N, K) integer factor classes.
        num_bins: histogram bins per code dimension for the MI.

    Returns:
        ``{"modularity", "explicitness_train", "explicitness_test"}``.

    Unlike the reference, code dimensions that are constant on the training set are
    centred but not divided by their zero standard deviation (the reference produces
    NaNs there). Factors constant on the training set are skipped with a
    ``MetricWarning``; a test class unseen in training is scored as misclassified
    (with a ``MetricWarning``).
    """
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test, METRIC
    )
    num_bins = check_num_bins(num_bins, METRIC)
    keep = nonconstant_factors(factors_train, METRIC)
    factors_train, factors_test = factors_train[:, keep], factors_test[:, keep]
    warn_unseen_test_classes(factors_train, factors_test, METRIC)

    mutual_info = discrete_mutual_info(discretize(codes_train, num_bins), factors_train)

    mean = codes_train.mean(axis=0)
    std = codes_train.std(axis=0)
    std[np.ptp(codes_train, axis=0) == 0] = 1.0
    x_train = (codes_train - mean) / std
    x_test = (codes_test - mean) / std
    explicitness_train, explicitness_test = [], []
    for j in range(factors_train.shape[1]):
        clf = explicitness_classifier()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x_train, factors_train[:, j])
        explicitness_train.append(
            _one_vs_rest_auc(clf.classes_, factors_train[:, j], clf.predict_proba(x_train), "train")
        )
        explicitness_test.append(
            _one_vs_rest_auc(clf.classes_, factors_test[:, j], clf.predict_proba(x_test), "test")
        )
    return {
        "modularity": modularity_from_mutual_info(mutual_info),
        "explicitness_train": float(np.mean(explicitness_train)),
        "explicitness_test": float(np.mean(explicitness_test)),
    }
