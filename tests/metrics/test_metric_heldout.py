"""Held-out reconstruction loss, KL and ELBO against a numpy computation of the same sums."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from suite_fixtures import tiny_grid

from disbench import models
from disbench.metrics import MetricWarning
from disbench.metrics.heldout import heldout_scores
from disbench.models.reconstruction import reconstruction_loss
from disbench.zoo import build_model

PIXELS, LATENTS = 36, 3
WEIGHTS = np.random.default_rng(0).normal(size=(PIXELS, LATENTS))  # encoder
DECODER = np.random.default_rng(1).normal(size=(LATENTS, PIXELS))
LOG_VAR = np.array([-1.0, 0.0, 0.5])
MODEL_CONF = Path(models.__file__).parents[1] / "conf" / "model"


class Linear(torch.nn.Module):
    """mean = x W, log_var fixed (None: a deterministic encoder), logits = z V; Bernoulli."""

    def __init__(self, deterministic: bool = False):
        super().__init__()
        self.deterministic = deterministic

    def encode(self, x):
        mean = x.reshape(len(x), -1).double() @ torch.from_numpy(WEIGHTS)
        log_var = torch.from_numpy(LOG_VAR).expand_as(mean)
        return mean, None if self.deterministic else log_var

    def decode(self, z):
        return (z @ torch.from_numpy(DECODER)).reshape(len(z), 1, 6, 6)

    def reconstruction_loss(self, logits, x):
        return reconstruction_loss("bernoulli", logits, x.double(), 0)


def numpy_scores(num_points: int, seed: int, deterministic: bool) -> dict[str, float]:
    """The module doc's sums, drawn as heldout_scores draws: the observations, then the
    noise of all points at once."""
    rng = np.random.default_rng(seed)
    _, x = tiny_grid().sample(num_points, rng)
    x = x.reshape(num_points, -1).astype(np.float64)
    mean = x @ WEIGHTS
    z = mean if deterministic else mean + np.exp(0.5 * LOG_VAR) * rng.standard_normal(mean.shape)
    logits = z @ DECODER
    # -log Bernoulli(x | sigmoid(l)) = softplus(l) - x l, summed over pixels
    nll = (np.logaddexp(0.0, logits) - x * logits).sum(axis=1).mean()
    if deterministic:
        return {"reconstruction": nll}
    kl = (0.5 * (mean**2 + np.exp(LOG_VAR) - LOG_VAR - 1)).sum(axis=1).mean()
    return {"reconstruction": nll, "kl": kl, "elbo": -(nll + kl)}


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("batch_size", [7, 1000])
def test_matches_the_sums_in_batches_of_any_size(deterministic, batch_size):
    got = heldout_scores(Linear(deterministic), tiny_grid(), 50, np.random.default_rng(3),
                         "cpu", batch_size=batch_size)
    expected = numpy_scores(50, 3, deterministic)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


def test_the_same_seed_gives_the_same_points_another_other_points():
    model, grid = Linear(), tiny_grid()
    first = heldout_scores(model, grid, 40, np.random.default_rng(1), "cpu")
    assert heldout_scores(model, grid, 40, np.random.default_rng(1), "cpu") == first
    assert heldout_scores(model, grid, 40, np.random.default_rng(2), "cpu") != first


def test_a_model_without_a_reconstruction_loss_gets_none_with_a_warning():
    class NoLoss(torch.nn.Module):
        encode, decode = Linear.encode, Linear.decode
        deterministic = False

    with pytest.warns(MetricWarning, match="NoLoss has no reconstruction_loss"):
        assert heldout_scores(NoLoss(), tiny_grid(), 10, np.random.default_rng(0), "cpu") == {}


@pytest.mark.parametrize("name", sorted(p.stem for p in MODEL_CONF.glob("*.yaml")))
def test_every_built_in_objective_gets_its_held_out_scores(name):
    """Every shipped objective has a reconstruction loss; the Gaussian encoders under an
    N(0, I) prior also a KL and an ELBO; the deterministic ones (NashAE, St-RKM) and those
    with a prior of their own (GWAE, the semi-supervised VAE) only the reconstruction."""
    torch.manual_seed(0)
    cfg = OmegaConf.create({"model": yaml.safe_load((MODEL_CONF / f"{name}.yaml").read_text()),
                            "arch": {"name": "mlp", "latent_dim": 4, "init": "torch"}})
    model = build_model(cfg, (1, 6, 6)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricWarning)
        got = heldout_scores(model, tiny_grid(), 20, np.random.default_rng(0), "cpu")
    only_reconstruction = {"nashae", "strkm", "gwae", "ssvae"}
    assert set(got) == ({"reconstruction"} if name in only_reconstruction
                        else {"reconstruction", "kl", "elbo"})
    assert all(np.isfinite(v) for v in got.values())
