"""Encoder / decoder architectures: `build(name, observation_shape, latent_dim)`, and the
weight initialisation of a whole objective: `initialise(module, scheme)`.

`arch.name` is a built-in (ARCHITECTURES), an entry point of group `disbench.archs`,
or an import path `package.module:Name` naming a module or class that has `Encoder`
and `Decoder`, each built as `(observation_shape, latent_dim)`.
"""

from __future__ import annotations

from torch import nn

from disbench import plugins
from disbench.nets import locatello, mlp

ARCHITECTURES = {"locatello": locatello, "mlp": mlp}
INITIALISATIONS = ("reference", "torch")


def _is_architecture(found) -> bool:
    return all(callable(getattr(found, part, None)) for part in ("Encoder", "Decoder"))


def build(name: str, observation_shape: tuple[int, int, int], latent_dim: int
          ) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder); the encoder maps x to (mean, log-variance), the decoder z to logits."""
    found = plugins.resolve("architecture", name, ARCHITECTURES, _is_architecture,
                            "a module or class with Encoder and Decoder")
    return found.Encoder(observation_shape, latent_dim), found.Decoder(observation_shape,
                                                                        latent_dim)


def initialise(module: nn.Module, scheme: str) -> None:
    """`reference`: disentanglement_lib's TensorFlow defaults, Glorot-uniform kernels and
    zero biases, for every linear and (transposed) convolution layer, e.g. the bound of
    FactorVAE's discriminator's first layer (10 -> 1000) is sqrt(6 / 1010) = 0.077.
    `torch`: PyTorch's own defaults (that layer: 1 / sqrt(10) = 0.32), left as built."""
    if scheme == "torch":
        return
    if scheme != "reference":
        raise ValueError(f"arch.init must be one of {', '.join(INITIALISATIONS)}, got {scheme!r}")
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                              nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.xavier_uniform_(layer.weight)  # symmetric in fan-in/out: transposed too
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
