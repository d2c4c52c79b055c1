"""3D Shapes (Burgess & Kim 2018; Kim & Mnih 2018, "Disentangling by factorising"):
480,000 RGB 64x64 renders on the full grid floor hue 10 x wall hue 10 x object hue
10 x scale 8 x shape 4 x orientation 15, from the official `3dshapes.h5`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.files import Remote, build_cache, open_cache
from disbench.errors import DisbenchError

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
# SHA-256 published in tensorflow/datasets (url_checksums/shapes3d.txt); nmichlo/disent
# lists the same file's MD5 099a2078d58cec4daad0702c55d06868.
REMOTE = Remote("https://storage.googleapis.com/3d-shapes/3dshapes.h5", "3dshapes",
                "3dshapes.h5",
                "sha256:0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
                "3D Shapes")
CACHE = "3dshapes/shapes3d_uint8.npy"

INFO = DatasetInfo(
    "shapes3d", "3D Shapes (Kim & Mnih 2018), official 3dshapes.h5",
    FACTOR_NAMES, FACTOR_SIZES, channels=3, source="official",
    remotes=(REMOTE,), subdirs=("3dshapes",), ready=(CACHE,),
)


def label_classes(labels: np.ndarray, factor_sizes) -> np.ndarray:
    """The class index (rank among the distinct values) of each float label column."""
    classes = np.empty(labels.shape, dtype=np.int64)
    for k, size in enumerate(factor_sizes):
        # rounded: a value computed twice may differ in its last bits
        values, classes[:, k] = np.unique(np.round(labels[:, k], 6), return_inverse=True)
        if len(values) != size:
            raise ValueError(f"factor {k} has {len(values)} distinct values, expected {size}")
    return classes


def convert_h5(h5: Path, cache: Path, factor_sizes=FACTOR_SIZES) -> np.ndarray:
    """Stream `images` (N, 64, 64, 3) of the official file into a (N, 3, 64, 64) cache,
    after checking that `labels` follow the grid's row-major order."""
    import h5py

    num = int(np.prod(factor_sizes))
    try:
        file = h5py.File(h5, "r")
    except OSError as err:
        raise DisbenchError(f"{h5} is not a readable HDF5 file ({err}); delete it and "
                            f"download it again.") from None
    with file:
        if "images" not in file or "labels" not in file:
            raise DisbenchError(f"{h5} has no 'images' and 'labels': not the 3D Shapes file.")
        images, labels = file["images"], file["labels"]
        if images.shape != (num, 64, 64, 3) or images.dtype != np.uint8 \
                or labels.shape != (num, len(factor_sizes)):
            raise DisbenchError(
                f"{h5}: images {images.dtype} {images.shape} and labels {labels.shape}, "
                f"expected uint8 {(num, 64, 64, 3)} and {(num, len(factor_sizes))}: another "
                f"dataset's file under the 3D Shapes name?")
        try:
            grid = np.stack(np.unravel_index(np.arange(num), factor_sizes), axis=1)
            if not np.array_equal(label_classes(labels[:], factor_sizes), grid):
                raise ValueError("labels are not in the grid's row-major order")
        except (ValueError, OSError) as err:
            raise DisbenchError(f"{h5}: unexpected labels ({err}).") from None

        def fill(out: np.ndarray) -> None:
            chunk = 4096
            for start in range(0, num, chunk):
                try:
                    block = images[start:start + chunk]
                except OSError as err:
                    raise DisbenchError(f"{h5} is truncated or corrupt ({err}); delete it and "
                                        f"download it again.") from None
                out[start:start + len(block)] = block.transpose(0, 3, 1, 2)

        return build_cache(cache, (num, 3, 64, 64), fill)


def load_shapes3d(data_dir: Path, verify: bool = True) -> GridDataset:
    """3D Shapes from the official file, looked up in the data directory, else downloaded."""
    num = int(np.prod(FACTOR_SIZES))
    images = open_cache(data_dir / CACHE, (num, 3, 64, 64))
    if images is None:
        images = convert_h5(REMOTE.fetch(data_dir, verify), data_dir / CACHE, FACTOR_SIZES)
    return GridDataset("shapes3d", FACTOR_NAMES, FACTOR_SIZES, images, source="official")
