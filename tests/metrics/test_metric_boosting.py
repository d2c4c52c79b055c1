"""eval.boosting=fast: scikit-learn's gradient boosting grown by LightGBM's tree learner."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from disbench.metrics.boosting import (
    DEPTH,
    FastGradientBoostingClassifier,
    _newton_steps,
    make_boosting,
)
from disbench.metrics.dci import compute_dci
from disbench.metrics.downstream import downstream_scores
from disbench.metrics.evaluate import resolve_settings
from disbench.metrics.utils import MetricInputError
from disbench.store import recorded_eval_settings


def test_newton_steps_by_hand():
    # Two trees; p = y - r, so p (1 - p) = |r| (1 - |r|) for y in {0, 1}.
    residual = np.array([[0.5, -0.25, 0.75, -0.1], [-0.2, -0.2, 0.6, 0.0]])
    leaf = np.array([[0, 0, 3, 3], [1, 1, 1, 7]])
    steps = _newton_steps(residual, leaf, factor=2 / 3)
    hessian = lambda r: abs(r) * (1 - abs(r))  # noqa: E731
    assert steps.shape == (2, 2 ** DEPTH)
    assert steps[0, 0] == pytest.approx(2 / 3 * 0.25 / (hessian(0.5) + hessian(-0.25)))
    assert steps[0, 3] == pytest.approx(2 / 3 * 0.65 / (hessian(0.75) + hessian(-0.1)))
    assert steps[1, 1] == pytest.approx(2 / 3 * 0.2 / (2 * hessian(0.2) + hessian(0.6)))
    assert steps[1, 7] == 0.0  # residual 0: no curvature, sklearn's _safe_divide gives 0
    assert np.count_nonzero(steps) == 3


def _heap(tree) -> dict:
    """A scikit-learn tree's splits in heap order: {node: (feature, threshold)}."""
    found = {}

    def visit(i: int, h: int) -> None:
        if tree.children_left[i] != -1:
            found[h] = (int(tree.feature[i]), float(tree.threshold[i]))
            visit(tree.children_left[i], 2 * h + 1)
            visit(tree.children_right[i], 2 * h + 2)

    visit(0, 0)
    return found


