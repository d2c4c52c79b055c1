"""The ground-truth dataset protocol, and the grid dataset that implements it.

A ground-truth dataset is a full grid of factor combinations (dSprites: shape x
scale x orientation x posX x posY), one image per combination (or a few, of which
an observation shows one at random: SmallNORB's object instances), stored as one
uint8 array in the grid's row-major order. Metrics and training only need the
protocol below, so any user object with these members works wherever a dataset
is expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from disbench.data.files import Remote


@runtime_checkable
class GroundTruthDataset(Protocol):
    """What disbench needs from a dataset.

    Attributes:
        name: registry name, e.g. "dsprites".
        factor_names: one name per factor of variation.
        factor_sizes: number of values of each factor.
        observation_shape: (channels, height, width) of one observation.
        deterministic: True when an observation is a fixed function of its
            factors (then an encoder's output can be computed once per grid point).
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observation_shape: tuple[int, int, int]
    deterministic: bool

    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        """`num` factor combinations drawn uniformly: int array (num, K)."""
        ...

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Observations for given factors: float32 array (num, C, H, W) in [0, 1]."""
        ...


@dataclass(frozen=True)
class DatasetInfo:
    """What `disbench data list / info` show about a registered dataset, without loading it.

    `subdirs` are its folders under the data directory (for the size on disk);
    `ready` the paths that must exist to load it without downloading or converting.
    """

    name: str
    summary: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    channels: int
    source: str
    remotes: tuple[Remote, ...] = ()
    subdirs: tuple[str, ...] = ()
    ready: tuple[str, ...] = ()
    instances: int = 1

    @property
    def num_images(self) -> int:
        return int(np.prod(self.factor_sizes)) * self.instances


class GridDataset:
    """A ground-truth grid held as one uint8 array `images` of shape (N, C, H, W).

    `images[i]` shows the factor combination `np.unravel_index(i // instances,
    factor_sizes)`. With `instances` > 1 each combination has that many images
    (SmallNORB's object instances, not a factor) and an observation shows one of
    them at random. Subclasses with random observations (noise, colour) override
    `observe`, the one place where stored pixels become an observation; it runs on
    numpy for metrics and on torch tensors (any device) for training.
    """

    deterministic = True

    def __init__(
        self,
        name: str,
        factor_names: tuple[str, ...],
        factor_sizes: tuple[int, ...],
        images: np.ndarray,
        source: str,
        instances: int = 1,
    ):
        factor_sizes = tuple(int(s) for s in factor_sizes)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"{name}: images must be uint8 (N, C, H, W), got {images.dtype} "
                             f"{images.shape}")
        if images.shape[0] != int(np.prod(factor_sizes)) * instances:
            raise ValueError(f"{name}: {images.shape[0]} images for a grid of "
                             f"{int(np.prod(factor_sizes))} factor combinations {factor_sizes}"
                             + (f" x {instances} instances" if instances > 1 else ""))
        self.name = name
        self.factor_names = tuple(factor_names)
        self.factor_sizes = factor_sizes
        self.images = images
        self.source = source
        self.instances = instances
        if instances > 1:
            self.deterministic = False

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        factors = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes))
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {factors}, {self.source})"

    # -- index <-> factors -------------------------------------------------
    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Index in `images` of each factor combination (rows of `factors`); its first
        instance where there are several."""
        return np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes) \
            * self.instances

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """Factor combination (num, K) shown by each index of `images`."""
        index = np.asarray(index) // self.instances
        return np.stack(np.unravel_index(index, self.factor_sizes), axis=-1)

    # -- the protocol ------------------------------------------------------
    def sample_factors(self, num: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(size, size=num) for size in self.factor_sizes], axis=1)

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        index = self.index_of(factors)
        if self.instances > 1:
            index = index + rng.integers(self.instances, size=len(index))
        return self.observe(torch.from_numpy(self.images[index]), rng).numpy()

    def sample(self, num: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(num, rng)
        return factors, self.sample_observations_from_factors(factors, rng)

    def observe(self, pixels: torch.Tensor, rng: np.random.Generator | torch.Generator):
        """uint8 pixels (B, C, H, W) -> float32 observations in [0, 1]."""
        return pixels.float().div_(255.0)
