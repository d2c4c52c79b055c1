import numpy as np
import pytest
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier

from disbench.metrics import MetricInputError, MetricWarning, compute_dci
from disbench.metrics.dci import completeness_from_importance, disentanglement_from_importance

KEYS = ["disentanglement", "completeness", "informativeness_train", "informativeness_test"]


def test_importance_identity_is_one():
    assert disentanglement_from_importance(np.eye(4)) == pytest.approx(1.0, abs=1e-8)
    assert completeness_from_importance(np.eye(4)) == pytest.approx(1.0, abs=1e-8)


def test_importance_uniform_is_zero():
    uniform = np.ones((4, 3))
    assert disentanglement_from_importance(uniform) == pytest.approx(0.0, abs=1e-12)
    assert completeness_from_importance(uniform) == pytest.approx(0.0, abs=1e-12)


def test_importance_all_zero_is_zero():
    zero = np.zeros((3, 2))
    assert disentanglement_from_importance(zero) == pytest.approx(0.0, abs=1e-12)
    assert completeness_from_importance(zero) == pytest.approx(0.0, abs=1e-12)


def test_importance_hand_computed():
    # R = [[1, 0],      code 0 -> only factor 0: D_0 = 1 - H_2(1, 0) = 1
    #      [1, 1]]      code 1 -> both equally:  D_1 = 1 - H_2(.5, .5) = 0
    # code weights rho = (1, 2) / 3  =>  D = 1/3.
    # factor 0 -> codes (.5, .5): C_0 = 0; factor 1 -> codes (0, 1): C_1 = 1;
    # factor weights (2, 1) / 3  =>  C = 1/3.
    importance = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert disentanglement_from_importance(importance) == pytest.approx(1 / 3, abs=1e-9)
    assert completeness_from_importance(importance) == pytest.approx(1 / 3, abs=1e-9)
    # Codes 0 and 1 each capture one factor, code 2 is unused (weight 0): D = C = 1.
    importance = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    assert disentanglement_from_importance(importance) == pytest.approx(1.0, abs=1e-8)
    assert completeness_from_importance(importance) == pytest.approx(1.0, abs=1e-8)


def test_importance_matches_reference_formula():
    rng = np.random.default_rng(0)
    for shape in [(5, 3), (10, 5), (2, 7)]:
        importance = rng.random(shape) ** 3
        # disentanglement_lib: scipy entropy of (R + 1e-11), weighted by row / column sums.
        per_code = 1 - scipy.stats.entropy(importance.T + 1e-11, base=shape[1])
        expected_d = np.sum(per_code * importance.sum(axis=1) / importance.sum())
        per_factor = 1 - scipy.stats.entropy(importance + 1e-11, base=shape[0])
        expected_c = np.sum(per_factor * importance.sum(axis=0) / importance.sum())
        assert disentanglement_from_importance(importance) == pytest.approx(expected_d, abs=1e-12)
        assert completeness_from_importance(importance) == pytest.approx(expected_c, abs=1e-12)


def test_importance_single_factor_or_code_is_nan():
    with pytest.warns(MetricWarning, match="DCI: disentanglement is undefined"):
        assert np.isnan(disentanglement_from_importance(np.ones((3, 1))))
    with pytest.warns(MetricWarning, match="DCI: completeness is undefined"):
        assert np.isnan(completeness_from_importance(np.ones((1, 3))))
    with pytest.raises(MetricInputError, match="DCI: importance must be finite and non-negative"):
        disentanglement_from_importance(-np.ones((2, 2)))


def test_dci_identity_near_one(toy):
    scores = compute_dci(
        toy.identity_train, toy.factors_train, toy.identity_test, toy.factors_test, n_jobs=1
    )
    assert list(scores) == KEYS and all(type(v) is float for v in scores.values())
    assert scores["disentanglement"] > 0.95
    assert scores["completeness"] > 0.95
    assert scores["informativeness_train"] == 1.0
    assert scores["informativeness_test"] > 0.98


def test_dci_rotation_lower_than_identity(toy):
    rotated = compute_dci(
        toy.rotated_train, toy.factors_train, toy.rotated_test, toy.factors_test, n_jobs=1
    )
    assert rotated["disentanglement"] < 0.6
    assert rotated["completeness"] < 0.6


