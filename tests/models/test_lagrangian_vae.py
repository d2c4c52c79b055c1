"""GCVAE: the controller against values derived by hand, the MMD and Mahalanobis terms
against independent numpy computations (float64), and the step's weighted loss."""

import math

import numpy as np
import pytest
import tiny
import torch

from disbench.errors import DisbenchError
from disbench.models.base import gaussian_kl
from disbench.models.lagrangian_vae import controlled_weight, mahalanobis, mmd

Z = np.array([[0.5, -1.0, 0.0], [1.5, 0.2, -0.3], [-0.7, 0.4, 2.0], [0.1, 0.1, 0.1],
              [0.9, -0.6, 0.3]])
PRIOR = np.array([[0.2, 0.3, -1.1], [-0.4, 1.2, 0.6], [1.0, -0.8, -0.2], [0.0, 0.5, 0.9],
                  [-1.3, -0.1, 0.4]])


pytestmark = pytest.mark.usefixtures("float64")


def build(**hyper):
    return tiny.build("lagrangian_vae", **{"kl_target": 16.0, **hyper})


# -- the controller: w = clip(low + kp / (1 + exp(e)) - ki e, low, high), e = target - value
@pytest.mark.parametrize("error,low,high,expected", [
    # e = 0: kp / 2 = 0.05
    (0.0, 0.0, 1.0, 0.05),
    # KL 20 over its set point 16: e = -4, 0.1 / (1 + e^-4) + 1e-4 * 4
    (-4.0, 0.0, 1.0, 0.1 / (1 + math.exp(-4.0)) + 4e-4),
    # far above the set point: kp + ki |e| = 0.1 + 0.3
    (-3000.0, 0.0, 1.0, 0.4),
    # so far above that it saturates: 0.1 + 1e-4 * 20000 = 2.1 -> 1
    (-20000.0, 0.0, 1.0, 1.0),
    # below the set point: 0.1 / (1 + e^600) - 0.06 < 0 -> 0
    (600.0, 0.0, 1.0, 0.0),
    # gamma, bounded below by 1: MMD 0.01 under its set point 0.1, e = 0.09
    (0.09, 1.0, math.inf, 1 + 0.1 / (1 + math.exp(0.09)) - 9e-6),
    # gamma far below its set point: 1 + ~0 - 1e-4 * 50 < 1 -> 1
    (50.0, 1.0, math.inf, 1.0),
    # gamma far above: no upper bound, 1 + 0.1 + 1e-4 * 1e5 = 11.1
    (-1e5, 1.0, math.inf, 11.1),
])
def test_controlled_weight_by_hand(error, low, high, expected):
    weight = controlled_weight(torch.tensor(error), 0.1, 1e-4, low, high)
    assert weight.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_multipliers_use_each_terms_set_point():
    model = build(reconstruction_target=100.0, kl_target=16.0, correlation_target=0.1,
                  kp=0.2, ki=1e-3)
    alpha, beta, gamma = model.multipliers(torch.tensor(90.0), torch.tensor(18.0),
                                           torch.tensor(0.3))
    # alpha: e = 10 -> 0.2 / (1 + e^10) - 0.01 < 0 -> 0
    assert alpha.item() == 0.0
    # beta: e = -2 -> 0.2 / (1 + e^-2) + 0.002
    assert beta.item() == pytest.approx(0.2 / (1 + math.exp(-2)) + 0.002, rel=1e-12)
    # gamma: e = -0.2 -> 1 + 0.2 / (1 + e^-0.2) + 0.0002
    assert gamma.item() == pytest.approx(1 + 0.2 / (1 + math.exp(-0.2)) + 2e-4, rel=1e-12)


# -- the correlation measures ---------------------------------------------------------
def test_mmd_by_loops():
    d = Z.shape[1]

    def k(a, b):
        return math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b)) / d**2)

    def mean_kernel(a, b):
        return sum(k(u, v) for u in a for v in b) / (len(a) * len(b))

    expected = mean_kernel(Z, Z) + mean_kernel(PRIOR, PRIOR) - 2 * mean_kernel(Z, PRIOR)
    got = mmd(torch.tensor(Z), torch.tensor(PRIOR)).item()
    assert got == pytest.approx(expected, rel=1e-12)
    assert mmd(torch.tensor(Z), torch.tensor(Z)).item() == pytest.approx(0.0, abs=1e-15)


