"""GWAE's GW estimate and losses against independent computations on hand-made tensors
(float64), its priors, its optimisers, and a few steps of training on a toy batch."""

import math

import numpy as np
import pytest
import tiny
import torch
from omegaconf import OmegaConf
from torch import nn

from disbench import models, nets
from disbench.config import CONF_DIR
from disbench.errors import DisbenchError
from disbench.models.gwae import (
    GWAE,
    Critic,
    Prior,
    entropy_loss,
    gaussian_entropy,
    gradient_penalty,
    gw_estimate,
)
from disbench.train.optimizers import NamedOptimizers, build_optimizers

NAME = "gwae"
ADAM = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8}
# three generated images (1x2x2) and their latents (2-d)
X = np.array([[[[0.1, 0.9], [0.4, 0.0]]], [[[0.7, 0.2], [0.5, 1.0]]],
              [[[0.3, 0.3], [0.8, 0.6]]]])
Z = np.array([[0.5, -1.2], [1.5, 0.3], [-0.4, 0.8]])

pytestmark = pytest.mark.usefixtures("float64")


def build(shape=(1, 4, 4), **hyper):
    return tiny.build(NAME, shape, **hyper)


def images(seed=0, n=4, shape=(1, 4, 4)):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def gw_by_loops(x, z, beta):
    n, d = z.shape
    flat = x.reshape(n, -1)
    stds = [math.sqrt(sum((z[i, k] - z[:, k].mean()) ** 2 for i in range(n)) / (n - 1))
            for k in range(d)]
    s = sum(stds) / d
    total = 0.0
    for i in range(n):
        for j in range(n):
            dx = math.sqrt(sum((flat[i, k] - flat[j, k]) ** 2 for k in range(flat.shape[1])))
            dz = math.sqrt(sum((z[i, k] - z[j, k]) ** 2 for k in range(d)))
            total += abs(dx - beta * dz / s)
    return total / n ** 2


def test_gw_estimate_is_the_mean_distance_mismatch_over_all_pairs_by_loops():
    got = gw_estimate(torch.tensor(X), torch.tensor(Z), torch.tensor(1.7)).item()
    assert got == pytest.approx(gw_by_loops(X, Z, 1.7), rel=1e-12)


def test_gw_estimate_is_zero_for_an_isometry_and_blind_to_the_latent_scale():
    # x = z R (orthonormal R) embeds the latents isometrically: d_X = d_Z when beta = s
    r = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 2)))[0]  # 4x2, R^T R = I
    x = (Z @ r.T).reshape(3, 1, 2, 2)
    s = Z.std(0, ddof=1).mean()
    assert gw_estimate(torch.tensor(x), torch.tensor(Z), torch.tensor(s)).item() == \
        pytest.approx(0.0, abs=1e-12)
    base = gw_estimate(torch.tensor(X), torch.tensor(Z), torch.tensor(0.8))
    moved = gw_estimate(torch.tensor(X), torch.tensor(5 * Z + 3), torch.tensor(0.8))
    assert moved.item() == pytest.approx(base.item(), rel=1e-12)


def test_gw_estimate_has_finite_gradients_at_the_zero_diagonal():
    x, z = torch.tensor(X, requires_grad=True), torch.tensor(Z, requires_grad=True)
    beta = torch.tensor(1.3, requires_grad=True)
    gw_estimate(x, z, beta).backward()
    assert all(torch.isfinite(t.grad).all() for t in (x, z, beta))
    assert beta.grad.item() != 0


def test_entropy_terms_by_hand():
    log_var = np.array([[0.2, -1.0, 0.5], [-0.3, 0.0, 1.1]])
    assert entropy_loss(torch.tensor(log_var)).item() == pytest.approx(
        -(0.2 - 1.0 + 0.5 - 0.3 + 0.0 + 1.1) / 2, rel=1e-12)
    entropy = np.mean([sum(0.5 * math.log(2 * math.pi * math.e * math.exp(v)) for v in row)
                       for row in log_var])
    assert gaussian_entropy(torch.tensor(log_var)).item() == pytest.approx(entropy, rel=1e-12)


