"""Fairness (Locatello et al. 2019, NeurIPS) against disentanglement_lib's ``fairness_test.py``
and hand-worked cases.

The exact end-to-end values use ``Cycle``, a dataset whose ``sample_factors`` walks
through its (2, 3) grid in order, so every sample is exactly balanced, and the
``leaky`` representation, a single code that shows factor 1 only when factor 0 is 0:

    code = f1 if f0 == 0 else 0.

Training on the balanced grid, the classifiers learn the majority class of each code
value: target 0 is predicted 1 from code 0 (3 of its 4 grid points have f0 = 1) and 0
otherwise; target 1 is predicted as the code (code 0: f1 = 0 in 2 of 4 points).

* (target 0, sensitive 1): do(f1 = 0) gives code 0 everywhere, all predicted 1;
  do(f1 = 1) and do(f1 = 2) give predictions f0 -> half 0, half 1. Pooled P(0) = 1/3;
  TV = 1/3, 1/6, 1/6: mean 2/9, max 1/3.
* (target 1, sensitive 0): do(f0 = 0) predicts f1 (1/3 each class); do(f0 = 1) predicts
  0. Pooled (2/3, 1/6, 1/6); TV = 1/3 and 1/3: mean 1/3, max 1/3.
"""

import numpy as np
import pytest
from suite_fixtures import SIZES, onehot, tiny_grid

from disbench.metrics import MetricInputError, MetricWarning
from disbench.metrics.fairness import (
    compute_fairness,
    fairness_from_sampler,
    inter_group_fairness,
    summarise_pairs,
)
from disbench.metrics.sampling import CodeSampler, Representation


class Cycle:
    """Factors of the given sizes; ``sample_factors`` cycles through the grid in order
    (whatever the generator), observations (N, K, 1, 1) are the factors."""

    def __init__(self, sizes=(2, 3)):
        self.factor_sizes = sizes

    def sample_factors(self, num, rng):
        grid = int(np.prod(self.factor_sizes))
        return np.stack(np.unravel_index(np.arange(num) % grid, self.factor_sizes), axis=1)

    def sample_observations_from_factors(self, factors, rng):
        return np.asarray(factors, np.float32)[:, :, None, None]


def leaky(x):
    f0, f1 = x[:, 0, 0, 0], x[:, 1, 0, 0]
    return np.where(f0 == 0, f1, 0.0)[:, None]


def identity(x):
    return x[:, :, 0, 0]


def fairness(dataset, representation_fn, **kwargs):
    kwargs = {"num_train": 600, "num_test_points_per_class": 60, "n_jobs": 1, **kwargs}
    return compute_fairness(dataset, representation_fn, **kwargs)


def keys(prefix, factors):
    pairs = [f"pred{t}:sens{s}" for t in factors for s in factors if s != t]
    per_factor = [f"{role}{f}:{agg}_{other}" for f in factors for role, other in
                  (("pred", "sens"), ("sens", "pred")) for agg in ("mean", "max")]
    overall = [f"{a}_{x}:{b}_{y}" for x, y in (("sens", "pred"), ("pred", "sens"))
               for a in ("mean", "max") for b in ("mean", "max")]
    return {f"{prefix}:{k}" for k in pairs + per_factor + overall}


# -- the reference's own cases (fairness_test.py) --------------------------------------

def test_inter_group_fairness_reference_case():
    # Pooled (1/3, 2/3); the columns (0, 1) and (1/2, 1/2) are 1/3 and 1/6 away;
    # weighted by their counts (100 and 200): 1/3 * 1/3 + 2/3 * 1/6 = 2/9.
    mean, worst = inter_group_fairness(np.array([[0, 100], [100, 100]]))
    assert mean == pytest.approx(2 / 9)
    assert worst == pytest.approx(1 / 3)


def test_summarise_pairs_reference_case():
    scores = np.array([[0.0, 2.0, 4.0], [4.0, 0.0, 8.0], [2.0, 10.0, 0.0]])
    assert summarise_pairs(scores, "test") == pytest.approx({
        "test:pred0:sens1": 2.0, "test:pred0:sens2": 4.0,
        "test:pred1:sens0": 4.0, "test:pred1:sens2": 8.0,
        "test:pred2:sens0": 2.0, "test:pred2:sens1": 10.0,
        "test:pred0:mean_sens": 3.0, "test:pred0:max_sens": 4.0,
        "test:pred1:mean_sens": 6.0, "test:pred1:max_sens": 8.0,
        "test:pred2:mean_sens": 6.0, "test:pred2:max_sens": 10.0,
        "test:sens0:mean_pred": 3.0, "test:sens0:max_pred": 4.0,
        "test:sens1:mean_pred": 6.0, "test:sens1:max_pred": 10.0,
        "test:sens2:mean_pred": 6.0, "test:sens2:max_pred": 8.0,
        "test:mean_sens:mean_pred": 5.0, "test:mean_sens:max_pred": 22.0 / 3.0,
        "test:max_sens:mean_pred": 6.0, "test:max_sens:max_pred": 10.0,
        "test:mean_pred:mean_sens": 5.0, "test:mean_pred:max_sens": 22.0 / 3.0,
        "test:max_pred:mean_sens": 6.0, "test:max_pred:max_sens": 10.0,
    }, abs=1e-12)