def test_mahalanobis_against_numpy():
    centred = Z - Z.mean(0)
    inverse = np.linalg.inv(np.diag(np.diag(np.cov(Z.T))))  # unbiased, diagonal
    expected = np.mean([c @ inverse @ c for c in centred])
    assert mahalanobis(torch.tensor(Z)).item() == pytest.approx(expected, rel=1e-12)
    # the batch's own moments make it d (N - 1) / N whatever the codes
    n, d = Z.shape
    assert expected == pytest.approx(d * (n - 1) / n, rel=1e-12)


def test_mmd_prior_draws_come_from_the_generator():
    model = build()
    z = torch.tensor(Z)
    prior = torch.randn(z.shape, generator=torch.Generator().manual_seed(3))
    got = model.correlation_measure(z, torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(mmd(z, prior).item(), rel=1e-12)
    assert build(correlation="mahalanobis").correlation_measure(z, None).item() == (
        pytest.approx(mahalanobis(z).item()))


# -- the step ---------------------------------------------------------------------------
@pytest.mark.parametrize("correlation", ["mmd", "mahalanobis"])
def test_step_loss_is_the_weighted_sum_and_after_step_stores_the_multipliers(correlation):
    torch.manual_seed(0)
    model = build(correlation=correlation, reconstruction_target=5.0, kl_target=0.5)
    x = torch.rand(6, 1, 4, 4)
    out = model.step(x, 0, torch.Generator().manual_seed(1))
    t = {k: v.item() for k, v in out.terms.items()}
    # recompute every term from the same draws
    generator = torch.Generator().manual_seed(1)
    mean, log_var = model.encode(x)
    eps = torch.randn(mean.shape, generator=generator)
    z = mean + torch.exp(0.5 * log_var) * eps
    logits = model.decode(z).detach().numpy()
    p, xn = 1 / (1 + np.exp(-logits)), x.numpy()
    recon = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).reshape(6, -1).sum(1).mean()
    assert t["reconstruction"] == pytest.approx(recon, rel=1e-10)
    assert t["kl"] == pytest.approx(gaussian_kl(mean, log_var).item(), rel=1e-12)
    corr = (mmd(z, torch.randn(z.shape, generator=generator)) if correlation == "mmd"
            else mahalanobis(z)).item()
    assert t["correlation"] == pytest.approx(corr, rel=1e-10)
    alpha, beta, gamma = (w.item() for w in model.multipliers(
        torch.tensor(recon), torch.tensor(t["kl"]), torch.tensor(corr)))
    assert (t["alpha"], t["beta"], t["gamma"]) == pytest.approx((alpha, beta, gamma), rel=1e-9)
    assert 0 < t["alpha"] < 1 and 0 < t["beta"] < 1 and t["gamma"] > 1  # none at a bound
    assert t["loss"] == pytest.approx((1 - alpha - beta) * recon + beta * t["kl"]
                                      + gamma * corr, rel=1e-10)
    # the multipliers are constants of the step: the gradient is that of the weighted sum
    assert not any(out.terms[k].requires_grad for k in ("alpha", "beta", "gamma"))
    model.after_step(0, out)
    state = model.state_dict()
    for name in ("alpha", "beta", "gamma"):
        assert state[name].item() == t[name]


def test_gradient_treats_the_multipliers_as_constants():
    torch.manual_seed(0)
    model = build(reconstruction_target=5.0, kl_target=0.5)
    x = torch.rand(6, 1, 4, 4)
    out = model.step(x, 0, torch.Generator().manual_seed(1))
    a, b, g = (out.terms[k].item() for k in ("alpha", "beta", "gamma"))
    weight = next(model.encoder.parameters())  # every term depends on the encoder

    def grad(tensor):
        return torch.autograd.grad(tensor, weight, retain_graph=True)[0]

    expected = ((1 - a - b) * grad(out.terms["reconstruction"]) + b * grad(out.terms["kl"])
                + g * grad(out.terms["correlation"]))
    assert torch.allclose(grad(out.losses["model"]), expected, rtol=1e-10, atol=1e-14)


def test_correlation_is_checked():
    with pytest.raises(DisbenchError, match="correlation"):
        build(correlation="hsic")
