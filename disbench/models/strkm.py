"""St-RKM: Pandey, Fanuel, Schreurs & Suykens, "Disentangled Representation Learning and
Generation with Manifold Optimization", Neural Computation 34(10), 2022 (arXiv:2006.07046):
the Stiefel restricted kernel machine.

An encoder gives features phi(x) in R^d, centred over the batch; U in St(d, m) (d x m,
U^T U = I, m = latent_dim) spans their principal subspace; the latent code is
h = U^T phi(x) and the decoder reconstructs x from the projected features U h = P_U phi(x).
The objective is an autoencoder error plus the PCA reconstruction error in feature space:

    L = lambda AE + 1/n sum_i ||phi_i - U U^T phi_i||^2

with AE by `variant` (sigma the noise on h, eps ~ N(0, I_m) from the run's generator,
x~ = sigmoid(psi(.)) the decoder's image):

- `deterministic` (default, St-RKM with sigma = 0): 1/2 mean_i ||x_i - x~(U h_i)||^2;
- `noisy` (St-RKM with sigma > 0): 1/2 mean_i ||x_i - x~(U (h_i + sigma eps_i))||^2;
- `split` (St-RKM-sl): 1/2 mean_i [||x_i - x~(U h_i)||^2
  + ||x~(U h_i) - x~(U (h_i + sigma eps_i))||^2], the split of the noisy loss into a
  reconstruction and a smoothness term.

Squared errors are summed over pixels. Defaults, from the authors' released code (their
training script): lambda 1, sigma 1e-3, feature dimension d 50, Adam lr 2e-4 over the
encoder and decoder, Cayley ADAM (`disbench.train.cayley_adam`) lr 1e-4 over U; their
batch is 256. Also from that code: the 1/2 on AE; the PCA term's form
1/n tr(C - U U^T C), C = sum_i phi_i phi_i^T, equal to the sum above on the manifold (off
it the two differ in a normal component, which Cayley ADAM projects out but counts in its
second moment); and that second moment starting at 0, as in the Cayley ADAM those
experiments ran (Li et al.'s release; their Algorithm 2 starts it at 1).

The paper's alternating minimisation, Adam over the networks and Cayley ADAM over U,
is one training step here as in that code: both gradients are taken from the same batch
and forward pass (the `model` and `manifold` losses are the same L), then each optimiser
updates its own parameters.

Choices where the paper is silent:
- the networks are the run's architecture with d outputs (`network_width`): the encoder's
  mean head is phi, its log-variance head is unused; the decoder takes U h in R^d. U starts
  orthonormal (`torch.nn.init.orthogonal_`, from the seeded torch RNG at construction);
- the features are centred with the batch mean in training (as in the code); `encode`
  centres with a running mean of those batch means (momentum 0.1, a buffer), so that a
  code does not depend on the batch it is encoded with, and returns (h, None);
  `decode(z)` is psi(U z). The authors' re-estimation of U by an SVD over the whole
  dataset after training is not done: U is the one Cayley ADAM learnt;
- logged: `reconstruction` (the squared error of the image the variant reconstructs),
  `pca`, `split` (split variant), and `orthogonality` ||U^T U - I||_F.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from disbench.models.base import Objective, OptimizerSpec, Step, normal
from disbench.train.cayley_adam import CayleyAdam, orthonormality_error

FEATURE_DIM = 50  # the authors' x_fdim2
FEATURE_MEAN_MOMENTUM = 0.1
VARIANTS = ("deterministic", "noisy", "split")


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||^2 summed over pixels, mean over the batch."""
    return (a - b).square().flatten(1).sum(1).mean()


def pca_error(phi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """1/n tr(C - U U^T C), C = phi^T phi: the mean of ||phi_i - U U^T phi_i||^2 when U
    has orthonormal columns (phi: centred features, n x d)."""
    return (phi.square().sum() - (phi @ u).square().sum()) / len(phi)


class StRKM(Objective):
    strength: ClassVar[str | None] = None

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 feature_dim: int = FEATURE_DIM,
                 variant: Literal["deterministic", "noisy", "split"] = "deterministic",
                 sigma: float = 1e-3, lambda_ae: float = 1.0, model_lr: float = 2e-4,
                 manifold_lr: float = 1e-4):
        super().__init__()
        if feature_dim < latent_dim:
            raise ValueError(f"St-RKM needs feature_dim >= latent_dim (U in St(d, m) has "
                             f"orthonormal columns), got feature_dim {feature_dim} < "
                             f"latent_dim {latent_dim}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.encoder = encoder
        self.decoder = decoder
        self.manifold = nn.Parameter(nn.init.orthogonal_(torch.empty(feature_dim, latent_dim)))
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.variant, self.sigma, self.lambda_ae = variant, sigma, lambda_ae
        self.model_lr, self.manifold_lr = model_lr, manifold_lr

    @classmethod
    def network_width(cls, latent_dim: int, hyper: dict) -> int:
        return int(hyper.get("feature_dim", FEATURE_DIM))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the encoder's mean head, (B, d)."""
        phi, _ = self.encoder(x)
        if phi.shape[1] != self.manifold.shape[0]:
            raise ValueError(f"St-RKM: the encoder gives {phi.shape[1]} features, U expects "
                             f"feature_dim {self.manifold.shape[0]}; build the networks with "
                             f"StRKM.network_width")
        return phi

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """h = U^T (phi(x) - running feature mean)."""
        return (self.features(x) - self.feature_mean) @ self.manifold, None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the image psi(U z)."""
        return self.decoder(z @ self.manifold.T)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """||x - sigmoid(logits)||^2 summed over pixels, mean over the batch (the logged
        `reconstruction`; the held-out score)."""
        return squared_error(torch.sigmoid(logits), x)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        networks = [*self.encoder.parameters(), *self.decoder.parameters()]
        return {"model": OptimizerSpec(networks, settings={"lr": self.model_lr}),
                "manifold": OptimizerSpec([self.manifold], CayleyAdam,
                                          settings={"lr": self.manifold_lr, "initial_v": 0.0})}

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        phi = self.features(x)
        batch_mean = phi.mean(0)
        with torch.no_grad():
            self.feature_mean.lerp_(batch_mean, FEATURE_MEAN_MOMENTUM)
        phi = phi - batch_mean
        u = self.manifold
        h = phi @ u
        pca = pca_error(phi, u)
        terms = {}
        if self.variant != "noisy":
            image = torch.sigmoid(self.decoder(h @ u.T))
            recon = squared_error(image, x)
        if self.variant != "deterministic":
            noisy_h = h + self.sigma * normal(h.shape, generator, h)
            noisy_image = torch.sigmoid(self.decoder(noisy_h @ u.T))
        if self.variant == "deterministic":
            ae = 0.5 * recon
        elif self.variant == "noisy":
            recon = squared_error(noisy_image, x)
            ae = 0.5 * recon
        else:
            split = squared_error(noisy_image, image)
            ae = 0.5 * (recon + split)
            terms["split"] = split
        loss = self.lambda_ae * ae + pca
        terms = {"loss": loss, "reconstruction": recon, "pca": pca, **terms,
                 "orthogonality": orthonormality_error(u.detach())}
        return Step({"model": loss, "manifold": loss}, terms)
