"""Separated Attribute Predictability (SAP) score.

Kumar, Sattigeri & Balakrishnan (2018), "Variational Inference of Disentangled Latent
Concepts from Unlabeled Observations", ICLR, Section 3. Estimator as in
disentanglement_lib ``evaluation/metrics/sap_score.py``.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from disbench.metrics.utils import (
    check_num_codes,
    check_train_test,
    nonconstant_factors,
    warn_unseen_test_classes,
)

METRIC = "SAP"


def _r2_score_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """S_ij = Cov(z_i, v_j)^2 / (Var z_i Var v_j), 0 where Var z_i <= 1e-12 (as reference)."""
    n = codes.shape[0]
    z = codes - codes.mean(axis=0)
    v = factors - factors.mean(axis=0)
    cov = z.T @ v / (n - 1)
    var_z = np.sum(z**2, axis=0) / (n - 1)
    var_v = np.sum(v**2, axis=0) / (n - 1)
    scores = np.zeros_like(cov)
    active = var_z > 1e-12
    scores[active] = cov[active] ** 2 / np.outer(var_z[active], var_v)
    return scores


def _accuracy_score_matrix(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
) -> np.ndarray:
    """S_ij = test accuracy of a linear SVM predicting factor j from code i alone."""
    scores = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    for i in range(codes_train.shape[1]):
        for j in range(factors_train.shape[1]):
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
            classifier.fit(codes_train[:, [i]], factors_train[:, j])
            pred = classifier.predict(codes_test[:, [i]])
            scores[i, j] = np.mean(pred == factors_test[:, j])
    return scores


def compute_sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """SAP score: mean over factors of the gap between the two most predictive codes.

    A (D, K) score matrix S rates how well each single code dimension predicts each
    factor; SAP = 1/K * sum_j [S_(1)j - S_(2)j] (top-two gap per factor).

    * discrete factors (default): S_ij is the test accuracy of
      ``LinearSVC(C=0.01, class_weight="balanced")`` trained on code i alone;
    * ``continuous_factors=True``: S_ij is the R^2 of a linear fit,
      Cov(z_i, v_j)^2 / (Var z_i Var v_j), on the TRAIN arrays only (the test arrays
      are validated but unused, as in disentanglement_lib); factors may be real-valued.

    Args:
        codes_train, codes_test: (N, D) float representations, D >= 2.
        factors_train, factors_test: (N, K) factors.
        continuous_factors: see above.

    Returns:
        ``{"sap": float}``.

    Factors constant on the training set are skipped with a ``MetricWarning``; in the
    discrete case a test class unseen in training is scored as misclassified
    (with a ``MetricWarning``).
    """
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test, METRIC,
        discrete=not continuous_factors,
    )
    check_num_codes(codes_train, METRIC, 2)
    keep = nonconstant_factors(factors_train, METRIC)
    factors_train, factors_test = factors_train[:, keep], factors_test[:, keep]

    if continuous_factors:
        scores = _r2_score_matrix(codes_train, factors_train)
    else:
        warn_unseen_test_classes(factors_train, factors_test, METRIC)
        scores = _accuracy_score_matrix(codes_train, factors_train, codes_test, factors_test)
    top_two = np.sort(scores, axis=0)[::-1][:2]
    return {"sap": float(np.mean(top_two[0] - top_two[1]))}
