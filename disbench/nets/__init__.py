"""Encoder / decoder architectures: `build(name, observation_shape, latent_dim)`."""

from __future__ import annotations

from torch import nn

from disbench.errors import DisbenchError
from disbench.nets import locatello, mlp

ARCHITECTURES = {"locatello": locatello, "mlp": mlp}


def build(name: str, observation_shape: tuple[int, int, int], latent_dim: int
          ) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder); the encoder maps x to (mean, log-variance), the decoder z to logits."""
    if name not in ARCHITECTURES:
        raise DisbenchError(f"unknown architecture '{name}'; valid: {', '.join(ARCHITECTURES)}")
    module = ARCHITECTURES[name]
    return module.Encoder(observation_shape, latent_dim), module.Decoder(observation_shape,
                                                                         latent_dim)
