"""Shared helpers for the array-level disentanglement metrics.

Conventions (all metrics in ``disbench.metrics``): samples are ROWS.

* ``codes``: float array of shape ``(num_samples, num_codes)`` -- the representation.
* ``factors``: integer array of shape ``(num_samples, num_factors)`` -- ground-truth
  factor classes.

The estimators follow google-research/disentanglement_lib
(``evaluation/metrics/utils.py``), the code base of Locatello et al. (2019),
"Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations", ICML. That library stores arrays transposed, ``(num_codes, N)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from disbench.errors import DisbenchError, DisbenchWarning


class MetricInputError(DisbenchError, ValueError):
    """Raised when a metric cannot be computed from the arrays it was given.

    A ``DisbenchError`` (the CLI prints it without a traceback) and a ``ValueError``.
    """


class MetricWarning(DisbenchWarning, RuntimeWarning):
    """Warns that part of a metric was skipped or is undefined (NaN) for the given data."""


def as_observations(observations: object) -> np.ndarray:
    """float32 observations: uint8 pixels are scaled to [0, 1] (``GridDataset.observe``)."""
    observations = np.asarray(observations)
    if observations.dtype == np.uint8:
        return observations.astype(np.float32) / np.float32(255.0)
    return observations.astype(np.float32, copy=False)


def _check_2d(x: object, metric: str, name: str, columns: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:  # e.g. ragged nested lists
        raise MetricInputError(f"{metric}: {name} is not a rectangular array ({err}).") from err
    if arr.dtype.kind not in "biuf":
        raise MetricInputError(
            f"{metric}: {name} must be a real numeric array; got dtype {arr.dtype}."
        )
    if arr.ndim != 2:
        raise MetricInputError(
            f"{metric}: {name} must be a 2-D array of shape (num_samples, {columns}) with "
            f"one sample per row; got ndim={arr.ndim}, shape {arr.shape}."
        )
    num_samples, num_columns = arr.shape
    if num_samples < 2:
        raise MetricInputError(
            f"{metric}: {name} has {num_samples} sample(s); at least 2 samples (rows) "
            f"are needed."
        )
    if num_columns < 1:
        raise MetricInputError(
            f"{metric}: {name} has shape {arr.shape}; it needs at least one column ({columns})."
        )
    if arr.dtype.kind == "f":
        num_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if num_bad:
            raise MetricInputError(
                f"{metric}: {name} contains {num_bad} NaN/inf value(s); all entries must "
                f"be finite."
            )
    return arr


def _check_num_samples(arr: np.ndarray, metric: str, name: str, num_samples: int | None) -> None:
    if num_samples is not None and arr.shape[0] != num_samples:
        raise MetricInputError(
            f"{metric}: {name} has {arr.shape[0]} samples (rows) but the codes have "
            f"{num_samples}; codes and factors need one row per sample, in the same order."
        )


def check_codes(
    codes: object, metric: str, *, name: str = "codes", num_samples: int | None = None
) -> np.ndarray:
    """Validate a ``(num_samples, num_codes)`` representation and return it as float64.

    Constant code dimensions (collapsed latents) are legal.
    """
    arr = _check_2d(codes, metric, name, "num_codes")
    _check_num_samples(arr, metric, name, num_samples)
    return arr.astype(np.float64, copy=False)


def check_factors(
    factors: object,
    metric: str,
    *,
    name: str = "factors",
    num_samples: int | None = None,
    discrete: bool = True,
) -> np.ndarray:
    """Validate a ``(num_samples, num_factors)`` factor array.

    With ``discrete=True`` (the default) factors must hold integer class labels
    (an integer dtype, or floats with integral values) and are returned as int64;
    otherwise they are returned as float64.
    """
    arr = _check_2d(factors, metric, name, "num_factors")
    _check_num_samples(arr, metric, name, num_samples)
    if not discrete:
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise MetricInputError(
            f"{metric}: {name} must hold integer class labels; got non-integer values. "
            f"Discretize continuous factors first, e.g. with disbench.metrics.utils.discretize."
        )
    return arr.astype(np.int64, copy=False)


def check_train_test(
    codes_train: object,
    factors_train: object,
    codes_test: object,
    factors_test: object,
    metric: str,
    *,
    discrete: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate a train/test split: shapes, finiteness and matching columns."""
    codes_train = check_codes(codes_train, metric, name="codes_train")
    factors_train = check_factors(
        factors_train, metric, name="factors_train", num_samples=codes_train.shape[0],
        discrete=discrete,
    )
    codes_test = check_codes(codes_test, metric, name="codes_test")
    factors_test = check_factors(
        factors_test, metric, name="factors_test", num_samples=codes_test.shape[0],
        discrete=discrete,
    )
    if codes_train.shape[1] != codes_test.shape[1]:
        raise MetricInputError(
            f"{metric}: codes_train has {codes_train.shape[1]} code dimensions but codes_test "
            f"has {codes_test.shape[1]}; both must come from the same representation."
        )
    if factors_train.shape[1] != factors_test.shape[1]:
        raise MetricInputError(
            f"{metric}: factors_train has {factors_train.shape[1]} factors but factors_test "
            f"has {factors_test.shape[1]}; both must describe the same factors."
        )
    return codes_train, factors_train, codes_test, factors_test


