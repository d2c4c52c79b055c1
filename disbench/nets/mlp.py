"""The fully connected encoder and decoder of disentanglement_lib (`fc_encoder`:
1200-1200 ReLU; `fc_decoder`: 1200-1200-1200 tanh), for any observation size; `width`
is the hidden layers' size (1200 in the reference)."""

from __future__ import annotations

import math

import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self, observation_shape: tuple[int, int, int], latent_dim: int,
                 width: int = 1200):
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(observation_shape), width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
        )
        self.mean = nn.Linear(width, latent_dim)
        self.log_var = nn.Linear(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.log_var(h)


class Decoder(nn.Module):
    def __init__(self, observation_shape: tuple[int, int, int], latent_dim: int,
                 width: int = 1200):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, width), nn.Tanh(),
            nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, width), nn.Tanh(),
            nn.Linear(width, math.prod(observation_shape)),
            nn.Unflatten(1, tuple(observation_shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
