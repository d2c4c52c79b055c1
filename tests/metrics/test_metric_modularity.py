import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer

from disbench.metrics import MetricWarning, compute_modularity_explicitness
from disbench.metrics.modularity import modularity_from_mutual_info

KEYS = ["modularity", "explicitness_train", "explicitness_test"]


def test_modularity_hand_computed():
    # code 0: theta^2 = (1, 0): delta = 0 / (1 * 1) = 0      -> 1
    # code 1: theta^2 = (4, 1): delta = 1 / (4 * (2 - 1))    -> 0.75
    # code 2: no information about any factor               -> 0
    # mean = 1.75 / 3
    mi = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 0.0]])
    assert modularity_from_mutual_info(mi) == pytest.approx(1.75 / 3)
    # Three factors, code spreads equally over all: delta = 2 / (1 * 2) = 1 -> 0.
    assert modularity_from_mutual_info(np.ones((2, 3))) == pytest.approx(0.0)


def test_modularity_single_factor_nan():
    with pytest.warns(MetricWarning, match="Modularity/explicitness: modularity is undefined"):
        assert np.isnan(modularity_from_mutual_info(np.ones((3, 1))))


def test_modularity_matches_reference_loop():
    mi = np.random.default_rng(0).random((6, 4))
    mi[2] = 0.0
    expected = []
    for row in mi:
        squared = row**2
        top = squared.max()
        expected.append(0.0 if top == 0 else 1 - (squared.sum() - top) / (top * (len(row) - 1)))
    assert modularity_from_mutual_info(mi) == pytest.approx(np.mean(expected), abs=1e-12)


def test_identity_modularity_and_explicitness_near_one(toy):
    scores = compute_modularity_explicitness(
        toy.identity_train, toy.factors_train, toy.identity_test, toy.factors_test
    )
    assert list(scores) == KEYS and all(type(v) is float for v in scores.values())
    assert scores["modularity"] > 0.99
    # One-vs-rest linear models cannot single out the middle classes of an ordinal code
    # (their AUC comes from the normalisation alone): explicitness is near, not at, 1.
    assert scores["explicitness_train"] > 0.97
    assert scores["explicitness_test"] > 0.97


def test_constant_codes(toy):
    codes_train = np.full((len(toy.factors_train), 2), 5.0)
    codes_test = np.full((len(toy.factors_test), 2), 5.0)
    scores = compute_modularity_explicitness(
        codes_train, toy.factors_train, codes_test, toy.factors_test
    )
    # No information: modularity 0 by convention, constant predictions give AUC 0.5.
    assert scores == {"modularity": 0.0, "explicitness_train": 0.5, "explicitness_test": 0.5}


def sklearn_020_logistic_proba(x_train, y_train, x):
    """``LogisticRegression().predict_proba`` of scikit-learn 0.20, written out: one
    binary liblinear model per class (one-vs-rest), the sigmoid of each decision value,
    normalised to sum to 1 over the classes (0.20's ``_predict_proba_lr``)."""
    classes = np.unique(y_train)
    if classes.size == 2:  # one binary model: [1 - p, p]
        p = expit(LogisticRegression(solver="liblinear").fit(x_train, y_train)
                  .decision_function(x))
        return np.stack([1 - p, p], axis=1)
    sigmoid = np.stack([
        expit(LogisticRegression(solver="liblinear").fit(x_train, (y_train == c).astype(int))
              .decision_function(x))
        for c in classes], axis=1)
    return sigmoid / sigmoid.sum(axis=1, keepdims=True)