def check_num_codes(codes: np.ndarray, metric: str, minimum: int) -> None:
    """Raise if the representation has fewer than ``minimum`` code dimensions."""
    if codes.shape[1] < minimum:
        raise MetricInputError(
            f"{metric}: needs at least {minimum} code dimensions (columns of codes) to compare "
            f"the best code with the runner-up; got {codes.shape[1]}."
        )


def check_num_bins(num_bins: object, metric: str) -> int:
    """Validate the number of histogram bins."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise MetricInputError(f"{metric}: num_bins must be a positive integer; got {num_bins!r}.")
    return int(num_bins)


def nonconstant_factors(factors: np.ndarray, metric: str) -> np.ndarray:
    """Indices of the factors that take more than one value.

    A constant factor has zero entropy and cannot be predicted, intervened on or
    normalised by, so every supervised metric here skips it (with a
    ``MetricWarning``). If every factor is constant the metric is undefined and
    ``MetricInputError`` is raised.
    """
    varying = np.any(factors != factors[:1], axis=0)
    keep = np.flatnonzero(varying)
    if keep.size == 0:
        raise MetricInputError(
            f"{metric}: every factor is constant (a single value across all "
            f"{factors.shape[0]} samples); at least one factor must vary."
        )
    if keep.size < factors.shape[1]:
        skipped = np.flatnonzero(~varying).tolist()
        warnings.warn(
            f"{metric}: factor(s) {skipped} are constant (zero entropy) and are skipped; "
            f"the score averages over the remaining {keep.size} factor(s).",
            MetricWarning,
            stacklevel=3,
        )
    return keep


def warn_unseen_test_classes(
    factors_train: np.ndarray, factors_test: np.ndarray, metric: str
) -> None:
    """Warn if a test sample has a factor class that never occurs in the training set.

    As in the reference, such samples are still scored: a classifier can only predict
    the classes it saw, so they count as misclassified (accuracies) or as negatives of
    every seen class (ROC-AUC). Raising instead would fail a whole run at its end over
    an unlucky draw of a factor with many classes (dSprites' 40 orientations).
    """
    for j in range(factors_train.shape[1]):
        unseen = np.setdiff1d(factors_test[:, j], factors_train[:, j])
        if unseen.size:
            warnings.warn(
                f"{metric}: factor {j} has class(es) {unseen[:10].tolist()} in factors_test that "
                f"never occur in factors_train; they are scored as misclassified. A larger "
                f"training set would cover every class.", MetricWarning, stacklevel=3)


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Histogram-discretise each column into ``num_bins`` equal-width bins.

    Same as disentanglement_lib's ``_histogram_discretize``: the bin edges of
    ``np.histogram(column, num_bins)`` without the last edge are passed to
    ``np.digitize``, so labels run from 1 to ``num_bins`` and the column maximum
    falls into bin ``num_bins``. Returns an int64 array of the same shape.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise MetricInputError(
            f"discretize: expected a 2-D array (num_samples, num_columns); got shape {codes.shape}."
        )
    num_bins = check_num_bins(num_bins, "discretize")
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, i], bins=num_bins)
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def _mutual_info(a: np.ndarray, num_a: int, b: np.ndarray, num_b: int) -> float:
    """MI (nats) of two label vectors already mapped to ``0..num_a-1`` and ``0..num_b-1``."""
    if num_a == 1 or num_b == 1:
        return 0.0
    n = a.size
    # Only the non-empty cells of the contingency table, so memory stays O(N).
    cells, n_ab = np.unique(a * num_b + b, return_counts=True)
    n_a = np.bincount(a)[cells // num_b]
    n_b = np.bincount(b)[cells % num_b]
    terms = n_ab / n * (np.log(n_ab) + np.log(n) - np.log(n_a) - np.log(n_b))
    return max(float(terms.sum()), 0.0)


def _labels(x: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(x, return_inverse=True)
    return inverse.ravel().astype(np.int64), values.size


def discrete_mutual_info(codes_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Matrix ``m[i, j] = I(codes_discrete[:, i]; factors[:, j])`` in nats, shape (D, K).

    Equals ``sklearn.metrics.mutual_info_score(factors[:, j], codes_discrete[:, i])``
    (the plug-in estimator of disentanglement_lib) computed from contingency counts.
    """
    code_labels = [_labels(c) for c in np.asarray(codes_discrete).T]
    factor_labels = [_labels(f) for f in np.asarray(factors).T]
    m = np.zeros((len(code_labels), len(factor_labels)))
    for i, (a, num_a) in enumerate(code_labels):
        for j, (b, num_b) in enumerate(factor_labels):
            m[i, j] = _mutual_info(a, num_a, b, num_b)
    return m


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of each column, shape (K,); equals ``mutual_info_score(y, y)``."""
    entropies = []
    for column in np.asarray(factors).T:
        _, counts = np.unique(column, return_counts=True)
        p = counts / counts.sum()
        entropies.append(float(-np.sum(p * np.log(p))) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return np.asarray(entropies)
