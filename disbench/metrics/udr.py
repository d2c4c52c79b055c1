"""UDR: Unsupervised Disentanglement Ranking.

Duan, Matthey, Saraiva, Watters, Burgess, Lerchner & Higgins (2020), "Unsupervised
Model Selection for Variational Disentangled Representation Learning", ICLR
(arXiv:1905.12614). Estimator as in disentanglement_lib
``evaluation/udr/metrics/udr.py`` (``compute_udr_sklearn``).

UDR needs no ground truth: it scores a model by how much its representation agrees with
those of other models (other seeds, other hyperparameters) encoding the same inputs.
Disentangled representations agree up to a permutation and sign flips of their
dimensions; entangled ones differ from run to run. For M models, let z^i (N, D_i) be
the codes (means) of model i on the same N observations and kl^i (D_i,) its KL
divergence per dimension averaged over the N points.

1. Preprocessing: every code dimension is standardised (zero mean, unit variance; a
   constant one is only centred), and dimensions with kl^i_a <= 0.01 are set to 0.
2. Similarity matrix R^ij (D_i, D_j) for every ordered pair i != j:

   * ``"lasso"``: R^ij_ab = |W_ba|, W the coefficients of a Lasso with alpha = 0.1
     (scikit-learn's 1/(2N) ||y - X w||^2 + alpha ||w||_1, intercept fitted) that
     regresses each dimension z^j_b on all of z^i;
   * ``"spearman"``: R^ij_ab = |Spearman rank correlation of z^i_a and z^j_b|.

3. KL filter: only the rows a with kl^i_a > kl_filter_threshold and the columns b with
   kl^j_b > kl_filter_threshold are kept; the kept matrix R is d_i x d_j, d the
   numbers of active dimensions.
4. Pairwise score (``relative_strength_disentanglement``), one term per column and one
   per row, each the squared largest entry over the sum of the entries:

       S_ij = 1/2 [ 1/d_j sum_b max_a R_ab^2 / sum_a R_ab
                  + 1/d_i sum_a max_b R_ab^2 / sum_b R_ab ],

   a term with a zero sum (an all-zero row or column) counting 0. A row or column with
   a single non-zero entry r contributes r; one spread evenly over k entries, r / k.
   Models identical up to permutation and sign score 1 with Spearman and 0.9 with
   Lasso (its penalty shrinks a unit coefficient to 1 - alpha) when their dimensions
   are uncorrelated in the sample; chance correlations between unmatched dimensions
   enter the sums and lower the Spearman score (about 0.93 for 5 independent
   dimensions on 1000 points) more than the Lasso one, whose penalty zeroes most.
5. Model score: UDR_i = median over j != i of S_ji (for Lasso, model i's codes are the
   regression targets), as the reference (``np.delete(disentanglement[:, i], i)``).

Where the paper and the reference differ, this module follows the reference:

* Normalisation. The paper (Eq. 2, as we read it) divides the sum of the d_i row terms
  and d_j column terms by d_i + d_j; the reference averages the column mean and the
  row mean, 1/2 (mean_b + mean_a). They agree when d_i = d_j.
* Two thresholds. The reference zeroes the codes of dimensions with KL <= 0.01 (a
  fixed ``np.greater(kl, 0.01)``) whatever ``kl_filter_threshold`` is, which only
  selects the rows and columns of R that are scored. With a threshold below 0.01, a
  dimension with KL in (threshold, 0.01] is scored with an all-zero row or column,
  which counts 0 and lowers the score; a negative threshold scores every dimension
  (the reference's ``filter_low_kl=False``).
* The reference passes its random state to ``Lasso``; with the default cyclic
  coordinate descent the fit does not draw from it, so there is no such argument here.

Deliberate differences, for inputs the reference mishandles:

* Spearman correlation with a constant dimension (e.g. one zeroed in step 1 that the
  filter keeps) is taken as 0. The reference gets NaN from scipy, and its
  ``nan_to_num`` then sets the term of EVERY column to 0 (a NaN row spoils each
  column's max and sum), so the pair scores at most 1/2.
* A pair in which a model has no active dimension scores 0, with a ``MetricWarning``
  (the reference crashes on an empty ``max``).
* ``pairwise_disentanglement_scores`` is an (M, M) array with NaN on the diagonal (the
  reference: (M, M, 1) with zeros there). The raw similarity matrices are not
  returned. Models may have different numbers of dimensions (the reference asserts
  equal shapes).
* ``compute_udr`` draws all ``num_data_points`` observations at once from
  ``np.random.default_rng(seed)`` and encodes them in batches of ``batch_size``; the
  reference draws batch by batch from a ``RandomState``, so only the distribution of
  the points is the same. The KL per dimension is averaged over all points, which
  equals the reference's mean of per-batch means (equal batches); ``num_data_points``
  need not be a multiple of ``batch_size``.

The reference's representation functions return the means and the batch mean of the
Gaussian KL 0.5 (mu^2 + exp(log_var) - log_var - 1) per dimension; here they return
that KL per point, (B, D), and ``compute_udr`` averages it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from disbench.metrics.utils import (
    MetricInputError,
    MetricWarning,
    as_observations,
    check_codes,
)

METRIC = "UDR"
CORRELATIONS = ("lasso", "spearman")
LASSO_ALPHA = 0.1
# The reference zeroes the codes of dimensions with a mean KL at most this, whatever
# kl_filter_threshold is (``np.greater(kl[i], 0.01)`` in ``compute_udr_sklearn``).
ZERO_CODE_KL = 0.01


def relative_strength_disentanglement(similarity: np.ndarray) -> float:
    """Score of a non-negative (d_i, d_j) similarity matrix R (step 4 of the module doc).

    1/2 (mean over columns of max^2 / sum + mean over rows of max^2 / sum), a row or
    column of zeros counting 0: 1 for a permutation matrix, 1/d for a constant d x d one.
    """
    r = np.asarray(similarity, dtype=np.float64)
    if r.ndim != 2 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise MetricInputError(
            f"{METRIC}: the similarity matrix must be a non-empty 2-D array of finite, "
            f"non-negative values; got shape {r.shape}."
        )

    def mean_relative_strength(axis: int) -> float:
        total = r.sum(axis=axis)
        strength = np.divide(r.max(axis=axis) ** 2, total, out=np.zeros_like(total),
                             where=total > 0)
        return float(strength.mean())

    return (mean_relative_strength(0) + mean_relative_strength(1)) / 2


def spearman_similarity(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of every column of ``codes_a`` with every column of ``codes_b``.

    Shape (D_a, D_b); ties get average ranks (as ``scipy.stats.spearmanr``). A constant
    column correlates 0 with everything (scipy: NaN).
    """

    def unit_ranks(codes: np.ndarray) -> np.ndarray:
        ranks = rankdata(codes, axis=0)
        ranks -= ranks.mean(axis=0)
        norm = np.linalg.norm(ranks, axis=0)
        return np.divide(ranks, norm, out=np.zeros_like(ranks), where=norm > 0)

    return np.abs(unit_ranks(codes_a).T @ unit_ranks(codes_b))


