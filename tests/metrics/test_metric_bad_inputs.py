"""Every metric rejects bad input with one MetricInputError that names the metric."""

import numpy as np
import pytest

from disbench.metrics import (
    MetricInputError,
    compute_dci,
    compute_irs,
    compute_mig,
    compute_modularity_explicitness,
    compute_sap,
    compute_unsupervised,
)
from disbench.metrics.utils import MetricWarning

RNG = np.random.default_rng(0)
FACTORS = RNG.integers(0, 3, size=(60, 2))
CODES = FACTORS + 0.1 * RNG.normal(size=(60, 2))


def _split(fn):
    """Adapt a train/test metric to (codes, factors): first 40 rows train, rest test."""
    return lambda codes, factors, **kw: fn(codes[:40], factors[:40], codes[40:], factors[40:], **kw)


# name in messages -> (function of (codes, factors), uses factors, has num_bins)
METRICS = {
    "MIG": (compute_mig, True, True),
    "DCI": (_split(lambda *a, **kw: compute_dci(*a, n_jobs=1, **kw)), True, False),
    "SAP": (_split(compute_sap), True, False),
    "Modularity/explicitness": (_split(compute_modularity_explicitness), True, True),
    "IRS": (compute_irs, True, True),
    "Unsupervised scores": (
        lambda codes, factors, **kw: compute_unsupervised(codes, **kw), False, True
    ),
}


def _with(array, index, value):
    array = array.astype(float).copy()
    array[index] = value
    return array


BAD_CODES = {
    "nan": (_with(CODES, (3, 1), np.nan), FACTORS, "NaN/inf"),
    "inf": (_with(CODES, (50, 0), np.inf), FACTORS, "NaN/inf"),
    "1-D": (CODES[:, 0], FACTORS, "2-D array"),
    "3-D": (CODES[:, :, None], FACTORS, "2-D array"),
    "strings": (CODES.astype(str), FACTORS, "numeric"),
    "no columns": (CODES[:, :0], FACTORS, "at least one column"),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", BAD_CODES)
def test_bad_codes(metric, case):
    fn = METRICS[metric][0]
    codes, factors, match = BAD_CODES[case]
    with pytest.raises(MetricInputError, match=match) as info:
        fn(codes, factors)
    assert str(info.value).startswith(f"{metric}: ")


@pytest.mark.parametrize("metric", ["MIG", "IRS", "Unsupervised scores"])
def test_single_sample(metric):
    with pytest.raises(MetricInputError, match=f"^{metric}: codes has 1 sample") as info:
        METRICS[metric][0](CODES[:1], FACTORS[:1])
    assert "at least 2 samples" in str(info.value)


@pytest.mark.parametrize("metric", ["DCI", "SAP", "Modularity/explicitness"])
def test_single_test_sample(metric):
    fn = METRICS[metric][0]
    with pytest.raises(MetricInputError, match=f"^{metric}: codes_test has 1 sample"):
        fn(CODES[:41], FACTORS[:41])


@pytest.mark.parametrize("metric", ["MIG", "IRS"])
def test_mismatched_lengths(metric):
    with pytest.raises(MetricInputError, match=f"^{metric}: factors has 59 samples .* have 60"):
        METRICS[metric][0](CODES, FACTORS[:-1])


@pytest.mark.parametrize("metric", ["DCI", "SAP", "Modularity/explicitness"])
def test_mismatched_lengths_train_test(metric):
    fn = METRICS[metric][0]
    with pytest.raises(MetricInputError, match=f"^{metric}: factors_test has 19 samples .* 20"):
        fn(CODES, FACTORS[:-1])
    fn = {"DCI": compute_dci, "SAP": compute_sap,
          "Modularity/explicitness": compute_modularity_explicitness}[metric]
    with pytest.raises(MetricInputError, match=f"^{metric}: factors_train has 39 samples .* 40"):
        fn(CODES[:40], FACTORS[:39], CODES[40:], FACTORS[40:])


@pytest.mark.parametrize("metric", [m for m in METRICS if METRICS[m][1] and m != "IRS"])
def test_non_integer_factors(metric):
    with pytest.raises(MetricInputError, match=f"^{metric}: .*must hold integer class labels"):
        METRICS[metric][0](CODES, FACTORS + 0.5)


@pytest.mark.parametrize("metric", [m for m in METRICS if METRICS[m][1]])
def test_nan_factors(metric):
    with pytest.raises(MetricInputError, match=f"^{metric}: factors.* NaN/inf"):
        METRICS[metric][0](CODES, _with(FACTORS, (45, 0), np.nan))


@pytest.mark.parametrize("metric", [m for m in METRICS if METRICS[m][1]])
def test_all_factors_constant(metric):
    with pytest.raises(MetricInputError, match=f"^{metric}: every factor is constant"):
        METRICS[metric][0](CODES, np.ones_like(FACTORS))


@pytest.mark.parametrize("metric", ["DCI", "SAP", "Modularity/explicitness"])
def test_class_only_in_test_is_scored_with_a_warning(metric):
    # the reference scores such samples too: no classifier predicts a class it never saw
    factors = FACTORS.copy()
    factors[50, 1] = 7
    with pytest.warns(MetricWarning, match=rf"^{metric}: factor 1 has class\(es\) \[7\]"):
        scores = METRICS[metric][0](CODES, factors)
    assert all(np.isfinite(v) for v in scores.values())


@pytest.mark.parametrize("metric", ["DCI", "SAP", "Modularity/explicitness"])
def test_train_test_column_mismatch(metric):
    fn = {"DCI": compute_dci, "SAP": compute_sap,
          "Modularity/explicitness": compute_modularity_explicitness}[metric]
    with pytest.raises(MetricInputError, match=f"^{metric}: codes_train has 2 code dimensions"):
        fn(CODES[:40], FACTORS[:40], CODES[40:, :1], FACTORS[40:])
    with pytest.raises(MetricInputError, match=f"^{metric}: factors_train has 2 factors"):
        fn(CODES[:40], FACTORS[:40], CODES[40:], FACTORS[40:, :1])
    with pytest.raises(MetricInputError, match=f"^{metric}: codes_test contains 1 NaN"):
        fn(CODES[:40], FACTORS[:40], _with(CODES[40:], (0, 0), np.nan), FACTORS[40:])


@pytest.mark.parametrize("metric", ["MIG", "SAP"])
def test_gap_metrics_need_two_codes(metric):
    with pytest.raises(MetricInputError, match=f"^{metric}: needs at least 2 code dimensions"):
        METRICS[metric][0](CODES[:, :1], FACTORS)


@pytest.mark.parametrize("metric", [m for m in METRICS if METRICS[m][2]])
@pytest.mark.parametrize("num_bins", [0, -3, 2.5, True])
def test_bad_num_bins(metric, num_bins):
    with pytest.raises(MetricInputError, match=f"^{metric}: num_bins must be a positive integer"):
        METRICS[metric][0](CODES, FACTORS, num_bins=num_bins)


def test_bad_diff_quantile():
    with pytest.raises(MetricInputError, match=r"^IRS: diff_quantile must lie in \[0, 1\]"):
        compute_irs(CODES, FACTORS, diff_quantile=1.5)


@pytest.mark.parametrize("metric", METRICS)
def test_constant_code_dimension_gives_finite_scores(metric):
    codes = np.column_stack([CODES, np.zeros(len(CODES))])
    scores = METRICS[metric][0](codes, FACTORS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in scores.values())
