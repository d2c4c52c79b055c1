import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from disbench.errors import DisbenchError
from disbench.metrics.utils import (
    MetricInputError,
    check_codes,
    check_factors,
    discrete_entropy,
    discrete_mutual_info,
    discretize,
)


def test_discretize_hand_case():
    # num_bins=2 over [0, 1]: edges [0, .5, 1]; np.digitize against the left edges
    # [0, .5] maps 0 -> 1, .25 -> 1, .5 -> 2 and the maximum 1 -> 2.
    codes = np.array([[0.0, 7.0], [0.25, 7.0], [0.5, 7.0], [1.0, 7.0]])
    out = discretize(codes, num_bins=2)
    np.testing.assert_array_equal(out[:, 0], [1, 1, 2, 2])
    # A constant column c falls into one bin: np.histogram uses the range [c - .5, c + .5],
    # edges [6.5, 7, 7.5], so 7 lands in the second bin.
    np.testing.assert_array_equal(out[:, 1], [2, 2, 2, 2])
    assert out.dtype == np.int64


@pytest.mark.parametrize("num_bins", [1, 3, 20])
def test_discretize_matches_histogram_digitize(num_bins):
    codes = np.random.default_rng(0).normal(size=(300, 4)) * [1, 10, 0.01, 1]
    expected = np.stack(
        [np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in codes.T], axis=1
    )
    out = discretize(codes, num_bins)
    np.testing.assert_array_equal(out, expected)
    assert out.min() >= 1 and out.max() == num_bins


def test_discrete_mutual_info_equals_sklearn():
    rng = np.random.default_rng(0)
    n = 500
    codes = np.stack(
        [
            rng.integers(0, 20, n),
            rng.integers(0, 2, n),
            np.zeros(n, dtype=int),  # constant
            rng.permutation(n),  # every value distinct
            rng.integers(-5, 5, n) * 1000,
        ],
        axis=1,
    )
    factors = np.stack([rng.integers(0, 3, n), codes[:, 0] // 4, np.full(n, 9)], axis=1)
    m = discrete_mutual_info(codes, factors)
    assert m.shape == (5, 3)
    for i in range(codes.shape[1]):
        for j in range(factors.shape[1]):
            assert m[i, j] == pytest.approx(
                mutual_info_score(factors[:, j], codes[:, i]), abs=1e-12
            )


def test_discrete_mutual_info_hand_case():
    # z = v exactly: I = H(v) = ln 2 for a balanced binary factor; independent: I = 0.
    v = np.array([[0], [0], [1], [1]])
    z = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_allclose(discrete_mutual_info(z, v), [[np.log(2)], [0.0]], atol=1e-15)


def test_discrete_entropy():
    factors = np.array([[0, 5, 1], [0, 5, 2], [1, 5, 3], [1, 5, 4]])
    np.testing.assert_allclose(discrete_entropy(factors), [np.log(2), 0.0, np.log(4)])
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, size=(200, 3))
    expected = [mutual_info_score(col, col) for col in y.T]
    np.testing.assert_allclose(discrete_entropy(y), expected, atol=1e-12)


def test_check_codes_and_factors_accept_and_convert():
    codes = check_codes(np.arange(6, dtype=np.int32).reshape(3, 2), "X")
    assert codes.dtype == np.float64
    factors = check_factors(np.array([[1.0], [2.0], [3.0]]), "X", num_samples=3)
    assert factors.dtype == np.int64
    np.testing.assert_array_equal(factors[:, 0], [1, 2, 3])
    real = check_factors(np.array([[0.5], [2.0]]), "X", discrete=False)
    assert real.dtype == np.float64


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "1 NaN/inf"),
        (np.array([[0.0, np.inf], [1.0, -np.inf]]), "2 NaN/inf"),
        (np.zeros(5), "2-D array of shape"),
        (np.zeros((4, 2, 2)), "ndim=3"),
        (np.zeros((1, 3)), "at least 2 samples"),
        (np.zeros((0, 3)), "at least 2 samples"),
        (np.zeros((5, 0)), "at least one column"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
        (np.ones((3, 2), dtype=complex), "numeric"),
    ],
)
def test_check_codes_errors(array, match):
    with pytest.raises(MetricInputError, match=match) as info:
        check_codes(array, "MyMetric")
    assert str(info.value).startswith("MyMetric: codes")


def test_check_factors_errors():
    with pytest.raises(MetricInputError, match="MyMetric: factors has 3 samples .* have 4"):
        check_factors(np.zeros((3, 1)), "MyMetric", num_samples=4)
    with pytest.raises(MetricInputError, match="MyMetric: factors must hold integer"):
        check_factors(np.array([[0.5], [1.0]]), "MyMetric")
    assert issubclass(MetricInputError, ValueError)
    assert issubclass(MetricInputError, DisbenchError)