def lasso_similarity(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """|Lasso coefficients| (alpha = 0.1) regressing each column of ``codes_b`` on ``codes_a``.

    Shape (D_a, D_b): entry (a, b) is the weight of ``codes_a[:, a]`` in the prediction
    of ``codes_b[:, b]``. The codes are used as given (``udr_from_codes`` standardises).
    """
    coef = Lasso(alpha=LASSO_ALPHA).fit(codes_a, codes_b).coef_
    return np.abs(np.reshape(coef, (codes_b.shape[1], codes_a.shape[1]))).T


def _check_correlation(correlation: object) -> None:
    if correlation not in CORRELATIONS:
        raise MetricInputError(
            f"{METRIC}: correlation must be one of {', '.join(map(repr, CORRELATIONS))}; "
            f"got {correlation!r}."
        )


def _check_threshold(kl_filter_threshold: object) -> float:
    real = isinstance(kl_filter_threshold, (int, float, np.integer, np.floating))
    if isinstance(kl_filter_threshold, bool) or not real or np.isnan(kl_filter_threshold):
        raise MetricInputError(
            f"{METRIC}: kl_filter_threshold must be a real number; got {kl_filter_threshold!r}."
        )
    return float(kl_filter_threshold)


def _check_num_models(num_models: int, what: str) -> None:
    if num_models < 2:
        raise MetricInputError(
            f"{METRIC}: needs at least 2 models to compare; got {num_models} {what}."
        )


def udr_from_codes(
    codes: Sequence[np.ndarray],
    kl: Sequence[np.ndarray],
    correlation: str = "lasso",
    kl_filter_threshold: float = 0.01,
) -> dict[str, object]:
    """UDR of M models from their codes on the same inputs (steps 1-5 of the module doc).

    Args:
        codes: M arrays, codes[i] of shape (N, D_i): model i's codes (means) of the same
            N observations, in the same order.
        kl: M arrays, kl[i] of shape (D_i,): model i's KL divergence per dimension,
            averaged over the observations.
        correlation: ``"lasso"`` or ``"spearman"``: how the similarity matrix is estimated.
        kl_filter_threshold: dimensions with mean KL at most this are left out of the
            scores (negative: none are).

    Returns:
        ``{"model_scores": list of M floats, "pairwise_disentanglement_scores": (M, M)
        array}``; entry (i, j) of the latter is S_ij (NaN on the diagonal) and
        model_scores[i] is the median of column i without its diagonal.
    """
    _check_num_models(len(codes), "code arrays")
    if len(kl) != len(codes):
        raise MetricInputError(
            f"{METRIC}: got {len(codes)} code arrays but {len(kl)} KL arrays; each model "
            f"needs both."
        )
    _check_correlation(correlation)
    threshold = _check_threshold(kl_filter_threshold)
    codes = [check_codes(c, METRIC, name=f"codes[{i}]") for i, c in enumerate(codes)]
    for i, c in enumerate(codes[1:], start=1):
        if len(c) != len(codes[0]):
            raise MetricInputError(
                f"{METRIC}: codes[{i}] has {len(c)} rows but codes[0] has {len(codes[0])}; "
                f"every model must encode the same observations, one row each."
            )
    kl = [np.asarray(k, dtype=np.float64) for k in kl]
    for i, (c, k) in enumerate(zip(codes, kl)):
        if k.shape != (c.shape[1],) or not np.all(np.isfinite(k)):
            got = f"shape {k.shape}" if k.shape != (c.shape[1],) else "NaN/inf values"
            raise MetricInputError(
                f"{METRIC}: kl[{i}] must hold one finite value per code dimension, shape "
                f"({c.shape[1]},); got {got}."
            )

    # Step 1: standardise, zero the uninformative dimensions.
    codes = [StandardScaler().fit_transform(c) * (k > ZERO_CODE_KL) for c, k in zip(codes, kl)]
    active = [k > threshold for k in kl]
    similarity = lasso_similarity if correlation == "lasso" else spearman_similarity
    num_models = len(codes)
    pairwise = np.full((num_models, num_models), np.nan)
    for i in range(num_models):
        for j in range(num_models):
            if i == j:
                continue
            r = similarity(codes[i], codes[j])[np.ix_(active[i], active[j])]  # steps 2, 3
            pairwise[i, j] = relative_strength_disentanglement(r) if r.size else 0.0  # step 4
    idle = [i for i in range(num_models) if not active[i].any()]
    if idle:
        warnings.warn(
            f"{METRIC}: model(s) {idle} have no dimension with mean KL above "
            f"kl_filter_threshold={threshold}; their pairs score 0.",
            MetricWarning,
            stacklevel=2,
        )
    model_scores = [float(np.median(np.delete(pairwise[:, i], i))) for i in range(num_models)]
    return {"model_scores": model_scores, "pairwise_disentanglement_scores": pairwise}


def _encode(fn: Callable, observations: np.ndarray, batch_size: int,
            model: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (N, D) of ``fn`` on ``observations``, in batches, and its KL averaged over N."""
    codes, kls = [], []
    for start in range(0, len(observations), batch_size):
        batch = observations[start:start + batch_size]
        out = fn(batch)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise MetricInputError(
                f"{METRIC}: representation_functions[{model}] must return a pair (codes, "
                f"kl_per_dimension); got {type(out).__name__}."
            )
        c, k = (np.asarray(x, dtype=np.float64) for x in out)
        if c.ndim != 2 or len(c) != len(batch) or k.shape != c.shape:
            raise MetricInputError(
                f"{METRIC}: representation_functions[{model}] returned codes of shape "
                f"{c.shape} and KL of shape {k.shape} for {len(batch)} observations; both "
                f"must be ({len(batch)}, num_codes)."
            )
        codes.append(c)
        kls.append(k)
    return np.concatenate(codes), np.concatenate(kls).mean(axis=0)


def compute_udr(
    dataset,
    representation_functions: Sequence[Callable],
    seed: int,
    num_data_points: int = 1000,
    batch_size: int = 10,
    correlation: str = "lasso",
    kl_filter_threshold: float = 0.01,
) -> dict[str, object]:
    """UDR of several models on ``num_data_points`` observations of ``dataset``.

    Args:
        dataset: any object with ``sample(num, rng) -> (factors, observations)``, the
            observations (num, C, H, W) float in [0, 1] or uint8 (scaled to [0, 1]).
        representation_functions: one per model; each maps a float32 batch (B, C, H, W)
            to ``(codes, kl_per_dimension)``, both (B, D): the encoder's means and the
            KL divergence of each point's posterior from the prior, per dimension.
        seed: seeds ``np.random.default_rng``, from which the observations are drawn.
        num_data_points: observations every model encodes (the same for all).
        batch_size: observations per call of a representation function.
        correlation, kl_filter_threshold: as ``udr_from_codes``.

    Returns:
        ``udr_from_codes``' result: ``{"model_scores", "pairwise_disentanglement_scores"}``.
        The reference's defaults: 1000 points, batches of 10, Lasso, threshold 0.01.
    """
    _check_num_models(len(representation_functions), "representation functions")
    _check_correlation(correlation)
    _check_threshold(kl_filter_threshold)
    for name, value, minimum in (("num_data_points", num_data_points, 2),
                                 ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise MetricInputError(
                f"{METRIC}: {name} must be an integer >= {minimum}; got {value!r}."
            )
    if not callable(getattr(dataset, "sample", None)):
        raise MetricInputError(
            f"{METRIC}: the dataset {type(dataset).__name__} has no sample(num, rng) method."
        )
    _, observations = dataset.sample(int(num_data_points), np.random.default_rng(seed))
    observations = as_observations(observations)
    encoded = [_encode(fn, observations, int(batch_size), m)
               for m, fn in enumerate(representation_functions)]
    return udr_from_codes([c for c, _ in encoded], [k for _, k in encoded], correlation,
                          kl_filter_threshold)


# -- the stored sample: UDR of a study's runs without retraining ---------------------
SAMPLE_SEED = 0  # every run encodes the same points: compute_udr(..., seed=SAMPLE_SEED)


def model_udr_sample(model, dataset, num_points: int, device,
                     batch_size: int = 1024) -> dict[str, object] | None:
    """A trained model's codes on the study's shared UDR sample, for ``udr_from_codes``.

    The sample is ``compute_udr``'s with ``seed=SAMPLE_SEED``: ``num_points``
    observations drawn from ``np.random.default_rng(SAMPLE_SEED)``, the same for every
    run on the dataset, so ``disbench aggregate`` scores each group of seeds from the
    stored codes as ``compute_udr`` would from the models (scoring stores them in the
    run's ``udr_sample.npz``). The representation is the reference's: the encoder's
    means, and the Gaussian KL 0.5 (mu^2 + exp(log_var) - log_var - 1) per dimension,
    averaged over the points.

    Returns ``{"codes": (N, D) float32, "kl": (D,) float64, "seed", "num_points"}``, or
    None for a deterministic encoder (``log_var`` None): UDR's KL filter needs a
    posterior, so such models get no UDR.
    """
    import torch

    from disbench.metrics.sampling import model_representation
    from disbench.models.base import kl_per_dimension

    representation = model_representation(model, device)

    def codes_and_kl(observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, log_var = (torch.from_numpy(x.astype(np.float64))
                         for x in representation(observations))
        return mean.numpy(), kl_per_dimension(mean, log_var).numpy()

    _, observations = dataset.sample(int(num_points), np.random.default_rng(SAMPLE_SEED))
    codes, kl = _encode(codes_and_kl, as_observations(observations), batch_size, 0)
    if not np.all(np.isfinite(kl)):  # log_var = -inf: a point-mass posterior
        return None
    return {"codes": codes.astype(np.float32), "kl": kl, "seed": SAMPLE_SEED,
            "num_points": int(num_points)}
