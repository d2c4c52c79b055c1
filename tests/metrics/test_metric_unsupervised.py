import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import mutual_info_score

from disbench.metrics import MetricWarning, compute_unsupervised
from disbench.metrics.unsupervised import gaussian_wasserstein_correlation

KEYS = [
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm",
    "mutual_info_score",
]


def codes_with_covariance(target: np.ndarray, n: int = 500, seed: int = 0) -> np.ndarray:
    """Codes whose np.cov is exactly ``target``: whiten random data, then colour it."""
    x = np.random.default_rng(seed).normal(size=(n, target.shape[0]))
    x = x - x.mean(axis=0)
    whitened = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return whitened @ np.linalg.cholesky(target).T + 3.0


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.8])
def test_total_correlation_closed_form_2d(rho):
    # Unit variances, correlation rho: TC = 0.5 * (0 - log(1 - rho^2)).
    # Wasserstein: sqrtm([[1, rho], [rho, 1]]) has eigenvalues sqrt(1 +- rho), so
    # W = 2 * 2 - 2 * (sqrt(1 + rho) + sqrt(1 - rho)), and W_norm = W / tr = W / 2.
    cov = np.array([[1.0, rho], [rho, 1.0]])
    scores = compute_unsupervised(codes_with_covariance(cov))
    assert list(scores) == KEYS and all(type(v) is float for v in scores.values())
    tc = -0.5 * np.log(1 - rho**2)
    wasserstein = 4 - 2 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    assert scores["gaussian_total_correlation"] == pytest.approx(tc, abs=1e-9)
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(wasserstein, abs=1e-9)
    norm = scores["gaussian_wasserstein_correlation_norm"]
    assert norm == pytest.approx(wasserstein / 2, abs=1e-9)


def test_total_correlation_ignores_scale_and_independent_dims():
    # Block covariance: a correlated pair (rho = .6, variances 4 and 9) and an independent
    # third code. TC is scale-invariant and additive over independent blocks.
    rho = 0.6
    cov = np.array([[4.0, rho * 6.0, 0.0], [rho * 6.0, 9.0, 0.0], [0.0, 0.0, 0.25]])
    scores = compute_unsupervised(codes_with_covariance(cov))
    assert scores["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - rho**2))


def test_diagonal_covariance_is_zero():
    cov = np.diag([1.0, 4.0, 0.5])
    scores = compute_unsupervised(codes_with_covariance(cov))
    assert scores["gaussian_total_correlation"] == pytest.approx(0.0, abs=1e-10)
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(0.0, abs=1e-10)
    assert scores["gaussian_wasserstein_correlation_norm"] == pytest.approx(0.0, abs=1e-10)


def test_wasserstein_matches_reference_form():
    # disentanglement_lib: 2 tr(S) - 2 tr(sqrtm(S * diag(S)[:, None])).
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T + 0.1 * np.eye(5)
    expected = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None]))
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(np.real(expected), abs=1e-9)


def test_mutual_info_score_hand_and_reference():
    # z1 = z2 = [0, 0, 1, 1]: both off-diagonal MI entries are ln 2 -> mean ln 2.
    codes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    assert compute_unsupervised(codes)["mutual_info_score"] == pytest.approx(np.log(2))
    # z2 = [0, 1, 0, 1] is independent of z1 on this grid -> 0.
    codes[:, 1] = [0.0, 1.0, 0.0, 1.0]
    assert compute_unsupervised(codes)["mutual_info_score"] == pytest.approx(0.0, abs=1e-15)

    rng = np.random.default_rng(1)
    codes = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    discrete = [np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes.T]
    pairs = [mutual_info_score(a, b) for i, a in enumerate(discrete)
             for j, b in enumerate(discrete) if i != j]
    assert compute_unsupervised(codes)["mutual_info_score"] == pytest.approx(np.mean(pairs))


def test_constant_code_dimension_is_legal():
    rho = 0.5
    codes = codes_with_covariance(np.array([[1.0, rho], [rho, 1.0]]))
    padded = np.column_stack([codes, np.full(len(codes), 0.1)])  # 0.1: np.cov round-off
    scores = compute_unsupervised(padded)
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - rho**2))
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(
        compute_unsupervised(codes)["gaussian_wasserstein_correlation"]
    )


def test_all_constant_and_single_code_give_documented_nans():
    with pytest.warns(MetricWarning, match="Unsupervised scores: every code dimension is constant"):
        scores = compute_unsupervised(np.ones((10, 3)))
    assert scores["gaussian_total_correlation"] == 0.0
    assert scores["gaussian_wasserstein_correlation"] == 0.0
    assert np.isnan(scores["gaussian_wasserstein_correlation_norm"])
    assert scores["mutual_info_score"] == 0.0
    with pytest.warns(MetricWarning, match="Unsupervised scores: the mutual-information score"):
        scores = compute_unsupervised(np.arange(10.0)[:, None])
    assert np.isnan(scores["mutual_info_score"])
    assert scores["gaussian_total_correlation"] == 0.0


def test_duplicated_codes_infinite_total_correlation():
    x = np.random.default_rng(2).normal(size=(50, 1))
    assert compute_unsupervised(np.hstack([x, x]))["gaussian_total_correlation"] == np.inf
