import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from disbench.metrics import MetricInputError, MetricWarning, compute_mig


def test_mig_hand_computed():
    # Two independent balanced binary factors on a 2x2 grid.
    #   v1 = [0, 0, 1, 1], v2 = [0, 1, 0, 1]
    # Codes: z1 = v1 and z2 = v1 AND v2 = [0, 0, 0, 1]. H(v1) = H(v2) = ln 2.
    #   I(z1; v1) = ln 2, I(z1; v2) = 0.
    #   I(z2; v1) = H(z2) - H(z2 | v1) = H(1/4, 3/4) - 0.5 ln 2 = 1.5 ln 2 - 0.75 ln 3,
    #   and I(z2; v2) is the same by symmetry (about 0.216 nats).
    # Gap for v1: [ln 2 - (1.5 ln 2 - 0.75 ln 3)] / ln 2 = 0.75 log2(3) - 0.5
    # Gap for v2: [(1.5 ln 2 - 0.75 ln 3) - 0] / ln 2 = 1.5 - 0.75 log2(3)
    # MIG = mean = (0.75 log2 3 - 0.5 + 1.5 - 0.75 log2 3) / 2 = 0.5.
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert compute_mig(codes, factors)["mig"] == pytest.approx(0.5, abs=1e-12)
    # Swapping the code columns does not change MIG.
    assert compute_mig(codes[:, ::-1], factors)["mig"] == pytest.approx(0.5, abs=1e-12)


def test_mig_identity_near_one(toy):
    assert compute_mig(toy.identity, toy.factors)["mig"] > 0.95


def test_mig_rotation_lower_than_identity(toy):
    identity = compute_mig(toy.identity, toy.factors)["mig"]
    rotated = compute_mig(toy.rotated, toy.factors)["mig"]
    assert rotated < identity - 0.3


def test_mig_constant_and_duplicated_codes_zero(toy):
    constant = np.zeros((toy.factors.shape[0], 3))
    assert compute_mig(constant, toy.factors)["mig"] == 0.0
    duplicated = np.repeat(toy.identity[:, :1], 3, axis=1)
    assert compute_mig(duplicated, toy.factors)["mig"] == pytest.approx(0.0, abs=1e-12)


def test_mig_constant_code_dimension_is_legal(toy):
    codes = np.column_stack([toy.identity, np.full(toy.factors.shape[0], 3.0)])
    assert compute_mig(codes, toy.factors)["mig"] == compute_mig(toy.identity, toy.factors)["mig"]


def test_mig_skips_constant_factor_with_warning(toy):
    factors = np.column_stack([toy.factors, np.zeros(toy.factors.shape[0], dtype=int)])
    with pytest.warns(MetricWarning, match=r"MIG: factor\(s\) \[3\] are constant"):
        result = compute_mig(toy.identity, factors)
    assert result["mig"] == compute_mig(toy.identity, toy.factors)["mig"]
    with pytest.raises(MetricInputError, match="MIG: every factor is constant"):
        compute_mig(toy.identity, np.zeros_like(toy.factors))


def _reference_mig(codes_t, factors_t, num_bins):
    """disentanglement_lib's layout (codes as rows) and loops, written independently."""
    discrete = np.zeros_like(codes_t)
    for i, row in enumerate(codes_t):
        discrete[i] = np.digitize(row, np.histogram(row, num_bins)[1][:-1])
    mi = np.array([[mutual_info_score(y, z) for y in factors_t] for z in discrete])
    entropy = np.array([mutual_info_score(y, y) for y in factors_t])
    gaps = []
    for j in range(factors_t.shape[0]):
        best, second = sorted(mi[:, j], reverse=True)[:2]
        gaps.append((best - second) / entropy[j])
    return float(np.mean(gaps))


@pytest.mark.parametrize("num_bins", [5, 20])
def test_mig_matches_reference_formula(num_bins):
    rng = np.random.default_rng(3)
    factors = rng.integers(0, 5, size=(300, 3))
    codes = factors @ rng.normal(size=(3, 4)) + rng.normal(size=(300, 4))
    expected = _reference_mig(codes.T, factors.T, num_bins)
    assert compute_mig(codes, factors, num_bins)["mig"] == pytest.approx(expected, abs=1e-12)


def test_mig_returns_python_float(toy):
    result = compute_mig(toy.identity, toy.factors)
    assert list(result) == ["mig"] and type(result["mig"]) is float
