"""The report's analyses on synthetic tables whose answers are known."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from disbench.report import stats

MODELS = {"betavae": ("beta", [1.0, 4.0, 16.0]), "factorvae": ("gamma", [10.0, 40.0, 100.0])}


def grid(score, seeds=4, datasets=("d1",)) -> pd.DataFrame:
    """One row per (dataset, model, hyperparameter index, seed); score(d, m, i, s)."""
    rows = []
    for d, (m, (hp, values)), s in itertools.product(datasets, MODELS.items(), range(seeds)):
        for i, v in enumerate(values):
            rows.append({"study": "x", "run_id": f"{d}-{m}-{i}-{s}", "dataset": d, "model": m,
                         "seed": s, "strength_name": hp, "strength": v, f"hp.{hp}": v,
                         "score": score(d, m, i, s)})
    return pd.DataFrame(rows)


SEED_EFFECT = [0.3, -1.2, 2.0, 0.7]


@pytest.mark.parametrize("score, expected", [
    (lambda d, m, i, s: SEED_EFFECT[s], (0.0, 0.0, 1.0)),
    (lambda d, m, i, s: {"betavae": 1.0, "factorvae": 5.0}[m], (1.0, 0.0, 0.0)),
    (lambda d, m, i, s: [0.0, 2.0, 7.0][i], (0.0, 1.0, 0.0)),
])
def test_variance_decomposition_of_pure_effects(score, expected):
    shares = stats.variance_decomposition(grid(score), ["score"])
    row = shares.iloc[0]
    assert row["runs"] == 24
    assert (row["model"], row["hyperparameter"], row["seed"]) == pytest.approx(expected, abs=1e-12)


def test_variance_decomposition_matches_sums_of_squares_by_hand():
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(2, 3, 4))
    table = grid(lambda d, m, i, s: {"betavae": 0, "factorvae": 1}[m] * 2.0 + i * 0.5
                 + noise[{"betavae": 0, "factorvae": 1}[m], i, s])
    y = table["score"].to_numpy()
    grand = y.mean()
    ss_model = ss_hyper = ss_seed = 0.0
    for m in MODELS:
        in_model = table[table["model"] == m]
        m_mean = in_model["score"].mean()
        ss_model += len(in_model) * (m_mean - grand) ** 2
        for i in range(3):
            cell = in_model[in_model["strength"] == MODELS[m][1][i]]["score"].to_numpy()
            ss_hyper += len(cell) * (cell.mean() - m_mean) ** 2
            ss_seed += ((cell - cell.mean()) ** 2).sum()
    total = ((y - grand) ** 2).sum()
    assert ss_model + ss_hyper + ss_seed == pytest.approx(total)
    row = stats.variance_decomposition(table, ["score"]).iloc[0]
    assert row["model"] == pytest.approx(ss_model / total)
    assert row["hyperparameter"] == pytest.approx(ss_hyper / total)
    assert row["seed"] == pytest.approx(ss_seed / total)


def test_variance_of_a_constant_score_is_undefined():
    row = stats.variance_decomposition(grid(lambda *a: 0.5), ["score"]).iloc[0]
    assert np.isnan(row["model"]) and np.isnan(row["seed"])


def test_rank_correlations_known_and_against_scipy():
    rng = np.random.default_rng(0)
    table = grid(lambda *a: 0.0, datasets=("d1", "d2"))
    a = rng.normal(size=len(table))
    table["a"] = a
    table["monotone"] = np.exp(3 * a)  # same ranks
    table["reversed"] = -a
    table["ties"] = np.round(rng.normal(size=len(table)), 0)  # many ties
    table["constant"] = 1.0
    matrices = stats.rank_correlations(table, ["a", "ties"], ["monotone", "reversed", "ties",
                                                                "constant"])
    assert sorted(matrices) == ["d1", "d2"]
    for dataset, matrix in matrices.items():
        part = table[table["dataset"] == dataset]
        assert matrix.loc["a", "monotone"] == pytest.approx(1.0)
        assert matrix.loc["a", "reversed"] == pytest.approx(-1.0)
        assert matrix.loc["a", "ties"] == pytest.approx(spearmanr(part["a"], part["ties"])[0])
        assert matrix.loc["ties", "ties"] == 1.0
        assert np.isnan(matrix.loc["a", "constant"])


def test_rank_correlations_per_model_are_each_models_own():
    """UDR's exhibit: within each model, not pooled. Pooled, the offset between the models
    would dominate; within each, UDR agrees with one model's metric and is reversed for
    the other's."""
    table = grid(lambda d, m, i, s: 10.0 * (m == "factorvae") + i + 0.1 * s)
    table["udr"] = np.where(table["model"] == "betavae", table["score"], -table["score"])
    rng = np.random.default_rng(1)
    table["noise"] = rng.normal(size=len(table))
    matrix = stats.rank_correlations_per_model(table, "udr", ["score", "noise"])["d1"]
    assert list(matrix.index) == ["betavae", "factorvae"]
    assert list(matrix.columns) == ["score", "noise"]
    assert matrix.loc["betavae", "score"] == pytest.approx(1.0)
    assert matrix.loc["factorvae", "score"] == pytest.approx(-1.0)
    for model in MODELS:
        part = table[table["model"] == model]
        assert matrix.loc[model, "noise"] == pytest.approx(spearmanr(part["udr"],
                                                                     part["noise"])[0])


