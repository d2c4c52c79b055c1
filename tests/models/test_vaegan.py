"""VAE/GAN's losses against independent computations on hand-made tensors (float64), and
the direction of each network's update."""

import math

import numpy as np
import pytest
import tiny
import torch
from omegaconf import OmegaConf
from torch import nn

from disbench import models, nets
from disbench.config import CONF_DIR
from disbench.models.vaegan import (
    VAEGAN,
    ConvDiscriminator,
    MLPDiscriminator,
    feature_nll,
    gan_loss,
    observation_shape,
)
from disbench.train.optimizers import NamedOptimizers, build_optimizers

ADAM = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8}
FEATURES_X = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]])
FEATURES_RECON = np.array([[0.1, -0.5, 1.0], [0.4, 0.3, 0.2]])
LOGIT_X = np.array([2.0, -0.5, 0.3])
LOGIT_RECON = np.array([-1.0, 0.7, 0.0])
LOGIT_PRIOR = np.array([0.2, -2.0, 1.5])


pytestmark = pytest.mark.usefixtures("float64")


def build(shape=(1, 4, 4), **hyper):
    return tiny.build("vaegan", shape, **hyper)


def images(seed=0, n=4, shape=(1, 4, 4)):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


class LinearDiscriminator(nn.Module):
    """Dis_l(x) = flat(x) @ A (2 features), logit = Dis_l(x) @ w + b."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(5)
        self.a = nn.Parameter(torch.randn(16, 2, generator=gen))
        self.w = nn.Parameter(torch.tensor([0.7, -1.3]))
        self.b = nn.Parameter(torch.tensor(0.2))

    def forward(self, x):
        features = x.flatten(1) @ self.a
        return features, features @ self.w + self.b


def test_feature_nll_is_the_gaussian_nll_of_the_real_features_by_loops():
    n, k = FEATURES_X.shape
    total = 0.0
    for i in range(n):
        total += sum(0.5 * math.log(2 * math.pi) + 0.5 * (FEATURES_X[i, j] - FEATURES_RECON[i, j])
                     ** 2 for j in range(k))
    got = feature_nll(torch.tensor(FEATURES_RECON), torch.tensor(FEATURES_X)).item()
    assert got == pytest.approx(total / n, rel=1e-12)


def test_gan_loss_is_the_discriminators_cross_entropy_by_hand():
    p_x, p_recon, p_prior = sigmoid(LOGIT_X), sigmoid(LOGIT_RECON), sigmoid(LOGIT_PRIOR)
    expected = -np.mean(np.log(p_x) + np.log(1 - p_recon) + np.log(1 - p_prior))
    got = gan_loss(*(torch.tensor(a) for a in (LOGIT_X, LOGIT_RECON, LOGIT_PRIOR))).item()
    assert got == pytest.approx(expected, rel=1e-12)
    # a better discriminator (real higher, generated lower) has the lower loss
    better = gan_loss(torch.tensor(LOGIT_X + 1), torch.tensor(LOGIT_RECON - 1),
                      torch.tensor(LOGIT_PRIOR - 1)).item()
    assert better < got
    # stable where the probabilities round to 0 or 1: log(1 - sigmoid(40)) = -40 - log1p(e^-40)
    far = gan_loss(torch.tensor([0.0]), torch.tensor([40.0]), torch.tensor([0.0])).item()
    assert far == pytest.approx(math.log(2) + 40 + math.log1p(math.exp(-40)) + math.log(2))


def test_step_wires_the_three_losses_as_algorithm_1():
    gamma = 0.3
    model = build(gamma=gamma)
    model.discriminator = LinearDiscriminator()
    x = images()
    out = model.step(x, 0, torch.Generator().manual_seed(3))

    # the same draws, in the same order: eps of z ~ q(z|x), then z_p ~ N(0, I)
    with torch.no_grad():
        mean, log_var = model.encoder(x)
        gen = torch.Generator().manual_seed(3)
        eps = torch.randn(mean.shape, generator=gen)
        z_prior = torch.randn(mean.shape, generator=gen)
        recon = torch.sigmoid(model.decoder(mean + torch.exp(log_var / 2) * eps)).numpy()
        prior = torch.sigmoid(model.decoder(z_prior)).numpy()
        a, w, b = (t.numpy() for t in (model.discriminator.a, model.discriminator.w,
                                       model.discriminator.b))
    m, lv, xs = mean.numpy(), log_var.numpy(), x.numpy().reshape(4, -1)
    f_x, f_recon, f_prior = xs @ a, recon.reshape(4, -1) @ a, prior.reshape(4, -1) @ a
    kl = np.mean([sum(0.5 * (m[i, j] ** 2 + math.exp(lv[i, j]) - lv[i, j] - 1) for j in range(3))
                  for i in range(4)])
    llike = np.mean([sum(0.5 * (f_x[i, j] - f_recon[i, j]) ** 2 + 0.5 * math.log(2 * math.pi)
                         for j in range(2)) for i in range(4)])
    d_x, d_recon, d_prior = (sigmoid(f @ w + b) for f in (f_x, f_recon, f_prior))
    gan = -np.mean(np.log(d_x) + np.log(1 - d_recon) + np.log(1 - d_prior))

    assert set(out.losses) == {"encoder", "decoder", "discriminator"}
    assert out.losses["encoder"].item() == pytest.approx(kl + llike, rel=1e-10)
    assert out.losses["decoder"].item() == pytest.approx(gamma * llike - gan, rel=1e-10)
    assert out.losses["discriminator"].item() == pytest.approx(gan, rel=1e-10)
    assert out.terms["dis_llike"].item() == pytest.approx(llike, rel=1e-10)
    assert out.terms["kl"].item() == pytest.approx(kl, rel=1e-10)


def backprop_like_the_trainer(model, x, seed):
    named = NamedOptimizers(build_optimizers(model, ADAM))
    out = model.step(x, 0, torch.Generator().manual_seed(seed))
    named.zero_grad()
    names = list(out.losses)
    for i, name in enumerate(names):
        out.losses[name].backward(inputs=named.params(name), retain_graph=i < len(names) - 1)
    return named, out


def test_the_gan_loss_never_reaches_the_encoder():
    # The discriminator's head (after Dis_l) changes L_GAN only: the encoder's gradient
    # must not move, the decoder's must.
    x = images(n=6)
    grads = {}
    for scale in (1.0, 3.0):
        torch.manual_seed(0)
        model = build(gamma=0.5)
        model.discriminator.head[-1].weight.data.mul_(scale)
        backprop_like_the_trainer(model, x, seed=1)
        grads[scale] = ([p.grad.clone() for p in model.encoder.parameters()],
                        [p.grad.clone() for p in model.decoder.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(grads[1.0][0], grads[3.0][0]))
    assert not all(torch.allclose(a, b) for a, b in zip(grads[1.0][1], grads[3.0][1]))


def test_the_discriminator_is_not_trained_on_the_feature_likelihood():
    torch.manual_seed(0)
    model = build(gamma=0.5)
    x = images(n=6)
    backprop_like_the_trainer(model, x, seed=1)
    got = [p.grad.clone() for p in model.discriminator.parameters()]
    model.zero_grad()
    out = model.step(x, 0, torch.Generator().manual_seed(1))
    out.terms["discriminator_loss"].backward(inputs=list(model.discriminator.parameters()))
    assert all(torch.allclose(a, p.grad, rtol=1e-12) for a, p in
               zip(got, model.discriminator.parameters()))


def test_one_update_moves_each_player_its_own_way():
    # One small RMSProp step (first-order regime) of each network, same batch and noise
    # before and after: the discriminator's lowers L_GAN, the decoder's (gamma = 0: its loss
    # is -L_GAN) raises it, the encoder's lowers L_prior + L_llike.
    x = images(n=6)
    for name, watched, sign in (("discriminator", "discriminator", -1),
                                ("decoder", "discriminator", 1), ("encoder", "encoder", -1)):
        torch.manual_seed(0)
        model = build(gamma=0.0, rmsprop_lr=1e-6)
        named, out = backprop_like_the_trainer(model, x, seed=1)
        before = out.losses[watched].item()
        named.named[name].step()
        after = model.step(x, 0, torch.Generator().manual_seed(1)).losses[watched].item()
        assert sign * (after - before) > 0, name


def test_three_rmsprop_optimisers_with_the_papers_settings():
    model = build()
    optimizers = build_optimizers(model, ADAM)
    assert set(optimizers) == {"encoder", "decoder", "discriminator"}
    for name, module in (("encoder", model.encoder), ("decoder", model.decoder),
                         ("discriminator", model.discriminator)):
        optimizer = optimizers[name]
        assert type(optimizer) is torch.optim.RMSprop
        group = optimizer.param_groups[0]
        assert (group["lr"], group["alpha"], group["eps"]) == (3e-4, 0.9, 1e-8)
        assert [id(p) for p in group["params"]] == [id(p) for p in module.parameters()]
    # the update rule of the authors' RMSProp: v = 0.9 v + 0.1 g^2, p -= lr g / (sqrt(v) + eps)
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    rmsprop = torch.optim.RMSprop([p], **model.rmsprop)
    for g in ([0.5, -1.0], [0.2, 0.4]):
        p.grad = torch.tensor(g)
        rmsprop.step()
    v1 = 0.1 * np.array([0.5, -1.0]) ** 2
    p1 = np.array([1.0, -2.0]) - 3e-4 * np.array([0.5, -1.0]) / (np.sqrt(v1) + 1e-8)
    v2 = 0.9 * v1 + 0.1 * np.array([0.2, 0.4]) ** 2
    p2 = p1 - 3e-4 * np.array([0.2, 0.4]) / (np.sqrt(v2) + 1e-8)
    assert np.allclose(p.detach().numpy(), p2, rtol=1e-12)


def test_the_discriminator_follows_the_observation_size():
    conv = build(shape=(3, 64, 64))
    assert isinstance(conv.discriminator, ConvDiscriminator)
    features, logits = conv.discriminator(images(n=3, shape=(3, 64, 64)))
    assert features.shape == (3, 64 * 8 * 8) and logits.shape == (3,)
    small = build(shape=(1, 4, 4))
    assert isinstance(small.discriminator, MLPDiscriminator)
    features, logits = small.discriminator(images(n=3))
    assert features.shape == (3, 512) and logits.shape == (3,)


def test_observation_shape_leaves_the_decoder_as_it_was():
    _, decoder = nets.build("locatello", (1, 64, 64), 5)
    decoder.train()
    assert observation_shape(decoder, 5) == (1, 64, 64)
    assert decoder.training
    decoder.eval()
    assert observation_shape(decoder, 5) == (1, 64, 64) and not decoder.training


def test_all_noise_comes_from_the_generator():
    tiny.assert_noise_from_the_generator(build(), images(), "encoder")


def test_encode_and_decode_are_the_vaes():
    tiny.assert_encode_and_decode_are_the_networks(build(), images())


def test_config_holds_the_defaults_and_strength_is_gamma():
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "vaegan.yaml"))
    cls, hyper = models.check(cfg)
    assert cls is VAEGAN and VAEGAN.strength == "gamma"
    defaults = {k: p.default for k, p in models.hyperparameters("vaegan").items()}
    assert hyper == defaults == {"gamma": 1e-6, "rmsprop_lr": 3e-4, "rmsprop_alpha": 0.9,
                                 "rmsprop_eps": 1e-8}
