"""The metric suite: settings, seeds, the code table against encoding on the fly, bad input."""

import math

import numpy as np
import pytest
import yaml
from suite_fixtures import SMALL, Noise, gaussian_identity, identity, tiny_grid

from disbench.metrics import METRICS, MetricInputError, evaluate, resolve_settings
from disbench.metrics.evaluate import (
    EVAL_CONF_DIR,
    MODEL_SCHEMA,
    SCHEMA,
    STUDY_SEED,
    SUITE_SETTINGS,
)

NO_DOWNSTREAM = [m for m in METRICS if m != "downstream"]


class OnTheFly:
    """The tiny grid behind a user-defined class: the protocol only, no `images`. Keeps
    the factors of every observation it renders (the points the metrics encode)."""

    def __init__(self, deterministic=True):
        self._grid = tiny_grid()
        self.factor_names = self._grid.factor_names
        self.factor_sizes = self._grid.factor_sizes
        self.observation_shape = self._grid.observation_shape
        self.deterministic = deterministic
        self.calls = 0
        self.rendered = []

    def sample_factors(self, num, rng):
        return self._grid.sample_factors(num, rng)

    def sample_observations_from_factors(self, factors, rng):
        self.calls += 1
        self.rendered.append(np.array(factors))
        return self._grid.sample_observations_from_factors(factors, rng)


@pytest.mark.slow
def test_table_and_on_the_fly_give_identical_values():
    """Every metric, mean and sampled representation: the same dict, value for value."""
    for representation in ("mean", "sampled"):
        table_timings, fly_timings = {}, {}
        table = evaluate(tiny_grid(), gaussian_identity, config=SMALL, seed=3,
                         representation=representation, timings=table_timings, n_jobs=1)
        fly = evaluate(tiny_grid(), gaussian_identity, config=SMALL, seed=3,
                       representation=representation, encode_once=False, timings=fly_timings,
                       n_jobs=1)
        assert table == fly
        # 40 scores, and fairness's 2 x 26 on 3 factors: 6 ordered pairs, 3 x 2 per
        # target, 3 x 2 per sensitive factor, 8 overall (mean and max fairness)
        assert len(table) == 40 + 52 and all(isinstance(v, float) for v in table.values())
        assert table_timings["num_encoded"] == 60  # every grid image once
        assert fly_timings["num_encoded"] > 10_000


def test_a_user_dataset_class_works_and_is_encoded_once():
    dataset = OnTheFly()
    scores = evaluate(dataset, identity, names=["mig", "factor_vae"], config=SMALL)
    assert scores == evaluate(tiny_grid(), identity, names=["mig", "factor_vae"], config=SMALL)
    assert dataset.calls == 1  # 60 grid points, one batch
    random_obs = OnTheFly(deterministic=False)
    assert evaluate(random_obs, identity, names=["mig"], config=SMALL) == \
        evaluate(tiny_grid(), identity, names=["mig"], config=SMALL)
    assert random_obs.calls == 1  # 500 samples, one batch of 1024


def test_same_seed_same_values_other_seed_other_values():
    a = evaluate(tiny_grid(), gaussian_identity, names=NO_DOWNSTREAM, config=SMALL, seed=0,
                 representation="sampled")
    b = evaluate(tiny_grid(), gaussian_identity, names=NO_DOWNSTREAM, config=SMALL, seed=0,
                 representation="sampled")
    c = evaluate(tiny_grid(), gaussian_identity, names=NO_DOWNSTREAM, config=SMALL, seed=1,
                 representation="sampled")
    assert a == b
    assert a.keys() == c.keys()
    for key in ("mig.mig", "unsupervised.gaussian_total_correlation", "irs.irs",
                "dci.disentanglement", "sap.sap"):
        assert a[key] != c[key], key


@pytest.mark.parametrize("seed_from", ["run", "study"])
def test_seed_from_study_samples_the_same_points_whatever_the_seed(seed_from):
    """seed_from: study -> the points (and scores) of STUDY_SEED for every seed;
    seed_from: run -> the seed's own points."""
    names = ["mig", "sap", "modularity", "unsupervised"]
    config = {**SMALL, "seed_from": seed_from}
    points, scores = [], []
    for seed in (1, 2):
        dataset = OnTheFly(deterministic=False)  # encoded on the fly: every point rendered
        scores.append(evaluate(dataset, gaussian_identity, names, config, seed=seed,
                               representation="sampled"))
        points.append(np.concatenate(dataset.rendered))
    # mig 500, sap and modularity 300 + 200 each, unsupervised 500
    assert points[0].shape == points[1].shape == (2000, 3)
    if seed_from == "study":
        np.testing.assert_array_equal(points[0], points[1])
        assert scores[0] == scores[1]
        assert scores[0] == evaluate(tiny_grid(), gaussian_identity, names, SMALL,
                                     seed=STUDY_SEED, representation="sampled")
    else:
        assert not np.array_equal(points[0], points[1])
        assert all(scores[0][k] != scores[1][k] for k in ("mig.mig", "sap.sap",
                                                          "modularity.explicitness_test"))