class QuadraticCritic(nn.Module):
    """f(x, z) = 0.5 ||x||^2 + w . z: grad_x f = x, grad_z f = w."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x, z):
        return 0.5 * x.flatten(1).square().sum(1) + z @ self.w


def test_gradient_penalty_at_the_interpolations_by_hand():
    w = np.array([0.6, -0.2])
    x_prior = X[::-1].copy()
    z_prior = Z[[2, 0, 1]]
    t = np.array([0.25, 0.9, 0.5])
    critic = QuadraticCritic(w)
    got = gradient_penalty(critic, torch.tensor(X), torch.tensor(Z), torch.tensor(x_prior),
                           torch.tensor(z_prior), torch.tensor(t))
    norms, dw = [], np.zeros(2)
    for i in range(3):
        x_t = t[i] * X[i] + (1 - t[i]) * x_prior[i]
        norm = math.sqrt(np.sum(x_t ** 2) + np.sum(w ** 2))
        norms.append((norm - 1) ** 2)
        dw += 2 * (norm - 1) * w / norm / 3
    assert got.item() == pytest.approx(np.mean(norms), rel=1e-12)
    # the penalty is differentiable in the critic's parameters (create_graph)
    got.backward()
    assert np.allclose(critic.w.grad.numpy(), dw, rtol=1e-10)


class LinearCritic(nn.Module):
    """f(x, z) = flat(x) . a + z . b + c."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(4)
        self.a = nn.Parameter(0.3 * torch.randn(16, generator=gen))
        self.b = nn.Parameter(torch.tensor([0.5, -0.8, 0.2]))
        self.c = nn.Parameter(torch.tensor(0.1))

    def forward(self, x, z):
        return x.flatten(1) @ self.a + z @ self.b + self.c


def test_step_is_the_papers_objective_and_the_critics_loss():
    lw, ld, lh, gp, scale = 0.7, 1.3, 0.05, 4.0, 1.9
    model = build(lambda_w=lw, lambda_d=ld, lambda_h=lh, gradient_penalty=gp,
                  distance_scale=scale, prior="normal")
    model.critic = LinearCritic()
    x = images()
    out = model.step(x, 0, torch.Generator().manual_seed(3))

    # the same draws in the same order: eps of z ~ q(z|x), the prior's noise, then t
    gen = torch.Generator().manual_seed(3)
    eps = torch.randn(4, 3, generator=gen).numpy()
    z_prior = torch.randn(4, 3, generator=gen).numpy()
    with torch.no_grad():
        mean, log_var = (t.numpy() for t in model.encoder(x))
        z = mean + np.exp(0.5 * log_var) * eps
        recon = sigmoid(model.decoder(torch.tensor(z)).numpy())
        x_prior = sigmoid(model.decoder(torch.tensor(z_prior)).numpy())
        a, b, c = (p.numpy() for p in (model.critic.a, model.critic.b, model.critic.c))
    xs = x.numpy()
    gw = gw_by_loops(x_prior, z_prior, scale)
    w = np.mean([0.5 * np.sum((xs[i] - recon[i]) ** 2) for i in range(4)])
    h = np.mean([-np.sum(log_var[i]) for i in range(4)])
    score_q = xs.reshape(4, -1) @ a + z @ b + c
    score_p = x_prior.reshape(4, -1) @ a + z_prior @ b + c
    adversarial = score_p.mean() - score_q.mean()
    # a linear critic's gradient is (a, b) everywhere, whatever the interpolation
    penalty = (math.sqrt(np.sum(a ** 2) + np.sum(b ** 2)) - 1) ** 2
    drift = np.mean(score_q ** 2) + np.mean(score_p ** 2)

    assert set(out.losses) == {"model", "critic"}
    assert out.losses["model"].item() == pytest.approx(gw + lw * w + ld * adversarial + lh * h,
                                                       rel=1e-10)
    assert out.losses["critic"].item() == pytest.approx(
        -adversarial + gp * (penalty + 1e-4 * drift), rel=1e-10)
    for key, value in (("gw", gw), ("squared_error", w), ("entropy_loss", h),
                       ("adversarial", adversarial), ("gradient_penalty", penalty),
                       ("distance_scale", scale)):
        assert out.terms[key].item() == pytest.approx(value, rel=1e-10), key
    bce = -np.mean([np.sum(xs[i] * np.log(recon[i]) + (1 - xs[i]) * np.log(1 - recon[i]))
                    for i in range(4)])
    assert out.terms["reconstruction"].item() == pytest.approx(bce, rel=1e-10)


