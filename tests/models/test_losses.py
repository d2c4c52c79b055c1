"""Each loss term against an independent computation on hand-made tensors (float64)."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from tiny import build

from disbench import nets
from disbench.models.annealedvae import capacity
from disbench.models.base import gaussian_kl, sample_gaussian
from disbench.models.betatcvae import total_correlation
from disbench.models.dipvae import covariance, dip_penalty
from disbench.models.factorvae import permute_dims
from disbench.models.reconstruction import bernoulli as bernoulli_reconstruction
from disbench.train.optimizers import NamedOptimizers, build_optimizers

F64 = torch.float64
MEAN = torch.tensor([[0.5, -1.0, 0.0], [1.5, 0.2, -0.3], [-0.7, 0.4, 2.0], [0.1, 0.1, 0.1]],
                    dtype=F64)
LOG_VAR = torch.tensor([[0.0, -1.0, 0.5], [0.3, 0.1, -0.2], [-2.0, 0.0, 0.0], [0.2, 0.2, -0.4]],
                       dtype=F64)


pytestmark = pytest.mark.usefixtures("float64")




def test_kl_matches_closed_form_by_hand():
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2, per dimension
    expected = 0.0
    for m_row, lv_row in zip(MEAN.tolist(), LOG_VAR.tolist()):
        expected += sum(-0.5 * lv + (math.exp(lv) + m**2) / 2 - 0.5
                        for m, lv in zip(m_row, lv_row))
    assert gaussian_kl(MEAN, LOG_VAR).item() == pytest.approx(expected / 4, rel=1e-12)


def test_bernoulli_reconstruction_is_summed_cross_entropy():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]], [[[-0.5, 0.5], [1.0, -2.0]]]])
    x = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]], [[[0.0, 1.0], [1.0, 0.2]]]])
    p = 1 / (1 + np.exp(-logits.numpy()))
    xn = x.numpy()
    per_image = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).reshape(2, -1).sum(1)
    assert bernoulli_reconstruction(logits, x).item() == pytest.approx(per_image.mean(), 1e-12)


def test_sample_uses_the_given_generator():
    z = sample_gaussian(MEAN, LOG_VAR, torch.Generator().manual_seed(7))
    eps = torch.randn(MEAN.shape, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(z, MEAN + torch.exp(LOG_VAR / 2) * eps)


def test_betavae_regularizer_is_beta_kl():
    model = build("betavae", beta=4.0)
    kl = gaussian_kl(MEAN, LOG_VAR)
    reg, _ = model.regularizer(MEAN, LOG_VAR, MEAN, kl, 0, None)
    assert reg.item() == pytest.approx(4 * kl.item())


@pytest.mark.parametrize("step,expected", [(0, 0.0), (50_000, 12.5), (100_000, 25.0),
                                           (250_000, 25.0)])
def test_annealed_capacity_schedule(step, expected):
    assert capacity(step, 25.0, 100_000) == pytest.approx(expected)
    model = build("annealedvae", c_max=25.0, gamma=1000.0)
    kl = torch.tensor(3.0)
    reg, _ = model.regularizer(MEAN, LOG_VAR, MEAN, kl, step, None)
    assert reg.item() == pytest.approx(1000.0 * abs(3.0 - expected))


def test_dip_covariance_is_biased_batch_covariance():
    assert np.allclose(covariance(MEAN).numpy(), np.cov(MEAN.numpy().T, bias=True))


def test_dip_penalty_by_hand():
    cov = torch.tensor([[2.0, 0.5], [-1.0, 0.0]])
    # off-diagonal: 0.5^2 + 1^2 = 1.25; diagonal: (2-1)^2 + (0-1)^2 = 2
    assert dip_penalty(cov, 3.0, 7.0).item() == pytest.approx(3 * 1.25 + 7 * 2)


@pytest.mark.parametrize("name,lambda_d_factor", [("dipvae1", 10.0), ("dipvae2", 1.0)])
def test_dip_regularizers(name, lambda_d_factor):
    model = build(name, lambda_od=2.0)
    assert model.lambda_d == 2.0 * lambda_d_factor
    kl = gaussian_kl(MEAN, LOG_VAR)
    reg, _ = model.regularizer(MEAN, LOG_VAR, MEAN, kl, 0, None)
    cov = np.cov(MEAN.numpy().T, bias=True)
    if name == "dipvae2":
        # E[diag(sigma^2)] is added to the diagonal only, not to every entry
        cov = cov + np.diag(np.exp(LOG_VAR.numpy()).mean(0))
    off = cov - np.diag(np.diag(cov))
    expected = kl.item() + 2.0 * (off**2).sum() + model.lambda_d * ((np.diag(cov) - 1) ** 2).sum()
    assert reg.item() == pytest.approx(expected, rel=1e-12)


def test_total_correlation_minibatch_weighted_by_loops():
    z = torch.tensor([[0.3, -0.2, 0.1], [1.0, 0.5, -0.5], [-0.4, 0.3, 1.9], [0.0, 0.2, 0.0]])
    m, lv = MEAN.numpy(), LOG_VAR.numpy()

    def log_density(i, k, j):  # log N(z_ij; m_kj, exp(lv_kj))
        return -0.5 * (math.log(2 * math.pi) + lv[k, j]
                       + (z[i, j].item() - m[k, j]) ** 2 / math.exp(lv[k, j]))

    tc = 0.0
    for i in range(4):
        log_qz = logsumexp([sum(log_density(i, k, j) for j in range(3)) for k in range(4)])
        log_prod = sum(logsumexp([log_density(i, k, j) for k in range(4)]) for j in range(3))
        tc += (log_qz - log_prod) / 4
    assert total_correlation(z, MEAN, LOG_VAR).item() == pytest.approx(tc, rel=1e-12)


def test_betatcvae_regularizer_is_kl_plus_beta_minus_one_tc():
    model = build("betatcvae", beta=6.0)
    kl = gaussian_kl(MEAN, LOG_VAR)
    reg, extra = model.regularizer(MEAN, LOG_VAR, MEAN, kl, 0, None)
    tc = total_correlation(MEAN, MEAN, LOG_VAR)
    assert reg.item() == pytest.approx(kl.item() + 5.0 * tc.item(), rel=1e-12)
    assert extra["total_correlation"].item() == pytest.approx(tc.item())


def test_permute_dims_shuffles_each_latent_independently():
    z = torch.arange(40.0).view(10, 4) * torch.tensor([1.0, 100.0, 1e4, 1e6])
    perm = permute_dims(z, torch.Generator().manual_seed(0))
    orders = []
    for j in range(4):
        assert sorted(perm[:, j].tolist()) == sorted(z[:, j].tolist())
        orders.append(torch.argsort(perm[:, j]).tolist())
    assert len({tuple(o) for o in orders}) > 1  # not one permutation for all rows


def test_factorvae_density_ratio_terms():
    model = build("factorvae", gamma=10.0)
    kl = gaussian_kl(MEAN, LOG_VAR)
    z = MEAN.clone()
    reg, extra = model.regularizer(MEAN, LOG_VAR, z, kl, 0, torch.Generator().manual_seed(1))
    logits = model.discriminator.net(z).detach().numpy()
    tc = (logits[:, 0] - logits[:, 1]).mean()
    assert extra["total_correlation"].item() == pytest.approx(tc, rel=1e-10)
    assert reg.item() == pytest.approx(kl.item() + 10.0 * tc, rel=1e-10)
    z_perm = permute_dims(z, torch.Generator().manual_seed(1))
    logits_perm = model.discriminator.net(z_perm).detach().numpy()

    def probs(lg):
        e = np.exp(lg - lg.max(1, keepdims=True))
        return np.clip(e / e.sum(1, keepdims=True), 1e-6, 1 - 1e-6)

    objective = 0.5 * (np.log(probs(logits)[:, 0]).mean() + np.log(probs(logits_perm)[:, 1]).mean())
    assert extra["discriminator_objective"].item() == pytest.approx(objective, rel=1e-10)


def test_factorvae_optimisers_and_gradient_routing():
    model = build("factorvae", gamma=10.0)
    optimizers = build_optimizers(model, {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8})
    assert list(optimizers) == ["model", "discriminator"]
    assert optimizers["model"].defaults["betas"] == (0.9, 0.999)
    assert optimizers["discriminator"].defaults["betas"] == (0.5, 0.9)
    named = NamedOptimizers(optimizers)
    x = torch.rand(6, 1, 4, 4)
    out = model.step(x, 0, torch.Generator().manual_seed(0))
    out.losses["model"].backward(inputs=named.params("model"), retain_graph=True)
    out.losses["discriminator"].backward(inputs=named.params("discriminator"))
    disc_grad = [p.grad.clone() for p in model.discriminator.parameters()]
    vae_grad = [p.grad.clone() for p in model.encoder.parameters()]
    # the discriminator's gradient is that of -objective alone, not of the VAE's TC term
    model.zero_grad()
    out2 = model.step(x, 0, torch.Generator().manual_seed(0))
    expected = torch.autograd.grad(-out2.terms["discriminator_objective"],
                                   list(model.discriminator.parameters()), retain_graph=True)
    assert all(torch.allclose(a, b) for a, b in zip(disc_grad, expected))
    # and the encoder's is that of the VAE loss alone
    expected = torch.autograd.grad(out2.terms["loss"], list(model.encoder.parameters()))
    assert all(torch.allclose(a, b) for a, b in zip(vae_grad, expected))


def test_elbo_and_loss_terms():
    model = build("betavae", beta=2.0)
    out = model.step(torch.rand(5, 1, 4, 4), 0, torch.Generator().manual_seed(0))
    t = out.terms
    assert t["elbo"].item() == pytest.approx(-(t["reconstruction"] + t["kl"]).item())
    assert t["loss"].item() == pytest.approx((t["reconstruction"] + 2 * t["kl"]).item())
    assert list(out.losses) == ["model"] and out.losses["model"] is t["loss"]


def test_locatello_architecture_parameters_and_shapes():
    encoder, decoder = nets.build("locatello", (1, 64, 64), 10)
    count = sum(p.numel() for m in (encoder, decoder) for p in m.parameters())
    assert count == 690_517
    mean, log_var = encoder(torch.rand(2, 1, 64, 64))
    assert mean.shape == log_var.shape == (2, 10)
    encoder3, decoder3 = nets.build("locatello", (3, 64, 64), 10)
    assert decoder3(torch.zeros(2, 10)).shape == (2, 3, 64, 64)
