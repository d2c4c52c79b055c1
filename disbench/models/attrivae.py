"""Attri-VAE: Cetin, Stephens, Camara & Gonzalez Ballester, "Attri-VAE: attribute-based
interpretable representations of medical images with variational autoencoders",
Computerized Medical Imaging and Graphics 104 (2023), arXiv:2203.10417.

A beta-VAE whose first latent dimensions are each tied to one attribute by the
attribute-regularisation term of Pati & Lerch ("Attribute-based regularization of latent
spaces for variational auto-encoders", Neural Computing and Applications 2021,
arXiv:2004.05485). For latent dimension r tied to attribute a, over a batch of n points,

    D_r[i, j] = z_r[i] - z_r[j],   D_a[i, j] = a[i] - a[j],
    L_AR(r, a) = 1/n^2 sum_{i,j} | tanh(delta * D_r[i, j]) - sign(D_a[i, j]) |,

so that z_r grows with a (monotonically) across the batch. The loss is

    L = recon + beta * KL + gamma * sum_l L_AR(l, a_l),

with z the reparameterised sample, dimension l tied to the l-th of `attributes`.

Here the attributes are ground-truth factors of the dataset, by name (`attributes`; empty:
every factor, in the dataset's order), and only a fraction of the images is labelled
(`label_fraction`, drawn from the run's seed; see `disbench.models.base.Labels`): the
ELBO is computed on the training batch, the attribute term on a batch of the labelled
subset (the paper labels every image; the fraction is what disbench compares at). The
paper's multilayer-perceptron head that predicts a clinical diagnosis from z has no
counterpart in a ground-truth dataset and is left out.
"""

from __future__ import annotations

import torch

from disbench.models.base import Labels, Step, check_attributes, sample_gaussian
from disbench.models.betavae import BetaVAE


def attribute_regularization(z: torch.Tensor, attributes: torch.Tensor, delta: float
                             ) -> torch.Tensor:
    """sum_l L_AR(z[:, l], attributes[:, l]): the mean over all n^2 pairs of
    |tanh(delta (z_i - z_j)) - sign(a_i - a_j)|, summed over the tied dimensions."""
    latent_distances = z.unsqueeze(1) - z.unsqueeze(0)  # (n, n, k): [i, j] = z_i - z_j
    attribute_distances = attributes.unsqueeze(1) - attributes.unsqueeze(0)
    error = (torch.tanh(delta * latent_distances) - torch.sign(attribute_distances)).abs()
    return error.mean((0, 1)).sum()


class AttriVAE(BetaVAE):
    strength = "gamma"

    def __init__(self, encoder, decoder, latent_dim: int, beta: float = 2.0,
                 gamma: float = 200.0, delta: float = 10.0, attributes: tuple[str, ...] = (),
                 label_fraction: float = 0.01, **vae):
        super().__init__(encoder, decoder, beta=beta, **vae)
        self.attributes = check_attributes(attributes, label_fraction, latent_dim)
        self.latent_dim, self.label_fraction = latent_dim, label_fraction
        self.gamma, self.delta = gamma, delta

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator,
             labels: Labels | None = None) -> Step:
        out = super().step(x, step, generator)
        values = labels.tied(self.attributes, self.latent_dim)
        mean, log_var = self.encode(labels.x)
        z = sample_gaussian(mean, log_var, generator)
        regularization = attribute_regularization(z[:, :values.shape[1]], values, self.delta)
        loss = out.losses["model"] + self.gamma * regularization
        out.terms.update(loss=loss, attribute_regularization=regularization)
        return Step({"model": loss}, out.terms)
