"""Reconstruction losses, -log p(x|z) up to the stated constant: summed over pixels, mean
over the batch. The decoder returns logits; the image it means is sigmoid(logits).

- bernoulli: the reference (Locatello et al. 2019), sigmoid cross-entropy on the logits.
- gaussian: the unit-variance Gaussian NLL around sigmoid(logits),
  0.5 * sum (x - sigmoid(logits))^2 + 0.5 * D * log(2 pi), D = pixels per image.
- augmented: Michlo, Klein & James, "Overlooked implications of the reconstruction loss
  for VAE disentanglement" (IJCAI 2023, arXiv:2202.13341), section 6, Eq. (11):

      L_overlap(x, x^) = L_rec(x, x^) + alpha * L_rec(blur(x), blur(x^)),

  L_rec the (Gaussian-derived) squared error and blur a channel-wise box blur of radius
  r = 31 (a 63 x 63 kernel, so that squares on opposite sides of a 64x64 image still
  overlap once blurred), whose kernel is normalised to sum to 1 (each weight 1/63^2);
  alpha = 63^2 = 3969 (section 6.1 and Table A4). Here L_rec is the gaussian loss above,
  so the augmented term is alpha * 0.5 * sum (blur(x) - blur(x^))^2: the two terms keep
  the paper's 1 : alpha ratio, and the constant 0.5 * D * log(2 pi) is counted once. For
  another radius alpha = (2r + 1)^2, the kernel's size, as the paper's choice at r = 31.
  The blur pads with zeros and keeps the image size, as the paper's code (nmichlo/disent,
  loss `mse_box_r31_l1.0_k3969.0`: an FFT convolution, the linear convolution cropped to
  the input's size).
  The paper's MSE is a mean over the elements of standardised images (decoder output
  unbounded); here, as every loss of disbench, a sum over the pixels of [0, 1] images:
  that changes the loss's overall scale (a change of beta), not the ratio of its two
  terms (the blur is linear: a shift of the data cancels in blur(x) - blur(x^)).
  A square and a reconstruction of it that do not overlap still share blurred mass: the
  augmented loss then grows with their distance, where the plain loss is flat.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RECONSTRUCTIONS = ("bernoulli", "gaussian", "augmented")
AUGMENT_RADIUS = 31  # the paper's box blur radius (63 x 63)


def bernoulli(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels."""
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def gaussian(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; sigmoid(logits), I): half the summed squared error plus its constant."""
    return squared_error(torch.sigmoid(logits), x) + 0.5 * x[0].numel() * math.log(2 * math.pi)


def squared_error(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """0.5 * sum over pixels of (x - mean)^2, mean over the batch."""
    return 0.5 * (x - mean).square().flatten(1).sum(1).mean()


def box_blur(images: torch.Tensor, radius: int) -> torch.Tensor:
    """Each pixel replaced by the mean of the (2r+1) x (2r+1) box around it (the box kernel
    normalised to sum to 1), per channel, outside the image counting as 0; same size out.
    The box is separable: a (2r+1)-tap mean down the columns, then along the rows."""
    channels, size = images.shape[1], 2 * radius + 1
    column = images.new_full((channels, 1, size, 1), 1.0 / size)
    row = images.new_full((channels, 1, 1, size), 1.0 / size)
    out = F.conv2d(images, column, padding=(radius, 0), groups=channels)
    return F.conv2d(out, row, padding=(0, radius), groups=channels)


def augment_weight(radius: int) -> float:
    """alpha = (2r + 1)^2, the kernel's size: 63^2 = 3969 at the paper's radius 31."""
    return float((2 * radius + 1) ** 2)


def augmented(logits: torch.Tensor, x: torch.Tensor, radius: int = AUGMENT_RADIUS
              ) -> torch.Tensor:
    """Eq. (11): the gaussian loss plus alpha times the squared error of the blurred images."""
    mean = torch.sigmoid(logits)
    blurred = squared_error(box_blur(mean, radius), box_blur(x, radius))
    return gaussian(logits, x) + augment_weight(radius) * blurred


def reconstruction_loss(name: str, logits: torch.Tensor, x: torch.Tensor, radius: int
                        ) -> torch.Tensor:
    if name == "bernoulli":
        return bernoulli(logits, x)
    if name == "gaussian":
        return gaussian(logits, x)
    return augmented(logits, x, radius)
