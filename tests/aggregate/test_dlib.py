"""Importing disentanglement_lib's aggregated results (disbench.aggregate.dlib).

The files are written the way disentanglement_lib's aggregate_results_to_json writes them:
one dict per evaluation.json, namespaced keys, gin values as strings, then
``pd.DataFrame(rows).to_json(path)``.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from disbench.aggregate.dlib import import_dlib
from disbench.errors import DisbenchError
from disbench.metrics.downstream import downstream_scores

BETA_CONFIG = {
    "model.name": "'beta_vae'",
    "model.model": "@vae()",
    "vae.beta": "4.0",
    "dataset.name": "'dsprites_full'",
    "model.random_seed": "0",
    "model.training_steps": "300000",
    "model.batch_size": "64",
    "encoder.num_latent": "10",
    "encoder.encoder_fn": "@conv_encoder",
    "decoder.decoder_fn": "@deconv_decoder",
    "vae/AdamOptimizer.learning_rate": "0.0001",
}
DIP_CONFIG = {
    **{k: v for k, v in BETA_CONFIG.items() if k != "vae.beta"},
    "model.name": "'dip_vae_i'",
    "model.model": "@dip_vae()",
    "dip_vae.lambda_od": "2.0",
    "dip_vae.lambda_d_factor": "10.0",
    "dip_vae.dip_type": "'i'",
    "dataset.name": "'shapes3d'",
    "model.random_seed": "1",
}
# disentanglement_lib stores "elbo" as -(reconstruction + KL), i.e. the ELBO itself
BETA_TRAIN = {"reconstruction_loss": 30.5, "kl_loss": 20.25, "elbo": -50.75, "loss": 111.5,
              "regularizer": 81.0, "global_step": 300000, "elapsed_time": 3600.5,
              "uuid": "train-beta"}
DIP_TRAIN = {"reconstruction_loss": 40.0, "kl_loss": 10.5, "elbo": -50.5, "loss": 60.0,
             "regularizer": 20.0, "global_step": 300000, "elapsed_time": 4000.25,
             "uuid": "train-dip"}

METRIC_SETTINGS = {
    "@mig": {"mig.num_train": "10000", "discretizer.num_bins": "20"},
    "@dci": {"dci.num_train": "10000", "dci.num_test": "5000"},
    "@factor_vae_score": {"factor_vae_score.num_train": "10000", "factor_vae_score.batch_size":
                          "64"},
    "@unsupervised_metrics": {"unsupervised_metrics.num_train": "10000"},
    "@irs": {"irs.num_train": "10000", "irs.diff_quantile": "0.99"},
    "@downstream_task": {"downstream_task.num_train": "[10, 100, 1000, 10000]",
                         "downstream_task.num_test": "5000"},
}


def evaluation(train_config, train_results, representation, fn, results, n=0, **settings):
    """One row of the aggregated file: the evaluation.json of one evaluation (``settings``:
    more gin bindings of the evaluation, e.g. ``{"predictor.predictor_fn": ...}``)."""
    row = {f"train_config.{k}": v for k, v in train_config.items()}
    row.update({f"train_results.{k}": v for k, v in train_results.items()})
    row.update({
        "postprocess_config.postprocess.postprocess_fn": f"@{representation}_representation",
        "postprocess_config.postprocess.random_seed": "0",
        "postprocess_config.dataset.name": "'auto'",
        "postprocess_results.elapsed_time": 2.5,
        "postprocess_results.uuid": f"post-{n}",
        "evaluation_config.evaluation.evaluation_fn": fn,
        "evaluation_config.evaluation.random_seed": "0",
        "evaluation_config.dataset.name": train_config["dataset.name"],
    })
    row.update({f"evaluation_config.{k}": v for k, v in METRIC_SETTINGS.get(fn, {}).items()})
    row.update({f"evaluation_config.{k}": v for k, v in settings.items()})
    row.update({f"evaluation_results.{k}": v for k, v in results.items()})
    row.update({"evaluation_results.elapsed_time": 12.0 + n, "evaluation_results.uuid": f"ev-{n}",
                "path": f"/dlib/{n}/metrics/{representation}/{fn[1:]}/results/aggregate/"
                        f"evaluation.json"})
    return row


def model_rows(train_config, train_results, offset=0.0):
    """The rows of one trained model: four metrics on the mean representation and the
    unsupervised metrics on the sampled one."""
    mean = [
        ("@mig", {"discrete_mig": 0.125 + offset}),
        ("@dci", {"disentanglement": 0.5 + offset, "completeness": 0.25 + offset,
                  "informativeness_train": 0.875, "informativeness_test": 0.75}),
        ("@factor_vae_score", {"train_accuracy": 0.625 + offset, "eval_accuracy": 0.5 + offset,
                               "num_active_dims": 7}),
        ("@unsupervised_metrics", {"gaussian_total_correlation": 1.5 + offset,
                                   "gaussian_wasserstein_correlation": 2.25,
                                   "gaussian_wasserstein_correlation_norm": 0.375,
                                   "mutual_info_score": 0.0625}),
    ]
    sampled = {"gaussian_total_correlation": 3.5 + offset, "gaussian_wasserstein_correlation": 4.25,
               "gaussian_wasserstein_correlation_norm": 0.875, "mutual_info_score": 0.03125}
    rows = [evaluation(train_config, train_results, "mean", fn, results, n)
            for n, (fn, results) in enumerate(mean)]
    rows.append(evaluation(train_config, train_results, "sampled", "@unsupervised_metrics",
                           sampled, len(mean)))
    return rows


def write(tmp_path, rows, name="study_v1.json", **to_json):
    path = tmp_path / name
    pd.DataFrame(rows).to_json(path, **to_json)
    return path


@pytest.fixture
def two_models(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN) + model_rows(DIP_CONFIG, DIP_TRAIN, offset=0.25)
    return write(tmp_path, rows)


SCORES = ["dci.completeness", "dci.disentanglement", "dci.informativeness_test",
          "dci.informativeness_train", "factor_vae.dlib_num_active_dims",
          "factor_vae.eval_accuracy", "factor_vae.train_accuracy", "mig.mig",
          "unsupervised.gaussian_total_correlation",
          "unsupervised.gaussian_wasserstein_correlation",
          "unsupervised.gaussian_wasserstein_correlation_norm", "unsupervised.mutual_info_score"]
SAMPLED = [s for s in SCORES if s.startswith("unsupervised.")]


def test_file_is_what_disentanglement_lib_writes(two_models):
    data = json.loads(two_models.read_text())
    assert data["train_config.model.name"]["0"] == "'beta_vae'"
    assert data["train_config.vae.beta"]["5"] is None  # the dip_vae rows have no vae.beta
    assert len(data["train_config.model.name"]) == 10


def test_columns(two_models):
    table = import_dlib(two_models).table
    assert list(table.columns) == [
        "source", "study", "run_id", "model", "dataset", "data_source", "seed", "arch",
        "latent_dim", "max_steps", "batch_size", "lr", "strength_name", "strength",
        "hp.beta", "hp.lambda_d", "hp.lambda_od",
        "state", "step", "attempts", "device", "host", "started_at", "finished_at", "duration_s",
        "eval_settings", "eval_key", "eval_boosting",
        "train.elbo", "train.kl", "train.loss", "train.reconstruction", "train.regularizer",
        *[f"mean.{s}" for s in SCORES], *[f"sampled.{s}" for s in SAMPLED],
    ]


def test_one_row_per_trained_model(two_models):
    got = import_dlib(two_models)
    assert got.skipped == []
    beta, dip = got.table.to_dict("records")  # sorted by run id: betavae before dipvae1
    assert beta["run_id"].startswith("betavae-dsprites-s0-")
    assert dip["run_id"].startswith("dipvae1-shapes3d-s1-")
    for row in (beta, dip):
        assert len(row["run_id"].rsplit("-", 1)[1]) == 10
        assert row["source"] == "disentanglement_lib"
        assert row["study"] == "study_v1"
        assert row["data_source"] == "official"
        assert row["arch"] == "locatello"
        assert (row["latent_dim"], row["max_steps"], row["batch_size"]) == (10, 300000, 64)
        assert row["lr"] == 0.0001
        assert (row["state"], row["step"]) == ("completed", 300000)
        assert row["eval_settings"] == "disentanglement_lib"
        for column in ("attempts", "device", "host", "started_at", "finished_at"):
            assert pd.isna(row[column])
    assert (beta["model"], beta["dataset"], beta["seed"]) == ("betavae", "dsprites", 0)
    assert (dip["model"], dip["dataset"], dip["seed"]) == ("dipvae1", "shapes3d", 1)
    assert beta["duration_s"] == 3600.5
    assert dip["duration_s"] == 4000.25


def test_hyperparameters_and_strength(two_models):
    beta, dip = import_dlib(two_models).table.to_dict("records")
    assert (beta["strength_name"], beta["strength"], beta["hp.beta"]) == ("beta", 4.0, 4.0)
    assert pd.isna(beta["hp.lambda_od"]) and pd.isna(beta["hp.lambda_d"])
    assert (dip["strength_name"], dip["strength"]) == ("lambda_od", 2.0)
    assert (dip["hp.lambda_od"], dip["hp.lambda_d"]) == (2.0, 20.0)
    assert pd.isna(dip["hp.beta"])


def test_train_terms(two_models):
    beta, dip = import_dlib(two_models).table.to_dict("records")
    assert beta["train.reconstruction"] == 30.5
    assert beta["train.kl"] == 20.25
    assert beta["train.loss"] == 111.5
    assert beta["train.regularizer"] == 81.0
    assert beta["train.elbo"] == -50.75 == -(beta["train.reconstruction"] + beta["train.kl"])
    assert dip["train.elbo"] == -50.5 == -(dip["train.reconstruction"] + dip["train.kl"])


def test_scores_mean_and_sampled(two_models):
    beta, dip = import_dlib(two_models).table.to_dict("records")
    assert beta["mean.mig.mig"] == 0.125
    assert dip["mean.mig.mig"] == 0.375
    assert (beta["mean.dci.disentanglement"], beta["mean.dci.completeness"]) == (0.5, 0.25)
    assert (beta["mean.dci.informativeness_train"],
            beta["mean.dci.informativeness_test"]) == (0.875, 0.75)
    assert (beta["mean.factor_vae.train_accuracy"],
            beta["mean.factor_vae.eval_accuracy"]) == (0.625, 0.5)
    assert beta["mean.factor_vae.dlib_num_active_dims"] == 7.0
    assert beta["mean.unsupervised.gaussian_total_correlation"] == 1.5
    assert beta["sampled.unsupervised.gaussian_total_correlation"] == 3.5
    assert beta["mean.unsupervised.mutual_info_score"] == 0.0625
    assert beta["sampled.unsupervised.mutual_info_score"] == 0.03125
    assert dip["sampled.unsupervised.gaussian_wasserstein_correlation_norm"] == 0.875
    assert dip["sampled.unsupervised.gaussian_total_correlation"] == 3.75


def test_records_orient_gives_the_same_table(tmp_path, two_models):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN) + model_rows(DIP_CONFIG, DIP_TRAIN, offset=0.25)
    records = write(tmp_path, rows, "study_v1.records.json", orient="records")
    assert json.loads(records.read_text())[0]["train_config.model.name"] == "'beta_vae'"
    got = import_dlib(records, study="study_v1")
    pd.testing.assert_frame_equal(got.table, import_dlib(two_models).table)


def test_study_name(two_models):
    assert set(import_dlib(two_models).table["study"]) == {"study_v1"}
    assert set(import_dlib(two_models, study="locatello").table["study"]) == {"locatello"}


def test_run_id_hashes_the_train_config_alone(tmp_path, two_models):
    beta_only = write(tmp_path, model_rows(BETA_CONFIG, BETA_TRAIN), "beta.json")
    combined = import_dlib(two_models).table["run_id"][0]
    assert import_dlib(beta_only).table["run_id"][0] == combined
    items = sorted(BETA_CONFIG.items())
    digest = hashlib.sha256(json.dumps(items).encode()).hexdigest()[:10]
    assert combined == f"betavae-dsprites-s0-{digest}"


def test_rows_are_grouped_by_train_config_without_uuid(tmp_path, two_models):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN) + model_rows(DIP_CONFIG, DIP_TRAIN, offset=0.25)
    for row in rows:
        del row["train_results.uuid"]
    got = import_dlib(write(tmp_path, rows, "no_uuid.json"), study="study_v1")
    pd.testing.assert_frame_equal(got.table, import_dlib(two_models).table)


def test_eval_key_ignores_dataset_uuid_and_path_but_not_settings(tmp_path):
    def key(rows):
        return list(import_dlib(write(tmp_path, rows, "k.json")).table["eval_key"])

    same = key(model_rows(BETA_CONFIG, BETA_TRAIN) + model_rows(DIP_CONFIG, DIP_TRAIN, 0.25))
    assert len(set(same)) == 1 and len(same[0]) == 10
    rows = model_rows(BETA_CONFIG, BETA_TRAIN) + model_rows(DIP_CONFIG, DIP_TRAIN, 0.25)
    rows[0]["evaluation_config.mig.num_train"] = "1000"
    changed = key(rows)
    assert changed[1] == same[1] and changed[0] != same[0]


def test_other_metrics_and_keys_are_kept(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)
    rows.append(evaluation(BETA_CONFIG, BETA_TRAIN, "mean", "@irs", {
        "IRS": 0.5, "num_active_dims": 8, "avg_score": 0.4375,
        "disentanglement_scores": [0.5, 0.25]}, 10))
    rows.append(evaluation(BETA_CONFIG, BETA_TRAIN, "mean", "@downstream_task", {
        "10:mean_test_accuracy": 0.8125, "10:mean_train_accuracy": 0.9375,
        "10:test_accuracy": [0.75, 0.875], "note": "a string"}, 11))
    row = import_dlib(write(tmp_path, rows)).table.to_dict("records")[0]
    assert row["mean.irs.irs"] == 0.5
    assert row["mean.irs.dlib_num_active_dims"] == 8.0
    assert row["mean.irs.avg_score"] == 0.4375
    assert row["mean.downstream_task.10:mean_test_accuracy"] == 0.8125
    assert row["mean.downstream_task.10:mean_train_accuracy"] == 0.9375
    scored = sorted(c for c in row if c.startswith("mean.") and
                    c.split(".")[1] in ("irs", "downstream_task"))
    assert scored == ["mean.downstream_task.10:mean_test_accuracy",
                      "mean.downstream_task.10:mean_train_accuracy", "mean.irs.avg_score",
                      "mean.irs.dlib_num_active_dims", "mean.irs.irs"]
    assert not [c for c in row if "elapsed_time" in c or "uuid" in c or "global_step" in c]


def downstream_results(n, offset):
    """The reference's downstream_task scores for one training size, two factors."""
    return {f"{n}:mean_train_accuracy": 0.75 + offset, f"{n}:mean_test_accuracy": 0.5 + offset,
            f"{n}:min_train_accuracy": 0.625 + offset, f"{n}:min_test_accuracy": 0.25 + offset,
            f"{n}:train_accuracy_factor_0": 0.875 + offset,
            f"{n}:test_accuracy_factor_0": 0.75 + offset,
            f"{n}:train_accuracy_factor_1": 0.625 + offset,
            f"{n}:test_accuracy_factor_1": 0.25 + offset}


