"""Downstream accuracy (Locatello et al. 2019, Sec. 5.4): values and keys."""

import numpy as np
from suite_fixtures import Noise, onehot, tiny_grid

from disbench.metrics import evaluate
from disbench.metrics.downstream import downstream_scores

CONFIG = {"downstream": {"num_train": [10, 200], "num_test": 200}}


def test_onehot_representation_is_predicted_perfectly():
    s = evaluate(tiny_grid(), onehot, names="downstream", config=CONFIG)
    for predictor in ("logreg", "gbt"):
        assert s[f"downstream.{predictor}_200_mean_test_accuracy"] >= 0.99
        assert s[f"downstream.{predictor}_200_min_train_accuracy"] >= 0.99
    # 10 training points cannot cover the 3 x 4 x 5 classes: worse than 200
    assert s["downstream.gbt_10_mean_test_accuracy"] < s["downstream.gbt_200_mean_test_accuracy"]


def test_noise_representation_is_near_chance():
    s = evaluate(tiny_grid(), Noise(), names="downstream", encode_once=False,
                 config={"downstream": {"num_train": [200], "num_test": 300}})
    chance = np.mean([1 / 3, 1 / 4, 1 / 5])
    for predictor in ("logreg", "gbt"):
        assert abs(s[f"downstream.{predictor}_200_mean_test_accuracy"] - chance) < 0.1


def test_keys_follow_the_reference_naming():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 2, size=(40, 2))
    codes = factors + 0.01 * rng.normal(size=(40, 2))
    s = downstream_scores(codes[:30], factors[:30], codes[30:], factors[30:], "30",
                          predictors=("gbt",), n_jobs=1)
    assert set(s) == {
        "gbt_30_mean_train_accuracy", "gbt_30_mean_test_accuracy",
        "gbt_30_min_train_accuracy", "gbt_30_min_test_accuracy",
        "gbt_30_train_accuracy_factor_0", "gbt_30_test_accuracy_factor_0",
        "gbt_30_train_accuracy_factor_1", "gbt_30_test_accuracy_factor_1",
    }
    assert s["gbt_30_mean_test_accuracy"] == 1.0


def test_a_single_training_class_is_predicted_as_that_class():
    codes = np.arange(20, dtype=float)[:, None]
    factors_train = np.zeros((10, 1), int)
    factors_test = np.r_[np.zeros(6, int), np.ones(4, int)][:, None]
    s = downstream_scores(codes[:10], factors_train, codes[10:], factors_test, "10", n_jobs=1)
    assert s["logreg_10_mean_train_accuracy"] == 1.0
    assert s["gbt_10_mean_test_accuracy"] == 0.6
