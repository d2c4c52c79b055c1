"""The inference critic's loss against independent computations on hand-made tensors
(float64)."""

import math

import numpy as np
import pytest
import tiny
import torch
from scipy.special import logsumexp

from disbench.errors import DisbenchError
from disbench.models.base import sample_gaussian
from disbench.models.critic_vae import infonce, posterior_scores
from disbench.train.optimizers import build_optimizers

MEAN = np.array([[0.5, -1.0, 0.0], [1.5, 0.2, -0.3], [-0.7, 0.4, 2.0], [0.1, 0.1, 0.1]])
LOG_VAR = np.array([[0.0, -1.0, 0.5], [0.3, 0.1, -0.2], [-2.0, 0.0, 0.0], [0.2, 0.2, -0.4]])
Z = np.array([[0.3, -0.8, 0.4], [1.2, 0.5, -0.1], [-0.9, 0.2, 1.7], [0.4, -0.2, 0.0]])
SCORES = np.array([[2.0, -1.0, 0.5, 0.0], [0.3, 1.1, -0.4, 2.2], [-1.5, 0.0, 0.7, 0.1],
                   [0.9, 0.9, -0.2, 3.0]])


pytestmark = pytest.mark.usefixtures("float64")


def build(**hyper):
    return tiny.build("critic_vae", **hyper)


def images(seed=0, n=4):
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def log_normal(z, mean, log_var):
    return -0.5 * math.log(2 * math.pi) - 0.5 * log_var - 0.5 * (z - mean) ** 2 / math.exp(log_var)


def self_scores(z, mean, log_var):
    """[i][j] = log q(z_i | x_j), by explicit loops."""
    n, d = z.shape
    return np.array([[sum(log_normal(z[i, k], mean[j, k], log_var[j, k]) for k in range(d))
                      for j in range(n)] for i in range(n)])


def infonce_by_hand(scores):
    return np.mean([-scores[i, i] + logsumexp(scores[i]) for i in range(len(scores))])


def test_posterior_scores_are_log_densities_of_each_latent_under_each_posterior():
    got = posterior_scores(torch.tensor(Z), torch.tensor(MEAN), torch.tensor(LOG_VAR))
    assert np.allclose(got.numpy(), self_scores(Z, MEAN, LOG_VAR), rtol=1e-12)


def test_infonce_matches_each_latent_with_its_own_observation():
    expected = np.mean([-np.log(np.exp(SCORES[i, i]) / np.exp(SCORES[i]).sum())
                        for i in range(4)])
    assert infonce(torch.tensor(SCORES)).item() == pytest.approx(expected, rel=1e-12)
    # the softmax runs over the observations (columns) of each latent (row), not over rows
    assert infonce(torch.tensor(SCORES.T)).item() != pytest.approx(expected)


def test_collapsed_posterior_leaves_the_critic_at_chance():
    # every observation with the same posterior: no latent can be told apart, loss = log N
    mean = np.tile(MEAN[:1], (4, 1))
    log_var = np.tile(LOG_VAR[:1], (4, 1))
    scores = posterior_scores(torch.tensor(Z), torch.tensor(mean), torch.tensor(log_var))
    assert infonce(scores).item() == pytest.approx(math.log(4), rel=1e-12)


def test_step_adds_lambda_times_the_critic_loss_to_the_negative_elbo():
    model = build(lambda_critic=2.5)
    x = images()
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mean, log_var = model.encode(x)
        z = sample_gaussian(mean, log_var, torch.Generator().manual_seed(3))
        p = 1 / (1 + np.exp(-model.decode(z).numpy()))
    m, lv, zn, xn = mean.numpy(), log_var.numpy(), z.numpy(), x.numpy()
    recon = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).reshape(4, -1).sum(1).mean()
    kl = np.mean([sum(-0.5 * lv[n, k] + 0.5 * (math.exp(lv[n, k]) + m[n, k] ** 2) - 0.5
                      for k in range(3)) for n in range(4)])
    critic = infonce_by_hand(self_scores(zn, m, lv))
    assert out.losses["model"].item() == pytest.approx(recon + kl + 2.5 * critic, rel=1e-10)
    assert out.terms["critic_loss"].item() == pytest.approx(critic, rel=1e-10)
    assert out.terms["elbo"].item() == pytest.approx(-(recon + kl), rel=1e-10)
    assert out.terms["infonce_mi"].item() == pytest.approx(math.log(4) - critic, rel=1e-10)


def test_self_critic_trains_the_encoder_not_the_decoder():
    model = build()
    assert [n for n, _ in model.named_parameters()
            if not n.startswith(("encoder.", "decoder."))] == []
    out = model.step(images(1), step=0, generator=torch.Generator().manual_seed(0))
    out.terms["critic_loss"].backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert model.encoder.mean.weight.grad.abs().sum() > 0
    assert model.encoder.log_var.weight.grad.abs().sum() > 0


def test_network_critic_is_a_dot_product_of_embeddings():
    model = build(critic="network")
    critic = model.critic
    x = images(2)
    z = torch.tensor(Z)
    scores = critic(x, z).detach().numpy()
    with torch.no_grad():
        g = critic.x_head(torch.cat(critic.x_features(x), dim=1)).numpy()
        h = critic.z_head(z).numpy()
    expected = [[sum(h[i, k] * g[j, k] for k in range(g.shape[1])) for j in range(4)]
                for i in range(4)]
    assert np.allclose(scores, expected, rtol=1e-10)
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(0))
    assert out.terms["critic_loss"].item() == pytest.approx(
        infonce(model.scores(x, None, None, sample_gaussian(
            *model.encode(x), torch.Generator().manual_seed(0)))).item(), rel=1e-10)


def test_network_critic_has_its_own_x_network_trained_with_the_model():
    model = build(critic="network")
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    critic_params = list(model.critic.parameters())
    assert not encoder_ids & {id(p) for p in critic_params}
    assert not torch.equal(model.critic.x_features.mean.weight, model.encoder.mean.weight)
    optimizers = build_optimizers(model, {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8})
    assert list(optimizers) == ["model"]
    owned = {id(p) for g in optimizers["model"].param_groups for p in g["params"]}
    assert {id(p) for p in critic_params} <= owned


def test_unknown_critic_refused():
    with pytest.raises(DisbenchError, match="critic"):
        build(critic="hybrid")
