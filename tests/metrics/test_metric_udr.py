"""UDR (Duan et al. 2020) against disentanglement_lib's ``udr_test.py`` and hand-worked cases.

Most exact values use a two-level factorial design: the columns of ``design()`` and
their products are mutually orthogonal and already standardised (mean 0, variance 1),
so a Lasso regression of one such column on others has the closed form
soft-threshold(correlation, alpha): 1 - 0.1 = 0.9 for a copy (up to sign), 0 for an
orthogonal column, and 1/sqrt(2) - 0.1 for each half of a 45-degree rotation.
"""

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from disbench.metrics import MetricInputError, MetricWarning
from disbench.metrics.udr import (
    SAMPLE_SEED,
    compute_udr,
    lasso_similarity,
    model_udr_sample,
    relative_strength_disentanglement,
    spearman_similarity,
    udr_from_codes,
)

LASSO_COPY = 0.9  # Lasso (alpha = 0.1) coefficient of a standardised copy of the target


def design(num_columns: int = 4) -> np.ndarray:
    """The 2^k full factorial in +-1: orthogonal, balanced, unit-variance columns."""
    return np.array(list(itertools.product([-1.0, 1.0], repeat=num_columns)))


def scores(codes, kl=None, **kwargs):
    kl = kl if kl is not None else [np.ones(c.shape[1]) for c in codes]
    return udr_from_codes(codes, kl, **kwargs)


# -- (a) the reference's own cases (udr_test.py) ---------------------------------------

def test_relative_strength_reference_cases():
    # Hand-worked: each column/row term is max^2 / sum.
    assert relative_strength_disentanglement(np.eye(3)) == 1.0
    # columns and rows: 1/2, 1/2, 1 -> mean 2/3 (reference: between 0.6 and 0.7)
    block = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert relative_strength_disentanglement(block) == pytest.approx(2 / 3)
    # every term 1/3 (reference: between 0.3 and 0.4)
    assert relative_strength_disentanglement(np.ones((3, 3))) == pytest.approx(1 / 3)
    # all-zero rows and columns count 0
    assert relative_strength_disentanglement(np.zeros((3, 3))) == 0.0


def test_relative_strength_rectangular_averages_the_two_sides():
    # columns: 1/2, 1 -> 0.75; rows: 1, 1, 1 -> 1
    r = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert relative_strength_disentanglement(r) == pytest.approx((0.75 + 1.0) / 2)
    # The paper's 1/(d_i + d_j) weighting would give (1.5 + 3) / 5 = 0.9 instead.
    assert relative_strength_disentanglement(r) != pytest.approx(0.9)


def test_spearman_similarity_reference_cases():
    rs = np.random.RandomState(0)
    vec1 = rs.random_sample((1000, 3))
    assert np.allclose(spearman_similarity(vec1, vec1.copy()), np.eye(3), atol=0.1)
    vec1 = rs.random_sample((1000, 3))
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    expected = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(spearman_similarity(vec1, vec2), expected, atol=0.1)


def test_lasso_similarity_reference_cases():
    rs = np.random.RandomState(0)
    vec1 = rs.random_sample((1000, 3)) * 10.0
    assert np.allclose(lasso_similarity(vec1, vec1.copy()), np.eye(3), atol=0.2)
    vec1 = rs.random_sample((1000, 3)) * 10.0
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    expected = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(lasso_similarity(vec1, vec2), expected, atol=0.2)


def test_spearman_similarity_is_scipy_spearmanr_and_orientation():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, size=(200, 3)).astype(float)  # ties: average ranks
    b = np.column_stack([rng.normal(size=200), a[:, 2] ** 3, -a[:, 0]])
    expected = np.array([[abs(spearmanr(a[:, i], b[:, j])[0]) for j in range(3)]
                         for i in range(3)])
    assert np.allclose(spearman_similarity(a, b), expected, atol=1e-12)
    assert spearman_similarity(a, b)[2, 1] == pytest.approx(1.0)  # rows: a, columns: b


def test_lasso_similarity_orientation_and_closed_form():
    x = design(3)
    # rows: regressors (codes_a), columns: targets (codes_b); codes_b has 2 columns
    r = lasso_similarity(x, np.column_stack([-x[:, 2], (x[:, 0] + x[:, 1]) / np.sqrt(2)]))
    half = 1 / np.sqrt(2) - 0.1
    assert r.shape == (3, 2)
    assert np.allclose(r, [[0.0, half], [0.0, half], [LASSO_COPY, 0.0]], atol=1e-9)