def leaky_silu(h):
    return 0.8 * h * sigmoid(h) + 0.2 * h


def test_factorized_neural_prior_by_hand():
    torch.manual_seed(0)
    prior = Prior("factorized_neural", 3)
    eps = np.random.default_rng(1).normal(size=(6, 3))
    got = prior.transform(torch.tensor(eps)).detach().numpy()
    for d, net in enumerate(prior.nets):
        linears = [m for m in net if isinstance(m, nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(1, 4), (4, 4), (4, 4),
                                                                      (4, 1)]
        h = eps[:, d:d + 1]
        for k, m in enumerate(linears):
            h = h @ m.weight.detach().numpy().T + m.bias.detach().numpy()
            if k < 3:
                h = leaky_silu(h)
        h = h[:, 0]
        expected = (h - h.mean()) / np.sqrt(h.var() + 1e-5)  # batch norm, no affine
        assert np.allclose(got[:, d], expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind, factorised", [("factorized_neural", True), ("neural", False),
                                              ("normal", True)])
def test_each_latent_of_a_factorised_prior_depends_on_its_own_noise_only(kind, factorised):
    torch.manual_seed(0)
    prior = Prior(kind, 3)
    eps = torch.tensor(np.random.default_rng(2).normal(size=(8, 3)))
    base = prior.transform(eps)
    moved = eps.clone()
    moved[:, 1] = moved[:, 1] * 2 + 0.5
    after = prior.transform(moved)
    assert not torch.allclose(after[:, 1], base[:, 1])
    assert torch.allclose(after[:, [0, 2]], base[:, [0, 2]]) == factorised


def test_the_normal_prior_is_the_noise_itself_and_has_no_parameters():
    prior = Prior("normal", 3)
    assert not list(prior.parameters())
    gen = torch.Generator().manual_seed(5)
    drawn = prior(4, gen, torch.zeros(1))
    assert torch.equal(drawn, torch.randn(4, 3, generator=torch.Generator().manual_seed(5)))


def test_two_rmsprop_optimisers_and_five_critic_updates():
    model = build(prior="neural")
    optimizers = build_optimizers(model, ADAM)
    assert set(optimizers) == {"model", "critic"}
    ids = {name: [id(p) for g in o.param_groups for p in g["params"]]
           for name, o in optimizers.items()}
    assert ids["critic"] == [id(p) for p in model.critic.parameters()]
    assert set(ids["model"]) == {id(p) for p in [*model.encoder.parameters(),
                                                 *model.decoder.parameters(),
                                                 *model.prior.parameters(), model.log_beta]}
    assert list(model.prior.parameters())
    for optimizer in optimizers.values():
        assert type(optimizer) is torch.optim.RMSprop
        group = optimizer.param_groups[0]
        assert (group["lr"], group["alpha"], group["eps"]) == (1e-4, 0.99, 1e-8)
    assert GWAE.updates == {"critic": 5}
    assert model.log_beta.exp().item() == pytest.approx(2.5)


def backprop_like_the_trainer(model, x, seed, named):
    out = model.step(x, 0, torch.Generator().manual_seed(seed))
    named.zero_grad()
    names = list(out.losses)
    for i, name in enumerate(names):
        out.losses[name].backward(inputs=named.params(name), retain_graph=i < len(names) - 1)
    return out


