"""The objective API, and the VAE (Kingma & Welling 2014) the reference objectives build on.

An objective is an `nn.Module` that declares
- its networks, as submodules;
- its named optimisers (`optimizers()`): each with its own parameters, optimiser class
  and settings; by default one Adam, named "model", over every parameter, with the run's
  `trainer.lr/betas/eps` (the reference settings);
- one training step (`step(x, step, generator)`): a loss per optimiser and the terms to
  log (`Step`). The trainer back-propagates each loss into its optimiser's parameters
  only, then every optimiser steps;
- optionally `after_step` (dual variables, controllers, schedules) and `updates` (how
  many updates an optimiser makes per training step: NashAE's regressors);
- `encode(x) -> (mean, log_var)` and `decode(z) -> logits` for the metrics and the
  traversals; a deterministic encoder returns `(code, None)`;
- optionally `sample_prior(num, generator) -> z`, for a model whose prior is not N(0, I)
  (a learned or other fixed prior): the generation scores decode its draws, and the
  held-out KL and ELBO, which are against N(0, I), are then not reported;
- optionally `label_fraction` (semi-supervised objectives): the fraction of the
  dataset whose factors the objective may see. The step then also receives `labels`, a
  batch drawn from that labelled subset (`Labels`); the subset is drawn from the run's
  seed. Objectives without it never pay for labels;
- optionally `packable`: the hyperparameters that may differ between the runs of one
  pack (`launcher.pack`, see `disbench.train.pack`), which then trains several runs at
  once as one vectorised step. A packable objective draws its noise with `normal` and
  `uniform` below (each run of a pack draws from its own generator), uses those
  hyperparameters only in tensor arithmetic, keeps no state outside parameters and
  buffers, and does not override `after_step`.
Whatever must survive a restart lives in parameters, buffers or `get_extra_state`: a
checkpoint holds the module's state dict, every optimiser's state and the generator.

The VAE's loss is reconstruction + regulariser, the decomposition of Locatello et al.
(2019): the reconstruction loss of `model.reconstruction` (see `reconstruction.py`),
and KL[q(z|x) || N(0, I)] in closed form, summed over latents, mean over the batch.
An objective of that family overrides `regularizer`; the ELBO is always -(recon + KL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from disbench.errors import DisbenchError
from disbench.models.reconstruction import RECONSTRUCTIONS, reconstruction_loss


@dataclass
class Step:
    """One training step: a loss per named optimiser, and the terms to log (scalars)."""

    losses: dict[str, torch.Tensor]
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Labels:
    """A batch of the run's labelled subset: observations `x` (B, C, H, W) and their
    ground-truth factors `factors` (B, K), each factor's value index scaled to [0, 1]
    (index / (size - 1)), in the order of `names`."""

    x: torch.Tensor
    factors: torch.Tensor
    names: tuple[str, ...]

    def columns(self, names) -> list[int]:
        """The columns of `factors` that hold the factors `names`; one clear error for a
        name the dataset does not have."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise DisbenchError(f"the dataset has no factor {', '.join(map(repr, unknown))}; "
                                f"its factors: {', '.join(self.names)}")
        return [self.names.index(n) for n in names]

    def tied(self, attributes: tuple[str, ...], latent_dim: int) -> torch.Tensor:
        """The values (B, k) of the factors tied to the first k latents: `attributes`, or
        every factor when it is empty."""
        columns = self.columns(attributes or self.names)
        if len(columns) > latent_dim:
            raise DisbenchError(f"the dataset's {len(columns)} factors need {len(columns)} "
                                f"latent dimensions, the model has {latent_dim}: name fewer "
                                f"in model.attributes")
        return self.factors[:, columns]


def check_attributes(attributes, label_fraction: float, latent_dim: int) -> tuple[str, ...]:
    """The factor names a semi-supervised objective ties to its first latents, checked
    with its labelled fraction."""
    if isinstance(attributes, str):
        raise ValueError(f"attributes is a list of factor names, e.g. [{attributes}], got the "
                         f"string {attributes!r}")
    if not 0 < label_fraction <= 1:
        raise ValueError(f"label_fraction is the fraction of labelled images, in (0, 1]; got "
                         f"{label_fraction!r}")
    if len(attributes) > latent_dim:
        raise ValueError(f"{len(attributes)} attributes for {latent_dim} latent dimensions: "
                         f"each attribute needs a dimension of its own")
    return tuple(attributes)