# -- hand-worked cases for the core ----------------------------------------------------

def test_predictions_that_ignore_the_sensitive_factor_are_fair():
    column = np.array([5, 0, 3, 12])
    assert inter_group_fairness(np.stack([column] * 4, axis=1)) == (0.0, 0.0)
    assert inter_group_fairness(np.stack([column, 2 * column], axis=1)) == pytest.approx((0, 0))


@pytest.mark.parametrize("num_values", [2, 3, 5])
def test_predicting_the_sensitive_factor_is_maximally_unfair(num_values):
    # Each value of s gets a class of its own: pooled uniform, every column a point
    # mass at TV 1 - 1/|S| from it, the maximum.
    mean, worst = inter_group_fairness(7 * np.eye(num_values, dtype=int))
    assert mean == pytest.approx(1 - 1 / num_values)
    assert worst == pytest.approx(1 - 1 / num_values)


def test_columns_are_weighted_by_their_number_of_predictions():
    # Pooled (1/4, 3/4); TV 3/4 (10 predictions) and 1/4 (30): mean 3/8, max 3/4.
    assert inter_group_fairness(np.array([[10, 0], [0, 30]])) == pytest.approx((3 / 8, 3 / 4))


def test_summarise_pairs_tells_targets_from_sensitive_factors():
    # Targets 0 and 2 are unfair to sensitive factor 1 only. Off the diagonal:
    # rows (targets) (1, 0), (0, 0), (0, 1); columns (sensitive) (0, 0), (1, 1), (0, 0).
    s = summarise_pairs(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "p")
    assert s["p:pred0:mean_sens"] == 0.5
    assert s["p:sens1:mean_pred"] == 1.0
    assert s["p:mean_pred:max_sens"] == pytest.approx(2 / 3)
    assert s["p:mean_sens:max_pred"] == pytest.approx(1 / 3)
    assert s["p:max_pred:mean_sens"] == 0.5
    assert s["p:max_sens:mean_pred"] == 1.0
    assert s["p:mean_pred:mean_sens"] == s["p:mean_sens:mean_pred"] == pytest.approx(1 / 3)


def test_summarise_pairs_keeps_the_given_factor_indices():
    s = summarise_pairs(np.array([[0.0, 0.5], [0.25, 0.0]]), "p", factors=[1, 3])
    assert set(s) == keys("p", [1, 3])
    assert s["p:pred1:sens3"] == 0.5
    assert s["p:pred3:sens1"] == 0.25
    assert s["p:sens1:max_pred"] == 0.25
    assert s["p:mean_pred:mean_sens"] == 0.375


# -- end to end ------------------------------------------------------------------------

def test_hand_worked_leaky_representation():
    s = fairness(Cycle(), leaky)
    assert set(s) == keys("mean_fairness", [0, 1]) | keys("max_fairness", [0, 1])
    assert s["mean_fairness:pred0:sens1"] == pytest.approx(2 / 9)
    assert s["max_fairness:pred0:sens1"] == pytest.approx(1 / 3)
    assert s["mean_fairness:pred1:sens0"] == pytest.approx(1 / 3)
    assert s["max_fairness:pred1:sens0"] == pytest.approx(1 / 3)
    # the paper's score: the mean over the ordered pairs
    assert s["mean_fairness:mean_pred:mean_sens"] == pytest.approx((2 / 9 + 1 / 3) / 2)
    assert s["mean_fairness:max_pred:max_sens"] == pytest.approx(1 / 3)


def test_perfect_predictions_are_fair():
    # With the other factors kept, predictions that equal the target are the same for
    # every value of the sensitive factor: exactly 0.
    assert set(fairness(Cycle(), identity).values()) == {0.0}
    s = compute_fairness(tiny_grid(), onehot, seed=3, num_train=300,
                         num_test_points_per_class=20, n_jobs=1)
    assert set(s) == keys("mean_fairness", [0, 1, 2]) | keys("max_fairness", [0, 1, 2])
    assert set(s.values()) == {0.0}


