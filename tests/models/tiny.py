"""Tiny networks for tests whose subject is not the network: disentanglement_lib's MLP
with hidden layers of 32 units instead of 1200 (a step costs a fraction of a
millisecond). `build` makes a tiny objective on 1x4x4 images with 3 latents (the loss
tests); `ARCH` trains a run with them (`arch.name` as a plug-in import path)."""

import functools

from disbench import models
from disbench.nets import mlp


class Tiny:
    """The architecture `arch.name=tests.models.tiny:Tiny`."""

    Encoder = functools.partial(mlp.Encoder, width=32)
    Decoder = functools.partial(mlp.Decoder, width=32)


ARCH = "arch.name=tests.models.tiny:Tiny"


def build(name: str, shape=(1, 4, 4), **hyper):
    encoder, decoder = Tiny.Encoder(shape, 3), Tiny.Decoder(shape, 3)
    return models.build({"name": name, **hyper}, encoder, decoder, 3)
