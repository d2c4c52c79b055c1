"""GWAE: Nakagawa, Togo, Ogawa & Haseyama, "Gromov-Wasserstein Autoencoders", ICLR 2023
(arXiv:2209.07007); the authors' code: github.com/ganmodokix/gwae.

A GWAE minimises the Gromov-Wasserstein (GW) metric between the data distribution and a
trainable prior p_theta(z), whose family carries the meta-prior (a factorised prior for
disentanglement). The GW coupling is the generative model p_theta(z) p_theta(x|z), x =
G(z) the decoder's image; its constraint p_theta(x) = p_data(x) is relaxed into weighted
penalties. With z ~ q_phi(z|x) (the encoder, reparameterised), z_p ~ p_theta(z) and x_p =
G(z_p), the autoencoder, the prior and the distance scale beta minimise

    L = L_GW + lambda_W L_W + lambda_D L_D + lambda_H L_H

- L_GW = E |d_X(x_p, x_p') - d_Z(z_p, z_p')|, over all B^2 ordered pairs of a batch of
  prior samples (the diagonal pairs count, as zeros): d_X the Euclidean distance between
  the generated images, d_Z(z, z') = beta ||z - z'|| / s, beta > 0 trainable (initial
  `distance_scale`), s the batch's mean per-latent standard deviation of z_p (unbiased),
  which makes d_Z blind to the prior's overall scale (the authors' code);
- L_W = 1/2 ||x - G(z)||^2 summed over pixels, mean over the batch (the autoencoding
  bound on W(p_data, p_theta(x)));
- L_D = E f(x_p, z_p) - E f(x, z), the Kantorovich-Rubinstein estimate of the Wasserstein
  distance between the inference joint q_phi(z|x) p_data(x) and the generative joint, by
  a critic f on (x, z) pairs;
- L_H = -sum_d log sigma_d^2(x), mean over the batch: -2 E H[q_phi(z|x)] up to a
  constant, so that the encoder stays stochastic (the authors' code's scaling of the
  entropy term, to which its weight 0.03 belongs).

The critic (its own optimiser) maximises L_D under a one-centred gradient penalty at
random interpolations of the two pairs, t ~ U[0, 1) per pair (WGAN-GP), and a small drift
term on its outputs, as in the authors' code:

    L_critic = -L_D + c_GP [E (||grad f(x_t, z_t)|| - 1)^2 + 1e-4 (E f(x, z)^2 + E f(x_p, z_p)^2)]

its gradient taken over the image and the latent together. Its layers are spectrally
normalised and LeakyReLU(0.2); f(x, z) = h([g(x), k(z)] / 2). For 64x64 observations g
is the authors' conv net (six 4x4 stride-2 convolutions, 8 to 256 channels, then a linear
layer to 64); for other sizes an MLP (256, 256, 64), this implementation's choice. k is
an MLP (256, 256, 64), h an MLP (256, 256, 1).

Priors (`prior`), as the authors' samplers, each pushing standard normal noise through a
network whose output is batch-normalised (no affine, momentum 0.5):
- factorized_neural (default, the disentanglement meta-prior): z_d = BN(g_d(eps_d)), one
  small MLP (1-4-4-4-1, LeakySiLU(0.2)) per latent, so the latents are independent;
- neural: z = BN(g(eps)), one MLP (D-4D-4D-4D-D): a flexible, non-factorised prior;
- normal: N(0, I) itself, no parameters (a fixed-prior ablation).
Their Gaussian-mixture (clustering), causal, spherical and vector-quantised samplers are
meta-priors other than disentanglement and are not offered.

Optimisers and schedule (the authors' code; its settings file, for CelebA, is the only
one released, so its weights serve here too): `model` (encoder, decoder, prior, beta) and
`critic`, each RMSProp lr 1e-4 (PyTorch's alpha 0.99, eps 1e-8); the critic makes 5
updates per model update. The authors update the model first and then the critic 5
times; here the critic's 4 extra updates come first, each from its own step on the same
batch, and the last is made with the model's from the same forward pass (`updates`).
Their batch is 64 (`trainer.batch_size=64`). The decoder's image is sigmoid(logits); the
Bernoulli pixel NLL is logged as `reconstruction` (not trained on) for the comparison with
the other models and the held-out scores. The critic's spectrally normalised kernels do
not depend on `arch.init` but through their direction (the normalisation removes the
scale); its biases do.

`strength` is lambda_W (grid 0.1, 0.3, 1, 3, 10): a smaller lambda_W weighs the GW term
and the joint matching more against reconstruction. Not packable: the gradient penalty
differentiates inside the step, and the spectral normalisation updates its buffers at
every forward of the critic.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from disbench.models.base import Objective, OptimizerSpec, Step, normal, sample_gaussian, uniform
from disbench.models.reconstruction import bernoulli, squared_error
from disbench.models.vaegan import observation_shape

PRIORS = ("factorized_neural", "neural", "normal")
DRIFT = 1e-4  # the weight of the critic's output drift term, within the penalty
PRIOR_BN_MOMENTUM = 0.5


def pairwise_distances(a: torch.Tensor) -> torch.Tensor:
    """(B, B) Euclidean distances between the rows of `a` flattened (exact, not by the
    expansion ||a||^2 + ||b||^2 - 2ab, whose rounding breaks the zero diagonal)."""
    flat = a.flatten(1)
    return torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")


def gw_estimate(x: torch.Tensor, z: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """L_GW: mean over all B^2 pairs of |d_X(x_i, x_j) - d_Z(z_i, z_j)| for the generative
    pairs (x_i, z_i), d_Z = beta ||z_i - z_j|| / s, s the mean per-latent std of z."""
    scale = z.std(dim=0).mean().clamp(min=1e-8)
    return (pairwise_distances(x) - pairwise_distances(z) * (beta / scale)).abs().mean()


def entropy_loss(log_var: torch.Tensor) -> torch.Tensor:
    """L_H = -sum_d log sigma_d^2, mean over the batch."""
    return -log_var.sum(1).mean()


def gaussian_entropy(log_var: torch.Tensor) -> torch.Tensor:
    """H[N(mean, diag exp(log_var))] in nats, mean over the batch (logged)."""
    return 0.5 * (log_var + math.log(2 * math.pi * math.e)).sum(1).mean()


def gradient_penalty(critic: nn.Module, x: torch.Tensor, z: torch.Tensor,
                     x_prior: torch.Tensor, z_prior: torch.Tensor, t: torch.Tensor
                     ) -> torch.Tensor:
    """E (||grad_(x, z) f(x_t, z_t)|| - 1)^2 at x_t = t x + (1 - t) x_p, z_t likewise,
    one t per pair; the gradient is kept in the graph (the critic descends it)."""
    tx = t.view(-1, *([1] * (x.dim() - 1)))
    x_t = (tx * x + (1 - tx) * x_prior).detach().requires_grad_(True)
    z_t = (t[:, None] * z + (1 - t[:, None]) * z_prior).detach().requires_grad_(True)
    scores = critic(x_t, z_t)
    grad_x, grad_z = torch.autograd.grad(scores.sum(), (x_t, z_t), create_graph=True)
    norm = torch.cat([grad_x.flatten(1), grad_z], dim=1).norm(dim=1)
    return (norm - 1).square().mean()


def _sn_linear(n_in: int, n_out: int) -> nn.Module:
    return spectral_norm(nn.Linear(n_in, n_out))


class Critic(nn.Module):
    """f(x, z) = h([g(x), k(z)] / 2), spectrally normalised, LeakyReLU(0.2)."""

    def __init__(self, shape: tuple[int, ...], latent_dim: int):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        if tuple(shape[1:]) == (64, 64):
            layers, width = [], shape[0]
            for channels in (8, 16, 32, 64, 128, 256):  # 64 -> 1 pixels
                layers += [spectral_norm(nn.Conv2d(width, channels, 4, 2, 1)), act]
                width = channels
            self.x_net = nn.Sequential(*layers, nn.Flatten(), _sn_linear(256, 64))
        else:
            self.x_net = nn.Sequential(nn.Flatten(), _sn_linear(math.prod(shape), 256), act,
                                       _sn_linear(256, 256), act, _sn_linear(256, 64))
        self.z_net = nn.Sequential(_sn_linear(latent_dim, 256), act, _sn_linear(256, 256), act,
                                   _sn_linear(256, 64), act)
        self.xz_net = nn.Sequential(_sn_linear(128, 256), act, _sn_linear(256, 256), act,
                                    _sn_linear(256, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f(x, z), one score per pair, (B,)."""
        h = torch.cat([self.x_net(x), self.z_net(z)], dim=1) / 2
        return self.xz_net(h).squeeze(1)


