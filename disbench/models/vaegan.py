"""VAE/GAN: Larsen, Sønderby, Larochelle & Winther, "Autoencoding beyond pixels using a
learned similarity metric", ICML 2016 (arXiv:1512.09300), section 2 and Algorithm 1.

A VAE whose decoder is also a GAN's generator, and whose reconstruction error is measured
in the features of the GAN's discriminator instead of in pixels. With z ~ q(z|x) (the
encoder, reparameterised), x~ = Dec(z) its reconstruction, z_p ~ p(z) = N(0, I) and
x_p = Dec(z_p) a sample of the prior, and Dis_l(.) the discriminator's l-th layer:

    L_prior         = KL(q(z|x) || p(z))                                         (Eq. 3)
    L_llike^Dis_l   = -E_q(z|x)[log N(Dis_l(x); Dis_l(x~), I)]                   (Eqs. 6-7)
                    = 0.5 * sum_k (Dis_l(x)_k - Dis_l(x~)_k)^2 + 0.5 * K * log(2 pi)
    L_GAN           = -[log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(x_p))]         (Eq. 10)

and, as Algorithm 1, each network descends its own loss (its own optimiser here):

    encoder:        L_prior + L_llike^Dis_l
    decoder:        gamma * L_llike^Dis_l - L_GAN                                (Eq. 9)
    discriminator:  L_GAN

so the GAN's error never reaches the encoder and the discriminator is not trained on
L_llike (section 2.2). Signs: Eq. (10) is written as the log-likelihood the discriminator
maximises; Algorithm 1 descends -grad L_GAN for the discriminator and -grad(gamma L_llike -
L_GAN) for the decoder, which is the right game only with L_GAN the discriminator's
binary cross-entropy, the negative of Eq. (10). That is the L_GAN above: the discriminator
minimises its cross-entropy, and the decoder minimises log(1 - Dis(x~)) + log(1 - Dis(x_p))
(the minimax generator loss of Algorithm 1, not the "non-saturating" variant). Dis is a
sigmoid unit; the losses are computed from its logit (log Dis = logsigmoid(logit)).
L_llike, L_prior and L_GAN are each a mean over the batch (L_llike summed over features,
L_prior over latents, as the VAEs' losses here).

Defaults and choices:
- gamma: the paper introduces gamma but prints no value; 1e-6 is the value of the
  authors' released CelebA run (`recon_vs_gan_weight=1e-6` in andersbll/
  autoencoding_beyond_pixels; their model's own default is 1e-2). Sweep 1e-6 and 1e-2.
- Optimisers: RMSProp with learning rate 3e-4 for all three networks (the paper's
  experiments; its batch of 64 is the trainer's setting). The decay 0.9 and eps 1e-8,
  which the paper does not state, are those of the RMSProp of the authors' code (deeppy),
  the same update rule as torch's RMSprop(alpha=0.9). The trainer's Adam is not used.
- Discriminator: for 64x64 observations, the layout of the paper's discriminator (its
  architecture table: 5x5 conv 32, ReLU; three 5x5 stride-2 convs with batch norm and
  ReLU; a fully connected layer with batch norm and ReLU; one sigmoid unit) at the widths
  of the Locatello et al. encoder (32, 32, 64, 64 filters and 256 units, instead of 32,
  128, 256, 256 and 512): a discriminator of the size of the encoder it plays against.
  For other sizes (e.g. arch=mlp on non-64x64 data), an MLP of the same shape: 512 ReLU,
  512 with batch norm and ReLU, the Dis_l layer (512), 256 with batch norm and ReLU, one
  unit.
  Dis_l is the last convolution (the last 512-unit layer of the MLP) before its batch
  norm and ReLU: the layer the authors' code uses (its `recon_depth=9`); the paper only
  says "the l-th layer". The discriminator's kind follows the observation size, whatever
  the encoder's architecture; the size is read off the decoder's output.
- The discriminator sees x, x~ and x_p (x~ and x_p as images, sigmoid of the decoder's
  logits) in one batch, so its batch norms see real and generated images together, as in
  the authors' code.
- Not in the paper's Algorithm 1, and left out: the authors' code's "equilibrium" rule
  (skipping the decoder's or the discriminator's update when the other wins by a
  margin), its real-vs-generated weights, its weight decay and learning-rate annealing.
- Logged besides the three losses: `reconstruction`, the Bernoulli pixel NLL of x under
  the decoder's logits (not trained on; for comparison with the other models), `kl`, and
  `elbo` = -(reconstruction + kl), the ELBO of the same encoder/decoder as a Bernoulli VAE.

All noise (z ~ q(z|x), z_p ~ p(z)) comes from the run's generator. `strength` is gamma.
On CelebA faces the paper reports sharper samples and reconstructions than a plain VAE,
and visual attributes (e.g. glasses) as vectors that can be added in its latent space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from disbench.models.base import (
    Objective,
    OptimizerSpec,
    Step,
    gaussian_kl,
    normal,
    sample_gaussian,
)
from disbench.models.reconstruction import bernoulli


class ConvDiscriminator(nn.Module):
    """The paper's discriminator layout at the Locatello widths, for 64x64 inputs."""

    def __init__(self, channels: int):
        super().__init__()
        self.features = nn.Sequential(  # up to Dis_l
            nn.Conv2d(channels, 32, 5, padding=2), nn.ReLU(),                      # 64x64
            nn.Conv2d(32, 32, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(32),
            nn.ReLU(),                                                             # 32x32
            nn.Conv2d(32, 64, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(),                                                             # 16x16
            nn.Conv2d(64, 64, 5, stride=2, padding=2, bias=False),                 # 8x8
        )
        self.head = nn.Sequential(
            nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * 8 * 8, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Dis_l(x) flattened, the logit of Dis(x))."""
        features = self.features(x)
        return features.flatten(1), self.head(features).squeeze(1)


class MLPDiscriminator(nn.Module):
    """The same layout, fully connected, for observations of any size."""

    def __init__(self, observation_shape: tuple[int, ...], hidden: int = 512):
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(observation_shape), hidden), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False),
        )
        self.head = nn.Sequential(
            nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden // 2, bias=False), nn.BatchNorm1d(hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return features, self.head(features).squeeze(1)


def observation_shape(decoder: nn.Module, latent_dim: int) -> tuple[int, ...]:
    """The (C, H, W) the decoder produces, from one decoding of z = 0 (in eval mode, so
    that no batch statistic is touched)."""
    parameter = next(decoder.parameters(), None)
    z = (torch.zeros(1, latent_dim) if parameter is None
         else parameter.new_zeros(1, latent_dim))
    was_training = decoder.training
    decoder.eval()
    try:
        with torch.no_grad():
            return tuple(decoder(z).shape[1:])
    finally:
        decoder.train(was_training)


def feature_nll(features_recon: torch.Tensor, features_x: torch.Tensor) -> torch.Tensor:
    """L_llike^Dis_l: -log N(Dis_l(x); Dis_l(x~), I), summed over the K features, mean over
    the batch."""
    k = features_x[0].numel()
    half_square = 0.5 * (features_x - features_recon).square().flatten(1).sum(1)
    return (half_square + 0.5 * k * math.log(2 * math.pi)).mean()


def gan_loss(logit_x: torch.Tensor, logit_recon: torch.Tensor, logit_prior: torch.Tensor
             ) -> torch.Tensor:
    """L_GAN: -[log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(x_p))], mean over the batch;
    log Dis = logsigmoid(logit), log(1 - Dis) = logsigmoid(-logit)."""
    return -(F.logsigmoid(logit_x) + F.logsigmoid(-logit_recon)
             + F.logsigmoid(-logit_prior)).mean()


class VAEGAN(Objective):
    strength = "gamma"
    packable = ("gamma",)

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int,
                 gamma: float = 1e-6, rmsprop_lr: float = 3e-4, rmsprop_alpha: float = 0.9,
                 rmsprop_eps: float = 1e-8):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.gamma = gamma
        self.rmsprop = {"lr": rmsprop_lr, "alpha": rmsprop_alpha, "eps": rmsprop_eps}
        shape = observation_shape(decoder, latent_dim)
        self.discriminator = (ConvDiscriminator(shape[0]) if shape[1:] == (64, 64)
                              else MLPDiscriminator(shape))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the image; the image is sigmoid(logits)."""
        return self.decoder(z)

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The Bernoulli pixel NLL logged as `reconstruction` (not trained on), for the
        comparison with the other models (and the held-out scores)."""
        return bernoulli(logits, x)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        def rmsprop(module: nn.Module) -> OptimizerSpec:
            return OptimizerSpec(list(module.parameters()), cls=torch.optim.RMSprop,
                                 settings=dict(self.rmsprop))
        return {"encoder": rmsprop(self.encoder), "decoder": rmsprop(self.decoder),
                "discriminator": rmsprop(self.discriminator)}

    def step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> Step:
        # Algorithm 1: Z ~ Enc(X), X~ = Dec(Z); Z_p from the prior, X_p = Dec(Z_p)
        mean, log_var = self.encode(x)
        z = sample_gaussian(mean, log_var, generator)
        recon_logits = self.decode(z)
        z_prior = normal(z.shape, generator, z)
        prior_logits = self.decode(z_prior)
        images = torch.cat([x, torch.sigmoid(recon_logits), torch.sigmoid(prior_logits)])
        features, logits = self.discriminator(images)
        features_x, features_recon, _ = features.split(len(x))
        logit_x, logit_recon, logit_prior = logits.split(len(x))

        prior = gaussian_kl(mean, log_var)
        llike = feature_nll(features_recon, features_x)
        gan = gan_loss(logit_x, logit_recon, logit_prior)
        losses = {"encoder": prior + llike,
                  "decoder": self.gamma * llike - gan,
                  "discriminator": gan}
        with torch.no_grad():
            recon = self.reconstruction_loss(recon_logits, x)
        terms = {"encoder_loss": losses["encoder"], "decoder_loss": losses["decoder"],
                 "discriminator_loss": gan, "dis_llike": llike, "kl": prior,
                 "reconstruction": recon, "elbo": -(recon + prior),
                 "dis_real": torch.sigmoid(logit_x).mean(),
                 "dis_recon": torch.sigmoid(logit_recon).mean(),
                 "dis_prior": torch.sigmoid(logit_prior).mean()}
        return Step(losses, terms)
