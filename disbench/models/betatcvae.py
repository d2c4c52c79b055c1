"""beta-TCVAE (Chen et al. 2018): recon + KL + (beta - 1) * TC, with the total
correlation TC = E_q[log q(z) - sum_j log q(z_j)] estimated on the batch by
minibatch-weighted sampling:
    log q(z_i)   ~ logsumexp_k log q(z_i | x_k)
    log q(z_ij)  ~ logsumexp_k log q(z_ij | x_k)
As in disentanglement_lib the constant log(N * batch) terms are dropped: they do
not change the gradient, but the logged TC is offset by (D - 1) log(N * batch)."""

import math

import torch

from disbench.models.base import VAE


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor):
    return -0.5 * (math.log(2 * math.pi) + log_var + (z - mean).square() * torch.exp(-log_var))


def total_correlation(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor):
    # log q(z_i | x_k) per latent: (batch i, batch k, latent j)
    log_qz_given_x = gaussian_log_density(z[:, None], mean[None], log_var[None])
    log_qz = torch.logsumexp(log_qz_given_x.sum(2), dim=1)
    log_prod_qzj = torch.logsumexp(log_qz_given_x, dim=1).sum(1)
    return (log_qz - log_prod_qzj).mean()


class BetaTCVAE(VAE):
    strength = "beta"

    def __init__(self, encoder, decoder, beta: float, **vae):
        super().__init__(encoder, decoder, **vae)
        self.beta = beta

    packable = ("beta",)

    def regularizer(self, mean, log_var, z, kl, step, generator):
        tc = total_correlation(z, mean, log_var)
        return kl + (self.beta - 1) * tc, {"total_correlation": tc}
