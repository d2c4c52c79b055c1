"""Unsupervised scores of a representation: no ground-truth factors needed.

Locatello et al. (2019), "Challenging Common Assumptions in the Unsupervised Learning
of Disentangled Representations", ICML (Section 4 and Appendix). Estimators as in
disentanglement_lib ``evaluation/metrics/unsupervised_metrics.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from disbench.metrics.utils import (
    MetricWarning,
    check_codes,
    check_num_bins,
    discrete_mutual_info,
    discretize,
)

METRIC = "Unsupervised scores"


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """Total correlation of N(0, cov): KL(N(0, cov) || N(0, diag(cov))).

    TC = 0.5 * (sum_i log cov_ii - log det cov). Zero-variance (constant) dimensions are
    independent of the rest and contribute 0, so they are left out (the reference
    returns NaN when a code is constant). A singular covariance among the varying
    dimensions (linearly dependent codes) gives +inf.
    """
    active = np.diag(cov) > 0
    cov = cov[np.ix_(active, active)]
    if cov.size == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return float("inf")
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, diag(cov)).

    W = tr(S) + tr(D) - 2 tr((D^1/2 S D^1/2)^1/2) with D = diag(S), i.e.
    2 tr(S) - 2 tr(sqrtm(D^1/2 S D^1/2)). disentanglement_lib writes the last term as
    tr(sqrtm(D S)); D S is similar to D^1/2 S D^1/2, so the trace is the same, and the
    symmetric form keeps the square root real. Constant dimensions contribute 0 to
    both traces and are left out.
    """
    active = np.diag(cov) > 0
    cov = cov[np.ix_(active, active)]
    if cov.size == 0:
        return 0.0
    root_diag = np.sqrt(np.diag(cov))
    root = scipy.linalg.sqrtm(root_diag[:, None] * cov * root_diag[None, :])
    return float(2.0 * np.trace(cov) - 2.0 * np.real(np.trace(root)))


def compute_unsupervised(codes: np.ndarray, num_bins: int = 20) -> dict[str, float]:
    """Gaussian total correlation, Gaussian Wasserstein correlation and mean pairwise MI.

    All three measure dependence between code dimensions (0 for independent codes):

    * ``gaussian_total_correlation`` and ``gaussian_wasserstein_correlation`` of a
      Gaussian with the codes' sample covariance (``np.cov``, ddof=1);
    * ``gaussian_wasserstein_correlation_norm``: the latter divided by tr(cov);
    * ``mutual_info_score``: mean over ordered pairs i != j of the plug-in MI (nats)
      between histogram-discretised codes i and j, sum_{i != j} MI_ij / (D^2 - D).

    Args:
        codes: (N, D) float representation.
        num_bins: histogram bins per code dimension for the MI.

    Returns:
        dict with the four scores above. Undefined scores are NaN with a
        ``MetricWarning``: the normalised Wasserstein correlation when every code is
        constant (tr(cov) = 0), and the mutual-information score when D = 1.
    """
    codes = check_codes(codes, METRIC)
    num_bins = check_num_bins(num_bins, METRIC)
    num_codes = codes.shape[1]
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    # Make constant codes exactly zero-variance (np.cov can leave ~1e-34 round-off).
    constant = np.ptp(codes, axis=0) == 0
    cov[constant, :] = 0.0
    cov[:, constant] = 0.0

    wasserstein = gaussian_wasserstein_correlation(cov)
    trace = float(np.trace(cov))
    if trace > 0:
        wasserstein_norm = wasserstein / trace
    else:
        warnings.warn(
            f"{METRIC}: every code dimension is constant, so the normalised Wasserstein "
            f"correlation (divided by tr(cov) = 0) is NaN.",
            MetricWarning,
            stacklevel=2,
        )
        wasserstein_norm = float("nan")

    if num_codes > 1:
        discrete = discretize(codes, num_bins)
        mi = discrete_mutual_info(discrete, discrete)
        mutual_info = float((mi.sum() - np.trace(mi)) / (num_codes**2 - num_codes))
    else:
        warnings.warn(
            f"{METRIC}: the mutual-information score needs at least 2 code dimensions; "
            f"returning NaN.",
            MetricWarning,
            stacklevel=2,
        )
        mutual_info = float("nan")

    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein_norm,
        "mutual_info_score": mutual_info,
    }
