"""Latent traversals: how each latent dimension changes the decoded image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


@torch.inference_mode()
def traversal_grid(model, observation: np.ndarray, steps: int = 10, limit: float = 2.0
                   ) -> np.ndarray:
    """Decode the mean code of `observation` (C, H, W) with each latent swept over
    [-limit, limit]: an image array (D*H, steps*W[, C]) with one row per latent."""
    x = torch.as_tensor(observation[None], dtype=torch.float32)
    mean, _ = model.encode(x)
    latent_dim = mean.shape[1]
    values = torch.linspace(-limit, limit, steps)
    codes = mean.repeat(latent_dim * steps, 1).view(latent_dim, steps, latent_dim)
    for d in range(latent_dim):
        codes[d, :, d] = values
    images = torch.sigmoid(model.decode(codes.view(-1, latent_dim))).numpy()
    c, h, w = images.shape[1:]
    grid = images.reshape(latent_dim, steps, c, h, w).transpose(0, 3, 1, 4, 2)
    grid = grid.reshape(latent_dim * h, steps * w, c)
    return grid[..., 0] if c == 1 else grid


def save_image(path: Path, image: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    plt.imsave(tmp, np.clip(image, 0, 1), cmap="gray" if image.ndim == 2 else None,
               vmin=0, vmax=1)
    tmp.replace(path)
