"""Fairness (unfairness) of a downstream classifier trained on a representation.

Locatello, Abbati, Rainforth, Bauer, Schoelkopf & Bachem (2019), "On the Fairness of
Disentangled Representations", NeurIPS, Section 4 (arXiv:1905.13662). Estimator as in
disentanglement_lib ``evaluation/metrics/fairness.py`` (``compute_fairness``, with the
study's ``config/fairness_study_v1/metric_configs/fairness.gin``).

Every ordered pair of factors (t, s), t != s, plays a task: predict the target factor
t from the codes while s is a sensitive factor the classifier never sees. The
classifier is unfair to s when intervening on s changes the distribution of its
predictions, although t and s are independent.

1. For each target t a classifier y^_t is trained on ``num_train`` random points
   (codes -> class of t): ``GradientBoostingClassifier()`` as the reference's
   ``gradient_boosting_classifier`` (``disbench.metrics.downstream.make_predictor``).
2. For each sensitive s != t, n = ``num_test_points_per_class`` factor combinations
   are drawn once; for each value v of s (all |S| of them) they are copied with s set
   to v (the other factors kept), rendered, encoded and classified. The predictions
   under do(s = v) give the count matrix C (|T| x |S|): C[y, v] = how many of the n
   points y^_t assigns to class y.
3. From C (``inter_group_fairness``): P_v = C[:, v] / sum_y C[y, v], the predictions'
   distribution under do(s = v); P = sum_v C[:, v] / sum C, the pooled distribution;

       TV_v = 1/2 sum_y |P_v(y) - P(y)|,
       mean_fairness[t, s] = sum_v w_v TV_v,   w_v = sum_y C[y, v] / sum C  (= 1/|S|),
       max_fairness[t, s]  = max_v TV_v.

   Both lie in [0, 1 - 1/|S|]: 0 when the predictions do not depend on s, the
   maximum when each value of s gets predictions of a class of its own.
4. Each (K x K) matrix, diagonal excluded, is summarised (``summarise_pairs``) per
   pair, per target (mean / max over sensitive factors), per sensitive factor (mean /
   max over targets), and overall (mean / max of the per-target or per-sensitive
   values).
   The paper's unfairness score (Section 4) is ``mean_fairness:mean_pred:mean_sens``,
   the mean over all ordered pairs.

Keys, as the reference's (``{p}`` is ``mean_fairness`` or ``max_fairness``):
``{p}:pred{t}:sens{s}``, ``{p}:pred{t}:{mean|max}_sens``, ``{p}:sens{s}:{mean|max}_pred``
and ``{p}:{mean|max}_sens:{mean|max}_pred``, ``{p}:{mean|max}_pred:{mean|max}_sens``
(the first word names the outer aggregation).

Paper and reference: the paper measures each do(s = v) against P(y^_t), the
predictions' distribution on the data; the reference against the pooled
distribution of the interventions, which is the same when s is uniform and
independent of the other factors (as in the study's data sets), and weights the
values of s by their numbers of predictions, which are equal (n each). This module
follows the reference.

Differences from the reference: the classifier has ``random_state=0`` (the
reference leaves it unset; its trees break ties at random); a target with a single
class among the training points is predicted as that class (the reference's
classifier raises); factors with a single value are skipped with a ``MetricWarning``
(as target the reference's classifier raises; as sensitive factor they score 0); the
distributions are computed in float64 (the reference: float32); the points are drawn
from one numpy ``Generator`` and the interventions of a pair encoded together in
batches of ``batch_size`` (the reference: a ``RandomState``, one batch of 16 at a
time), so only their distribution is the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.exceptions import ConvergenceWarning

from disbench.metrics.boosting import check_boosting
from disbench.metrics.downstream import PREDICTORS, make_predictor
from disbench.metrics.sampling import CodeSampler, Representation
from disbench.metrics.utils import MetricInputError, MetricWarning

METRIC = "Fairness"


def inter_group_fairness(counts: np.ndarray) -> tuple[float, float]:
    """(mean, max) total variation of each column's distribution from the pooled one.

    ``counts`` (num_classes, num_sensitive_values): predictions of each class (rows)
    under each intervention on the sensitive factor (columns); step 3 of the module
    doc. The mean weights each column by its number of predictions.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.size == 0 or counts.dtype.kind not in "biuf":
        raise MetricInputError(
            f"{METRIC}: counts must be a non-empty 2-D (num_classes, num_sensitive_values) "
            f"array of numbers; got dtype {counts.dtype}, shape {counts.shape}.")
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts.sum(0) == 0):
        raise MetricInputError(
            f"{METRIC}: counts must be finite and non-negative, with at least one prediction "
            f"in every column (sensitive value).")
    per_value = counts.sum(axis=0)
    pooled = counts.sum(axis=1) / counts.sum()
    tv = 0.5 * np.abs(counts / per_value - pooled[:, None]).sum(axis=0)
    return float(np.sum(tv * per_value / per_value.sum())), float(tv.max())


