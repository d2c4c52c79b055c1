"""GVVAE (AR-ELBO): the ML variance and the Gaussian NLL against independent numpy
computations (float64), the estimate's optimality, and the gradient the paper's
alternating scheme gives."""

import math

import numpy as np
import pytest
import tiny
import torch

from disbench.errors import DisbenchError
from disbench.models.base import gaussian_kl
from disbench.models.gvvae import gaussian_nll, ml_variance
from disbench.models.reconstruction import gaussian

LOGITS = np.array([[[[2.0, -1.0], [0.0, 3.0]]], [[[-0.5, 0.5], [1.0, -2.0]]],
                   [[[0.3, 0.1], [-1.2, 0.8]]]])
X = np.array([[[[1.0, 0.0], [0.5, 1.0]]], [[[0.0, 1.0], [1.0, 0.2]]],
              [[[0.4, 0.0], [0.0, 0.9]]]])


pytestmark = pytest.mark.usefixtures("float64")


def build(**hyper):
    return tiny.build("gvvae", **hyper)


def numpy_nll(mean, x, variance):
    """-log N(x; mean, variance I) by the density, summed over pixels, mean over images."""
    log_density = -0.5 * np.log(2 * np.pi * variance) - (x - mean) ** 2 / (2 * variance)
    return -log_density.reshape(len(x), -1).sum(1).mean()


def test_ml_variance_is_the_mean_squared_error_per_pixel():
    mean = 1 / (1 + np.exp(-LOGITS))
    expected = ((X - mean) ** 2).mean()  # over the batch and the 4 pixels
    got = ml_variance(torch.sigmoid(torch.tensor(LOGITS)), torch.tensor(X)).item()
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("variance", [1.0, 0.05, 3.7])
def test_gaussian_nll_against_the_density(variance):
    mean = 1 / (1 + np.exp(-LOGITS))
    got = gaussian_nll(torch.sigmoid(torch.tensor(LOGITS)), torch.tensor(X),
                       torch.tensor(variance)).item()
    assert got == pytest.approx(numpy_nll(mean, X, variance), rel=1e-12)


def test_unit_variance_is_the_fixed_gaussian_reconstruction():
    logits, x = torch.tensor(LOGITS), torch.tensor(X)
    assert gaussian_nll(torch.sigmoid(logits), x, torch.tensor(1.0)).item() == pytest.approx(
        gaussian(logits, x).item(), rel=1e-12)


def test_reconstruction_is_the_nll_at_the_ml_variance():
    model = build()
    mean = 1 / (1 + np.exp(-LOGITS))
    variance = ((X - mean) ** 2).mean()
    recon, got_variance = model.reconstruction_terms(torch.tensor(LOGITS), torch.tensor(X))
    assert got_variance.item() == pytest.approx(variance, rel=1e-12)
    assert recon.item() == pytest.approx(numpy_nll(mean, X, variance), rel=1e-12)
    d = 4  # pixels: the NLL at its ML variance is (D/2) log(2 pi e sigma^2)
    assert recon.item() == pytest.approx(0.5 * d * math.log(2 * math.pi * math.e * variance),
                                         rel=1e-12)
    # and no other variance gives a smaller NLL
    for factor in (0.5, 0.9, 0.99, 1.01, 1.1, 2.0):
        assert numpy_nll(mean, X, variance * factor) > recon.item()


def test_gradient_is_that_of_half_d_log_mean_squared_error():
    # d/dlogit of (D/2) log S, S = mean_i sum_k (x_ik - m_ik)^2, m = sigmoid(logit):
    # (D/2) (1/S) (1/N) 2 (m - x) m (1 - m)
    logits = torch.tensor(LOGITS, requires_grad=True)
    recon, _ = build().reconstruction_terms(logits, torch.tensor(X))
    (got,) = torch.autograd.grad(recon, logits)
    m = 1 / (1 + np.exp(-LOGITS))
    n, d = X.shape[0], X[0].size
    s = ((X - m) ** 2).reshape(n, -1).sum(1).mean()
    expected = (d / 2) / s / n * 2 * (m - X) * m * (1 - m)
    assert np.allclose(got.numpy(), expected, rtol=1e-10, atol=0)
    # = the gradient of the NLL with the variance held at its estimate (updated, then fixed)
    fixed = torch.tensor(LOGITS, requires_grad=True)
    variance = ml_variance(torch.sigmoid(fixed), torch.tensor(X)).detach()
    (held,) = torch.autograd.grad(gaussian_nll(torch.sigmoid(fixed), torch.tensor(X),
                                               variance), fixed)
    assert torch.allclose(got, held, rtol=1e-10, atol=0)


def test_step_is_nll_at_the_ml_variance_plus_kl():
    torch.manual_seed(0)
    model = build()
    x = torch.rand(5, 1, 4, 4)
    out = model.step(x, 0, torch.Generator().manual_seed(2))
    mean, log_var = model.encode(x)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(2))
    logits = model.decode(mean + torch.exp(0.5 * log_var) * eps).detach().numpy()
    m, xn = 1 / (1 + np.exp(-logits)), x.numpy()
    variance = ((xn - m) ** 2).mean()
    kl = gaussian_kl(mean, log_var).item()
    assert out.terms["variance"].item() == pytest.approx(variance, rel=1e-10)
    assert out.terms["reconstruction"].item() == pytest.approx(numpy_nll(m, xn, variance),
                                                               rel=1e-10)
    assert out.losses["model"].item() == pytest.approx(numpy_nll(m, xn, variance) + kl,
                                                       rel=1e-10)
    assert out.terms["elbo"].item() == pytest.approx(-out.losses["model"].item())


def test_only_the_gaussian_likelihood():
    with pytest.raises(DisbenchError, match="reconstruction"):
        build(reconstruction="bernoulli")