def test_one_update_moves_each_player_its_own_way():
    # one small RMSProp step of each optimiser alone, same batch and noise before and after:
    # the critic's lowers its loss (raises its estimate L_D), the model's lowers its loss
    x = images(n=6)
    for name in ("critic", "model"):
        torch.manual_seed(0)
        model = build(lr=1e-6, critic_lr=1e-6)
        named = NamedOptimizers(build_optimizers(model, ADAM))
        before = backprop_like_the_trainer(model, x, 1, named).losses[name].item()
        named.named[name].step()
        after = model.step(x, 0, torch.Generator().manual_seed(1)).losses[name].item()
        assert after < before, name


def test_a_few_training_steps_reduce_the_loss_on_a_toy_batch():
    torch.manual_seed(0)
    model = build(lr=1e-3, critic_lr=1e-3)
    named = NamedOptimizers(build_optimizers(model, ADAM))
    x = images(n=8)

    def loss():  # the model's loss at fixed noise
        return model.step(x, 0, torch.Generator().manual_seed(123)).losses["model"].item()

    before = loss()
    for step in range(10):  # the trainer's schedule: the critic's extra updates first
        for _ in range(GWAE.updates["critic"] - 1):
            out = model.step(x, step, torch.Generator().manual_seed(1000 + step))
            named.zero_grad()
            out.losses["critic"].backward(inputs=named.params("critic"))
            named.named["critic"].step()
        backprop_like_the_trainer(model, x, step, named)
        named.step()
    assert loss() < 0.9 * before


@pytest.mark.parametrize("channels", [1, 3])
def test_steps_on_64x64_images_with_the_conv_critic(channels):
    encoder, decoder = nets.build("locatello", (channels, 64, 64), 5)
    model = models.build({"name": NAME}, encoder, decoder, 5)
    assert isinstance(model.critic, Critic)
    convs = [m for m in model.critic.x_net if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [
        (channels, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 256)]
    x = images(n=3, shape=(channels, 64, 64))
    assert model.critic.x_net(x).shape == (3, 64)
    out = model.step(x, 0, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in out.losses.values())
    assert all(torch.isfinite(v) for v in out.terms.values())


def test_the_critic_is_spectrally_normalised():
    critic = build().critic
    layers = [m for m in critic.modules() if isinstance(m, nn.Linear)]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    with torch.no_grad():
        for _ in range(50):  # converge the power iteration
            critic(images(), torch.zeros(4, 3))
    critic.eval()
    for m in layers:
        assert torch.linalg.matrix_norm(m.weight, ord=2).item() == pytest.approx(1, rel=1e-3)


def test_all_noise_comes_from_the_generator():
    # each step from the same state: the critic's power iteration and the prior's batch
    # norm update their buffers at every step
    tiny.assert_noise_from_the_generator(build(), images(), "model")


def test_encode_and_decode_are_the_encoders_and_decoders():
    tiny.assert_encode_and_decode_are_the_networks(build(), images())


def test_bad_prior_and_scale_are_refused():
    with pytest.raises(DisbenchError, match="prior"):
        build(prior="gaussian_mixture")
    with pytest.raises(ValueError, match="distance_scale"):
        build(distance_scale=0.0)


def test_config_holds_the_defaults():
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "gwae.yaml"))
    assert cfg.pop("name") == "gwae"
    cls, hyper = models.check({"name": NAME, **cfg})
    assert cls is GWAE and GWAE.strength == "lambda_w"
    defaults = {k: p.default for k, p in models.hyperparameters(NAME).items()}
    assert hyper == defaults == {"lambda_w": 1.0, "lambda_d": 1.0, "lambda_h": 0.03,
                                 "prior": "factorized_neural", "distance_scale": 2.5,
                                 "gradient_penalty": 10.0, "lr": 1e-4, "critic_lr": 1e-4}


def test_prior_samples_are_the_priors_transform_of_the_generators_noise():
    model = build().eval()
    z = model.sample_prior(6, torch.Generator().manual_seed(4))
    eps = torch.randn((6, 3), generator=torch.Generator().manual_seed(4))
    assert z.shape == (6, 3)
    assert torch.equal(z, model.prior.transform(eps))
