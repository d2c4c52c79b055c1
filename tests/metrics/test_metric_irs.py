import numpy as np
import pytest

from disbench.metrics import MetricWarning, compute_irs


def test_irs_hand_computed():
    # Grid v1 = [0, 0, 1, 1], v2 = [0, 1, 0, 1]; diff_quantile = 1 (the paper's max).
    # z1 = v1: mean .5, max deviation .5.
    #   fix v1: groups {0, 0}, {1, 1} deviate 0      -> IRS = 1 - 0 / .5 = 1
    #   fix v2: groups {0, 1}, {0, 1} deviate .5     -> IRS = 1 - .5 / .5 = 0;  best: 1
    # z2 = v1 + 2 v2 = [0, 2, 1, 3]: mean 1.5, max deviation 1.5.
    #   fix v1: groups {0, 2}, {1, 3} deviate 1      -> IRS = 1 - 1 / 1.5 = 1/3
    #   fix v2: groups {0, 1}, {2, 3} deviate .5     -> IRS = 1 - .5 / 1.5 = 2/3; best: 2/3
    # IRS = average weighted by max deviations = (.5 * 1 + 1.5 * 2/3) / 2 = 0.75.
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = np.array([[0.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 3.0]])
    result = compute_irs(codes, factors, diff_quantile=1.0)
    assert result["irs"] == pytest.approx(0.75, abs=1e-12)
    assert result["num_active_dims"] == 2.0
    # A constant (collapsed) code is dropped: same score, still 2 active dims -- the
    # reference would report sum(code values) here instead of the count.
    padded = np.column_stack([codes, np.full(4, 5.0)])
    assert compute_irs(padded, factors, diff_quantile=1.0) == result


def test_irs_identity_high_rotation_lower(toy):
    identity = compute_irs(toy.identity, toy.factors)
    rotated = compute_irs(toy.rotated, toy.factors)
    assert identity["irs"] > 0.85
    assert rotated["irs"] < identity["irs"] - 0.2
    assert identity["num_active_dims"] == 3.0


def test_irs_all_constant_codes_zero(toy):
    result = compute_irs(np.ones((len(toy.factors), 4)), toy.factors)
    assert result == {"irs": 0.0, "num_active_dims": 0.0}


def _reference_irs(codes_t, factors_t, diff_quantile, num_bins):
    """disentanglement_lib's layout and steps (codes/factors as rows), written independently."""
    ys = np.zeros_like(factors_t, dtype=float)
    for j, row in enumerate(factors_t):
        ys[j] = np.digitize(row, np.histogram(row, num_bins)[1][:-1])
    mus = codes_t[codes_t.var(axis=1) > 0]
    latents, gen = mus.T, ys.T
    max_dev = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    irs = np.zeros((latents.shape[1], gen.shape[1]))
    for i in range(latents.shape[1]):
        for j in range(gen.shape[1]):
            devs = []
            for value in np.unique(gen[:, j]):
                group = latents[gen[:, j] == value, i]
                devs.append(np.quantile(np.abs(group - group.mean()), diff_quantile))
            irs[i, j] = 1 - np.mean(devs) / max_dev[i]
    return np.average(irs.max(axis=1), weights=max_dev), mus.shape[0]


@pytest.mark.parametrize(("diff_quantile", "num_bins"), [(0.99, 20), (1.0, 20), (0.5, 3)])
def test_irs_matches_reference_loop(diff_quantile, num_bins):
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 6, size=(250, 3))
    codes = factors @ rng.normal(size=(3, 4)) + rng.normal(size=(250, 4))
    codes[:, 1] = -1.0
    expected, active = _reference_irs(codes.T, factors.T, diff_quantile, num_bins)
    result = compute_irs(codes, factors, diff_quantile=diff_quantile, num_bins=num_bins)
    assert result["irs"] == pytest.approx(expected, abs=1e-12)
    assert result["num_active_dims"] == active == 3


def test_irs_accepts_real_valued_factors():
    rng = np.random.default_rng(1)
    factors = rng.random((300, 2))
    result = compute_irs(factors + 0.01 * rng.normal(size=(300, 2)), factors)
    assert 0.5 < result["irs"] <= 1.0


def test_irs_skips_constant_factor(toy):
    factors = np.column_stack([toy.factors, np.full(len(toy.factors), 2)])
    with pytest.warns(MetricWarning, match="IRS: factor"):
        result = compute_irs(toy.identity, factors)
    assert result == compute_irs(toy.identity, toy.factors)
