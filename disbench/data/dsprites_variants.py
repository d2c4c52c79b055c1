"""Color-, Noisy- and Scream-dSprites (Locatello et al. 2019, "Challenging common
assumptions in the unsupervised learning of disentangled representations").

dSprites (official or procedural, `data.source`) with a random transform drawn
each time an observation is made, as disentanglement_lib's dsprites.py does:

- Color: the sprite times a colour drawn from U(0.5, 1)^3 per image.
- Noisy: min(sprite + U(0, 1) noise per pixel and channel, 1).
- Scream: a random 64x64 patch of The Scream (fitted into 350x274) is the
  background, averaged with a colour from U(0, 1)^3: (patch + colour) / 2; the
  sprite's pixels show the inverted background, 1 - background.

The draws come from the generator passed to `observe`: a torch.Generator (on the
training device) or a numpy Generator (metrics). The reference draws per image
in the order crop, colour; disbench draws per batch, so streams differ but the
distributions are the same. Observations have 3 channels; `images` keeps the
1-channel dSprites pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from disbench.data import dsprites, dsprites_procedural
from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.dsprites import FACTOR_NAMES, FACTOR_SIZES
from disbench.data.files import Remote
from disbench.errors import DisbenchError

# disentanglement_lib's bin/dlib_download_data fetches this file. No digest of it is
# published (and Wikimedia may replace it), so it is used unverified.
SCREAM = Remote("https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg",
                "scream", "scream.jpg", None, "the Scream image")
SCREAM_BOX = (350, 274)
SOURCES = ("official", "procedural")


def uniform(rng, shape: tuple[int, ...], device, low: float = 0.0, high: float = 1.0
            ) -> torch.Tensor:
    """U(low, high) float32 values on `device`, from a torch or a numpy generator."""
    if isinstance(rng, torch.Generator):
        return torch.rand(shape, generator=rng, device=device).mul_(high - low).add_(low)
    return torch.from_numpy(rng.uniform(low, high, shape).astype(np.float32)).to(device)


def integers(rng, high: int, num: int, device) -> torch.Tensor:
    """`num` integers from [0, high) on `device`, from a torch or a numpy generator."""
    if isinstance(rng, torch.Generator):
        return torch.randint(high, (num,), generator=rng, device=device)
    return torch.from_numpy(rng.integers(high, size=num)).to(device)


class _DerivedDSprites(GridDataset):
    deterministic = False

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (3, 64, 64)


class ColorDSprites(_DerivedDSprites):
    def observe(self, pixels: torch.Tensor, rng) -> torch.Tensor:
        colour = uniform(rng, (len(pixels), 3, 1, 1), pixels.device, 0.5, 1.0)
        return pixels.float().div_(255.0) * colour


class NoisyDSprites(_DerivedDSprites):
    def observe(self, pixels: torch.Tensor, rng) -> torch.Tensor:
        noise = uniform(rng, (len(pixels), 3, *pixels.shape[2:]), pixels.device)
        return (pixels.float().div_(255.0) + noise).clamp_(max=1.0)


class ScreamDSprites(_DerivedDSprites):
    def __init__(self, *args, scream: np.ndarray, **kwargs):
        super().__init__(*args, **kwargs)
        self.scream = scream  # float32 (H, W, 3) in [0, 1]
        self._scream_on: dict[torch.device, torch.Tensor] = {}

    def observe(self, pixels: torch.Tensor, rng) -> torch.Tensor:
        device, n = pixels.device, len(pixels)
        if device not in self._scream_on:
            self._scream_on[device] = torch.from_numpy(self.scream).to(device)
        scream = self._scream_on[device]
        # the reference's randint(0, H - 64): the last offset is never drawn
        top = integers(rng, scream.shape[0] - 64, n, device)
        left = integers(rng, scream.shape[1] - 64, n, device)
        steps = torch.arange(64, device=device)
        rows = (top[:, None] + steps)[:, :, None]
        cols = (left[:, None] + steps)[:, None, :]
        patch = scream[rows, cols].permute(0, 3, 1, 2)  # (n, 3, 64, 64)
        background = (patch + uniform(rng, (n, 3, 1, 1), device)) / 2
        return torch.where(pixels == 255, 1 - background, background)


def _thumbnail_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The size PIL < 7 `thumbnail(box)` gives: fit inside box, keep aspect, round down."""
    x, y = size
    if x > box[0]:
        x, y = int(box[0]), int(max(y * box[0] / x, 1))
    if y > box[1]:
        x, y = int(max(x * box[1] / y, 1)), int(box[1])
    return x, y


