"""dSprites (Matthey et al. 2017): 737,280 binary 64x64 sprites on a full grid of
shape 3 x scale 6 x orientation 40 x posX 32 x posY 32.

`load_official` reads the official release file; `load_procedural` (in
`dsprites_procedural`) renders the same grid offline. Both give a `GridDataset`
with pixels stored as 0 / 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.files import Remote, build_cache, npy_member, open_cache, open_npz, read_rows
from disbench.errors import DisbenchError

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = "https://github.com/google-deepmind/dsprites-dataset/raw/master/" + FILENAME
# The release publishes no SHA-256; this MD5 of the official file is the digest
# that other loaders agree on.
CHECKSUM = "md5:7da33b31b13a06f4b04a70402ce90c2e"
CACHE = "dsprites/dsprites_official_uint8.npy"

INFO = DatasetInfo(
    "dsprites", "dSprites (Matthey et al. 2017), official release file",
    FACTOR_NAMES, FACTOR_SIZES, channels=1, source="official",
    remotes=(Remote(URL, "dsprites", FILENAME, CHECKSUM, "dSprites"),),
    subdirs=("dsprites",), ready=(CACHE,),
)


def convert_npz(npz: Path, cache: Path, factor_sizes=FACTOR_SIZES) -> np.ndarray:
    """Stream `imgs` (0/1 uint8) of the official npz into a (N, 1, 64, 64) 0/255 cache,
    after checking that `latents_classes` follows the grid's row-major order."""
    num = int(np.prod(factor_sizes))
    with open_npz(npz, "dSprites") as archive:
        f, shape, dtype = npy_member(archive, "latents_classes.npy", "dSprites")
        expected = (num, 1 + len(factor_sizes))
        if shape != expected:
            raise DisbenchError(f"{npz}: latents_classes has shape {shape}, expected {expected} "
                                f"for dSprites: another dataset's file under the dSprites name?")
        _, classes = next(read_rows(f, num, shape[1:], dtype, npz, chunk=num))
        grid = np.stack(np.unravel_index(np.arange(num), factor_sizes), axis=1)
        if not np.array_equal(classes[:, 1:], grid):
            raise DisbenchError(f"{npz}: latents_classes are not in dSprites' grid order.")
        f, shape, dtype = npy_member(archive, "imgs.npy", "dSprites")
        if shape != (num, 64, 64) or dtype != np.uint8:
            raise DisbenchError(f"{npz}: imgs is {dtype} {shape}, expected uint8 {(num, 64, 64)}.")

        def fill(out: np.ndarray) -> None:
            for start, block in read_rows(f, num, (64, 64), np.uint8, npz, chunk=8192):
                out[start:start + len(block), 0] = block * np.uint8(255)

        return build_cache(cache, (num, 1, 64, 64), fill)


def official_images(data_dir: Path, verify: bool = True, url: str = URL,
                    checksum: str = CHECKSUM) -> np.ndarray:
    """The official dSprites pixels (N, 1, 64, 64), from the cache or converted on first use."""
    cache = data_dir / CACHE
    images = open_cache(cache, (int(np.prod(FACTOR_SIZES)), 1, 64, 64))
    if images is None:
        remote = Remote(url, "dsprites", FILENAME, checksum, "dSprites")
        npz = remote.fetch(data_dir, verify, alternative="train offline on the built-in "
                           "renderer with data=dsprites_procedural (or data.source=procedural)")
        images = convert_npz(npz, cache)
    return images


def load_official(data_dir: Path, verify: bool = True, url: str = URL,
                  checksum: str = CHECKSUM) -> GridDataset:
    """dSprites from the official file, looked up in the data directory, else downloaded."""
    images = official_images(data_dir, verify, url, checksum)
    return GridDataset("dsprites", FACTOR_NAMES, FACTOR_SIZES, images, source="official")
