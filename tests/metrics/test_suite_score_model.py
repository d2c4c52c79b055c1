"""score_model: a trained disbench model scored on the mean and sampled representations."""

import re

import numpy as np
import pytest
import torch
from suite_fixtures import SMALL, tiny_grid

from disbench import models, nets
from disbench.metrics import METRICS, evaluate, model_representation, score_model
from disbench.metrics.evaluate import STUDY_SEED

TINY = {**SMALL, "dci": {"num_train": 150, "num_test": 100},
        "downstream": {"num_train": [20], "num_test": 50}}


def tiny_model(seed: int = 0) -> models.VAE:
    torch.manual_seed(seed)
    encoder, decoder = nets.build("mlp", (1, 6, 6), 4)
    with torch.no_grad():  # spread the untrained codes (std > 0.05: no collapsed dims)
        encoder.mean.weight.mul_(30.0)
    return models.build({"name": "vae"}, encoder, decoder, 4)


def without_arrays(scores: dict) -> dict:
    """score_model's result but the UDR sample's arrays (compared on their own)."""
    return {k: v for k, v in scores.items() if k != "udr_sample"}


@pytest.mark.slow
def test_scores_mean_and_sampled_and_records_the_settings():
    model = tiny_model().train()
    out = score_model(model, tiny_grid(), TINY, seed=7, device="cpu", n_jobs=1)
    assert set(out) == {"mean", "sampled", "heldout", "generation", "eval", "udr_sample"}
    assert set(out["heldout"]) == {"reconstruction", "kl", "elbo"}
    assert set(out["generation"]) == {"fd_factors.samples", "fd_factors.reconstructions"}
    assert out["udr_sample"]["codes"].shape == (200, 4)  # SMALL's udr.num_points
    assert {k.split(".")[0] for k in out["mean"]} == set(METRICS)
    assert {k.split(".")[0] for k in out["sampled"]} == {"unsupervised"}
    assert out["eval"]["name"] == "small" and out["eval"]["seed"] == 7
    assert out["eval"]["seed_from"] == "run"
    assert out["eval"]["representations"] == {"mean": "all", "sampled": ["unsupervised"]}
    assert out["eval"]["dci"] == {"num_train": 150, "num_test": 100}
    assert out["sampled"]["unsupervised.gaussian_total_correlation"] != \
        out["mean"]["unsupervised.gaussian_total_correlation"]
    assert model.training  # put back as it was
    again = score_model(model, tiny_grid(), TINY, seed=7, device="cpu", n_jobs=1)
    assert without_arrays(again) == without_arrays(out)
    np.testing.assert_array_equal(again["udr_sample"]["codes"], out["udr_sample"]["codes"])
    # the same scores from evaluate(), encoding on the fly
    on_the_fly = evaluate(tiny_grid(), model_representation(model.eval()), ["mig", "sap"],
                          TINY, seed=7, encode_once=False)
    assert on_the_fly == {k: out["mean"][k] for k in on_the_fly}


def test_progress_names_each_metric_as_it_runs(capsys):
    settings = {**TINY, "representations": {"mean": ["mig", "sap"],
                                            "sampled": ["unsupervised"]}}
    quiet = score_model(tiny_model(), tiny_grid(), settings, seed=7, device="cpu", n_jobs=1)
    assert capsys.readouterr().err == ""
    shown = score_model(tiny_model(), tiny_grid(), settings, seed=7, device="cpu", n_jobs=1,
                        progress=True)
    err = capsys.readouterr().err
    assert without_arrays(shown) == without_arrays(quiet)
    for running in ("scoring mig (mean)", "scoring sap (mean)",
                    "scoring unsupervised (sampled)", "scoring the held-out reconstruction",
                    "encoding the UDR sample", "scoring the decoded images"):
        assert running in err
    assert "6/6" in err and err.index("scoring mig") < err.index("scoring sap")
    assert "encoding:" not in err  # the 60 grid images: one batch, no bar of its own
    # ten batches or more: a bar of the images being encoded
    score_model(tiny_model(), tiny_grid(), settings, seed=7, device="cpu", n_jobs=1,
                progress=True, batch_size=4)
    err = capsys.readouterr().err
    assert re.search(r"encoding: +\d+%.*\| *\d+/60 \[", err)  # cleared when done