def test_rank_correlation_skips_missing_values_pairwise():
    table = grid(lambda d, m, i, s: float(i * 10 + s))
    table["other"] = table["score"] * 2
    table.loc[table.index[:5], "other"] = np.nan
    matrix = stats.rank_correlations(table, ["score"], ["other"])["d1"]
    assert matrix.loc["score", "other"] == pytest.approx(1.0)


def test_summary_median_and_quartiles():
    table = grid(lambda d, m, i, s: float(i * 4 + s))
    rows = stats.summary(table, ["score"]).set_index("model")
    values = np.arange(12, dtype=float)  # i*4 + s over i<3, s<4
    assert rows.loc["betavae", "runs"] == 12
    assert rows.loc["betavae", "median"] == np.median(values)
    assert rows.loc["betavae", "q25"] == np.quantile(values, 0.25)
    assert rows.loc["betavae", "iqr"] == np.quantile(values, 0.75) - np.quantile(values, 0.25)


def test_strength_trend_median_min_max_per_value():
    table = grid(lambda d, m, i, s: float(i * 10 + s))
    trend = stats.strength_trend(table, ["score"])
    row = trend[(trend["model"] == "factorvae") & (trend["strength"] == 40.0)].iloc[0]
    assert (row["strength_name"], row["runs"], row["median"], row["min"], row["max"]) == \
        ("gamma", 4, 11.5, 10.0, 13.0)


def test_selection_by_the_target_itself_wins_as_often_as_possible():
    # no seed noise, the score rises with the hyperparameter: the rule picks the best value;
    # it beats a random value unless the random value is that same one (then a tie, 1/2)
    table = grid(lambda d, m, i, s: float(i))
    table["same"] = table["score"]
    table["reverse"] = -table["score"]
    got = stats.selection_transfer(table, [("score", 1.0), ("reverse", 1.0)],
                                   ["same", "reverse"], repeats=20000)["d1"]
    best = 2 / 3 + 0.5 / 3
    assert got.loc["score", "same"] == pytest.approx(best, abs=0.01)
    # choosing the best by one score picks the worst by its opposite: a win never, a tie 1/3
    assert got.loc["score", "reverse"] == pytest.approx(0.5 / 3, abs=0.01)
    assert got.loc["reverse", "reverse"] == pytest.approx(best, abs=0.01)


def test_selection_direction_and_chance():
    # many seeds, so that the noise's best setting is close to uniformly distributed
    rng = np.random.default_rng(1)
    table = grid(lambda d, m, i, s: float(i), seeds=400)
    table["noise"] = rng.normal(size=len(table))
    # a lower-is-better source (sign -1) pointing the right way wins as often as possible
    table["loss"] = -table["score"]
    got = stats.selection_transfer(table, [("loss", -1.0), ("noise", 1.0)], ["score"],
                                   repeats=20000)["d1"]
    assert got.loc["loss", "score"] == pytest.approx(2 / 3 + 0.5 / 3, abs=0.01)
    assert got.loc["noise", "score"] == pytest.approx(0.5, abs=0.02)


def test_selection_across_datasets():
    # the score rises with the hyperparameter on d1 and falls on d2
    table = grid(lambda d, m, i, s: float(i if d == "d1" else -i), datasets=("d1", "d2"))
    got = stats.selection_transfer(table, [], ["score"], across="datasets",
                                   repeats=20000)["score"]
    assert got.loc["d1", "d1"] == pytest.approx(2 / 3 + 0.5 / 3, abs=0.01)
    assert got.loc["d1", "d2"] == pytest.approx(0.5 / 3, abs=0.01)
    assert list(got.index) == ["d1", "d2"]


def test_selection_is_reproducible():
    rng = np.random.default_rng(2)
    table = grid(lambda d, m, i, s: float(rng.normal()))
    a = stats.selection_transfer(table, [("score", 1.0)], ["score"])["d1"]
    b = stats.selection_transfer(table, [("score", 1.0)], ["score"])["d1"]
    pd.testing.assert_frame_equal(a, b)


