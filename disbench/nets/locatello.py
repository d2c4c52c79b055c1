"""The convolutional encoder and decoder of Locatello et al. (2019), Table 1
(disentanglement_lib `conv_encoder` / `deconv_decoder`), for 64x64xC inputs.

TF "same" padding with stride 2 is padding 1 for kernel 4 and 0 for kernel 2.
With 1 channel and 10 latents the pair has 690,517 parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_shape(observation_shape: tuple[int, int, int]) -> int:
    channels, height, width = observation_shape
    if (height, width) != (64, 64):
        raise ValueError(f"arch=locatello needs 64x64 observations, got {height}x{width}")
    return channels


class Encoder(nn.Module):
    def __init__(self, observation_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        channels = _check_shape(observation_shape)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32x32
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),        # 16x16
            nn.Conv2d(32, 64, 2, stride=2), nn.ReLU(),                   # 8x8
            nn.Conv2d(64, 64, 2, stride=2), nn.ReLU(),                   # 4x4
            nn.Flatten(),
            nn.Linear(4 * 4 * 64, 256), nn.ReLU(),
        )
        self.mean = nn.Linear(256, latent_dim)
        self.log_var = nn.Linear(256, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.log_var(h)


class Decoder(nn.Module):
    def __init__(self, observation_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        channels = _check_shape(observation_shape)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 4 * 4 * 64), nn.ReLU(),
            nn.Unflatten(1, (64, 4, 4)),
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 16x16
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32x32
            nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1),       # 64x64 logits
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