# the cheap metrics (no gradient-boosted trees)
QUICK = ["beta_vae", "factor_vae", "mig", "sap", "modularity", "irs", "unsupervised"]


@pytest.mark.slow
def test_sampled_all_scores_every_metric_on_the_sampled_representation():
    """The study's protocol: every metric on both representations."""
    model = tiny_model()
    default = score_model(model, tiny_grid(), TINY, seed=7, device="cpu", n_jobs=1)
    both = score_model(model, tiny_grid(), {**TINY, "representations": {"sampled": "all"}},
                       seed=7, device="cpu", n_jobs=1)
    assert both["eval"]["representations"] == {"mean": "all", "sampled": "all"}
    assert both["mean"] == default["mean"]  # the mean pass does not change
    assert set(both["sampled"]) == set(both["mean"])
    assert {k.split(".")[0] for k in both["sampled"]} == set(METRICS)
    # the unsupervised scores as before, the others as evaluate() gives them
    assert {k: both["sampled"][k] for k in default["sampled"]} == default["sampled"]
    alone = evaluate(tiny_grid(), model_representation(model.eval()), ["mig", "sap"], TINY,
                     seed=7, representation="sampled", encode_once=False)
    assert alone == {k: both["sampled"][k] for k in alone}
    # sampled codes are noisier than the means: the scores differ
    assert both["sampled"]["mig.mig"] != both["mean"]["mig.mig"]


def test_representations_lists_choose_the_metrics():
    model = tiny_model()
    out = score_model(model, tiny_grid(),
                      {**TINY, "representations": {"mean": [], "sampled": ["sap", "mig"]}},
                      seed=7, device="cpu", n_jobs=1)
    assert out["mean"] == {}
    assert out["eval"]["representations"] == {"mean": [], "sampled": ["mig", "sap"]}
    assert set(out["sampled"]) == {"mig.mig", "sap.sap"}


@pytest.mark.parametrize("seed_from", ["run", "study"])
def test_seed_from_study_scores_every_run_on_the_same_points(seed_from):
    """seed_from: study -> the same scores for one model whatever the run's seed (those of
    STUDY_SEED); seed_from: run -> each run's own seed, other scores."""
    model = tiny_model()
    settings = {**TINY, "seed_from": seed_from,
                "representations": {"mean": QUICK, "sampled": ["mig", "unsupervised"]}}
    a = score_model(model, tiny_grid(), settings, seed=3, device="cpu", n_jobs=1)
    b = score_model(model, tiny_grid(), settings, seed=5, device="cpu", n_jobs=1)
    assert (a["eval"]["seed"], b["eval"]["seed"]) == (3, 5)  # the run's seed, recorded
    assert a["eval"]["seed_from"] == b["eval"]["seed_from"] == seed_from
    # the UDR sample is the study's, whatever the seeds: every run encodes the same points
    np.testing.assert_array_equal(a["udr_sample"]["codes"], b["udr_sample"]["codes"])
    if seed_from == "study":
        assert a["mean"] == b["mean"] and a["sampled"] == b["sampled"]
        assert a["heldout"] == b["heldout"]
        as_seed_0 = score_model(model, tiny_grid(), {**settings, "seed_from": "run"},
                                seed=STUDY_SEED, device="cpu", n_jobs=1)
        assert a["mean"] == as_seed_0["mean"] and a["sampled"] == as_seed_0["sampled"]
    else:
        for key in ("mig.mig", "sap.sap", "irs.irs", "modularity.explicitness_test",
                    "unsupervised.gaussian_total_correlation"):
            assert a["mean"][key] != b["mean"][key], key
        assert a["sampled"]["mig.mig"] != b["sampled"]["mig.mig"]
        assert a["heldout"]["reconstruction"] != b["heldout"]["reconstruction"]
