"""GCVAE, the generalised-controllable VAE: Ezukwoke, Hoayek, Batton-Hubert and Boucher,
"GCVAE: Generalized-Controllable Variational AutoEncoder", arXiv:2206.04225 (2022).

Three Lagrangian multipliers weight the reconstruction loss R, the KL divergence KL and a
correlation measure D between the codes and the prior; the loss minimised is

    L = (1 - alpha_t - beta_t) * R + beta_t * KL + gamma_t * D,

so that fixed multipliers recover known objectives: alpha = -1, beta = 1, gamma = 0 the VAE,
alpha = beta = 0, gamma = lambda InfoVAE's MMD-VAE (R + lambda D). R and KL are the VAE's
(see `base.py`: summed over pixels and latents, mean over the batch).

The multipliers: each step, a non-linear PI controller (that of ControlVAE, Shao et al.,
ICML 2020) turns the error between a set point and the current batch's value of its term
into a weight. For a term T with set point T*, error e = T* - T (measured without
gradient):

    w = clip(w_min + K_p / (1 + exp(e)) - K_i * e,  w_min, w_max)

    alpha: T = R,  w in [0, 1];   beta: T = KL, w in [0, 1];   gamma: T = D, w in [1, inf).

The weight rises when the term exceeds its set point (e < 0): beta holds KL near or below
kl_target. The authors' implementation builds a fresh controller at every step, so the
integral holds only the current error (-K_i * e) and the multipliers carry no state from
step to step; this module does the same: the multipliers are computed inside `step` from
the current batch (no gradient flows through them) and are stored in buffers after the
step (`after_step`) only to be checkpointed and inspected, never read back. (Carried over
steps, the integral would drive alpha to 1, and the reconstruction weight 1 - alpha - beta
to zero or below, whenever R stays above its set point, as it does early in training.)

Defaults, from the authors' dSprites experiments (their public code): K_p = 0.1,
K_i = 1e-4, set points 10 for R, 16 for KL (30 on MNIST) and 0.1 for D, gamma bounded
below by 1. Their reconstruction loss on 64 x 64 images is the per-image sum divided by
the 64 rows, so their R set point of 10 is 640 here.

The correlation measure (`correlation`):
- mmd: the maximum mean discrepancy between the batch of sampled codes z and as many
  prior draws z' ~ N(0, I), with the kernel k(a, b) = exp(-||a - b||^2 / d^2) (d the
  latent size: the mean squared difference over d, divided by d again, as the authors'
  and InfoVAE's code), estimated with every pair (the biased V-statistic):
  mean k(z, z) + mean k(z', z') - 2 mean k(z, z').
- mahalanobis: the batch mean of the squared Mahalanobis distance of the codes from
  their batch mean, (z_i - zbar)^T S^-1 (z_i - zbar), with S the diagonal of the unbiased
  batch covariance (the authors' PyTorch default; the diagonal keeps it defined for any
  batch of two or more, and the full covariance, their TensorFlow default, gives the same
  value). Its value is d (N - 1) / N for every batch of N codes, so it passes no
  gradient: with it the objective trains as (1 - alpha - beta) R + beta KL.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from disbench.models.base import VAE, Step, gaussian_kl, sample_gaussian


def controlled_weight(error: torch.Tensor, kp: float, ki: float, low: float,
                      high: float = math.inf) -> torch.Tensor:
    """The non-linear PI controller's weight for `error` = set point - value:
    clip(low + kp / (1 + exp(error)) - ki * error, low, high)."""
    weight = low + kp * torch.sigmoid(-error) - ki * error
    return weight.clamp(min=low, max=high)


def mmd_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) = exp(-||a_i - b_j||^2 / d^2) for every pair, d = a.shape[1]."""
    d = a.shape[1]
    return torch.exp(-(a[:, None] - b[None]).square().sum(2) / d**2)


def mmd(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """MMD^2 between two samples, every pair counted (the biased V-statistic)."""
    return (mmd_kernel(z, z).mean() + mmd_kernel(prior, prior).mean()
            - 2 * mmd_kernel(z, prior).mean())


def mahalanobis(z: torch.Tensor) -> torch.Tensor:
    """Batch mean of (z_i - zbar)^T diag(s^2)^-1 (z_i - zbar), s^2 the unbiased variances."""
    centred = z - z.mean(0, keepdim=True)
    variance = centred.square().sum(0) / (z.shape[0] - 1)
    return (centred.square() / variance).sum(1).mean()


class GCVAE(VAE):
    strength = "kl_target"

    def __init__(self, encoder, decoder, kl_target: float,
                 correlation: Literal["mmd", "mahalanobis"] = "mmd",
                 reconstruction_target: float = 640.0, correlation_target: float = 0.1,
                 kp: float = 0.1, ki: float = 1e-4, **vae):
        super().__init__(encoder, decoder, **vae)
        if correlation not in ("mmd", "mahalanobis"):
            raise ValueError(f"correlation must be mmd or mahalanobis, got {correlation!r}")
        self.kl_target, self.correlation = kl_target, correlation
        self.reconstruction_target, self.correlation_target = (reconstruction_target,
                                                               correlation_target)
        self.kp, self.ki = kp, ki
        # the last step's multipliers (checkpointed; each step computes its own)
        self.register_buffer("alpha", torch.tensor(0.0))
        self.register_buffer("beta", torch.tensor(0.0))
        self.register_buffer("gamma", torch.tensor(1.0))

    def correlation_measure(self, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.correlation == "mahalanobis":
            return mahalanobis(z)
        prior = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        return mmd(z, prior)

    def multipliers(self, recon: torch.Tensor, kl: torch.Tensor, corr: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(alpha, beta, gamma) from the current values of the three terms, no gradient."""
        with torch.no_grad():
            alpha = controlled_weight(self.reconstruction_target - recon, self.kp, self.ki,
                                      0.0, 1.0)
            beta = controlled_weight(self.kl_target - kl, self.kp, self.ki, 0.0, 1.0)
            gamma = controlled_weight(self.correlation_target - corr, self.kp, self.ki, 1.0)
        return alpha, beta, gamma

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon = self.reconstruction_loss(self.decode(z), x)
        kl = gaussian_kl(mean, log_var)
        corr = self.correlation_measure(z, generator)
        alpha, beta, gamma = self.multipliers(recon, kl, corr)
        loss = (1 - alpha - beta) * recon + beta * kl + gamma * corr
        terms = {"loss": loss, "reconstruction": recon, "kl": kl, "elbo": -(recon + kl),
                 "correlation": corr, "alpha": alpha, "beta": beta, "gamma": gamma}
        return Step({"model": loss}, terms)

    def after_step(self, step: int, out: Step) -> None:
        for name in ("alpha", "beta", "gamma"):
            getattr(self, name).copy_(out.terms[name])
