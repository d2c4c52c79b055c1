"""MPI3D (Gondal et al. 2019, "On the transfer of inductive bias from simulation to
the real world: a new disentanglement dataset"): a robot arm moving an object, in
three renderings of the same grid, `toy`, `realistic` and `real`, each 1,036,800
RGB 64x64 images: object colour 6 x object shape 6 x object size 2 x camera height
3 x background colour 3 x horizontal axis 40 x vertical axis 40.

disentanglement_lib's mpi3d.py says colour 4 x shape 4 (460,800 images): that is
the earlier toy release its download script fetches (`sim_toy_64x_ordered_without_
heldout_factors.npz`); a file of that size is read with those sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.files import Remote, build_cache, npy_member, open_cache, open_npz, read_rows
from disbench.errors import DisbenchError

FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height",
                "background_color", "horizontal_axis", "vertical_axis")
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
EARLY_FACTOR_SIZES = (4, 4, 2, 3, 3, 40, 40)
VARIANTS = ("toy", "realistic", "real")
URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_{}.npz"
# MD5s of the release files as listed by nmichlo/disent (mpi3d data files, "full" hash);
# no SHA-256 is published.
CHECKSUMS = {"toy": "md5:55889cb7c7dfc655d6e0277beee88868",
             "realistic": "md5:59a6225b88b635365f70c91b3e52f70f",
             "real": "md5:0f33f609918fb5c97996692f91129802"}


def _remote(variant: str) -> Remote:
    return Remote(URL.format(variant), f"mpi3d_{variant}", f"mpi3d_{variant}.npz",
                  CHECKSUMS[variant], f"MPI3D-{variant}")


def _cache(variant: str) -> str:
    return f"mpi3d_{variant}/mpi3d_{variant}_uint8.npy"


def convert_npz(npz: Path, cache: Path, factor_sizes=FACTOR_SIZES) -> np.ndarray:
    """Stream `images` (N, 64, 64, 3) of a release npz into a (N, 3, 64, 64) cache."""
    num = int(np.prod(factor_sizes))
    with open_npz(npz, "MPI3D") as archive:
        f, shape, dtype = npy_member(archive, "images.npy", "MPI3D")
        if shape != (num, 64, 64, 3) or dtype != np.uint8:
            raise DisbenchError(f"{npz}: images is {dtype} {shape}, expected uint8 "
                                f"{(num, 64, 64, 3)}: another dataset's file?")

        def fill(out: np.ndarray) -> None:
            for start, block in read_rows(f, num, (64, 64, 3), np.uint8, npz):
                out[start:start + len(block)] = block.transpose(0, 3, 1, 2)

        return build_cache(cache, (num, 3, 64, 64), fill)


def _factor_sizes_of(npz: Path) -> tuple[int, ...]:
    """The release's sizes, or the early toy release's, by the number of images."""
    with open_npz(npz, "MPI3D") as archive:
        _, shape, _ = npy_member(archive, "images.npy", "MPI3D")
    early = int(np.prod(EARLY_FACTOR_SIZES))
    return EARLY_FACTOR_SIZES if shape[:1] == (early,) else FACTOR_SIZES


def load_mpi3d(data_dir: Path, variant: str, verify: bool = True) -> GridDataset:
    """One MPI3D variant from its official file, looked up in the data directory, else
    downloaded. The cache takes 12.7 GB."""
    cache = data_dir / _cache(variant)
    images = open_cache(cache)
    if images is None:
        npz = _remote(variant).fetch(data_dir, verify)
        images = convert_npz(npz, cache, _factor_sizes_of(npz))
    sizes = EARLY_FACTOR_SIZES if len(images) == np.prod(EARLY_FACTOR_SIZES) else FACTOR_SIZES
    if images.shape != (int(np.prod(sizes)), 3, 64, 64):
        raise DisbenchError(f"the dataset cache {cache} holds {images.shape}, not MPI3D "
                            f"images; delete it to rebuild it.")
    return GridDataset(f"mpi3d_{variant}", FACTOR_NAMES, sizes, images, source="official")


def _info(variant: str) -> DatasetInfo:
    return DatasetInfo(
        f"mpi3d_{variant}", f"MPI3D-{variant} (Gondal et al. 2019), official npz",
        FACTOR_NAMES, FACTOR_SIZES, channels=3, source="official", remotes=(_remote(variant),),
        subdirs=(f"mpi3d_{variant}",), ready=(_cache(variant),),
    )


def load_toy(data_dir: Path, verify: bool = True) -> GridDataset:
    return load_mpi3d(data_dir, "toy", verify)


def load_realistic(data_dir: Path, verify: bool = True) -> GridDataset:
    return load_mpi3d(data_dir, "realistic", verify)


def load_real(data_dir: Path, verify: bool = True) -> GridDataset:
    return load_mpi3d(data_dir, "real", verify)


LOADERS = {"toy": load_toy, "realistic": load_realistic, "real": load_real}
INFOS = {variant: _info(variant) for variant in VARIANTS}