def test_a_metric_does_not_depend_on_the_others_selected():
    alone = evaluate(tiny_grid(), identity, names=["sap"], config=SMALL, seed=2)
    together = evaluate(tiny_grid(), identity, names=["mig", "irs", "sap"], config=SMALL,
                        seed=2)
    assert alone["sap.sap"] == together["sap.sap"]


def test_sampled_codes_differ_from_the_mean_codes():
    mean = evaluate(tiny_grid(), gaussian_identity, names="unsupervised", config=SMALL)
    sampled = evaluate(tiny_grid(), gaussian_identity, names="unsupervised", config=SMALL,
                       representation="sampled")
    # N(mean, 0.25) noise on each code is independent across dims: the total
    # correlation of the sampled codes is smaller, the values differ.
    assert mean != sampled
    assert sampled["unsupervised.gaussian_total_correlation"] < \
        mean["unsupervised.gaussian_total_correlation"] + 0.01


def test_presets_hold_every_setting_and_nothing_else():
    for name in ("locatello", "fast"):
        raw = yaml.safe_load((EVAL_CONF_DIR / f"{name}.yaml").read_text())
        assert raw["name"] == name
        assert set(raw) == {"name", "defer", *SUITE_SETTINGS, *SCHEMA, *MODEL_SCHEMA}
        assert raw["defer"] is False  # scored at the end of training unless asked
        # today's default: each run's seed; every metric on the mean representation, the
        # unsupervised scores also on the sampled one
        assert raw["seed_from"] == "run"
        assert raw["representations"] == {"mean": "all", "sampled": ["unsupervised"]}
        for metric, schema in {**SCHEMA, **MODEL_SCHEMA}.items():
            assert set(raw[metric]) == set(schema), (name, metric)
        # defer says when a run is scored, not how: not among the recorded settings
        assert resolve_settings(name) == {k: v for k, v in raw.items() if k != "defer"}
    locatello = resolve_settings("locatello")
    assert locatello["beta_vae"] == {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
    assert locatello["factor_vae"]["prune_threshold"] == 0.05
    assert locatello["downstream"]["num_train"] == [10, 100, 1000, 10000]
    # not a study config: disentanglement_lib's config/sample/irs/irs.gin (num_train,
    # num_bins) and compute_irs's default diff_quantile
    assert locatello["irs"] == {"num_train": 10000, "diff_quantile": 0.99, "num_bins": 20}
    # the fairness study's (fairness_study_v1 metric_configs/fairness.gin); UDR: the
    # reference's default sample (evaluation/udr/evaluate.py)
    assert locatello["fairness"] == {"num_train": 10000, "num_test_points_per_class": 100}
    assert locatello["udr"] == {"num_points": 1000}


def test_a_partial_dict_is_merged_over_its_preset():
    s = resolve_settings({"name": "fast", "dci": {"num_train": 200}})
    fast = resolve_settings("fast")
    assert s["dci"] == {"num_train": 200, "num_test": fast["dci"]["num_test"]}
    assert s["mig"] == fast["mig"]
    assert resolve_settings({"mig": {"num_bins": 10}})["name"] == "locatello"
    # representations are merged per representation; lists come back in suite order
    s = resolve_settings({"name": "fast", "seed_from": "study",
                          "representations": {"sampled": ["unsupervised", "mig", "mig"]}})
    assert s["seed_from"] == "study"
    assert s["representations"] == {"mean": "all", "sampled": ["mig", "unsupervised"]}
    assert resolve_settings(s) == s  # resolved settings resolve to themselves


@pytest.mark.parametrize("config, match", [
    ("nonsense", "unknown eval settings 'nonsense'; valid: fast, locatello"),
    ("none", "eval=none computes no metrics"),
    ({"mgi": {}}, "unknown metric.*mgi.*valid: beta_vae"),
    ({"mig": {"bins": 3}}, "unknown setting.*bins for mig; valid: num_train, num_bins"),
    ({"mig": {"num_train": 1}}, "mig.num_train must be an integer >= 2"),
    ({"dci": {"num_test": 10.5}}, "dci.num_test must be an integer"),
    ({"irs": {"diff_quantile": 2}}, r"irs.diff_quantile must lie in \[0, 1\]"),
    ({"downstream": {"num_train": []}}, "downstream.num_train must be a non-empty list"),
    ({"seed_from": "runs"}, "seed_from must be one of run, study; got 'runs'"),
    ({"seed": 3}, "unknown metric.*seed.*seed_from, representations.*the run's seed"),
    ({"representations": ["mean", "sampled"]}, "representations must be a mapping"),
    ({"representations": {"both": "all"}}, "unknown representation.*both.*valid: mean, "
                                           "sampled"),
    ({"representations": {"sampled": "unsupervised"}},
     "representations.sampled must be 'all' or a list"),
    ({"representations": {"sampled": ["mgi"]}},
     "unknown metric.*'mgi' in eval setting representations.sampled"),
    (3, "config must be a preset name"),
])
def test_bad_settings(config, match):
    with pytest.raises(MetricInputError, match=match):
        evaluate(tiny_grid(), identity, config=config)


def test_unknown_metric_name_lists_the_valid_ones():
    with pytest.raises(MetricInputError, match="unknown metric.*'betavae'.*valid: beta_vae, "
                                               "factor_vae, mig, dci"):
        evaluate(tiny_grid(), identity, names=["betavae"])


@pytest.mark.parametrize("encode_once", [True, False])
def test_representation_returning_nan_is_named(encode_once):
    def nan_codes(x):
        codes = identity(x)
        codes[0, 1] = np.nan
        return codes

    with pytest.raises(MetricInputError, match="metric 'mig'.*representation_fn returned 1 "
                                               "NaN/inf value"):
        evaluate(tiny_grid(), nan_codes, names="mig", config=SMALL, encode_once=encode_once)


@pytest.mark.parametrize("fn, match", [
    (lambda x: identity(x)[:-1], r"shape \(59, 3\) for 60 observations; expected shape \(60, "),
    (lambda x: identity(x).ravel(), r"shape \(180,\) for 60 observations"),
    (lambda x: identity(x).astype(str), "dtype <U"),
    (lambda x: (identity(x), identity(x)[:, :2]),
     r"a mean of shape \(60, 3\) but a log-variance of shape \(60, 2\)"),
    (42, "representation_fn must be callable"),
])
def test_representation_with_the_wrong_output_is_named(fn, match):
    with pytest.raises(MetricInputError, match=match):
        evaluate(tiny_grid(), fn, names="mig", config=SMALL)


def test_sampled_representation_needs_log_variances():
    with pytest.raises(MetricInputError, match=r"needs a representation_fn that returns a "
                                               r"\(mean, log_var\) pair"):
        evaluate(tiny_grid(), identity, names="mig", config=SMALL, representation="sampled")


def test_dataset_lacking_a_protocol_member_is_named():
    class NoObservations:
        factor_sizes = (3, 4)

        def sample_factors(self, num, rng):
            return np.zeros((num, 2), int)

    with pytest.raises(MetricInputError, match="NoObservations lacks "
                                               "sample_observations_from_factors"):
        evaluate(NoObservations(), identity, names="mig")


def test_dataset_with_bad_factors_is_named():
    dataset = OnTheFly()
    dataset.sample_factors = lambda num, rng: np.full((num, 3), 7)
    with pytest.raises(MetricInputError, match=r"outside \[0, factor_sizes\)"):
        evaluate(dataset, identity, names="mig", config=SMALL)


def test_encode_once_needs_a_deterministic_dataset():
    with pytest.raises(MetricInputError, match="deterministic == True"):
        evaluate(OnTheFly(deterministic=False), identity, names="mig", encode_once=True)


def test_noise_codes_give_low_scores():
    """A representation that ignores the images: supervised scores near their floor."""
    s = evaluate(tiny_grid(), Noise(), names=["mig", "dci", "factor_vae"], config=SMALL,
                 encode_once=False)
    assert s["mig.mig"] < 0.05
    assert s["dci.disentanglement"] < 0.15
    assert s["dci.informativeness_test"] < 0.5
    assert math.isclose(s["factor_vae.eval_accuracy"], 1 / 3, abs_tol=0.12)


def test_point_mass_posterior_samples_its_code():
    """A deterministic encoder's log-variance is -inf (model_representation): its sampled
    representation is its code, so every score equals the mean representation's."""
    def point_mass(x):
        codes = identity(x)
        return codes, np.full_like(codes, -np.inf)

    mean = evaluate(tiny_grid(), identity, names="mig", config=SMALL)
    sampled = evaluate(tiny_grid(), point_mass, names="mig", config=SMALL,
                       representation="sampled")
    assert sampled == mean and mean["mig.mig"] > 0.8


def test_nan_log_variance_is_still_refused():
    def nan_log_var(x):
        codes = identity(x)
        log_var = np.zeros_like(codes)
        log_var[0, 0] = np.nan
        return codes, log_var

    with pytest.raises(MetricInputError, match="NaN/inf value"):
        evaluate(tiny_grid(), nan_log_var, names="mig", config=SMALL, representation="sampled")
