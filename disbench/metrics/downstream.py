"""Downstream classification accuracy and its sample efficiency.

Locatello et al. (2019), "Challenging Common Assumptions in the Unsupervised Learning
of Disentangled Representations", ICML, Section 5.4 ("Are these disentangled
representations useful for downstream tasks in terms of the sample complexity of
learning?"). Estimator as in disentanglement_lib
``evaluation/metrics/downstream_task.py`` with the study's two predictors
(``evaluation/metrics/utils.py``):

* ``logreg``: ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` (the reference's
  ``logistic_regression_cv``), one-vs-rest over the classes as in the scikit-learn of
  the reference (0.20; >= 0.22 fits a multinomial model by default), spelled
  ``OneVsRestClassifier(LogisticRegressionCV(...))``; the folds are not shuffled;
* ``gbt``: ``GradientBoostingClassifier()`` (the reference's
  ``gradient_boosting_classifier``) with ``random_state=0``: the reference leaves it
  unset, so its trees break ties between equally good splits at random. With
  ``boosting="fast"`` the same algorithm grown by LightGBM
  (``disbench.metrics.boosting``).

For each training size n (10, 100, 1,000 and 10,000 in the study) n training and
``num_test`` test points are drawn, and one predictor per factor predicts the factor's
class from the codes (unscaled). Both predictors see the same points (the reference
ran them as two evaluations with the same seed, so they did too).

Keys (the reference's ``"{n}:mean_test_accuracy"`` etc., prefixed by the predictor):
``{predictor}_{n}_{mean|min}_{train|test}_accuracy`` (mean / min over factors) and
``{predictor}_{n}_{train|test}_accuracy_factor_{j}``.

Difference from the reference: a factor with a single class among the training
points (possible with 10 points) is predicted as that class; the reference's
classifiers raise an error there.
"""

from __future__ import annotations

import warnings

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier

from disbench.metrics.boosting import check_boosting, make_boosting
from disbench.metrics.utils import MetricInputError

METRIC = "Downstream task"
PREDICTORS = ("logreg", "gbt")


def make_predictor(kind: str, boosting: str = "sklearn"):
    """A fresh, unfitted predictor: ``"logreg"`` or ``"gbt"`` (see the module docstring);
    ``boosting`` picks the gradient-boosted trees' build (``"sklearn"`` or ``"fast"``)."""
    if kind == "logreg":
        return OneVsRestClassifier(LogisticRegressionCV(
            Cs=10, cv=KFold(n_splits=5), l1_ratios=(0.0,), scoring="accuracy",
            use_legacy_attributes=False))
    if kind == "gbt":
        return make_boosting(boosting)
    raise MetricInputError(f"{METRIC}: unknown predictor {kind!r}; valid: "
                           f"{', '.join(PREDICTORS)}.")


def _fit_predict(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, boosting: str) -> tuple[float, float]:
    classes = np.unique(y_train)
    if classes.size == 1:
        return float(np.mean(y_train == classes[0])), float(np.mean(y_test == classes[0]))
    model = make_predictor(kind, boosting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    return (float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


def downstream_scores(codes_train: np.ndarray, factors_train: np.ndarray,
                      codes_test: np.ndarray, factors_test: np.ndarray, prefix: str,
                      predictors: tuple[str, ...] = PREDICTORS, n_jobs: int | None = -1,
                      boosting: str = "sklearn") -> dict[str, float]:
    """Per-factor train/test accuracies of each predictor on given arrays; keys are
    prefixed ``{predictor}_{prefix}_`` (``prefix`` is the training size)."""
    check_boosting(boosting, f"{METRIC}: boosting")
    for kind in predictors:
        make_predictor(kind)  # validates the name
    num_factors = factors_train.shape[1]
    # Longest first (boosting costs one tree per class and stage), so that the workers
    # finish together; the results do not depend on the order.
    num_classes = [np.unique(factors_train[:, j]).size for j in range(num_factors)]
    tasks = sorted(((kind, j) for kind in predictors for j in range(num_factors)),
                   key=lambda t: (t[0] != "gbt", -num_classes[t[1]]))
    workers = max(1, min(effective_n_jobs(n_jobs), len(tasks)))
    done = Parallel(n_jobs=workers)(
        delayed(_fit_predict)(kind, codes_train, factors_train[:, j], codes_test,
                              factors_test[:, j], boosting)
        for kind, j in tasks
    )
    results = dict(zip(tasks, done))
    scores: dict[str, float] = {}
    for kind in predictors:
        per_factor = [results[kind, j] for j in range(num_factors)]
        train = np.array([r[0] for r in per_factor])
        test = np.array([r[1] for r in per_factor])
        key = f"{kind}_{prefix}"
        scores[f"{key}_mean_train_accuracy"] = float(train.mean())
        scores[f"{key}_mean_test_accuracy"] = float(test.mean())
        scores[f"{key}_min_train_accuracy"] = float(train.min())
        scores[f"{key}_min_test_accuracy"] = float(test.min())
        for j in range(num_factors):
            scores[f"{key}_train_accuracy_factor_{j}"] = float(train[j])
            scores[f"{key}_test_accuracy_factor_{j}"] = float(test[j])
    return scores


def compute_downstream(sampler, rng: np.random.Generator,
                       num_train: tuple[int, ...] = (10, 100, 1000, 10000),
                       num_test: int = 5000, predictors: tuple[str, ...] = PREDICTORS,
                       n_jobs: int | None = -1, boosting: str = "sklearn") -> dict[str, float]:
    """Downstream accuracies of the representation behind ``sampler``.

    Args:
        sampler: a ``disbench.metrics.sampling.CodeSampler`` (dataset + representation).
        rng: the generator every draw comes from. For each training size in turn: the
            training factors and codes, then the test factors and codes.
        num_train: training sizes.
        num_test: test points per training size.
        predictors: any of ``"logreg"``, ``"gbt"``.
        n_jobs: joblib workers for the per-factor predictors (-1: all cores); the
            result does not depend on it.
        boosting: the ``gbt`` predictor's build: ``"sklearn"`` (the reference's) or
            ``"fast"`` (``disbench.metrics.boosting``).
    """
    scores: dict[str, float] = {}
    for n in num_train:
        factors_train, codes_train = sampler.sample(n, rng)
        factors_test, codes_test = sampler.sample(num_test, rng)
        scores.update(downstream_scores(codes_train, factors_train, codes_test, factors_test,
                                        str(n), predictors, n_jobs, boosting))
    return scores


def stop_workers() -> None:
    """Stop the worker processes joblib keeps for reuse, cleanly, once a model is scored:
    left to the interpreter's exit they print loky's "leaked semlock objects" warning,
    and a multiprocessing child (a sweep worker) waits out their 300 s idle time."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)