class LeakySiLU(nn.Module):
    """(1 - a) silu(x) + a x, the activation of the authors' samplers."""

    def __init__(self, negative_slope: float = 0.2):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.negative_slope) * F.silu(x) + self.negative_slope * x


def _sampler_mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), LeakySiLU(), nn.Linear(hidden, hidden),
                         LeakySiLU(), nn.Linear(hidden, hidden), LeakySiLU(),
                         nn.Linear(hidden, n_out))


class Prior(nn.Module):
    """p_theta(z): draws (B, D) samples from standard normal noise of the run's generator."""

    def __init__(self, kind: str, latent_dim: int):
        super().__init__()
        if kind not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {kind!r}")
        self.kind, self.latent_dim = kind, latent_dim
        if kind == "factorized_neural":
            self.nets = nn.ModuleList(_sampler_mlp(1, 4, 1) for _ in range(latent_dim))
        elif kind == "neural":
            self.net = _sampler_mlp(latent_dim, 4 * latent_dim, latent_dim)
        if kind != "normal":
            self.norm = nn.BatchNorm1d(latent_dim, momentum=PRIOR_BN_MOMENTUM, affine=False)

    def transform(self, eps: torch.Tensor) -> torch.Tensor:
        """z as a function of the noise eps (B, D)."""
        if self.kind == "normal":
            return eps
        if self.kind == "factorized_neural":
            h = torch.cat([net(eps[:, d:d + 1]) for d, net in enumerate(self.nets)], dim=1)
        else:
            h = self.net(eps)
        return self.norm(h)

    def forward(self, n: int, generator, like: torch.Tensor) -> torch.Tensor:
        return self.transform(normal((n, self.latent_dim), generator, like))


