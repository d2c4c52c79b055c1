"""Reconstruction losses, -log p(x|z) up to the stated constant: summed over pixels, mean
over the batch. The decoder returns logits; the image it means is sigmoid(logits).

- bernoulli: the reference (Locatello et al. 2019), sigmoid cross-entropy on the logits.
- gaussian: the unit-variance Gaussian NLL around sigmoid(logits),
  0.5 * sum (x - sigmoid(logits))^2 + 0.5 * D * log(2 pi), D = pixels per image.
- augmented: Michlo et al., "Overlooked implications of the reconstruction loss for
  VAE disentanglement" (IJCAI 2023), section 6: the base (Gaussian) loss plus the same
  loss between the box-blurred target and the box-blurred reconstruction. A box blur of
  radius r spreads each pixel over (2r + 1)^2 pixels, so a square and a reconstruction
  of it that do not overlap still share blurred mass: the loss then grows with their
  distance, where the plain loss is flat. The blur pads by reflection and sums the box
  (no normalisation), as the paper's kernel; radius 31 (kernel 63 x 63) as the paper's
  XYSquares experiments.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RECONSTRUCTIONS = ("bernoulli", "gaussian", "augmented")


def bernoulli(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels."""
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def gaussian(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; sigmoid(logits), I): half the summed squared error plus its constant."""
    return squared_error(torch.sigmoid(logits), x) + 0.5 * x[0].numel() * math.log(2 * math.pi)


def squared_error(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x - mean).square().flatten(1).sum(1).mean()


def box_blur(images: torch.Tensor, radius: int) -> torch.Tensor:
    """The sum over a (2r+1) x (2r+1) box around each pixel, per channel, edges reflected."""
    channels = images.shape[1]
    size = 2 * radius + 1
    kernel = images.new_ones(channels, 1, size, size)
    padded = F.pad(images, (radius,) * 4, mode="reflect" if radius < min(images.shape[-2:])
                   else "replicate")
    return F.conv2d(padded, kernel, groups=channels)


def augmented(logits: torch.Tensor, x: torch.Tensor, radius: int) -> torch.Tensor:
    """The Gaussian loss plus the squared error between the box-blurred images."""
    mean = torch.sigmoid(logits)
    return gaussian(logits, x) + squared_error(box_blur(mean, radius), box_blur(x, radius))


def reconstruction_loss(name: str, logits: torch.Tensor, x: torch.Tensor, radius: int
                        ) -> torch.Tensor:
    if name == "bernoulli":
        return bernoulli(logits, x)
    if name == "gaussian":
        return gaussian(logits, x)
    return augmented(logits, x, radius)