@dataclass
class OptimizerSpec:
    """A named optimiser: its parameters, its class, and its settings (None: Adam's, from
    the run's trainer.lr, trainer.betas and trainer.eps)."""

    params: list[nn.Parameter]
    cls: type[torch.optim.Optimizer] = torch.optim.Adam
    settings: dict | None = None


class Objective(nn.Module):
    """The base of every objective (see the module docstring for the contract)."""

    # the hyperparameter that sets the regularisation strength (the one a study sweeps);
    # None for an objective without one
    strength: ClassVar[str | None] = None
    # optimiser name -> updates per training step (default 1). The extra updates of an
    # optimiser come first, each from its own `step` on the same batch.
    updates: ClassVar[dict[str, int]] = {}
    # hyperparameters (constructor arguments kept as attributes of the same name) that may
    # differ within a pack; None: the objective is not packable and its runs train solo.
    # Read from the class itself, never inherited: a subclass that changes the step
    # declares it again (see `models.packable`)
    packable: ClassVar[tuple[str, ...] | None] = None
    # None: the step takes no labels; a fraction in (0, 1]: the step is called with
    # `labels=` a batch of that fraction of the dataset (see `Labels`)
    label_fraction: float | None = None

    @classmethod
    def network_width(cls, latent_dim: int, hyper: dict) -> int:
        """The width the run's encoder outputs and its decoder takes, given the run's
        latent_dim and the objective's configured hyperparameters: latent_dim, unless the
        objective works in a space of another size (St-RKM's features)."""
        return latent_dim

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"model": OptimizerSpec([p for p in self.parameters() if p.requires_grad])}

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        raise NotImplementedError

    def after_step(self, step: int, out: Step) -> None:
        """Called once every optimiser has stepped (dual variables, controllers)."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def kl_per_dimension(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) of each point and latent, (B, D)."""
    return 0.5 * (mean.square() + log_var.exp() - log_var - 1)


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over latents, mean over the batch."""
    return kl_per_dimension(mean, log_var).sum(1).mean()


def normal(shape, generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise of `shape` from the run's generator, on `like`'s device and
    dtype. In a pack, `generator` holds every run's generator and each run gets its own."""
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    return generator.normal(shape, like)


def uniform(shape, generator, like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) noise of `shape` from the run's generator (see `normal`)."""
    if isinstance(generator, torch.Generator):
        return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return generator.uniform(shape, like)


def sample_gaussian(mean: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator
                    ) -> torch.Tensor:
    """Reparameterised sample z = mean + sigma * eps, eps from the run's seeded generator."""
    return mean + torch.exp(0.5 * log_var) * normal(mean.shape, generator, mean)


class VAE(Objective):
    """Plain VAE: regulariser = KL. Subclasses change `regularizer`.

    `reconstruction`: bernoulli (the reference), gaussian or augmented (see
    `reconstruction.py`); `augment_radius`: the box blur's radius for augmented."""

    packable = ()

    def __init__(self, encoder: nn.Module, decoder: nn.Module,
                 reconstruction: Literal["bernoulli", "gaussian", "augmented"] = "bernoulli",
                 augment_radius: int = 31):
        super().__init__()
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, "
                             f"got {reconstruction!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction, self.augment_radius = reconstruction, augment_radius

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|z)."""
        return self.decoder(z)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) (or the augmented loss): summed over pixels, mean over the batch."""
        return reconstruction_loss(self.reconstruction, logits, x, self.augment_radius)

    def regularizer(self, mean, log_var, z, kl, step: int, generator: torch.Generator):
        """(regulariser, extra logged terms); the plain VAE uses the KL itself."""
        return kl, {}

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon = self.reconstruction_loss(self.decode(z), x)
        kl = gaussian_kl(mean, log_var)
        reg, extra = self.regularizer(mean, log_var, z, kl, step, generator)
        loss = recon + reg
        terms = {"loss": loss, "reconstruction": recon, "kl": kl, "elbo": -(recon + kl), **extra}
        return Step({"model": loss}, terms)