def test_explicitness_is_liblinear_one_vs_rest_hand_made():
    """One code, one factor with three ordered classes: the middle class is not linearly
    separable, and the solvers disagree on its ranking.

    scikit-learn 0.20's LogisticRegression() (the reference's): liblinear one-vs-rest,
    AUC on the normalised sigmoids: per-class AUCs (1, 3/4, 1) on train -> 11/12 and
    (1, 2/3, 1) on test -> 8/9. Today's multinomial default gives 1 and 17/18, the
    one-vs-rest sigmoids without normalisation 13/15 on train.
    """
    codes_train = np.arange(9.0)[:, None]
    factors_train = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2])[:, None]
    codes_test = np.array([1.5, 4.0, 5.5, 7.0, 8.5])[:, None]
    factors_test = np.array([0, 1, 1, 2, 2])[:, None]
    with pytest.warns(MetricWarning, match="modularity is undefined with a single factor"):
        scores = compute_modularity_explicitness(codes_train, factors_train, codes_test,
                                                 factors_test)
    assert scores["explicitness_train"] == pytest.approx(11 / 12, abs=1e-12)
    assert scores["explicitness_test"] == pytest.approx(8 / 9, abs=1e-12)

    # the same from the reference's pipeline under scikit-learn 0.20, written out
    mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
    x_train, x_test = (codes_train - mean) / std, (codes_test - mean) / std
    y_train, y_test = factors_train[:, 0], factors_test[:, 0]
    mlb = MultiLabelBinarizer()
    for x, y, key in ((x_train, y_train, "explicitness_train"),
                      (x_test, y_test, "explicitness_test")):
        proba = sklearn_020_logistic_proba(x_train, y_train, x)
        assert scores[key] == pytest.approx(
            roc_auc_score(mlb.fit_transform(y[:, None]), proba), abs=1e-12)

    # and not the multinomial L-BFGS default of scikit-learn >= 0.22
    multinomial = LogisticRegression().fit(x_train, y_train)
    assert roc_auc_score(mlb.fit_transform(y_train[:, None]),
                         multinomial.predict_proba(x_train)) == pytest.approx(1.0)
    assert roc_auc_score(mlb.fit_transform(y_test[:, None]),
                         multinomial.predict_proba(x_test)) == pytest.approx(17 / 18)


def test_matches_reference_pipeline():
    # disentanglement_lib: histogram MI on train, codes normalised with train mean/std,
    # LogisticRegression() of scikit-learn 0.20 (liblinear, one-vs-rest) per factor,
    # roc_auc_score on MultiLabelBinarizer labels.
    rng = np.random.default_rng(4)
    factors = rng.integers(0, 3, size=(300, 2))
    codes = factors @ rng.normal(size=(2, 3)) + rng.normal(size=(300, 3))
    tr, te = slice(0, 200), slice(200, 300)

    discrete = np.stack(
        [np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in codes[tr].T], axis=0
    )
    mi = np.array([[mutual_info_score(y, z) for y in factors[tr].T] for z in discrete])
    mean, std = codes[tr].mean(axis=0), codes[tr].std(axis=0)
    x_train, x_test = (codes[tr] - mean) / std, (codes[te] - mean) / std
    aucs_train, aucs_test = [], []
    for j in range(2):
        mlb = MultiLabelBinarizer()
        aucs_train.append(roc_auc_score(
            mlb.fit_transform(factors[tr, j, None]),
            sklearn_020_logistic_proba(x_train, factors[tr, j], x_train)))
        aucs_test.append(roc_auc_score(
            mlb.fit_transform(factors[te, j, None]),
            sklearn_020_logistic_proba(x_train, factors[tr, j], x_test)))

    scores = compute_modularity_explicitness(codes[tr], factors[tr], codes[te], factors[te])
    assert scores["modularity"] == pytest.approx(modularity_from_mutual_info(mi), abs=1e-12)
    assert scores["explicitness_train"] == pytest.approx(np.mean(aucs_train), abs=1e-12)
    assert scores["explicitness_test"] == pytest.approx(np.mean(aucs_test), abs=1e-12)


def test_two_class_factor_matches_the_binary_model():
    """A binary factor: 0.20 fits one binary model, predict_proba = [1 - p, p]."""
    rng = np.random.default_rng(7)
    factors = rng.integers(0, 2, size=(200, 2))
    codes = factors @ rng.normal(size=(2, 2)) + rng.normal(size=(200, 2))
    tr, te = slice(0, 120), slice(120, 200)
    mean, std = codes[tr].mean(axis=0), codes[tr].std(axis=0)
    x_train, x_test = (codes[tr] - mean) / std, (codes[te] - mean) / std
    expected = np.mean([
        roc_auc_score(MultiLabelBinarizer().fit_transform(factors[te, j, None]),
                      sklearn_020_logistic_proba(x_train, factors[tr, j], x_test))
        for j in range(2)])
    scores = compute_modularity_explicitness(codes[tr], factors[tr], codes[te], factors[te])
    assert scores["explicitness_test"] == pytest.approx(expected, abs=1e-12)


def test_class_missing_from_test_is_skipped_with_warning(toy):
    keep = toy.factors_test[:, 0] != 3
    with pytest.warns(MetricWarning, match="1 factor class"):
        scores = compute_modularity_explicitness(
            toy.identity_train, toy.factors_train, toy.identity_test[keep], toy.factors_test[keep]
        )
    assert scores["explicitness_test"] > 0.97


def test_deterministic(toy):
    args = (toy.rotated_train, toy.factors_train, toy.rotated_test, toy.factors_test)
    assert compute_modularity_explicitness(*args) == compute_modularity_explicitness(*args)