# -- (b) identical models up to permutation and sign -----------------------------------

@pytest.mark.parametrize("correlation, expected", [("spearman", 1.0), ("lasso", LASSO_COPY)])
def test_identical_up_to_permutation_and_sign(correlation, expected):
    a = design(4)
    # permuted, sign-flipped, rescaled and shifted: standardisation undoes the affine part
    b = a[:, [2, 0, 3, 1]] * np.array([-1.0, 3.0, -0.5, 2.0]) + 7.0
    result = scores([a, b], correlation=correlation)
    assert result["model_scores"] == pytest.approx([expected, expected], abs=1e-9)
    pairwise = result["pairwise_disentanglement_scores"]
    assert pairwise.shape == (2, 2) and np.isnan(np.diag(pairwise)).all()
    assert pairwise[0, 1] == pytest.approx(expected) and pairwise[1, 0] == pytest.approx(expected)


@pytest.mark.parametrize("correlation", ["spearman", "lasso"])
def test_reference_permutation_case_on_continuous_codes(correlation):
    """udr_test.test_metric_{spearman,lasso}: scores between 0.8 and 1."""
    rng = np.random.default_rng(0)
    a = rng.random((1000, 10))
    b = a[:, rng.permutation(10)]
    b[:, :5] *= -1
    model_scores = scores([a, b], correlation=correlation)["model_scores"]
    assert all(0.8 <= s <= 1.0 for s in model_scores)


# -- (c) an entangled model scores clearly lower ---------------------------------------

def test_45_degree_rotation_hand_value():
    a = design(2)
    c = s = 1 / np.sqrt(2)
    rotated = a @ np.array([[c, -s], [s, c]])
    # every |coefficient| is 1/sqrt(2) - 0.1, so each row/column term is half of it
    expected = (1 / np.sqrt(2) - 0.1) / 2
    assert scores([a, rotated])["model_scores"] == pytest.approx([expected] * 2, abs=1e-9)
    assert scores([a, a[:, ::-1]])["model_scores"] == pytest.approx([LASSO_COPY] * 2)
    # four models, three of them alike: the median keeps the odd one from pulling the
    # others down (their mean would be (2 * 0.9 + 0.3036) / 3)
    result = scores([a, -a, a[:, ::-1], rotated])
    assert result["model_scores"] == pytest.approx([LASSO_COPY] * 3 + [expected], abs=1e-9)


@pytest.mark.parametrize("correlation", ["spearman", "lasso"])
def test_random_rotation_scores_lower_than_axis_aligned(correlation):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1000, 5))
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    aligned = -a[:, ::-1] + 0.1 * rng.normal(size=a.shape)
    result = scores([a, aligned, a @ rotation], correlation=correlation)
    pairwise = result["pairwise_disentanglement_scores"]
    assert pairwise[0, 1] > 0.85
    assert pairwise[0, 2] < 0.6 and pairwise[2, 0] < 0.6
    assert result["model_scores"][2] < 0.6 < 0.85 < min(pairwise[0, 1], pairwise[1, 0])


def test_model_score_is_median_of_its_column():
    """model_scores[i] = median over j != i of S_ji (model i the Lasso target)."""
    rng = np.random.default_rng(2)
    base = rng.normal(size=(400, 3))
    codes = [base @ rng.normal(size=(3, 3)) + rng.normal(size=(400, 3)) for _ in range(3)]
    result = scores(codes)
    pairwise = result["pairwise_disentanglement_scores"]
    assert not np.allclose(pairwise, pairwise.T, equal_nan=True)  # Lasso is asymmetric
    for i in range(3):
        column = [pairwise[j, i] for j in range(3) if j != i]
        assert result["model_scores"][i] == pytest.approx(np.median(column), abs=1e-15)


# -- (d) the KL filter -----------------------------------------------------------------

def test_dimension_below_threshold_is_ignored():
    x = design(4)
    a = x.copy()
    b = np.column_stack([-x[:, 1], x[:, 2], x[:, 0], x[:, 3]])
    kl = [np.array([1.0, 1.0, 1.0, 0.005])] * 2
    # default 0.01: dimension 3 is zeroed and dropped -> three matched pairs
    assert scores([a, b], kl)["model_scores"] == pytest.approx([LASSO_COPY] * 2)
    # A threshold below the reference's fixed 0.01 keeps it in the score but its codes
    # are still zeroed: an all-zero row and column, 3/4 of the matched score.
    for threshold in (0.001, -1.0):
        result = scores([a, b], kl, kl_filter_threshold=threshold)
        assert result["model_scores"] == pytest.approx([LASSO_COPY * 3 / 4] * 2)
    # Spearman: the zeroed dimension correlates 0 (not NaN): 3/4 of 1
    result = scores([a, b], kl, correlation="spearman", kl_filter_threshold=-1.0)
    assert result["model_scores"] == pytest.approx([0.75, 0.75])


