"""The semi-supervised VAE's prior terms and supervised term against independent
computations (numerical integration, scipy's densities) on hand-made tensors (float64)."""

import math

import numpy as np
import pytest
import tiny
import torch
from scipy import integrate, stats

from disbench.errors import DisbenchError
from disbench.models.base import Labels
from disbench.models.reconstruction import bernoulli
from disbench.models.ssvae import laplace_kl, scaled_kl

pytestmark = pytest.mark.usefixtures("float64")

MEAN = torch.tensor([[0.5, -1.0, 0.0], [1.5, 0.2, -0.3]], dtype=torch.float64)
LOG_VAR = torch.tensor([[0.0, -1.0, 0.5], [0.3, 0.1, -2.0]], dtype=torch.float64)


def normal_log_pdf(z, mean, std):
    return -0.5 * math.log(2 * math.pi * std**2) - (z - mean) ** 2 / (2 * std**2)


def kl_by_integration(mean, std, log_p):
    """KL(N(mean, std^2) || p) = int q (log q - log p), numerically."""
    def integrand(z):
        log_q = normal_log_pdf(z, mean, std)
        return math.exp(log_q) * (log_q - log_p(z))
    value, _ = integrate.quad(integrand, mean - 12 * std, mean + 12 * std, limit=200)
    return value


def standard_normal(z):
    return normal_log_pdf(z, 0.0, 1.0)


def test_laplace_kl_matches_numerical_integration():
    b = 1 / math.sqrt(2)
    got = laplace_kl(MEAN, LOG_VAR)
    for i in range(2):
        for d in range(3):
            m, s = MEAN[i, d].item(), math.exp(0.5 * LOG_VAR[i, d].item())
            expected = kl_by_integration(m, s, lambda z: -math.log(2 * b) - abs(z) / b)
            assert got[i, d].item() == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_scaled_kl_matches_numerical_integration_and_the_prior_variances():
    model = tiny.build("ssvae", prior="scaled")
    assert model.prior_var.tolist() == [1.0, 1.5, 2.0]  # 1 to 2 over three latents
    got = scaled_kl(MEAN, LOG_VAR, model.prior_var)
    for i in range(2):
        for d, var in enumerate([1.0, 1.5, 2.0]):
            m, s = MEAN[i, d].item(), math.exp(0.5 * LOG_VAR[i, d].item())
            expected = kl_by_integration(m, s, lambda z, v=var: normal_log_pdf(z, 0.0, v**0.5))
            assert got[i, d].item() == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_hierarchical_regularizer_is_the_one_sample_estimate():
    model = tiny.build("ssvae", prior="hierarchical")
    prior = model.hierarchical
    with torch.no_grad():
        prior.decoder_log_var.copy_(torch.tensor([0.2, -0.5, 0.1]))
        prior.encoder_log_var.copy_(torch.tensor([-1.0, 0.0, 0.3]))
    z = torch.tensor([[0.3, -0.2, 1.0], [-1.1, 0.5, 0.0]])
    got = prior.regularizer(MEAN, LOG_VAR, z, torch.Generator().manual_seed(5))

    eps = torch.randn((2, 3), generator=torch.Generator().manual_seed(5)).numpy()
    with torch.no_grad():
        h = prior.prior_encoder(z).numpy()
    k = np.array([-1.0, 0.0, 0.3])
    xi = h + np.exp(0.5 * k) * eps
    with torch.no_grad():
        g = prior.prior_decoder(torch.tensor(xi)).numpy()
    c = np.array([0.2, -0.5, 0.1])
    zn, m, lv = z.numpy(), MEAN.numpy(), LOG_VAR.numpy()
    log_q = stats.norm(m, np.exp(0.5 * lv)).logpdf(zn).sum(1)
    log_p = stats.norm(g, np.exp(0.5 * c)).logpdf(zn).sum(1)
    kl_xi = [sum(kl_by_integration(h[i, d], math.exp(0.5 * k[d]), standard_normal)
                 for d in range(3)) for i in range(2)]
    expected = log_q - log_p + np.array(kl_xi)
    assert got.detach().numpy() == pytest.approx(expected, rel=1e-7)


