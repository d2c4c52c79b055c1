"""DIP-VAE-I and -II (Kumar et al. 2018): recon + KL
+ lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2, where
- DIP-VAE-I:  C = Cov_p(x)[mu(x)]                          (lambda_d = 10 lambda_od)
- DIP-VAE-II: C = Cov_p(x)[mu(x)] + E_p(x)[diag(sigma^2(x))] (lambda_d = lambda_od)
with the covariance of the batch means taken biased (divided by the batch size)."""

import torch

from disbench.models.base import VAE


def covariance(mean: torch.Tensor) -> torch.Tensor:
    """Biased batch covariance E[mu mu^T] - E[mu] E[mu]^T."""
    centred = mean - mean.mean(0, keepdim=True)
    return centred.T @ centred / mean.shape[0]


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    diag = torch.diagonal(cov)
    off_diag = cov - torch.diag(diag)
    return lambda_od * off_diag.square().sum() + lambda_d * (diag - 1).square().sum()


class DIPVAE(VAE):
    strength = "lambda_od"
    dip_type = "i"  # "i" or "ii"

    def __init__(self, encoder, decoder, lambda_od: float, lambda_d: float | None = None,
                 **vae):
        super().__init__(encoder, decoder, **vae)
        if lambda_d is None:
            lambda_d = (10.0 if self.dip_type == "i" else 1.0) * lambda_od
        self.lambda_od, self.lambda_d = lambda_od, lambda_d

    def regularizer(self, mean, log_var, z, kl, step, generator):
        cov = covariance(mean)
        if self.dip_type == "ii":
            cov = cov + torch.diag(log_var.exp().mean(0))
        penalty = dip_penalty(cov, self.lambda_od, self.lambda_d)
        return kl + penalty, {"dip_penalty": penalty}


class DIPVAE1(DIPVAE):
    dip_type = "i"
    packable = ("lambda_od", "lambda_d")


class DIPVAE2(DIPVAE):
    dip_type = "ii"
    packable = ("lambda_od", "lambda_d")