def test_threshold_above_001_drops_without_zeroing():
    x = design(4)
    a = np.column_stack([x[:, 0], x[:, 1], x[:, 2], x[:, 0] * x[:, 1]])  # dim 3: noise
    b = np.column_stack([x[:, 2], -x[:, 0], x[:, 1], x[:, 2] * x[:, 3]])  # dim 3: other noise
    kl = [np.array([1.0, 1.0, 1.0, 0.05])] * 2
    # kept (KL 0.05 > 0.01): its row and column are zero -> 3/4 of the matched score
    assert scores([a, b], kl)["model_scores"] == pytest.approx([LASSO_COPY * 3 / 4] * 2)
    # a dimension is active when its KL is strictly above the threshold
    for threshold in (0.05, 0.1):
        result = scores([a, b], kl, kl_filter_threshold=threshold)
        assert result["model_scores"] == pytest.approx([LASSO_COPY] * 2)


def test_reference_kl_case():
    """udr_test.test_metric_kl: one informative dimension among ten, the rest KL 0."""
    rng = np.random.default_rng(4)
    signal = rng.random((1000, 1))
    codes = [np.column_stack([signal, rng.random((1000, 9))]) for _ in range(2)]
    kl = [np.eye(10)[0]] * 2
    # filtered: one 1 x 1 matrix [0.9]; unfiltered: 10 x 10 with one 0.9 -> 0.09
    # (reference: between 0.8 and 1, and between 0 and 0.2)
    assert scores(codes, kl)["model_scores"] == pytest.approx([0.9, 0.9])
    unfiltered = scores(codes, kl, kl_filter_threshold=-1.0)["model_scores"]
    assert unfiltered == pytest.approx([0.09, 0.09])


def test_model_without_active_dimension_scores_zero_with_warning():
    x = design(3)
    with pytest.warns(MetricWarning, match=r"UDR: model\(s\) \[2\] have no dimension"):
        result = scores([x, x[:, ::-1], x], [np.ones(3), np.ones(3), np.zeros(3)])
    pairwise = result["pairwise_disentanglement_scores"]
    assert pairwise[0, 2] == pairwise[2, 0] == pairwise[1, 2] == 0.0
    assert pairwise[0, 1] == pytest.approx(LASSO_COPY)
    assert result["model_scores"] == pytest.approx([LASSO_COPY / 2, LASSO_COPY / 2, 0.0])


# -- (e) end to end ---------------------------------------------------------------------

class NoiseImages:
    """Random-noise images (the reference's DummyData), one channel, 8 x 8."""

    def __init__(self, dtype=np.float32):
        self.dtype = dtype
        self.calls = []

    def sample(self, num, rng):
        self.calls.append(num)
        factors = rng.integers(5, size=(num, 2))
        if self.dtype == np.uint8:
            return factors, rng.integers(0, 256, size=(num, 1, 8, 8), dtype=np.uint8)
        return factors, rng.random((num, 1, 8, 8), dtype=np.float32)


PERMUTATION = np.array([3, 0, 4, 1, 2])
ROTATION = np.linalg.qr(np.random.default_rng(5).normal(size=(5, 5)))[0]


def pixels(x):
    return x.reshape(len(x), -1)[:, :5].astype(np.float64)


def rep_axis(x):
    return pixels(x), np.ones((len(x), 5))


def rep_permuted(x):
    codes = pixels(x)[:, PERMUTATION]
    codes[:, [0, 3]] *= -1
    return codes, np.ones((len(x), 5))


def rep_rotated(x):
    return (pixels(x) - 0.5) @ ROTATION, np.ones((len(x), 5))


# Independent uniform pixels: the small sample correlations between unmatched codes
# (~1/sqrt(1000)) enter each Spearman term's sum; the Lasso zeroes most of them.
@pytest.mark.parametrize("correlation, low, high", [("lasso", 0.85, 0.92),
                                                    ("spearman", 0.9, 1.0)])
