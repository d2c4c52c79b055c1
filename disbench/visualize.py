"""Pictures of a trained model: latent traversals (a labelled sheet and an animation) and
reconstructions.

- ``traversal.png``: one row per latent dimension, sorted by its KL divergence from the
  prior (averaged over a sample of observations), each row the decoded mean code of one
  observation with that dimension swept over [-2, 2]. Rows are labelled with the
  dimension and its KL; dimensions with KL <= ``INACTIVE_KL`` (UDR's threshold, 0.01)
  are marked inactive; the cell nearest the observation's own value of the dimension is
  framed in red.
- ``traversal.gif``: every dimension traversed at once, one cell per dimension (in the
  same order), the value going from -2 to 2 and back: disentanglement_lib's animated
  traversals.
- ``reconstructions.png``: observations (top row) above their reconstructions (the
  decoded mean codes, bottom row).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

INACTIVE_KL = 0.01
GAP = 2                     # pixels between cells
GRID, FRAME = (70, 100, 150), (230, 40, 40)  # cell borders (blue-grey), the code's cell
MIN_CELL = 32               # small observations are enlarged to at least this height


def to_rgb(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, 3) uint8, enlarged to MIN_CELL pixels high."""
    images = np.clip(images, 0, 1)
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    scale = max(1, math.ceil(MIN_CELL / images.shape[2]))
    images = images.repeat(scale, axis=2).repeat(scale, axis=3)
    return (images.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)


@torch.inference_mode()
def kl_per_dimension(model, observations: np.ndarray) -> np.ndarray | None:
    """Mean KL(q(z|x) || N(0, I)) of each latent dimension over ``observations``; None for
    a deterministic encoder."""
    from disbench.models.base import kl_per_dimension

    mean, log_var = model.encode(torch.as_tensor(observations, dtype=torch.float32))
    if log_var is None:
        return None
    return kl_per_dimension(mean, log_var).mean(0).double().numpy()