def test_fairness_from_sampler_with_a_code_table_matches_on_the_fly():
    from disbench.metrics.sampling import CodeTable

    grid, rep = tiny_grid(), Representation(onehot)
    table = CodeTable(grid, rep, SIZES, batch_size=64)
    for sampler in (CodeSampler(grid, rep, table=table), CodeSampler(grid, rep)):
        s = fairness_from_sampler(sampler, np.random.default_rng(0), num_train=200,
                                  num_test_points_per_class=10, n_jobs=1)
        assert set(s.values()) == {0.0}


class NoiseImages:
    """The reference's test data (dummy_data.DummyData), smaller: factors of 5 values,
    observations of uniform noise that ignore them."""

    factor_sizes = (5, 5, 5)

    def sample_factors(self, num, rng):
        return rng.integers(5, size=(num, 3))

    def sample_observations_from_factors(self, factors, rng):
        return rng.random((len(factors), 1, 4, 4), dtype=np.float32)


def test_reference_smoke_case_on_noise_observations():
    s = compute_fairness(NoiseImages(), lambda x: x[:, 0, 0, :], seed=0, num_train=200,
                         num_test_points_per_class=40, n_jobs=1)
    assert set(s) == keys("mean_fairness", [0, 1, 2]) | keys("max_fairness", [0, 1, 2])
    values = np.array(list(s.values()))
    # random predictions: only sampling noise, far from the maximum 1 - 1/5
    assert np.all((values > 0) & (values < 0.5))
    assert s == compute_fairness(NoiseImages(), lambda x: x[:, 0, 0, :], seed=0,
                                 num_train=200, num_test_points_per_class=40, n_jobs=1)


def test_single_training_class_is_predicted_as_that_class():
    # Two training points, (0, 0) and (0, 1): factor 0 shows one class, predicted
    # everywhere, so its pairs are fair; factor 1 is learnt from the identity codes.
    s = fairness(Cycle(), identity, num_train=2)
    assert s["mean_fairness:pred0:sens1"] == 0.0
    assert s["max_fairness:pred0:sens1"] == 0.0


def test_single_value_factors_are_skipped_with_a_warning():
    class Padded(Cycle):
        def sample_observations_from_factors(self, factors, rng):
            return super().sample_observations_from_factors(factors[:, [0, 2]], rng)

    with pytest.warns(MetricWarning, match=r"factor\(s\) \[1\] have a single value"):
        s = fairness(Padded((2, 1, 3)), leaky)
    assert set(s) == keys("mean_fairness", [0, 2]) | keys("max_fairness", [0, 2])
    assert s["mean_fairness:pred0:sens2"] == pytest.approx(2 / 9)
    assert s["mean_fairness:pred2:sens0"] == pytest.approx(1 / 3)


# -- bad inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("counts, match", [
    (np.array([1, 2]), "2-D"),
    (np.zeros((0, 2)), "2-D"),
    (np.array([["a", "b"]]), "numbers"),
    (np.array([[1, -1], [1, 2]]), "non-negative"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), "finite"),
    (np.array([[1, 0], [2, 0]]), "at least one prediction in every column"),
])
def test_bad_counts(counts, match):
    with pytest.raises(MetricInputError, match=f"Fairness: .*{match}"):
        inter_group_fairness(counts)


@pytest.mark.parametrize("matrix, factors", [
    (np.zeros((2, 3)), None),
    (np.zeros((1, 1)), None),
    (np.zeros(4), None),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), None),
    (np.zeros((2, 2)), [0, 1, 2]),
    ([["a", "b"], ["c", "d"]], None),
])
def test_bad_matrix(matrix, factors):
    with pytest.raises(MetricInputError, match="Fairness: needs a square"):
        summarise_pairs(matrix, "p", factors)


def test_a_nan_diagonal_is_ignored():
    s = summarise_pairs(np.array([[np.nan, 1.0], [0.0, np.nan]]), "p")
    assert s["p:mean_pred:mean_sens"] == 0.5


@pytest.mark.parametrize("kwargs, match", [
    ({"num_train": 1}, "num_train must be an integer >= 2"),
    ({"num_train": 10.0}, "num_train must be an integer >= 2"),
    ({"num_test_points_per_class": 0}, "num_test_points_per_class must be an integer >= 1"),
    ({"predictor": "svm"}, "unknown predictor 'svm'; valid: logreg, gbt"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(MetricInputError, match=f"Fairness: {match}"):
        fairness(Cycle(), leaky, **kwargs)


def test_needs_two_factors_with_several_values():
    with pytest.raises(MetricInputError, match=r"at least two factors .* \(2, 1\)"):
        fairness(Cycle((2, 1)), identity)


def test_bad_dataset_and_representation():
    with pytest.raises(MetricInputError, match="lacks factor_sizes, sample_factors"):
        fairness(object(), identity)
    with pytest.raises(MetricInputError, match="NaN/inf"):
        fairness(Cycle(), lambda x: np.full((len(x), 1), np.nan))