@pytest.fixture
def both_predictors(tmp_path):
    """One trained model with the study's two downstream evaluations (same evaluation_fn,
    told apart by predictor.predictor_fn alone), as in unsupervised_study_v1."""
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)
    for n, (predictor, offset) in enumerate([("@logistic_regression_cv", 0.0),
                                             ("@gradient_boosting_classifier", 0.0625)]):
        results = {**downstream_results(10, offset), **downstream_results(100, offset / 2)}
        rows.append(evaluation(BETA_CONFIG, BETA_TRAIN, "mean", "@downstream_task", results,
                               10 + n, **{"predictor.predictor_fn": predictor}))
    path = write(tmp_path, rows)
    data = json.loads(path.read_text())
    assert data["evaluation_config.evaluation.evaluation_fn"]["5"] == "@downstream_task"
    assert data["evaluation_config.evaluation.evaluation_fn"]["6"] == "@downstream_task"
    assert data["evaluation_config.predictor.predictor_fn"]["6"] == "@gradient_boosting_classifier"
    return path


def test_both_downstream_predictors_are_imported(both_predictors):
    got = import_dlib(both_predictors)
    assert got.skipped == []
    [row] = got.table.to_dict("records")
    assert row["mean.downstream.logreg_10_mean_test_accuracy"] == 0.5
    assert row["mean.downstream.gbt_10_mean_test_accuracy"] == 0.5625
    assert row["mean.downstream.logreg_10_min_train_accuracy"] == 0.625
    assert row["mean.downstream.gbt_10_min_train_accuracy"] == 0.6875
    assert row["mean.downstream.logreg_100_test_accuracy_factor_1"] == 0.25
    assert row["mean.downstream.gbt_100_test_accuracy_factor_1"] == 0.28125
    assert row["mean.downstream.gbt_100_train_accuracy_factor_0"] == 0.90625
    assert row["mean.mig.mig"] == 0.125 and row["eval_key"] is not None
    assert not [c for c in row if "downstream_task" in c]


