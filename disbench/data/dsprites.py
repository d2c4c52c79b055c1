"""dSprites (Matthey et al. 2017): 737,280 binary 64x64 sprites on a full grid of
shape 3 x scale 6 x orientation 40 x posX 32 x posY 32.

`load_official` reads the official release file; `load_procedural` (in
`dsprites_procedural`) renders the same grid offline. Both give a `GridDataset`
with pixels stored as 0 / 255.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from disbench.data.base import GridDataset
from disbench.data.files import build_cache, find_or_download, open_cache
from disbench.errors import DisbenchError

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = "https://github.com/google-deepmind/dsprites-dataset/raw/master/" + FILENAME
# The release publishes no SHA-256; this MD5 of the official file is the digest
# that other loaders agree on.
CHECKSUM = "md5:7da33b31b13a06f4b04a70402ce90c2e"


def _read_npy_member(archive: zipfile.ZipFile, member: str):
    """Open `member` (.npy inside the npz) for streaming: (file, shape, dtype).

    Reads only the header, never the pickled `metadata` entry.
    """
    if member not in archive.namelist():
        raise DisbenchError(f"{archive.filename} has no '{member}' array: not the dSprites file.")
    f = archive.open(member)
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(f)
    if fortran or dtype.hasobject:
        raise DisbenchError(f"{archive.filename}: '{member}' is not a plain C-order array.")
    return f, shape, dtype


def convert_npz(npz: Path, cache: Path, factor_sizes=FACTOR_SIZES) -> np.ndarray:
    """Stream `imgs` (0/1 uint8) of the official npz into a (N, 1, 64, 64) 0/255 cache,
    after checking that `latents_classes` follows the grid's row-major order."""
    num = int(np.prod(factor_sizes))
    try:
        archive = zipfile.ZipFile(npz)
    except (zipfile.BadZipFile, OSError) as err:
        raise DisbenchError(f"{npz} is not a readable npz file ({err}); delete it and download "
                            f"it again.") from None
    with archive:
        f, shape, dtype = _read_npy_member(archive, "latents_classes.npy")
        expected = (num, 1 + len(factor_sizes))
        if tuple(shape) != expected:
            raise DisbenchError(f"{npz}: latents_classes has shape {shape}, expected {expected} "
                                f"for dSprites: another dataset's file under the dSprites name?")
        classes = np.frombuffer(f.read(), dtype=dtype).reshape(shape)[:, 1:]
        grid = np.stack(np.unravel_index(np.arange(num), factor_sizes), axis=1)
        if not np.array_equal(classes, grid):
            raise DisbenchError(f"{npz}: latents_classes are not in dSprites' grid order.")
        f, shape, dtype = _read_npy_member(archive, "imgs.npy")
        if tuple(shape) != (num, 64, 64) or dtype != np.uint8:
            raise DisbenchError(f"{npz}: imgs is {dtype} {shape}, expected uint8 {(num, 64, 64)}.")

        def fill(out: np.ndarray) -> None:
            chunk = 8192
            for start in range(0, num, chunk):
                n = min(chunk, num - start)
                block = np.frombuffer(f.read(n * 64 * 64), dtype=np.uint8)
                if block.size != n * 64 * 64:
                    raise DisbenchError(f"{npz}: imgs ends early; the file is truncated.")
                out[start:start + n, 0] = block.reshape(n, 64, 64) * np.uint8(255)

        return build_cache(cache, (num, 1, 64, 64), fill)


def load_official(data_dir: Path, verify: bool = True, url: str = URL,
                  checksum: str = CHECKSUM) -> GridDataset:
    """dSprites from the official file, looked up in the data directory, else downloaded."""
    cache = data_dir / "dsprites" / "dsprites_official_uint8.npy"
    images = open_cache(cache)
    if images is None:
        npz = find_or_download(
            FILENAME, "dsprites", data_dir, url, checksum, verify, what="dSprites",
            alternative="train offline on the built-in renderer with data=dsprites_procedural",
        )
        images = convert_npz(npz, cache)
    return GridDataset("dsprites", FACTOR_NAMES, FACTOR_SIZES, images, source="official")
