"""AnnealedVAE (Burgess et al. 2018): recon + gamma * |KL - C|, where the capacity
C = min(c_max, c_max * step / iteration_threshold) grows linearly to c_max."""

from disbench.models.base import VAE


def capacity(step: int, c_max, iteration_threshold: int):
    """C at `step`; written as c_max * min(1, step / threshold) (c_max >= 0) so that
    c_max may be a tensor (a pack's per-run values)."""
    return c_max * min(1.0, step / iteration_threshold)


class AnnealedVAE(VAE):
    strength = "c_max"
    packable = ("c_max", "gamma")

    def __init__(self, encoder, decoder, c_max: float, gamma: float = 1000.0,
                 iteration_threshold: int = 100_000, **vae):
        super().__init__(encoder, decoder, **vae)
        self.c_max, self.gamma, self.iteration_threshold = c_max, gamma, iteration_threshold

    def regularizer(self, mean, log_var, z, kl, step, generator):
        c = kl.new_tensor(0.0) + capacity(step, self.c_max, self.iteration_threshold)
        return self.gamma * (kl - c).abs(), {"capacity": c}