class GWAE(Objective):
    strength = "lambda_w"
    updates: ClassVar[dict[str, int]] = {"critic": 5}

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 lambda_w: float = 1.0, lambda_d: float = 1.0, lambda_h: float = 0.03,
                 prior: Literal["factorized_neural", "neural", "normal"] = "factorized_neural",
                 distance_scale: float = 2.5, gradient_penalty: float = 10.0,
                 lr: float = 1e-4, critic_lr: float = 1e-4):
        super().__init__()
        if not distance_scale > 0:
            raise ValueError(f"distance_scale is the initial beta > 0, got {distance_scale!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.prior = Prior(prior, latent_dim)
        self.log_beta = nn.Parameter(torch.tensor(math.log(distance_scale)))
        self.critic = Critic(observation_shape(decoder, latent_dim), latent_dim)
        self.lambda_w, self.lambda_d, self.lambda_h = lambda_w, lambda_d, lambda_h
        self.distance_scale, self.gradient_penalty = distance_scale, gradient_penalty
        self.lr, self.critic_lr = lr, critic_lr

    def sample_prior(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """z ~ p_theta(z), `num` draws (the generation scores decode them)."""
        return self.prior(num, generator, self.log_beta)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the image; the image is sigmoid(logits)."""
        return self.decoder(z)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The Bernoulli pixel NLL, logged (not trained on) for the comparison with the
        other models and the held-out scores."""
        return bernoulli(logits, x)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        model = [*self.encoder.parameters(), *self.decoder.parameters(),
                 *self.prior.parameters(), self.log_beta]
        return {"model": OptimizerSpec(model, cls=torch.optim.RMSprop,
                                       settings={"lr": self.lr}),
                "critic": OptimizerSpec(list(self.critic.parameters()), cls=torch.optim.RMSprop,
                                        settings={"lr": self.critic_lr})}

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon_logits = self.decode(z)
        z_prior = self.prior(len(x), generator, x)
        x_prior = torch.sigmoid(self.decode(z_prior))
        beta = self.log_beta.exp()

        gw = gw_estimate(x_prior, z_prior, beta)
        w = squared_error(torch.sigmoid(recon_logits), x)
        h = entropy_loss(log_var)
        # one forward of the critic serves both losses: the trainer back-propagates each
        # loss into its own optimiser's parameters only
        score_q, score_p = self.critic(x, z), self.critic(x_prior, z_prior)
        adversarial = score_p.mean() - score_q.mean()
        loss = gw + self.lambda_w * w + self.lambda_d * adversarial + self.lambda_h * h

        t = uniform((len(x),), generator, x)
        penalty = gradient_penalty(self.critic, x, z, x_prior, z_prior, t)
        drift = score_q.square().mean() + score_p.square().mean()
        critic_loss = -adversarial + self.gradient_penalty * (penalty + DRIFT * drift)

        with torch.no_grad():
            recon = self.reconstruction_loss(recon_logits, x)
        terms = {"loss": loss, "gw": gw, "squared_error": w, "adversarial": adversarial,
                 "entropy_loss": h, "entropy": gaussian_entropy(log_var),
                 "critic_loss": critic_loss, "gradient_penalty": penalty,
                 "distance_scale": beta, "reconstruction": recon,
                 "posterior_scale": z.std(dim=0).mean(), "prior_scale": z_prior.std(dim=0).mean()}
        return Step({"model": loss, "critic": critic_loss}, terms)
