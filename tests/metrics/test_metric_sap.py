import numpy as np
import pytest
from sklearn.svm import LinearSVC

from disbench.metrics import MetricWarning, compute_sap


def test_sap_continuous_hand_computed():
    # v = [0, 1, 2, 3] (centred: [-1.5, -.5, .5, 1.5], Var = 5/3 with ddof=1).
    # z_a = [1, -1, -1, 1] is orthogonal to the centred v: R^2 = 0.
    # z_b = v + z_a: Cov(z_b, v) = 5/3, Var z_b = 5/3 + 4/3 = 3,
    #   R^2 = (5/3)^2 / (3 * 5/3) = 5/9.
    # SAP = top1 - top2 = 5/9 - 0.
    v = np.array([[0.0], [1.0], [2.0], [3.0]])
    z_a = np.array([1.0, -1.0, -1.0, 1.0])
    codes = np.column_stack([z_a, v[:, 0] + z_a])
    result = compute_sap(codes, v, codes, v, continuous_factors=True)
    assert result["sap"] == pytest.approx(5 / 9, abs=1e-12)
    # Adding the perfect code z = v: top1 = 1, top2 = 5/9.
    codes = np.column_stack([codes, v])
    assert compute_sap(codes, v, codes, v, continuous_factors=True)["sap"] == pytest.approx(4 / 9)


def test_sap_continuous_accepts_real_factors_and_constant_codes():
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(100, 2))
    codes = np.column_stack([factors, np.zeros(100)])
    # Each factor: top1 = R^2 with its own code = 1, top2 = R^2 with the other factor's
    # code = r^2 (sample correlation of the two factors); the constant code scores 0.
    r = np.corrcoef(factors.T)[0, 1]
    result = compute_sap(codes, factors, codes, factors, continuous_factors=True)
    assert result["sap"] == pytest.approx(1 - r**2, abs=1e-12)


def test_sap_continuous_matches_reference_loop():
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 6, size=(200, 3)).astype(float)
    codes = factors @ rng.normal(size=(3, 5)) + rng.normal(size=(200, 5))
    codes[:, 4] = 2.0  # constant code: reference gives it score 0
    scores = np.zeros((5, 3))
    for i in range(5):
        for j in range(3):
            c = np.cov(codes[:, i], factors[:, j], ddof=1)
            scores[i, j] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1]) if c[0, 0] > 1e-12 else 0.0
    ordered = np.sort(scores, axis=0)
    expected = np.mean(ordered[-1] - ordered[-2])
    result = compute_sap(codes, factors, codes, factors, continuous_factors=True)
    assert result["sap"] == pytest.approx(expected, abs=1e-12)


def test_sap_discrete_matches_reference_loop():
    rng = np.random.default_rng(2)
    factors = rng.integers(0, 3, size=(120, 2))
    codes = factors @ rng.normal(size=(2, 3)) + 0.3 * rng.normal(size=(120, 3))
    tr, te = slice(0, 80), slice(80, 120)
    scores = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            clf = LinearSVC(C=0.01, class_weight="balanced")
            clf.fit(codes[tr, i : i + 1], factors[tr, j])
            scores[i, j] = np.mean(clf.predict(codes[te, i : i + 1]) == factors[te, j])
    ordered = np.sort(scores, axis=0)
    expected = np.mean(ordered[-1] - ordered[-2])
    assert compute_sap(codes[tr], factors[tr], codes[te], factors[te])["sap"] == pytest.approx(
        expected, abs=1e-12
    )


def test_sap_binary_identity_vs_rotation():
    # With binary factors a code that equals its factor is classified perfectly while the
    # other (independent) code is at chance: SAP close to 1 - 0.5.
    rng = np.random.default_rng(3)
    factors = rng.integers(0, 2, size=(600, 2))
    codes = factors + 0.05 * rng.normal(size=(600, 2))
    angle = np.pi / 4
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tr, te = slice(0, 400), slice(400, 600)
    identity = compute_sap(codes[tr], factors[tr], codes[te], factors[te])["sap"]
    rotated = compute_sap(codes[tr] @ rotation, factors[tr], codes[te] @ rotation, factors[te])
    assert identity == pytest.approx(0.5, abs=0.06)
    assert rotated["sap"] < 0.15


def test_sap_constant_codes_zero_and_deterministic(toy):
    constant_train = np.zeros((len(toy.factors_train), 3))
    constant_test = np.zeros((len(toy.factors_test), 3))
    assert compute_sap(constant_train, toy.factors_train, constant_test, toy.factors_test) == {
        "sap": 0.0
    }
    args = (toy.identity_train, toy.factors_train, toy.identity_test, toy.factors_test)
    assert compute_sap(*args) == compute_sap(*args)


def test_sap_skips_constant_factor():
    v = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    codes = np.column_stack([v[:, 0], [1.0, -1.0, -1.0, 1.0]])
    with pytest.warns(MetricWarning, match=r"SAP: factor\(s\) \[1\] are constant"):
        result = compute_sap(codes, v, codes, v, continuous_factors=True)
    assert result["sap"] == pytest.approx(1.0)