def summarise_pairs(matrix: np.ndarray, prefix: str,
                    factors: Sequence[int] | None = None) -> dict[str, float]:
    """The reference's summaries of a (K, K) pair matrix; step 4 of the module doc.

    ``matrix[a, b]``: score of target ``factors[a]`` with sensitive ``factors[b]``
    (``factors`` default: 0..K-1, the indices used in the keys). The diagonal is
    ignored.
    """
    try:
        matrix = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.empty(0)  # reported below
    k = matrix.shape[0] if matrix.ndim == 2 else 0
    factors = list(range(k)) if factors is None else list(factors)
    off = ~np.eye(k, dtype=bool)
    if matrix.shape != (k, k) or k < 2 or len(factors) != k \
            or not np.all(np.isfinite(matrix[off])):
        raise MetricInputError(
            f"{METRIC}: needs a square (K, K) matrix of finite scores with K >= 2 (one row "
            f"per target, one column per sensitive factor) and K factor indices; got shape "
            f"{matrix.shape} and {len(factors)} indices.")
    pairs = np.where(off, matrix, np.nan)
    scores = {f"{prefix}:pred{factors[a]}:sens{factors[b]}": float(matrix[a, b])
              for a in range(k) for b in range(k) if a != b}
    per_pred = {"mean": np.nanmean(pairs, axis=1), "max": np.nanmax(pairs, axis=1)}
    per_sens = {"mean": np.nanmean(pairs, axis=0), "max": np.nanmax(pairs, axis=0)}
    for inner in ("mean", "max"):
        for a in range(k):
            scores[f"{prefix}:pred{factors[a]}:{inner}_sens"] = float(per_pred[inner][a])
            scores[f"{prefix}:sens{factors[a]}:{inner}_pred"] = float(per_sens[inner][a])
    for outer, reduce in (("mean", np.mean), ("max", np.max)):
        for inner in ("mean", "max"):
            scores[f"{prefix}:{outer}_sens:{inner}_pred"] = float(reduce(per_sens[inner]))
            scores[f"{prefix}:{outer}_pred:{inner}_sens"] = float(reduce(per_pred[inner]))
    return scores


class _Constant:
    """The classifier of a target with a single training class."""

    def __init__(self, label: int):
        self.label = label

    def predict(self, codes: np.ndarray) -> np.ndarray:
        return np.full(len(codes), self.label, dtype=np.int64)


def _fit(predictor: str, boosting: str, codes: np.ndarray, labels: np.ndarray):
    classes = np.unique(labels)
    if classes.size == 1:
        return _Constant(int(classes[0]))
    with warnings.catch_warnings():  # as the downstream task (logreg)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_predictor(predictor, boosting).fit(codes, labels)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MetricInputError(f"{METRIC}: {name} must be an integer >= {minimum}; got "
                               f"{value!r}.")
    return int(value)