@torch.inference_mode()
def traversal_images(model, observation: np.ndarray, values: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images (D, len(values), C, H, W) of ``observation``'s mean code with each
    dimension set to each value in turn, and the mean code (D,)."""
    mean, _ = model.encode(torch.as_tensor(observation[None], dtype=torch.float32))
    latent_dim = mean.shape[1]
    codes = mean.repeat(latent_dim * len(values), 1).view(latent_dim, len(values), latent_dim)
    for d in range(latent_dim):
        codes[d, :, d] = torch.as_tensor(values, dtype=codes.dtype)
    images = torch.sigmoid(model.decode(codes.view(-1, latent_dim))).float().numpy()
    return images.reshape(latent_dim, len(values), *images.shape[1:]), mean[0].numpy()


def dimension_order(kl: np.ndarray | None, latent_dim: int) -> list[int]:
    """Dimensions by decreasing KL (ties and deterministic encoders: by index)."""
    if kl is None:
        return list(range(latent_dim))
    return sorted(range(latent_dim), key=lambda d: (-kl[d], d))


def _label(d: int, kl: np.ndarray | None) -> str:
    if kl is None:
        return f"z{d}"
    return f"z{d} KL {kl[d]:.2f}" + (" inactive" if kl[d] <= INACTIVE_KL else "")


def traversal_sheet(model, observation: np.ndarray, kl: np.ndarray | None, steps: int = 10,
                    limit: float = 2.0) -> np.ndarray:
    """The labelled traversal sheet (module doc) as an RGB uint8 array."""
    from PIL import Image, ImageDraw

    values = np.linspace(-limit, limit, steps)
    images, mean = traversal_images(model, observation, values)
    order = dimension_order(kl, images.shape[0])
    rgb = to_rgb(images.reshape(-1, *images.shape[2:]))
    cells = rgb.reshape(images.shape[0], steps, *rgb.shape[1:])
    h, w = cells.shape[2:4]
    label_width, header = 120, 14
    sheet = Image.new("RGB", (label_width + steps * (w + GAP) + GAP,
                              header + len(order) * (h + GAP) + GAP), GRID)
    draw = ImageDraw.Draw(sheet)
    draw.rectangle([0, 0, sheet.width, header - 1], fill=(255, 255, 255))
    draw.rectangle([0, 0, label_width - 1, sheet.height], fill=(255, 255, 255))
    draw.text((2, 1), f"value {-limit:g} .. {limit:g}; red: nearest the code", fill=(0, 0, 0))
    for row, d in enumerate(order):
        y = header + GAP + row * (h + GAP)
        draw.text((2, y + max(0, (h - 11) // 2)), _label(d, kl),
                  fill=(150, 150, 150) if kl is not None and kl[d] <= INACTIVE_KL else (0, 0, 0))
        nearest = int(np.abs(values - mean[d]).argmin())
        for col in range(steps):
            x = label_width + GAP + col * (w + GAP)
            sheet.paste(Image.fromarray(cells[d, col]), (x, y))
            if col == nearest:
                draw.rectangle([x - 1, y - 1, x + w, y + h], outline=FRAME, width=1)
    return np.asarray(sheet)


def traversal_animation(model, observation: np.ndarray, kl: np.ndarray | None,
                        steps: int = 10, limit: float = 2.0) -> list[np.ndarray]:
    """Frames (RGB uint8) of the animated traversal: the value goes from -limit to limit
    and back (2 * steps - 2 frames), one cell per dimension in KL order."""
    up = np.linspace(-limit, limit, steps)
    values = np.concatenate([up, up[-2:0:-1]])
    images, _ = traversal_images(model, observation, values)
    order = dimension_order(kl, images.shape[0])
    frames = []
    for t in range(len(values)):
        cells = to_rgb(images[order, t])
        n, h, w, _ = cells.shape
        frame = np.empty((h + 2 * GAP, n * (w + GAP) + GAP, 3), np.uint8)
        frame[:] = GRID
        for i, cell in enumerate(cells):
            frame[GAP:GAP + h, GAP + i * (w + GAP):GAP + i * (w + GAP) + w] = cell
        frames.append(frame)
    return frames


@torch.inference_mode()
def reconstruction_sheet(model, observations: np.ndarray) -> np.ndarray:
    """Observations (top row) above the decoded mean codes (bottom row), RGB uint8."""
    x = torch.as_tensor(observations, dtype=torch.float32)
    mean, _ = model.encode(x)
    rows = [to_rgb(observations), to_rgb(torch.sigmoid(model.decode(mean)).float().numpy())]
    n, h, w, _ = rows[0].shape
    sheet = np.empty((2 * (h + GAP) + GAP, n * (w + GAP) + GAP, 3), np.uint8)
    sheet[:] = GRID
    for r, row in enumerate(rows):
        for i, cell in enumerate(row):
            y, x0 = GAP + r * (h + GAP), GAP + i * (w + GAP)
            sheet[y:y + h, x0:x0 + w] = cell
    return sheet


def _write(path: Path, save) -> None:
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    save(tmp)
    tmp.replace(path)


def save_image(path: Path, image: np.ndarray) -> None:
    """An image array ((H, W) or (H, W, 3); floats in [0, 1] or uint8) as PNG, atomically."""
    from PIL import Image

    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    _write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def save_gif(path: Path, frames: list[np.ndarray], frame_ms: int = 100) -> None:
    """RGB uint8 frames as a looping GIF, atomically."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    _write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                            append_images=images[1:], duration=frame_ms,
                                            loop=0))


def save_pictures(model, observations: np.ndarray, traversal: Path, animation: Path,
                  reconstructions: Path) -> None:
    """A run's three pictures (module doc) from a sample of its observations: the first
    is traversed, the KL is averaged over all, the first eight are reconstructed."""
    kl = kl_per_dimension(model, observations)
    save_image(traversal, traversal_sheet(model, observations[0], kl))
    save_gif(animation, traversal_animation(model, observations[0], kl))
    save_image(reconstructions, reconstruction_sheet(model, observations[:8]))