def test_downstream_columns_are_those_disbench_writes(both_predictors):
    row = import_dlib(both_predictors).table.to_dict("records")[0]
    imported = {c for c in row if c.startswith("mean.downstream.")}
    # disbench's own downstream metric on two factors (single-class: nothing is fitted),
    # named as metrics.json names it: "downstream.<key>"
    factors, codes = np.zeros((10, 2), dtype=int), np.zeros((10, 3))
    native = {f"mean.downstream.{k}" for n in (10, 100)
              for k in downstream_scores(codes, factors, codes, factors, str(n), n_jobs=1)}
    assert imported == native and len(native) == 32


def test_another_downstream_predictor_stays_apart(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)
    for n, predictor in enumerate(["@logistic_regression_cv", "@mlp_classifier"]):
        rows.append(evaluation(BETA_CONFIG, BETA_TRAIN, "mean", "@downstream_task",
                               downstream_results(10, 0.125 * n), 10 + n,
                               **{"predictor.predictor_fn": predictor}))
    row = import_dlib(write(tmp_path, rows)).table.to_dict("records")[0]
    assert row["mean.downstream.logreg_10_mean_test_accuracy"] == 0.5
    assert row["mean.downstream_task.mlp_classifier_10:mean_test_accuracy"] == 0.625