def test_dci_constant_codes(toy):
    codes_train = np.zeros((len(toy.factors_train), 3))
    codes_test = np.zeros((len(toy.factors_test), 3))
    scores = compute_dci(codes_train, toy.factors_train, codes_test, toy.factors_test, n_jobs=1)
    assert scores["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert scores["completeness"] == pytest.approx(0.0, abs=1e-9)
    # Predicting the majority class of 4 balanced classes: about chance level.
    assert scores["informativeness_test"] < 0.4


def test_dci_constant_code_dimension_is_legal(toy):
    pad = lambda x: np.column_stack([x, np.ones(len(x))])  # noqa: E731
    scores = compute_dci(
        pad(toy.identity_train), toy.factors_train, pad(toy.identity_test), toy.factors_test,
        n_jobs=1,
    )
    assert scores["disentanglement"] > 0.95 and scores["completeness"] > 0.95


def test_dci_deterministic_and_independent_of_n_jobs(toy):
    # Duplicated codes make the trees' split choice a tie, which is broken by the
    # classifier's random feature permutation: fixed random_state keeps it reproducible.
    codes_train = np.column_stack([toy.identity_train, toy.identity_train[:, :2]])
    codes_test = np.column_stack([toy.identity_test, toy.identity_test[:, :2]])
    args = (codes_train[:200], toy.factors_train[:200], codes_test, toy.factors_test)
    serial = compute_dci(*args, n_jobs=1)
    assert compute_dci(*args, n_jobs=1) == serial
    assert compute_dci(*args, n_jobs=2) == serial


def test_dci_matches_reference_pipeline():
    # disentanglement_lib's compute_importance_gbt loop (codes in rows) + formulas.
    rng = np.random.default_rng(5)
    factors = rng.integers(0, 3, size=(150, 2))
    codes = factors @ rng.normal(size=(2, 3)) + 0.5 * rng.normal(size=(150, 3))
    x_train, x_test = codes[:100].T, codes[100:].T
    y_train, y_test = factors[:100].T, factors[100:].T
    importance = np.zeros((3, 2))
    acc_train, acc_test = [], []
    for j in range(2):
        model = GradientBoostingClassifier(random_state=0).fit(x_train.T, y_train[j])
        importance[:, j] = np.abs(model.feature_importances_)
        acc_train.append(np.mean(model.predict(x_train.T) == y_train[j]))
        acc_test.append(np.mean(model.predict(x_test.T) == y_test[j]))
    per_code = 1 - scipy.stats.entropy(importance.T + 1e-11, base=2)
    expected_d = np.sum(per_code * importance.sum(axis=1) / importance.sum())

    scores = compute_dci(codes[:100], factors[:100], codes[100:], factors[100:], n_jobs=1)
    assert scores["disentanglement"] == pytest.approx(expected_d, abs=1e-12)
    assert scores["informativeness_train"] == pytest.approx(np.mean(acc_train), abs=1e-12)
    assert scores["informativeness_test"] == pytest.approx(np.mean(acc_test), abs=1e-12)


def test_dci_skips_constant_factor(toy):
    factors_train = np.column_stack([toy.factors_train[:, :2], np.zeros(400, dtype=int)])
    factors_test = np.column_stack([toy.factors_test[:, :2], np.zeros(200, dtype=int)])
    with pytest.warns(MetricWarning, match="DCI: factor"):
        scores = compute_dci(
            toy.identity_train[:, :2], factors_train, toy.identity_test[:, :2], factors_test,
            n_jobs=1,
        )
    assert scores["disentanglement"] > 0.95


def test_unseen_test_class_counts_as_misclassified():
    import warnings

    from disbench.metrics.dci import compute_dci

    rng = np.random.default_rng(0)
    train = rng.integers(0, 4, size=(400, 2))
    test = rng.integers(0, 4, size=(100, 2))
    test[7, 1] = 9  # a class of factor 1 the classifiers never saw
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = compute_dci(train.astype(float), train, test.astype(float), test, n_jobs=1)
    assert any("never occur in factors_train" in str(w.message) for w in caught)
    # identity codes: every test sample is right except the unseen one (factor 1)
    assert scores["informativeness_test"] == pytest.approx((1.0 + 99 / 100) / 2)