def test_compute_udr_end_to_end(correlation, low, high):
    seen = []

    def recording(x):
        seen.append((x.dtype, x.shape))
        return rep_axis(x)

    dataset = NoiseImages()
    result = compute_udr(dataset, [recording, rep_permuted, rep_rotated], seed=0,
                         correlation=correlation)  # the reference's 1000 points, batches of 10
    assert dataset.calls == [1000]  # one draw, shared by every model
    assert seen == [(np.float32, (10, 1, 8, 8))] * 100
    model_scores = result["model_scores"]
    pairwise = result["pairwise_disentanglement_scores"]
    assert len(model_scores) == 3 and pairwise.shape == (3, 3)
    assert low <= pairwise[0, 1] <= high and low <= pairwise[1, 0] <= high
    assert model_scores[2] < 0.4
    # the same as the array-level core on the same observations
    _, observations = NoiseImages().sample(1000, np.random.default_rng(0))
    encoded = [fn(observations) for fn in (rep_axis, rep_permuted, rep_rotated)]
    direct = udr_from_codes([c for c, _ in encoded], [k.mean(axis=0) for _, k in encoded],
                            correlation=correlation)
    assert model_scores == pytest.approx(direct["model_scores"], abs=1e-12)


def test_compute_udr_averages_kl_over_points_and_scales_uint8():
    received = []

    def two_pixels(second):
        def fn(x):
            """Dimension 1 has KL 0.02 on the first batch only: 0.02 * 7 / 300 < 0.01."""
            received.append(x)
            kl = np.column_stack([np.ones(len(x)), np.full(len(x), 0.02 * (len(received) == 1))])
            return pixels(x)[:, [0, second]], kl
        return fn

    result = compute_udr(NoiseImages(np.uint8), [two_pixels(1), two_pixels(2)], seed=1,
                         num_data_points=300, batch_size=7)  # last batch: 6 points
    assert [len(x) for x in received] == ([7] * 42 + [6]) * 2
    assert all(x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0 for x in received)
    assert max(x.max() for x in received) > 0.99  # pixels scaled by 1/255, not clipped
    # dimension 1 is inactive in both models (mean KL 0.00047 and 0): a 1 x 1 matrix
    # 0.9; if it counted, the unmatched pixels 1 and 2 would about halve the score.
    assert result["model_scores"] == pytest.approx([LASSO_COPY] * 2)


def test_compute_udr_is_deterministic_in_the_seed():
    fns = [rep_axis, rep_rotated]
    first = compute_udr(NoiseImages(), fns, seed=7, num_data_points=100)
    again = compute_udr(NoiseImages(), fns, seed=7, num_data_points=100)
    other = compute_udr(NoiseImages(), fns, seed=8, num_data_points=100)
    assert first["model_scores"] == again["model_scores"] != other["model_scores"]


class PixelEncoder(torch.nn.Module):
    """A Gaussian encoder: mean = the first 5 pixels mixed by ``mix``, log_var = a fixed
    row (None: a deterministic encoder)."""

    def __init__(self, mix: np.ndarray, log_var: np.ndarray | None):
        super().__init__()
        self.mix, self.log_var = mix, log_var
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # model_representation's device

    def encode(self, x):
        mean = torch.from_numpy(pixels(x.numpy()) @ self.mix).float()
        if self.log_var is None:
            return mean, None
        return mean, torch.from_numpy(self.log_var).float().expand_as(mean)


def test_stored_sample_gives_compute_udrs_scores():
    """What scoring stores (``model_udr_sample``) and the aggregate scores from equals
    ``compute_udr`` on the same models with seed SAMPLE_SEED."""
    log_var = np.log([0.5, 0.9, 0.999, 1.0, 0.2])  # dimension 3: KL 0 (left out)
    mixes = [np.eye(5), np.eye(5)[:, PERMUTATION] * [-1, 1, 1, -1, 1], ROTATION]
    encoders = [PixelEncoder(m, log_var) for m in mixes]
    samples = [model_udr_sample(e, NoiseImages(), 300, "cpu", batch_size=64) for e in encoders]
    for sample in samples:
        assert sample["codes"].shape == (300, 5) and sample["codes"].dtype == np.float32
        assert sample["seed"] == SAMPLE_SEED and sample["num_points"] == 300
    # the KL of the study's representation, by hand: 0.5 (mu^2 + var - log var - 1)
    _, x = NoiseImages().sample(300, np.random.default_rng(SAMPLE_SEED))
    mean = pixels(x)
    kl = (0.5 * (mean**2 + np.exp(log_var) - log_var - 1)).mean(axis=0)
    np.testing.assert_allclose(samples[0]["kl"], kl, rtol=1e-5)

    def representation(mix):
        def fn(batch):
            codes = pixels(batch) @ mix
            return codes, 0.5 * (codes**2 + np.exp(log_var) - log_var - 1)
        return fn

    for correlation in ("lasso", "spearman"):
        stored = udr_from_codes([s["codes"] for s in samples], [s["kl"] for s in samples],
                                correlation)["model_scores"]
        direct = compute_udr(NoiseImages(), [representation(m) for m in mixes], seed=SAMPLE_SEED,
                             num_data_points=300, correlation=correlation)["model_scores"]
        assert stored == pytest.approx(direct, abs=1e-5)
    assert model_udr_sample(PixelEncoder(np.eye(5), None), NoiseImages(), 10, "cpu") is None