def test_reference_num_active_dims_is_not_disbenchs(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)  # FactorVAE score: num_active_dims 7
    rows[2]["evaluation_results.num_active_dims"] = 10  # the reference: all 10 dimensions
    rows.append(evaluation(BETA_CONFIG, BETA_TRAIN, "mean", "@irs", {
        "IRS": 0.5, "num_active_dims": 3.75, "avg_score": 0.4375}, 10))  # a sum of code values
    row = import_dlib(write(tmp_path, rows)).table.to_dict("records")[0]
    assert row["mean.factor_vae.dlib_num_active_dims"] == 10.0
    assert row["mean.irs.dlib_num_active_dims"] == 3.75
    assert "mean.factor_vae.num_active_dims" not in row
    assert "mean.irs.num_active_dims" not in row


@pytest.mark.parametrize("name, bindings, model, hp, strength", [
    ("annealed_vae", {"annealed_vae.c_max": "25.0", "annealed_vae.gamma": "1000",
                      "annealed_vae.iteration_threshold": "100000"},
     "annealedvae", {"c_max": 25.0, "gamma": 1000.0, "iteration_threshold": 100000.0}, 25.0),
    ("factor_vae", {"factor_vae.gamma": "30.0"}, "factorvae", {"gamma": 30.0}, 30.0),
    ("dip_vae_ii", {"dip_vae.lambda_od": "5.0", "dip_vae.lambda_d_factor": "1.0"},
     "dipvae2", {"lambda_od": 5.0, "lambda_d": 5.0}, 5.0),
    ("beta_tc_vae", {"beta_tc_vae.beta": "6.0"}, "betatcvae", {"beta": 6.0}, 6.0),
])
def test_each_model(tmp_path, name, bindings, model, hp, strength):
    config = {**{k: v for k, v in BETA_CONFIG.items() if k != "vae.beta"},
              "model.name": f"'{name}'", "dataset.name": "'cars3d'", **bindings}
    row = import_dlib(write(tmp_path, model_rows(config, BETA_TRAIN))).table.to_dict("records")[0]
    assert (row["model"], row["dataset"], row["strength"]) == (model, "cars3d", strength)
    assert {k[3:]: v for k, v in row.items() if k.startswith("hp.")} == hp


