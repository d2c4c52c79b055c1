"""score_model: a trained disbench model scored as the study did (mean + sampled)."""

import torch
from suite_fixtures import SMALL, tiny_grid

from disbench import models, nets
from disbench.metrics import METRICS, evaluate, model_representation, score_model

TINY = {**SMALL, "dci": {"num_train": 150, "num_test": 100},
        "downstream": {"num_train": [20], "num_test": 50}}


def tiny_model(seed: int = 0) -> models.VAE:
    torch.manual_seed(seed)
    encoder, decoder = nets.build("mlp", (1, 6, 6), 4)
    with torch.no_grad():  # spread the untrained codes (std > 0.05: no collapsed dims)
        encoder.mean.weight.mul_(30.0)
    return models.build({"name": "vae"}, encoder, decoder, 4)


def test_scores_mean_and_sampled_and_records_the_settings():
    model = tiny_model().train()
    out = score_model(model, tiny_grid(), TINY, seed=7, device="cpu", n_jobs=1)
    assert set(out) == {"mean", "sampled", "eval"}
    assert {k.split(".")[0] for k in out["mean"]} == set(METRICS)
    assert {k.split(".")[0] for k in out["sampled"]} == {"unsupervised"}
    assert out["eval"]["name"] == "small" and out["eval"]["seed"] == 7
    assert out["eval"]["dci"] == {"num_train": 150, "num_test": 100}
    assert out["sampled"]["unsupervised.gaussian_total_correlation"] != \
        out["mean"]["unsupervised.gaussian_total_correlation"]
    assert model.training  # put back as it was
    again = score_model(model, tiny_grid(), TINY, seed=7, device="cpu", n_jobs=1)
    assert again == out
    # the same scores from evaluate(), encoding on the fly
    on_the_fly = evaluate(tiny_grid(), model_representation(model.eval()), ["mig", "sap"],
                          TINY, seed=7, encode_once=False)
    assert on_the_fly == {k: out["mean"][k] for k in on_the_fly}
