"""Disentanglement, Completeness and Informativeness (DCI).

Eastwood & Williams (2018), "A Framework for the Quantitative Evaluation of
Disentangled Representations", ICLR, Section 2. Estimator as in disentanglement_lib
``evaluation/metrics/dci.py``: importances from one gradient-boosted-trees classifier
per factor, informativeness as classification accuracy. The classifier is
scikit-learn's, or the same algorithm grown by LightGBM (``boosting="fast"``,
``disbench.metrics.boosting``).
"""

from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from disbench.metrics.boosting import check_boosting, make_boosting
from disbench.metrics.utils import (
    MetricInputError,
    MetricWarning,
    check_train_test,
    nonconstant_factors,
    warn_unseen_test_classes,
)

METRIC = "DCI"

# disentanglement_lib adds this to the importances before normalising them into
# probabilities, so an all-zero row/column is treated as uniform (score 0).
_EPS = 1e-11


def _check_importance(importance: np.ndarray) -> np.ndarray:
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 2 or importance.size == 0:
        raise MetricInputError(
            f"{METRIC}: importance must be a non-empty 2-D (num_codes, num_factors) matrix; "
            f"got shape {importance.shape}."
        )
    if not np.all(np.isfinite(importance)) or np.any(importance < 0):
        raise MetricInputError(f"{METRIC}: importance must be finite and non-negative.")
    return importance


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy (log base ``base``) of each row of ``p`` after normalising rows to sum 1."""
    p = p / p.sum(axis=1, keepdims=True)
    return -np.sum(p * np.log(p), axis=1) / np.log(base)


def _weighted_score(per_item: np.ndarray, weights: np.ndarray) -> float:
    if weights.sum() == 0.0:  # nothing is important: weight everything equally
        weights = np.ones_like(weights)
    return float(np.sum(per_item * weights / weights.sum()))


def disentanglement_from_importance(importance: np.ndarray) -> float:
    """Disentanglement D = sum_i rho_i * (1 - H_K(P_i.)) (Eastwood & Williams, Sec. 2).

    ``importance`` is the (D, K) matrix R with R_ij = importance of code i for factor j;
    P_ij = R_ij / sum_k R_ik, H_K is the entropy in base K (number of factors) and
    rho_i = sum_j R_ij / sum_ij R_ij. With K = 1 the base-1 entropy is undefined: NaN
    with a ``MetricWarning``.
    """
    importance = _check_importance(importance)
    num_factors = importance.shape[1]
    if num_factors < 2:
        warnings.warn(
            f"{METRIC}: disentanglement is undefined with a single factor; returning NaN.",
            MetricWarning,
            stacklevel=2,
        )
        return float("nan")
    per_code = 1.0 - _normalised_entropy(importance + _EPS, base=num_factors)
    return _weighted_score(per_code, importance.sum(axis=1))


def completeness_from_importance(importance: np.ndarray) -> float:
    """Completeness C = sum_j rho_j * (1 - H_D(P~_.j)) (Eastwood & Williams, Sec. 2).

    P~_ij = R_ij / sum_d R_dj, H_D is the entropy in base D (number of codes), and,
    as in disentanglement_lib, factors are weighted by rho_j = sum_i R_ij / sum_ij R_ij
    (equal weights for the classifier importances, which sum to 1 per factor). With
    D = 1 the base-1 entropy is undefined: NaN with a ``MetricWarning``.
    """
    importance = _check_importance(importance)
    num_codes = importance.shape[0]
    if num_codes < 2:
        warnings.warn(
            f"{METRIC}: completeness is undefined with a single code dimension; returning NaN.",
            MetricWarning,
            stacklevel=2,
        )
        return float("nan")
    per_factor = 1.0 - _normalised_entropy(importance.T + _EPS, base=num_codes)
    return _weighted_score(per_factor, importance.sum(axis=0))


def _fit_factor(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    boosting: str,
) -> tuple[np.ndarray, float, float]:
    # Default hyper-parameters as disentanglement_lib. random_state is fixed because the
    # tree builder randomly permutes features and so breaks ties between equally good
    # splits (e.g. duplicated codes) at random; the reference leaves it unset.
    model = make_boosting(boosting)
    model.fit(x_train, y_train)
    importance = np.abs(model.feature_importances_)
    acc_train = float(np.mean(model.predict(x_train) == y_train))
    acc_test = float(np.mean(model.predict(x_test) == y_test))
    return importance, acc_train, acc_test


def compute_dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    n_jobs: int | None = -1,
    boosting: str = "sklearn",
) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness of a representation.

    For each factor a ``GradientBoostingClassifier`` (sklearn defaults,
    ``random_state=0``; ``boosting="fast"``: the same algorithm on LightGBM's tree
    learner, ``disbench.metrics.boosting``) is fit on ``codes_train``; its absolute
    feature importances form one column of the (D, K) importance matrix (see
    ``disentanglement_from_importance`` / ``completeness_from_importance``).
    Informativeness is the accuracy, averaged over factors, on the train and test
    sets (as disentanglement_lib; the paper uses a prediction error).

    Args:
        codes_train, codes_test: (N, D) float representations.
        factors_train, factors_test: (N, K) integer factor classes.
        n_jobs: joblib workers for the per-factor classifiers (-1: all cores). The
            result does not depend on it.
        boosting: ``"sklearn"`` (the reference's estimator) or ``"fast"``.

    Returns:
        ``{"disentanglement", "completeness", "informativeness_train",
        "informativeness_test"}``.

    Factors constant on the training set are skipped with a ``MetricWarning``; a test
    class unseen in training is scored as misclassified (with a ``MetricWarning``).
    """
    check_boosting(boosting, f"{METRIC}: boosting")
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test, METRIC
    )
    keep = nonconstant_factors(factors_train, METRIC)
    factors_train, factors_test = factors_train[:, keep], factors_test[:, keep]
    warn_unseen_test_classes(factors_train, factors_test, METRIC)

    num_factors = factors_train.shape[1]
    workers = max(1, min(effective_n_jobs(n_jobs), num_factors))
    results = Parallel(n_jobs=workers)(
        delayed(_fit_factor)(codes_train, factors_train[:, j], codes_test, factors_test[:, j],
                             boosting)
        for j in range(num_factors)
    )
    importance = np.stack([r[0] for r in results], axis=1)  # (D, K)
    return {
        "disentanglement": disentanglement_from_importance(importance),
        "completeness": completeness_from_importance(importance),
        "informativeness_train": float(np.mean([r[1] for r in results])),
        "informativeness_test": float(np.mean([r[2] for r in results])),
    }
