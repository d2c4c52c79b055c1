"""Mutual Information Gap (MIG).

Chen, Li, Grosse & Duvenaud (2018), "Isolating Sources of Disentanglement in
Variational Autoencoders", NeurIPS, Section "Mutual Information Gap". Estimator as in
disentanglement_lib ``evaluation/metrics/mig.py`` (histogram-discretised codes,
plug-in mutual information).
"""

from __future__ import annotations

import numpy as np

from disbench.metrics.utils import (
    check_codes,
    check_factors,
    check_num_bins,
    check_num_codes,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
    nonconstant_factors,
)

METRIC = "MIG"


def compute_mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """Mutual Information Gap of a representation.

    MIG = 1/K * sum_k [ I(z_(1); v_k) - I(z_(2); v_k) ] / H(v_k)

    where z_(1), z_(2) are the code dimensions with the largest and second-largest
    mutual information with factor v_k. Codes are discretised into ``num_bins``
    equal-width histogram bins per dimension; MI and entropy are plug-in estimates
    in nats.

    Args:
        codes: (N, D) float representation, D >= 2.
        factors: (N, K) integer factor classes.
        num_bins: histogram bins per code dimension (disentanglement_lib uses 20).

    Returns:
        ``{"mig": float}`` in [0, 1].

    Constant factors have H(v_k) = 0 and the ratio is undefined (the reference returns
    NaN): they are skipped with a ``MetricWarning``; if all factors are constant a
    ``MetricInputError`` is raised.
    """
    codes = check_codes(codes, METRIC)
    factors = check_factors(factors, METRIC, num_samples=codes.shape[0])
    check_num_codes(codes, METRIC, 2)
    num_bins = check_num_bins(num_bins, METRIC)
    factors = factors[:, nonconstant_factors(factors, METRIC)]

    mi = discrete_mutual_info(discretize(codes, num_bins), factors)  # (D, K)
    entropy = discrete_entropy(factors)  # (K,)
    top_two = np.sort(mi, axis=0)[::-1][:2]
    gap = (top_two[0] - top_two[1]) / entropy
    return {"mig": float(np.mean(gap))}
