"""Tiny networks for tests whose subject is not the network: disentanglement_lib's MLP
with hidden layers of 32 units instead of 1200 (a step costs a fraction of a
millisecond). `build` makes a tiny objective on 1x4x4 images with 3 latents (the loss
tests); `ARCH` trains a run with them (`arch.name` as a plug-in import path)."""

import copy
import functools

import torch

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


def assert_noise_from_the_generator(model, x, loss: str) -> None:
    """The step draws all its noise from the generator it is given: the same seed gives the
    same losses, another seed another `loss`, and torch's global generator is untouched.
    Each step runs on a copy of `model`, so buffers a step updates start equal."""
    state = torch.random.get_rng_state()
    first, second, other = (copy.deepcopy(model).step(x, 0, torch.Generator().manual_seed(s)
                                                      ).losses for s in (9, 9, 10))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first[loss], other[loss])


def assert_encode_and_decode_are_the_networks(model, x) -> None:
    """`encode` is the encoder's (mean, log_var), `decode` the decoder's logits."""
    mean, log_var = model.encode(x)
    expected_mean, expected_log_var = model.encoder(x)
    assert torch.equal(mean, expected_mean) and torch.equal(log_var, expected_log_var)
    assert torch.equal(model.decode(mean), model.decoder(mean))