def test_step_is_elbo_plus_the_supervised_nll_of_the_labelled_batch():
    model = tiny.build("ssvae", prior="gaussian", beta=1.0, supervision=2.0,
                       attributes=["b", "a"])
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    xl = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    factors = np.array([[0.0, 0.5, 1.0], [1.0, 0.25, 0.5], [0.5, 1.0, 0.0]])
    labels = Labels(xl, torch.tensor(factors), ("a", "b", "c"))
    out = model.step(x, 0, torch.Generator().manual_seed(7), labels=labels)

    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        mean, log_var = model.encode(x)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=g)
        recon = bernoulli(model.decode(z), x).item()
        ml, lvl = (t.numpy() for t in model.encode(xl))
    m, lv = mean.numpy(), log_var.numpy()
    kl = np.mean([sum(kl_by_integration(m[i, d], math.exp(0.5 * lv[i, d]),
                                        standard_normal) for d in range(3))
                  for i in range(5)])
    target = (factors[:, [1, 0]] - 0.5) * math.sqrt(12)  # latent 0 <- b, latent 1 <- a
    nll = -stats.norm(ml[:, :2], np.exp(0.5 * lvl[:, :2])).logpdf(target).sum(1).mean()
    assert out.terms["supervised"].item() == pytest.approx(nll, rel=1e-9)
    assert out.terms["elbo"].item() == pytest.approx(-(recon + kl), rel=1e-7)
    assert out.losses["model"].item() == pytest.approx(recon + kl + 2.0 * nll, rel=1e-7)


@pytest.mark.parametrize("prior", ["gaussian", "scaled", "laplace", "hierarchical"])
def test_each_prior_trains_its_networks(prior):
    torch.manual_seed(0)
    model = tiny.build("ssvae", prior=prior)
    x = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    labels = Labels(x[:4], torch.rand(4, 3, generator=torch.Generator().manual_seed(2)),
                    ("a", "b", "c"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(60):
        loss = model.step(x, i, torch.Generator().manual_seed(i), labels=labels).losses["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    if prior == "hierarchical":  # the learned prior's parameters are trained too
        assert model.hierarchical.decoder_log_var.grad is not None


def test_a_wrong_prior_is_refused():
    with pytest.raises(DisbenchError, match="expected one of gaussian, scaled, laplace, hier"):
        tiny.build("ssvae", prior="student")


@pytest.mark.parametrize("prior,variance", [("gaussian", [1.0, 1.0, 1.0]),
                                            ("scaled", [1.0, 1.5, 2.0]),
                                            ("laplace", [1.0, 1.0, 1.0])])
def test_prior_samples_have_the_priors_moments(prior, variance):
    model = tiny.build("ssvae", prior=prior)
    z = model.sample_prior(200_000, torch.Generator().manual_seed(0)).numpy()
    assert z.shape == (200_000, 3)
    assert np.abs(z.mean(0)).max() < 0.02
    assert z.var(0) == pytest.approx(variance, rel=0.02)
    if prior == "laplace":  # E|z| = b = 1/sqrt(2) for Laplace(0, b); sqrt(2/pi) for N(0, 1)
        assert np.abs(z).mean(0) == pytest.approx([1 / math.sqrt(2)] * 3, rel=0.01)


def test_hierarchical_prior_samples_are_the_prior_decoders_plus_its_noise():
    model = tiny.build("ssvae", prior="hierarchical")
    z = model.sample_prior(5, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    xi = torch.randn((5, 3), generator=g)
    h = model.hierarchical
    expected = h.prior_decoder(xi) + torch.exp(0.5 * h.decoder_log_var) * torch.randn(
        (5, 3), generator=g)
    assert torch.equal(z, expected)