# -- (f) bad inputs ---------------------------------------------------------------------

def test_bad_inputs_core():
    x = design(3)
    ones = [np.ones(3), np.ones(3)]
    with pytest.raises(MetricInputError, match="UDR: needs at least 2 models to compare; got 1"):
        udr_from_codes([x], [np.ones(3)])
    with pytest.raises(MetricInputError, match=r"UDR: codes\[1\] has 4 rows but codes\[0\] has 8"):
        udr_from_codes([x, x[:4]], ones)
    with pytest.raises(MetricInputError, match="UDR: correlation must be one of 'lasso', "
                                               "'spearman'; got 'pearson'"):
        udr_from_codes([x, x], ones, correlation="pearson")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MetricInputError, match=r"UDR: codes\[1\] contains 1 NaN/inf"):
        udr_from_codes([x, bad], ones)
    with pytest.raises(MetricInputError, match=r"UDR: kl\[1\] must hold one finite value per "
                                               r"code dimension, shape \(3,\); got shape \(2,\)"):
        udr_from_codes([x, x], [np.ones(3), np.ones(2)])
    with pytest.raises(MetricInputError, match=r"UDR: kl\[0\] must hold .*; got NaN/inf values"):
        udr_from_codes([x, x], [np.array([1.0, np.inf, 1.0]), np.ones(3)])
    with pytest.raises(MetricInputError, match="UDR: got 2 code arrays but 1 KL arrays"):
        udr_from_codes([x, x], [np.ones(3)])
    with pytest.raises(MetricInputError, match="UDR: kl_filter_threshold must be a real number"):
        udr_from_codes([x, x], ones, kl_filter_threshold=float("nan"))
    with pytest.raises(MetricInputError, match="UDR: the similarity matrix must be"):
        relative_strength_disentanglement(-np.eye(2))


def test_bad_inputs_compute_udr():
    with pytest.raises(MetricInputError, match="UDR: needs at least 2 models to compare; got 1 "
                                               "representation functions"):
        compute_udr(NoiseImages(), [rep_axis], seed=0)
    with pytest.raises(MetricInputError, match="UDR: correlation must be one of"):
        compute_udr(NoiseImages(), [rep_axis, rep_axis], seed=0, correlation="Lasso")
    with pytest.raises(MetricInputError, match=r"UDR: representation_functions\[1\] must "
                                               r"return a pair \(codes, kl_per_dimension\)"):
        compute_udr(NoiseImages(), [rep_axis, pixels], seed=0, num_data_points=20)
    with pytest.raises(MetricInputError, match=r"representation_functions\[1\] returned codes "
                                               r"of shape \(10, 5\) and KL of shape \(5,\)"):
        compute_udr(NoiseImages(), [rep_axis, lambda x: (pixels(x), np.ones(5))], seed=0,
                    num_data_points=20)
    with pytest.raises(MetricInputError, match=r"UDR: codes\[1\] contains 100 NaN/inf"):
        compute_udr(NoiseImages(), [rep_axis, lambda x: (np.full((len(x), 5), np.inf),
                                                         np.ones((len(x), 5)))],
                    seed=0, num_data_points=20)
    with pytest.raises(MetricInputError, match="UDR: the dataset object has no sample"):
        compute_udr(object(), [rep_axis, rep_axis], seed=0)
    with pytest.raises(MetricInputError, match="UDR: batch_size must be an integer >= 1"):
        compute_udr(NoiseImages(), [rep_axis, rep_axis], seed=0, batch_size=0)
