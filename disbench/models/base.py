"""The shared VAE base (Kingma & Welling 2014) that every objective builds on.

Loss = reconstruction + regulariser, the decomposition of Locatello et al. (2019):
- reconstruction: Bernoulli log-likelihood, sigmoid cross-entropy on the
  decoder's logits, summed over pixels, mean over the batch;
- KL[q(z|x) || N(0, I)] in closed form, summed over latents, mean over the batch.
An objective overrides `regularizer`; the ELBO is always -(recon + KL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


def bernoulli_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels: summed over pixels, mean over the batch."""
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over latents, mean over the batch."""
    return (0.5 * (mean.square() + log_var.exp() - log_var - 1).sum(1)).mean()


def sample_gaussian(mean: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator
                    ) -> torch.Tensor:
    """Reparameterised sample z = mean + sigma * eps, eps from the run's seeded generator."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * log_var) * eps


@dataclass
class Objective:
    """One training step's losses.

    `loss` is minimised by the encoder and decoder; `adversary_loss`, when set,
    by the objective's own adversary (FactorVAE's discriminator) from the same
    forward pass. `terms` are logged.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    adversary_loss: torch.Tensor | None = None


class VAE(nn.Module):
    """Plain VAE: regulariser = KL. Subclasses change `regularizer`."""

    # the hyperparameter that sets the regularisation strength (the one the study sweeps)
    strength: str | None = None

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|z)."""
        return self.decoder(z)

    def regularizer(self, mean, log_var, z, kl, step: int, generator: torch.Generator):
        """(regulariser, extra logged terms); the plain VAE uses the KL itself."""
        return kl, {}

    def objective(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Objective:
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon = bernoulli_reconstruction(self.decode(z), x)
        kl = gaussian_kl(mean, log_var)
        reg, extra = self.regularizer(mean, log_var, z, kl, step, generator)
        adversary_loss = extra.pop("adversary_loss", None)
        loss = recon + reg
        terms = {"loss": loss, "reconstruction": recon, "kl": kl, "elbo": -(recon + kl), **extra}
        return Objective(loss, terms, adversary_loss)

    # -- optimisation ------------------------------------------------------
    def vae_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def adversary_parameters(self) -> list[nn.Parameter]:
        return []

    def parameter_groups(self, lr: float, betas, eps: float) -> list[dict]:
        """Adam parameter groups; objectives with an adversary add a group for it."""
        return [{"params": self.vae_parameters(), "lr": lr, "betas": tuple(betas), "eps": eps}]
