"""The generalised-variance VAE: Takida, Liao, Lai, Uesaka, Takahashi and Mitsufuji,
"Preventing oversmoothing in VAE via generalized variance parameterization",
Neurocomputing 509 (2022), arXiv:2102.08663: the AR-ELBO (adaptively regularised ELBO).

The decoder is Gaussian, p(x|z) = N(x; f(z), sigma^2 I) with f(z) = sigmoid(logits), D the
number of pixels (times channels). A fixed sigma^2 sets how smooth the decoder is allowed
to be (the KL's weight relative to the squared error is 2 sigma^2): too large a value
oversmooths and collapses the posterior. The AR-ELBO replaces it by its maximum-likelihood
estimate inside the objective,

    sigma_hat^2 = (1 / D) E_p(x) E_q(z|x) ||x - f(z)||^2,

so that the loss, -log N(x; f(z), sigma_hat^2 I) + KL, is

    (D / 2) log(2 pi sigma_hat^2) + (1 / (2 sigma_hat^2)) E ||x - f(z)||^2 + KL
  = (D / 2) log(2 pi e sigma_hat^2) + KL:

the regularisation weakens as the reconstruction improves. The expectation over the data
is taken over the batch (one sample z per observation, as the VAE's), and sigma_hat^2 is
differentiated through: its derivative vanishes at the maximum (envelope theorem), so the
gradient is that of the ELBO at the fixed variance sigma_hat^2, i.e. of
(D / 2) log E||x - f(z)||^2 + KL, which is what updating sigma^2 to its estimate before every
gradient step does.

Of the paper's parameterisations of the variance (isotropic, one variance per dimension,
conditional), this is the isotropic one, the AR-ELBO itself: it needs no hyperparameter and
stays defined on images with pixels that never vary (dSprites' empty border), where a
per-pixel estimate can go to zero and the log-likelihood to infinity.
The objective has no regularisation strength to sweep (`strength` is None).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from disbench.models.base import VAE, Step, gaussian_kl, sample_gaussian


def squared_errors(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """||x_i - mean_i||^2 per observation."""
    return (x - mean).square().flatten(1).sum(1)


def ml_variance(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The maximum-likelihood isotropic variance: the batch's mean squared error per pixel."""
    return squared_errors(mean, x).mean() / x[0].numel()


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, variance I): summed over pixels, mean over the batch."""
    d = x[0].numel()
    return (0.5 * d * torch.log(2 * math.pi * variance)
            + squared_errors(mean, x).mean() / (2 * variance))


class GVVAE(VAE):
    """The VAE with the AR-ELBO's Gaussian likelihood; `reconstruction` can only be gaussian."""

    strength = None
    packable = ()

    def __init__(self, encoder, decoder, reconstruction: Literal["gaussian"] = "gaussian",
                 **vae):
        if reconstruction != "gaussian":
            raise ValueError("gvvae's likelihood is Gaussian with an estimated variance: "
                             f"reconstruction must be gaussian, got {reconstruction!r}")
        super().__init__(encoder, decoder, reconstruction=reconstruction, **vae)

    def reconstruction_terms(self, logits: torch.Tensor, x: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log N(x; sigmoid(logits), sigma_hat^2 I), sigma_hat^2)."""
        mean = torch.sigmoid(logits)
        variance = ml_variance(mean, x)
        return gaussian_nll(mean, x, variance), variance

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruction_terms(logits, x)[0]

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon, variance = self.reconstruction_terms(self.decode(z), x)
        kl = gaussian_kl(mean, log_var)
        loss = recon + kl
        terms = {"loss": loss, "reconstruction": recon, "kl": kl, "elbo": -loss,
                 "variance": variance}
        return Step({"model": loss}, terms)