def test_a_stage_is_scikit_learns_own():
    """One stage on data without tied splits: the same trees (features and thresholds,
    which are the midpoints of each node's own points), leaf values and importances."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    x = rng.normal(size=(200, 4))
    x[:, 0] += y
    x_test = rng.normal(size=(300, 4)) * 2
    reference = GradientBoostingClassifier(random_state=0, n_estimators=1).fit(x, y)
    fast = FastGradientBoostingClassifier(n_estimators=1, min_points=1).fit(x, y)
    for k in range(3):
        splits = _heap(reference.estimators_[0, k].tree_)
        assert len(splits) >= 5
        assert splits == {h: (int(fast._feature[k, h]), float(fast._threshold[k, h]))
                          for h in splits}
    np.testing.assert_allclose(fast.feature_importances_, reference.feature_importances_,
                               atol=1e-6)
    # the training points' scores kept from fitting are what the trees give them
    np.testing.assert_allclose(fast.decision_function(x.copy()), fast.decision_function(x),
                               atol=1e-12)
    for points in (x, x_test):
        np.testing.assert_allclose(fast.decision_function(points),
                                   reference.decision_function(points), atol=1e-12)
        np.testing.assert_array_equal(fast.predict(points), reference.predict(points))


def test_two_classes_grow_one_tree_per_stage_as_scikit_learn():
    rng = np.random.default_rng(3)
    y = np.where(rng.random(150) < 0.3, 5, 9)  # labels kept as given
    x = rng.normal(size=(150, 3))
    x[:, 1] += 2 * (y == 9)
    reference = GradientBoostingClassifier(random_state=0, n_estimators=1).fit(x, y)
    fast = FastGradientBoostingClassifier(n_estimators=1, min_points=1).fit(x, y)
    assert fast._feature.shape[0] == 1
    np.testing.assert_allclose(fast.decision_function(x)[:, 0],
                               reference.decision_function(x), atol=1e-12)
    assert set(fast.predict(x)) <= {5, 9}
    np.testing.assert_array_equal(fast.predict(x), reference.predict(x))


def test_separable_factor_is_learnt_from_its_code_alone():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    x = np.column_stack([y + 0.1 * rng.normal(size=400), rng.normal(size=(400, 2))])
    model = FastGradientBoostingClassifier(min_points=1).fit(x[:300], y[:300])
    assert np.mean(model.predict(x[300:]) == y[300:]) == 1.0
    assert model.feature_importances_[0] > 0.99
    assert model.feature_importances_.sum() == pytest.approx(1.0)


def test_constant_codes_predict_the_prior():
    y = np.array([0, 1, 1, 2, 2, 2])
    model = FastGradientBoostingClassifier(min_points=1).fit(np.zeros((6, 2)), y)
    np.testing.assert_array_equal(model.predict(np.zeros((3, 2))), [2, 2, 2])
    np.testing.assert_array_equal(model.feature_importances_, [0.0, 0.0])


def test_small_training_sets_are_fit_by_scikit_learn_itself():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 4)) + y[:, None]
    reference = GradientBoostingClassifier(random_state=0).fit(x, y)
    fast = make_boosting("fast").fit(x, y)
    np.testing.assert_array_equal(fast.feature_importances_, reference.feature_importances_)
    np.testing.assert_array_equal(fast.predict(x[::-1]), reference.predict(x[::-1]))
    np.testing.assert_array_equal(fast.classes_, reference.classes_)


def _codes(rotate: bool, n: int = 1500):
    """1,200 training and 300 test points: 3 factors of 4 classes, one code each plus
    noise, or those codes rotated into each other."""
    rng = np.random.default_rng(4)
    factors = rng.integers(0, 4, size=(n, 3))
    codes = factors + 0.3 * rng.normal(size=(n, 3))
    if rotate:
        codes = codes @ np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    return codes[:1200], factors[:1200], codes[1200:], factors[1200:]


@pytest.fixture(scope="module")
def dci_pairs():
    """DCI of both codes with both builds: {(rotate, boosting): scores}."""
    return {(rotate, boosting): compute_dci(*_codes(rotate), n_jobs=1, boosting=boosting)
            for rotate in (False, True) for boosting in ("sklearn", "fast")}


def test_fast_dci_on_disentangled_and_rotated_codes(dci_pairs):
    identity, rotated = dci_pairs[False, "fast"], dci_pairs[True, "fast"]
    assert identity["disentanglement"] > 0.8 and identity["completeness"] > 0.8
    assert rotated["disentanglement"] < 0.5 and rotated["completeness"] < 0.5
    for rotate in (False, True):
        for key, value in dci_pairs[rotate, "sklearn"].items():
            assert dci_pairs[rotate, "fast"][key] == pytest.approx(value, abs=0.005), key


def test_fast_downstream_agrees_with_scikit_learn_and_ignores_n_jobs():
    args = _codes(rotate=True)
    reference = downstream_scores(*args, "1200", ("gbt",), n_jobs=1)
    fast = downstream_scores(*args, "1200", ("gbt",), n_jobs=1, boosting="fast")
    assert fast["gbt_1200_mean_test_accuracy"] == pytest.approx(
        reference["gbt_1200_mean_test_accuracy"], abs=0.005)
    assert downstream_scores(*args, "1200", ("gbt",), n_jobs=2, boosting="fast") == fast


def test_boosting_setting():
    fast, study = resolve_settings("locatello_fast"), resolve_settings("locatello")
    assert fast["boosting"] == "fast" and study["boosting"] == "sklearn"
    assert {k for k in study if fast[k] != study[k]} == {"name", "boosting"}
    assert resolve_settings({"name": "fast", "boosting": "fast"})["boosting"] == "fast"
    with pytest.raises(MetricInputError, match="eval setting boosting must be one of "
                                               "sklearn, fast; got 'lightgbm'"):
        resolve_settings({"boosting": "lightgbm"})
    with pytest.raises(MetricInputError, match="DCI: boosting must be one of"):
        compute_dci(np.zeros((4, 2)), np.zeros((4, 1), int), np.zeros((4, 2)),
                    np.zeros((4, 1), int), boosting="xgboost")
    # scores stored before the setting existed were scikit-learn's
    old = {k: v for k, v in study.items() if k != "boosting"}
    assert recorded_eval_settings(old) == study and recorded_eval_settings(None) is None
