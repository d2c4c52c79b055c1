"""beta-VAE (Higgins et al. 2017): recon + beta * KL."""

from disbench.models.base import VAE


class BetaVAE(VAE):
    strength = "beta"

    def __init__(self, encoder, decoder, beta: float, **vae):
        super().__init__(encoder, decoder, **vae)
        self.beta = beta

    packable = ("beta",)

    def regularizer(self, mean, log_var, z, kl, step, generator):
        return self.beta * kl, {}