def test_rank_runs_best_median_worst_ties_by_run_id():
    table = grid(lambda d, m, i, s: float(i))  # 4 seeds tie at each value
    ranked = stats.rank_runs(table, "score")
    beta = ranked[ranked["model"] == "betavae"].set_index("which")
    assert beta.loc["best", "run_id"] == "d1-betavae-2-0"
    assert beta.loc["worst", "run_id"] == "d1-betavae-0-3"
    assert beta.loc["median", "value"] == 1.0


def test_variance_with_one_seed_per_setting_leaves_the_seed_share_undefined():
    # betavae scores 0, 1, 2 and factorvae 3, 4, 5 over its values: grand mean 2.5,
    # SS_model = 6 * 1.5^2 = 13.5, SS_hyper = 2 * (1 + 0 + 1) = 4, SS_total = 17.5; one run
    # per setting leaves no spread within a setting: SS_seed is 0 by construction
    offset = {"betavae": 0.0, "factorvae": 3.0}
    row = stats.variance_decomposition(grid(lambda d, m, i, s: offset[m] + i, seeds=1),
                                       ["score"]).iloc[0]
    assert row["runs"] == 6
    assert row["model"] == pytest.approx(13.5 / 17.5)
    assert row["hyperparameter"] == pytest.approx(4 / 17.5)
    assert np.isnan(row["seed"])


def test_variance_with_one_replicated_setting_measures_the_seed():
    offset = {"betavae": 0.0, "factorvae": 3.0}
    table = grid(lambda d, m, i, s: offset[m] + i + 0.5 * s, seeds=2)
    # keep the second seed of betavae's first value only
    table = table[(table["seed"] == 0) | (table["run_id"] == "d1-betavae-0-1")]
    row = stats.variance_decomposition(table, ["score"]).iloc[0]
    y = table["score"].to_numpy()
    assert row["runs"] == 7
    # the only spread within a setting: 0 and 0.5 around their mean 0.25
    assert row["seed"] == pytest.approx(2 * 0.25 ** 2 / ((y - y.mean()) ** 2).sum())


@pytest.mark.parametrize("runs, expected", [
    (1, [("only", "r0", 0.0)]),
    (2, [("best", "r1", 1.0), ("worst", "r0", 0.0)]),
    (3, [("best", "r2", 2.0), ("median", "r1", 1.0), ("worst", "r0", 0.0)]),
    (4, [("best", "r3", 3.0), ("median", "r2", 2.0), ("worst", "r0", 0.0)]),
])
def test_rank_runs_shows_each_run_once(runs, expected):
    table = pd.DataFrame({"study": "x", "run_id": [f"r{k}" for k in range(runs)],
                          "dataset": "d1", "model": "vae", "score": np.arange(runs, dtype=float)})
    ranked = stats.rank_runs(table, "score")
    assert list(zip(ranked["which"], ranked["run_id"], ranked["value"])) == expected


def test_quantiles_are_numpys_and_keep_an_infinite_score_infinite():
    values = np.array([3.0, -1.0, 7.5, 2.0, 10.0])
    qs = [0.0, 0.25, 0.5, 0.6, 0.75, 1.0]
    np.testing.assert_allclose(stats.quantiles(values, qs), np.quantile(values, qs))
    inf = np.inf
    assert stats.quantiles(np.array([inf, inf, inf]), [0.25, 0.5, 0.75]).tolist() == [inf] * 3
    # between a finite and an infinite value: infinite; exactly on the finite one: itself
    assert stats.quantiles(np.array([1.0, inf]), [0.0, 0.5, 1.0]).tolist() == [1.0, inf, inf]


def test_infinite_scores_leave_no_nan_warning_and_are_left_out_of_the_decomposition():
    table = pd.DataFrame({"dataset": "d", "model": ["a", "a", "b", "b", "b"],
                          "strength_name": None, "strength": None, "seed": [0, 1, 0, 1, 2],
                          "score": [1.0, 2.0, np.inf, 4.0, 6.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        long = stats.summary(table, ["score"])
        shares = stats.variance_decomposition(table, ["score"])
    b = long[long["model"] == "b"].iloc[0]
    assert (b["median"], b["q75"]) == (6.0, np.inf) and b["q25"] == 5.0
    assert shares.iloc[0]["runs"] == 4  # the infinite run is left out
    y = np.array([1.0, 2.0, 4.0, 6.0])
    model_mean = np.array([1.5, 1.5, 5.0, 5.0])
    assert shares.iloc[0]["model"] == pytest.approx(((model_mean - y.mean()) ** 2).sum()
                                                    / ((y - y.mean()) ** 2).sum())