def test_unknown_model_is_skipped(tmp_path):
    other = {**BETA_CONFIG, "model.name": "'my_vae'", "model.random_seed": "3"}
    rows = model_rows(BETA_CONFIG, BETA_TRAIN) + model_rows(other, {**BETA_TRAIN, "uuid": "x"})
    got = import_dlib(write(tmp_path, rows))
    assert list(got.table["model"]) == ["betavae"]
    [skipped] = got.skipped
    assert skipped.study == "study_v1"
    assert skipped.run_id.startswith("my_vae-dsprites-s3-")
    assert skipped.state == "unsupported"
    assert "'my_vae'" in skipped.reason and "5 rows" in skipped.reason


def test_only_unknown_models_is_an_error(tmp_path):
    rows = model_rows({**BETA_CONFIG, "model.name": "'my_vae'"}, BETA_TRAIN)
    with pytest.raises(DisbenchError, match="no trained model disbench can import.*'my_vae'"):
        import_dlib(write(tmp_path, rows))


def test_missing_file(tmp_path):
    with pytest.raises(DisbenchError, match=r"no file .*nothere\.json.*aggregate_results_to_json"):
        import_dlib(tmp_path / "nothere.json")


def test_not_json(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("model,seed\nbeta_vae,0\n")
    with pytest.raises(DisbenchError, match=r"results\.json is not JSON"):
        import_dlib(path)


@pytest.mark.parametrize("data, message", [
    ({"model": {"0": "beta_vae"}, "score": {"0": 0.5}}, "no column named train_config"),
    ({"train_config.model.name": {"0": "'beta_vae'"}}, "no column named evaluation_results"),
    ([1, 2, 3], "JSON list of another shape"),
    ({"train_config.model.name": "'beta_vae'", "evaluation_results.discrete_mig": 0.5},
     "one evaluation"),
])
def test_not_aggregated_results(tmp_path, data, message):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DisbenchError, match=message):
        import_dlib(path)


def test_no_rows(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"train_config.model.name": {}, "evaluation_results.x": {}}))
    with pytest.raises(DisbenchError, match="holds no rows"):
        import_dlib(path)


def test_conflicting_scores(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)
    rows.append(evaluation(BETA_CONFIG, BETA_TRAIN, "mean", "@mig", {"discrete_mig": 0.5}, 9))
    with pytest.raises(DisbenchError, match=r"betavae-dsprites-s0-\w{10} has two values for "
                                            r"mean\.mig\.mig: 0\.125 and 0\.5"):
        import_dlib(write(tmp_path, rows))


def test_identical_duplicates_are_fine(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)
    rows.append(dict(rows[0]))
    assert import_dlib(write(tmp_path, rows)).table["mean.mig.mig"].tolist() == [0.125]


def test_conflicting_train_config_of_one_uuid(tmp_path):
    rows = model_rows(BETA_CONFIG, BETA_TRAIN)
    rows[-1]["train_config.vae.beta"] = "8.0"
    with pytest.raises(DisbenchError, match=r"betavae-dsprites-s0-\w{10} has two values for "
                                            r"train_config\.vae\.beta: '4\.0' and '8\.0'"):
        import_dlib(write(tmp_path, rows))