def fairness_from_sampler(sampler: CodeSampler, rng: np.random.Generator,
                          num_train: int = 10000, num_test_points_per_class: int = 100,
                          predictor: str = "gbt", n_jobs: int | None = -1,
                          boosting: str = "sklearn") -> dict[str, float]:
    """Fairness scores of the representation behind ``sampler`` (steps 1-4).

    Args:
        sampler: a ``disbench.metrics.sampling.CodeSampler`` (dataset + representation;
            with a ``CodeTable`` to encode each grid point once).
        rng: the generator every draw comes from: the training points, then for each
            target t and each sensitive s != t in turn, the n factor combinations and
            the codes of their |S| interventions.
        num_train: training points of the classifiers (10,000 in the study).
        num_test_points_per_class: n, the points per value of the sensitive factor
            (100 in the study).
        predictor: ``"gbt"`` (the study's) or ``"logreg"`` (see ``downstream``).
        n_jobs: joblib workers fitting the per-target classifiers (-1: all cores); the
            result does not depend on it.
        boosting: the ``gbt`` predictor's build: ``"sklearn"`` (the reference's) or
            ``"fast"`` (``disbench.metrics.boosting``).
    """
    check_boosting(boosting, f"{METRIC}: boosting")
    num_train = _check_count("num_train", num_train, 2)
    n = _check_count("num_test_points_per_class", num_test_points_per_class, 1)
    if predictor not in PREDICTORS:
        raise MetricInputError(f"{METRIC}: unknown predictor {predictor!r}; valid: "
                               f"{', '.join(PREDICTORS)}.")
    sizes = sampler.factor_sizes
    factors = [j for j, size in enumerate(sizes) if size > 1]
    if len(factors) < 2:
        raise MetricInputError(
            f"{METRIC}: needs at least two factors with more than one value (a target and a "
            f"sensitive factor); factor_sizes are {sizes}.")
    if len(factors) < len(sizes):
        warnings.warn(
            f"{METRIC}: factor(s) {[j for j in range(len(sizes)) if j not in factors]} have a "
            f"single value and are skipped.", MetricWarning, stacklevel=2)

    factors_train, codes_train = sampler.sample(num_train, rng)
    workers = max(1, min(effective_n_jobs(n_jobs), len(factors)))
    models = Parallel(n_jobs=workers)(
        delayed(_fit)(predictor, boosting, codes_train, factors_train[:, t]) for t in factors)

    k = len(factors)
    mean_fairness, max_fairness = np.zeros((k, k)), np.zeros((k, k))
    for a, (t, model) in enumerate(zip(factors, models)):
        for b, s in enumerate(factors):
            if s == t:
                continue
            original = sampler.sample_factors(n, rng)
            intervened = np.repeat(original[None], sizes[s], axis=0)  # (|S|, n, K)
            intervened[:, :, s] = np.arange(sizes[s])[:, None]
            codes = sampler.codes(intervened.reshape(-1, len(sizes)), rng)
            predictions = model.predict(codes).reshape(sizes[s], n)
            counts = np.stack([np.bincount(p, minlength=sizes[t]) for p in predictions], 1)
            mean_fairness[a, b], max_fairness[a, b] = inter_group_fairness(counts)
    return {**summarise_pairs(mean_fairness, "mean_fairness", factors),
            **summarise_pairs(max_fairness, "max_fairness", factors)}


def compute_fairness(dataset, representation_fn: Callable, seed: int = 0,
                     num_train: int = 10000, num_test_points_per_class: int = 100,
                     predictor: str = "gbt", batch_size: int = 1024,
                     n_jobs: int | None = -1, boosting: str = "sklearn") -> dict[str, float]:
    """Fairness scores of a representation on a ground-truth dataset.

    Args:
        dataset: any object with the ground-truth dataset protocol
            (``disbench.data.GroundTruthDataset``): ``factor_sizes``,
            ``sample_factors(num, rng)``, ``sample_observations_from_factors(factors,
            rng)``.
        representation_fn: maps a float32 batch of observations (N, C, H, W) to codes
            (N, D), or to a pair ``(mean, log_var)`` whose means are used.
        seed: seeds ``np.random.default_rng``, from which every point is drawn.
        num_train, num_test_points_per_class, predictor, n_jobs, boosting: as
            ``fairness_from_sampler``; the defaults are the study's (10,000 training
            points, 100 points per sensitive value, gradient-boosted trees).
        batch_size: observations per call of ``representation_fn`` (the reference
            encodes 16 at a time; the scores do not depend on it).

    Returns:
        ``{"mean_fairness:pred0:sens1": ..., "max_fairness:max_pred:max_sens": ...}``:
        the keys listed in the module doc; ``mean_fairness:mean_pred:mean_sens`` is the
        paper's score. Lower is fairer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MetricInputError(f"{METRIC}: seed must be a non-negative integer; got {seed!r}.")
    batch_size = _check_count("batch_size", batch_size, 1)
    sampler = CodeSampler(dataset, Representation(representation_fn), batch_size=batch_size)
    return fairness_from_sampler(sampler, np.random.default_rng(int(seed)), num_train,
                                 num_test_points_per_class, predictor, n_jobs, boosting)
