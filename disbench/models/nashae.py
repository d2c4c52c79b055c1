"""NashAE: Yeats, Liu, Womble & Li, "NashAE: Disentangling Representations through
Adversarial Covariance Minimization", ECCV 2022 (arXiv:2209.10677).

A deterministic autoencoder whose code passes through a sigmoid, z = sigmoid(phi(x)) in
(0, 1)^m, and an ensemble of m regression networks: rho_i sees z with its own element
removed (set to zero, z_{-i}) and predicts it, z'_i = rho_i(z_{-i}). The two players:

- the regressors minimise their error, 1/2 E[(z'_i - z_i)^2], mean over batch and latents;
- the autoencoder minimises (1 - lambda) * L_rec + lambda * sum_i Cov(z_i, z'_i),
  Cov the biased batch covariance E[z_i z'_i] - E[z_i] E[z'_i].

At the regressors' optimum z'_i = E[z_i | z_{-i}], whose covariance with z_i is
Var(E[z_i | z_{-i}]) >= 0: zero exactly when no element is predictable (in the mean) from
the others. The sum is used as is (no absolute value, no square) and lambda weighs the two
terms as a convex combination, lambda in [0, 1). An element the encoder cannot free of the
others' information is pushed to a constant; the elements that still vary (range over the
batch > 0.2, the authors' count; logged as `active_latents`) are the factors NashAE found.

Following the authors' released implementation:
- in the adversarial term z_i is held fixed (no gradient): the encoder moves the other
  elements z_{-i} so that the prediction z'_i loses its covariance with z_i; the
  regressors' own parameters are not changed by it (they have their own optimiser);
- each regressor is Linear(m, 40)-SELU-Linear(40, 40)-SELU-Linear(40, 1) on z_{-i};
- the regressors make 5 Adam updates (lr 0.01) per autoencoder update, on the same batch;
- reconstruction is 1/2 the mean squared error over pixels and batch (`mse`); here between
  x and the decoder's image sigmoid(logits). The autoencoder's Adam has the paper's lr
  1e-3 (`autoencoder_lr`; betas and eps PyTorch's defaults, the reference's too), not
  `trainer.lr`; the paper's batch on dSprites is 200 (`trainer.batch_size=200`).
The extra regressor updates come first (`updates`); the last is made together with the
autoencoder's, from the same forward pass. The summed VAE losses (`bernoulli`, `gaussian`,
`augmented`) are accepted too; they are ~4096 times larger on 64x64 images than `mse`, so
lambda must then be scaled down accordingly.

lambda: 0.008 in the authors' dSprites script (raw pixels in [0, 1]); 0.2 for
Beamsynthesis and CelebA, whose pixels they standardise (unit variance, so their MSE is
~25 times dSprites': the two settings are about the same balance).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from disbench.models.base import Objective, OptimizerSpec, Step
from disbench.models.reconstruction import RECONSTRUCTIONS, reconstruction_loss


def covariance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per column, the biased batch covariance Cov(a_i, b_i) = E[a_i b_i] - E[a_i] E[b_i]."""
    return ((a - a.mean(0)) * (b - b.mean(0))).mean(0)


def mse_reconstruction(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's reconstruction loss: 1/2 the squared error, mean over pixels and batch."""
    return 0.5 * (torch.sigmoid(logits) - x).square().mean()


class Regressors(nn.Module):
    """The ensemble: regressor i predicts z_i from z with element i set to zero."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...] = (40, 40)):
        super().__init__()
        self.latent_dim = latent_dim
        nets = []
        for _ in range(latent_dim):
            layers, width = [], latent_dim
            for h in hidden:
                layers += [nn.Linear(width, h), nn.SELU()]
                width = h
            nets.append(nn.Sequential(*layers, nn.Linear(width, 1)))
        self.nets = nn.ModuleList(nets)
        self.register_buffer("masks", 1 - torch.eye(latent_dim), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z' (same shape as z): z'_i = rho_i(z_{-i})."""
        return torch.cat([net(z * mask) for net, mask in zip(self.nets, self.masks)], dim=1)


def nash_losses(z: torch.Tensor, regressors: nn.Module
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(adversarial, regression, z') for the code z.

    adversarial = sum_i Cov(z_i, z'_i) with z_i held fixed: its gradient reaches the
    encoder only through the predictions z'_i = rho_i(z_{-i});
    regression = 1/2 mean (z'_i - z_i)^2 toward the fixed code (the regressors' loss)."""
    target = z.detach()
    predictions = regressors(z)
    adversarial = covariance(target, predictions).sum()
    regression = 0.5 * (predictions - target).square().mean()
    return adversarial, regression, predictions


class NashAE(Objective):
    strength = "lambda_adv"
    updates: ClassVar[dict[str, int]] = {"regressors": 5}
    packable = ("lambda_adv",)

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 lambda_adv: float = 0.008, autoencoder_lr: float = 1e-3,
                 regressor_lr: float = 0.01,
                 reconstruction: Literal["mse", "bernoulli", "gaussian", "augmented"] = "mse",
                 augment_radius: int = 31):
        super().__init__()
        if not 0 <= lambda_adv < 1:
            raise ValueError(f"lambda_adv weighs (1 - lambda) * reconstruction + lambda * "
                             f"covariance: it must be in [0, 1), got {lambda_adv!r}")
        if reconstruction != "mse" and reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction must be one of mse, {', '.join(RECONSTRUCTIONS)}, "
                             f"got {reconstruction!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.regressors = Regressors(latent_dim)
        self.lambda_adv = lambda_adv
        self.autoencoder_lr, self.regressor_lr = autoencoder_lr, regressor_lr
        self.reconstruction, self.augment_radius = reconstruction, augment_radius

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The code sigmoid(phi(x)) (the encoder's mean head through a sigmoid)."""
        mean, _ = self.encoder(x)
        return torch.sigmoid(mean), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.reconstruction == "mse":
            return mse_reconstruction(logits, x)
        return reconstruction_loss(self.reconstruction, logits, x, self.augment_radius)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"model": OptimizerSpec([*self.encoder.parameters(), *self.decoder.parameters()],
                                       settings={"lr": self.autoencoder_lr}),
                "regressors": OptimizerSpec(list(self.regressors.parameters()),
                                            settings={"lr": self.regressor_lr})}

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        z, _ = self.encode(x)
        recon = self.reconstruction_loss(self.decode(z), x)
        adversarial, regression, _ = nash_losses(z, self.regressors)
        loss = (1 - self.lambda_adv) * recon + self.lambda_adv * adversarial
        active = ((z.max(0).values - z.min(0).values) > 0.2).sum().to(z.dtype)
        terms = {"loss": loss, "reconstruction": recon, "covariance": adversarial,
                 "regression": regression, "active_latents": active}
        return Step({"model": loss, "regressors": regression}, terms)
