"""Semi-supervised VAE with a choice of prior: Jacobsen & Duraisamy, "Disentangling
Generative Factors of Physical Fields Using Variational Autoencoders", Frontiers in
Physics 10 (2022), arXiv:2109.07399; details from the authors' public code
(christian-jacobsen/Disentangling-Physical-Fields, christian-jacobsen/semi-supervised-vae).

The ELBO is kept almost as is, L = recon + beta * L_reg (beta = 1: the ELBO itself), with
the prior p(z) chosen by `prior`:

- `gaussian`: N(0, I), rotation-invariant: KL(q || p) is unchanged by a rotation of z, so
  nothing in the loss prefers axis-aligned factors;
- `scaled`: N(0, diag(s_1^2 .. s_D^2)), fixed distinct variances s_d^2 = 1 + (d-1)/(D-1)
  (1 to 2; the authors' (1, 2) for two latents): not rotation-invariant;
- `laplace`: factorised Laplace(0, b), b = 1/sqrt(2) (unit variance): not
  rotation-invariant (a choice here; the abstract names the property, not this family);
- `hierarchical`: a learned hierarchical prior (the construction of Klushyn et al.,
  "Learning Hierarchical Priors in VAEs", NeurIPS 2019, as in the authors' code):
  p(z) = int p(z | xi) p(xi) dxi with p(xi) = N(0, I), p(z | xi) = N(g(xi), diag e^c),
  and a variational q(xi | z) = N(h(z), diag e^k); the per-point regulariser is the
  one-sample estimate L_reg = log q(z | x) - log p(z | xi) + KL(q(xi | z) || N(0, I)), z
  drawn from q(z | x), xi from q(xi | z). g and h are MLPs D -> 8D -> 8D -> D with ReLUs,
  c and k learned vectors.

Semi-supervision (the paper: O(1%) of the samples labelled gives consistently disentangled
latents): latent d is tied to the d-th of `attributes` (ground-truth factors by name;
empty: every factor, in order) by the Gaussian negative log-likelihood of the factor's
value under the encoder's posterior, as in the authors' code,

    L_ss = -1/n sum_labelled sum_d log N(t_d; mu_d(x), sigma_d^2(x)),

weight 1, on a batch of the labelled subset (`label_fraction` of the images, drawn from
the run's seed). t is the factor's value in [0, 1] standardised as a uniform variable,
(v - 1/2) sqrt(12), so that it has the prior's scale.

Choices where the paper's setting does not carry over: the authors schedule beta with a
constraint on their Gaussian likelihood with a learned variance (threshold 0), which has
no counterpart for the Bernoulli likelihood; here beta is fixed (1 by default). Their
prior decoder ends in a ReLU (a duplicated layer name); here its output is linear, as a
mean on R^D must be.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from disbench.models.base import (
    VAE,
    Labels,
    Step,
    check_attributes,
    kl_per_dimension,
    normal,
    uniform,
)

LAPLACE_SCALE = 1 / math.sqrt(2)  # unit variance
LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor):
    """log N(x; mean, exp(log_var)), elementwise."""
    return -0.5 * (LOG_2PI + log_var + (x - mean).square() / log_var.exp())


def scaled_kl(mean: torch.Tensor, log_var: torch.Tensor, prior_var: torch.Tensor):
    """KL(N(mean, e^log_var) || N(0, prior_var)) per point and latent, (B, D)."""
    return 0.5 * ((mean.square() + log_var.exp()) / prior_var - 1 - log_var
                  + prior_var.log())


def laplace_kl(mean: torch.Tensor, log_var: torch.Tensor, scale: float = LAPLACE_SCALE):
    """KL(N(mean, s^2) || Laplace(0, b)) per point and latent: -H(q) + log 2b + E|z| / b,
    E|z| = s sqrt(2/pi) exp(-mean^2 / 2s^2) + mean erf(mean / (s sqrt 2))."""
    std = torch.exp(0.5 * log_var)
    abs_mean = (std * math.sqrt(2 / math.pi) * torch.exp(-mean.square() / (2 * log_var.exp()))
                + mean * torch.erf(mean / (std * math.sqrt(2))))
    entropy = 0.5 * (LOG_2PI + 1 + log_var)
    return -entropy + math.log(2 * scale) + abs_mean / scale


def mlp(dim: int) -> nn.Sequential:
    """D -> 8D -> 8D -> D with ReLUs between (the authors' prior networks)."""
    return nn.Sequential(nn.Linear(dim, 8 * dim), nn.ReLU(), nn.Linear(8 * dim, 8 * dim),
                         nn.ReLU(), nn.Linear(8 * dim, dim))


class HierarchicalPrior(nn.Module):
    """p(z | xi) = N(g(xi), diag e^c) under p(xi) = N(0, I), with q(xi | z) = N(h(z), diag e^k)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.prior_decoder = mlp(latent_dim)   # g
        self.prior_encoder = mlp(latent_dim)   # h
        self.decoder_log_var = nn.Parameter(torch.zeros(latent_dim))  # c
        self.encoder_log_var = nn.Parameter(torch.zeros(latent_dim))  # k

    def regularizer(self, mean, log_var, z, generator) -> torch.Tensor:
        """log q(z | x) - log p(z | xi) + KL(q(xi | z) || N(0, I)), summed over latents, per
        point (B,), for z drawn from q(z | x) and xi from q(xi | z)."""
        xi_mean = self.prior_encoder(z)
        xi_log_var = self.encoder_log_var.expand_as(xi_mean)
        xi = xi_mean + torch.exp(0.5 * xi_log_var) * normal(xi_mean.shape, generator, xi_mean)
        log_q_z = gaussian_log_density(z, mean, log_var)
        log_p_z = gaussian_log_density(z, self.prior_decoder(xi),
                                       self.decoder_log_var.expand_as(z))
        return (log_q_z - log_p_z + kl_per_dimension(xi_mean, xi_log_var)).sum(1)


def standardised(values: torch.Tensor) -> torch.Tensor:
    """A factor's value in [0, 1] at the scale of a unit-variance uniform variable."""
    return (values - 0.5) * math.sqrt(12)


class SSVAE(VAE):
    strength = "label_fraction"

    def __init__(self, encoder, decoder, latent_dim: int,
                 prior: Literal["gaussian", "scaled", "laplace", "hierarchical"] = "hierarchical",
                 beta: float = 1.0, supervision: float = 1.0, attributes: tuple[str, ...] = (),
                 label_fraction: float = 0.01, **vae):
        super().__init__(encoder, decoder, **vae)
        self.attributes = check_attributes(attributes, label_fraction, latent_dim)
        self.latent_dim, self.label_fraction = latent_dim, label_fraction
        self.prior, self.beta, self.supervision = prior, beta, supervision
        if prior == "hierarchical":
            self.hierarchical = HierarchicalPrior(latent_dim)
        steps = torch.arange(latent_dim) / max(latent_dim - 1, 1)
        self.register_buffer("prior_var", 1 + steps, persistent=False)

    def sample_prior(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """z ~ p(z), `num` draws (the generation scores decode them)."""
        like = self.prior_var.unsqueeze(0)
        shape = (num, self.latent_dim)
        if self.prior == "hierarchical":
            h = self.hierarchical
            xi = normal(shape, generator, like)
            return h.prior_decoder(xi) + torch.exp(0.5 * h.decoder_log_var) * normal(
                shape, generator, like)
        if self.prior == "laplace":  # inverse CDF of Laplace(0, b)
            u = uniform(shape, generator, like) - 0.5
            return -LAPLACE_SCALE * u.sign() * torch.log1p(-2 * u.abs())
        z = normal(shape, generator, like)
        return z * self.prior_var.sqrt() if self.prior == "scaled" else z

    def prior_regularizer(self, mean, log_var, z, generator) -> torch.Tensor:
        """The prior's L_reg, mean over the batch."""
        if self.prior == "gaussian":
            per_point = kl_per_dimension(mean, log_var).sum(1)
        elif self.prior == "scaled":
            per_point = scaled_kl(mean, log_var, self.prior_var.to(mean.dtype)).sum(1)
        elif self.prior == "laplace":
            per_point = laplace_kl(mean, log_var).sum(1)
        else:
            per_point = self.hierarchical.regularizer(mean, log_var, z, generator)
        return per_point.mean()

    def regularizer(self, mean, log_var, z, kl, step, generator):
        reg = self.prior_regularizer(mean, log_var, z, generator)
        return self.beta * reg, {"prior_regularizer": reg}

    def supervised_loss(self, labels: Labels) -> torch.Tensor:
        """L_ss: -log N(t_d; mu_d, sigma_d^2) summed over the tied latents, mean over the
        labelled batch."""
        values = labels.tied(self.attributes, self.latent_dim)
        mean, log_var = self.encode(labels.x)
        k = values.shape[1]
        target = standardised(values.to(mean.dtype))
        return -gaussian_log_density(target, mean[:, :k], log_var[:, :k]).sum(1).mean()

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator,
             labels: Labels | None = None) -> Step:
        out = super().step(x, step, generator)
        supervised = self.supervised_loss(labels)
        loss = out.losses["model"] + self.supervision * supervised
        # the ELBO under this model's prior (the logged `kl` stays the one to N(0, I))
        elbo = -(out.terms["reconstruction"] + out.terms["prior_regularizer"])
        out.terms.update(loss=loss, supervised=supervised, elbo=elbo)
        return Step({"model": loss}, out.terms)