def load_scream_image(path: Path) -> np.ndarray:
    """The Scream as the reference used it: float32 (H, W, 3) in [0, 1], 274 high.

    The reference ran `thumbnail((350, 274))` on PIL 5/6: a JPEG draft at the target
    size, then a bicubic resize. Pillow >= 7 thumbnails differently (reducing_gap),
    so the old steps are spelled out here.
    """
    try:
        with Image.open(path) as image:
            size = _thumbnail_size(image.size, SCREAM_BOX)
            if size != image.size:
                image.draft(None, size)
                image = image.resize(size, Image.Resampling.BICUBIC)
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DisbenchError(f"{path} is not a readable image ({err}); delete it and download "
                            f"it again from {SCREAM.url}.") from None
    if min(array.shape[:2]) <= 64:
        raise DisbenchError(f"{path}: the Scream image is {array.shape[1]}x{array.shape[0]} "
                            f"after fitting into 350x274; a 64x64 patch needs more.")
    return array


def _dsprites_images(data_dir: Path, source: str, verify: bool) -> np.ndarray:
    if source == "official":
        return dsprites.official_images(data_dir, verify)
    if source == "procedural":
        return dsprites_procedural.procedural_images(data_dir)
    raise DisbenchError(f"data.source must be one of {', '.join(SOURCES)}, got '{source}'")


def load_color(data_dir: Path, source: str = "official", verify: bool = True) -> ColorDSprites:
    """Color-dSprites over the official (default) or procedural dSprites."""
    images = _dsprites_images(data_dir, source, verify)
    return ColorDSprites("color_dsprites", FACTOR_NAMES, FACTOR_SIZES, images, source)


def load_noisy(data_dir: Path, source: str = "official", verify: bool = True) -> NoisyDSprites:
    """Noisy-dSprites over the official (default) or procedural dSprites."""
    images = _dsprites_images(data_dir, source, verify)
    return NoisyDSprites("noisy_dsprites", FACTOR_NAMES, FACTOR_SIZES, images, source)


def load_scream(data_dir: Path, source: str = "official", verify: bool = True) -> ScreamDSprites:
    """Scream-dSprites over the official (default) or procedural dSprites."""
    images = _dsprites_images(data_dir, source, verify)
    scream = load_scream_image(SCREAM.fetch(data_dir, verify))
    return ScreamDSprites("scream_dsprites", FACTOR_NAMES, FACTOR_SIZES, images, source,
                          scream=scream)


def _info(name: str, summary: str, scream: bool = False) -> DatasetInfo:
    remotes = dsprites.INFO.remotes + ((SCREAM,) if scream else ())
    return DatasetInfo(
        name, summary + " (Locatello et al. 2019); data.source=official|procedural",
        FACTOR_NAMES, FACTOR_SIZES, channels=3, source="official",
        remotes=remotes, subdirs=("dsprites",) + (("scream",) if scream else ()),
        ready=(dsprites.CACHE,) + (("scream/scream.jpg",) if scream else ()),
    )


COLOR_INFO = _info("color_dsprites", "dSprites times a random colour U(0.5,1)^3")
NOISY_INFO = _info("noisy_dsprites", "dSprites plus U(0,1) noise, clipped at 1")
SCREAM_INFO = _info("scream_dsprites", "dSprites on a random patch of The Scream",
                    scream=True)
