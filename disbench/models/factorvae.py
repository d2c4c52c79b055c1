"""FactorVAE (Kim & Mnih 2018): recon + KL + gamma * TC, with the total
correlation estimated by the density-ratio trick: a discriminator D tells
samples of q(z) (class 0) from samples of prod_j q(z_j) (class 1, each latent
permuted independently across the batch), and
    TC ~ E_q[log D(z)_0 - log D(z)_1] = E_q[logit_0 - logit_1].
D maximises 0.5 E[log D(z)_0] + 0.5 E[log D(z_perm)_1] with probabilities
clipped to [1e-6, 1 - 1e-6] (disentanglement_lib).

Both networks are updated once per training step from the same forward pass,
each by its own Adam ("model" and "discriminator" optimisers): one step of
disbench is one VAE and one discriminator update. The reference counted
both updates in its global step, so its 300k "steps" were ~150k of each; set
`trainer.max_steps=150000` to match that.
"""

import torch
from torch import nn

from disbench.models.base import VAE, OptimizerSpec, Step, uniform


class Discriminator(nn.Module):
    """6 fully connected layers of 1000 units, leaky ReLU (slope 0.2), 2 logits."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        blocks, width = [], latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, 2))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(z)
        return logits, torch.softmax(logits, dim=1).clamp(1e-6, 1 - 1e-6)


def permute_dims(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shuffle each latent dimension independently across the batch."""
    order = torch.argsort(uniform(z.shape, generator, z), dim=0)
    return torch.gather(z, 0, order)


class FactorVAE(VAE):
    strength = "gamma"
    packable = ("gamma",)

    def __init__(self, encoder, decoder, gamma: float, latent_dim: int,
                 discriminator_lr: float = 1e-4, discriminator_betas=(0.5, 0.9),
                 discriminator_eps: float = 1e-8, **vae):
        super().__init__(encoder, decoder, **vae)
        self.gamma = gamma
        self.discriminator = Discriminator(latent_dim)
        self.discriminator_adam = {"lr": discriminator_lr, "betas": tuple(discriminator_betas),
                                   "eps": discriminator_eps}

    def regularizer(self, mean, log_var, z, kl, step, generator):
        logits_z, probs_z = self.discriminator(z)
        _, probs_perm = self.discriminator(permute_dims(z.detach(), generator))
        tc = (logits_z[:, 0] - logits_z[:, 1]).mean()
        discriminator_objective = 0.5 * (probs_z[:, 0].log().mean() + probs_perm[:, 1].log().mean())
        return kl + self.gamma * tc, {"total_correlation": tc,
                                      "discriminator_objective": discriminator_objective}

    def step(self, x, step, generator) -> Step:
        out = super().step(x, step, generator)
        out.losses["discriminator"] = -out.terms["discriminator_objective"]
        return out

    def optimizers(self):
        return {"model": OptimizerSpec([*self.encoder.parameters(), *self.decoder.parameters()]),
                "discriminator": OptimizerSpec(list(self.discriminator.parameters()),
                                               settings=self.discriminator_adam)}
