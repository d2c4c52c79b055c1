"""A tiny objective for the loss tests: the MLP on 1x4x4 images, 3 latents."""

from disbench import models, nets


def build(name: str, shape=(1, 4, 4), **hyper):
    encoder, decoder = nets.build("mlp", shape, 3)
    return models.build({"name": name, **hyper}, encoder, decoder, 3)
