"""Inference critics: Menon, Blei & Vondrick, "Forget-me-not! Contrastive Critics for
Mitigating Posterior Collapse", UAI 2022 (arXiv:2207.09535).

A critic must pair each latent with the observation it was inferred from; under posterior
collapse z carries nothing about x and no critic can. With f(x, z) > 0 scoring a pairing,
the critic objective over a batch X = {x_1..x_N} with z_i ~ q(z | x_i) is

    c(x, z) = E_i[ log f(x_i, z_i) / sum_j f(x_j, z_i) ],

an InfoNCE bound: I_q(x; z) >= log N + c. The VAE maximises ELBO + lambda * c, i.e.
minimises here

    recon + KL + lambda * L_critic,   L_critic = -c = mean_i [ -s_ii + logsumexp_j s_ij ],

s_ij = log f(x_j, z_i), z_i the reparameterised sample of the ELBO. The critic's parameters
(if any) are trained with the VAE's on the same loss (one "model" optimiser): the critic
gets better at pairing, the encoder at making its latents pairable.

`critic` picks f (the paper's self critic and neural-network critic; its third, a
"hybrid" critic sharing the encoder's first layers, is not offered: which layers to share
depends on the architecture):
- self (the default): the approximate posterior itself, f(x, z) = q(z | x), so
  s_ij = log N(z_i; mu(x_j), sigma^2(x_j)); no parameters of its own, and the only
  parameters the critic term trains are the encoder's (through mu, sigma and z_i).
- network: a separate critic, s_ij = g(x_j) . h(z_i) (a dot product of embeddings, the
  separable critic of InfoNCE): g is a fresh network of the VAE encoder's architecture
  followed by a two-layer MLP (2d -> 256 -> 128, ReLU) on its two outputs, h a two-layer
  MLP (d -> 256 -> 128). These widths are this implementation's choice.

lambda_critic: 1 by default, the unweighted ELBO + c. The critic term is bounded by log N
(4.2 nats at batch 64) against hundreds of nats of recon + KL on 64x64 images: at 20 it
reaches the order of the KL. Sweep 1 and 20.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from disbench.models.base import VAE, Step, gaussian_kl, sample_gaussian

CRITICS = ("self", "network")


def infonce(scores: torch.Tensor) -> torch.Tensor:
    """-c: scores[i, j] = log f(x_j, z_i); the loss of picking, for each latent i, its own
    observation among the batch's: mean_i [ -scores[i, i] + logsumexp_j scores[i, j] ]."""
    target = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, target)


def posterior_scores(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor
                     ) -> torch.Tensor:
    """[i, j] = log q(z_i | x_j) = sum_d log N(z_id; mean_jd, exp(log_var_jd))."""
    diff = z.unsqueeze(1) - mean.unsqueeze(0)  # (latent i, observation j, d)
    log_density = -0.5 * (math.log(2 * math.pi) + log_var.unsqueeze(0)
                          + diff.square() / log_var.exp().unsqueeze(0))
    return log_density.sum(-1)


def _reset(module: nn.Module) -> None:
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


class NetworkCritic(nn.Module):
    """s(x, z) = g(x) . h(z): g a fresh copy of the encoder's architecture and an MLP head
    on its (mean, log_var), h an MLP on z."""

    def __init__(self, encoder: nn.Module, latent_dim: int, hidden: int = 256,
                 embedding: int = 128):
        super().__init__()
        self.x_features = copy.deepcopy(encoder)
        _reset(self.x_features)
        self.x_head = nn.Sequential(nn.Linear(2 * latent_dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, embedding))
        self.z_head = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, embedding))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """[i, j] = g(x_j) . h(z_i)."""
        g = self.x_head(torch.cat(self.x_features(x), dim=1))
        return self.z_head(z) @ g.T


class CriticVAE(VAE):
    strength = "lambda_critic"
    packable = ("lambda_critic",)

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 lambda_critic: float = 1.0, critic: Literal["self", "network"] = "self", **vae):
        super().__init__(encoder, decoder, **vae)
        if critic not in CRITICS:
            raise ValueError(f"critic must be one of {', '.join(CRITICS)}, got {critic!r}")
        self.lambda_critic = lambda_critic
        self.critic_kind = critic
        self.critic = NetworkCritic(encoder, latent_dim) if critic == "network" else None

    def scores(self, x, mean, log_var, z) -> torch.Tensor:
        """[i, j] = log f(x_j, z_i)."""
        if self.critic is None:
            return posterior_scores(z, mean, log_var)
        return self.critic(x, z)

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon = self.reconstruction_loss(self.decode(z), x)
        kl = gaussian_kl(mean, log_var)
        critic_loss = infonce(self.scores(x, mean, log_var, z))
        loss = recon + kl + self.lambda_critic * critic_loss
        terms = {"loss": loss, "reconstruction": recon, "kl": kl, "elbo": -(recon + kl),
                 "critic_loss": critic_loss, "infonce_mi": math.log(z.shape[0]) - critic_loss}
        return Step({"model": loss}, terms)
