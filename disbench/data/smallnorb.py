"""SmallNORB (LeCun, Huang & Bottou 2004, "Learning methods for generic object
recognition with invariance to pose and lighting"), as disentanglement_lib uses it.

The release holds 96x96 stereo pairs of 5 categories x 10 object instances x 9
elevations x 18 azimuths x 6 lightings, split into a training file (instances 4,
6, 7, 8, 9) and a testing file (0, 1, 2, 3, 5). Like the reference, disbench
takes both files, the left image (camera 0) of each pair, resized to 64x64 with
PIL's Lanczos filter, and uses category, elevation, azimuth and lighting as the
factors: the instance is not a factor, and each observation shows one of the 10
instances at random (so `deterministic` is False). The cache holds all 48,600
images, instance last: training samples every image uniformly, which is the
reference's distribution (uniform factors, then a uniform instance).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.files import Remote, build_cache, candidates, open_cache, read_rows
from disbench.errors import DisbenchError

FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
FACTOR_SIZES = (5, 9, 18, 6)
INSTANCES = 10
CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
# SHA-256 of the gzipped release files, as published in tensorflow/datasets
# (url_checksums/smallnorb.txt).
CHECKSUMS = {
    "training-dat": "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873",
    "training-cat": "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa",
    "training-info": "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32",
    "testing-dat": "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474",
    "testing-cat": "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff",
    "testing-info": "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2",
}
KINDS = ("dat", "cat", "info")
SUBDIR = "small_norb"  # disentanglement_lib's folder name
CACHE = f"{SUBDIR}/smallnorb_uint8.npy"

# the binary matrix format's magic numbers (https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/)
DTYPES = {0x1E3D4C55: np.uint8, 0x1E3D4C54: np.int32, 0x1E3D4C56: np.int16,
          0x1E3D4C51: np.float32, 0x1E3D4C53: np.float64}


def _remote(chunk: str, kind: str) -> Remote:
    name = f"smallnorb-{chunk}-{kind}.mat.gz"
    split = chunk.rsplit("-", 1)[1]
    return Remote(URL + name, SUBDIR, name, "sha256:" + CHECKSUMS[f"{split}-{kind}"],
                  f"SmallNORB {split} {kind}")


REMOTES = tuple(_remote(chunk, kind) for chunk in CHUNKS for kind in KINDS)

INFO = DatasetInfo(
    "smallnorb", "SmallNORB (LeCun et al. 2004), camera 0 resized to 64x64; instance random",
    FACTOR_NAMES, FACTOR_SIZES, channels=1, source="official", remotes=REMOTES,
    subdirs=(SUBDIR,), ready=(CACHE,), instances=INSTANCES,
)


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_header(f, source) -> tuple[np.dtype, tuple[int, ...]]:
    """The NORB binary matrix header: int32 magic (the dtype), int32 ndim, then
    max(3, ndim) int32 dimensions; all little-endian."""
    try:
        head = f.read(8)
        magic, ndim = np.frombuffer(head, "<i4") if len(head) == 8 else (0, 0)
        if magic not in DTYPES or not 0 < ndim <= 16:
            raise ValueError("bad magic number")
        dims = np.frombuffer(f.read(4 * max(3, ndim)), "<i4")[:ndim]
    except (ValueError, OSError, EOFError) as err:
        raise DisbenchError(f"{source} is not a NORB binary matrix file ({err}).") from None
    return np.dtype(DTYPES[int(magic)]), tuple(int(d) for d in dims)


def read_matrix(path: Path) -> np.ndarray:
    with _open(path) as f:
        dtype, dims = read_header(f, path)
        return next(read_rows(f, dims[0], dims[1:], dtype, path, chunk=dims[0]))[1]


def resize(image: np.ndarray) -> np.ndarray:
    """96x96 -> 64x64 as the reference: its int8 view of the bytes makes PIL use 32-bit
    integer mode "I", where Lanczos overshoot is not clipped; disbench clips it to
    [0, 255] to store uint8, and is otherwise identical."""
    resized = Image.fromarray(image.astype(np.int32)).resize((64, 64), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0, 255).astype(np.uint8)


def _grid_index(cat: np.ndarray, info: np.ndarray, factor_sizes, instances, source):
    """Cache index of each image: grid (category, elevation, azimuth, lighting), instance last."""
    if cat.ndim != 1 or info.ndim != 2 or info.shape != (len(cat), 4):
        raise DisbenchError(f"{source}: labels of shape {cat.shape} and {info.shape}, "
                            f"expected (N,) and (N, 4): not the SmallNORB files.")
    instance, elevation, azimuth, lighting = info.T.astype(np.int64)
    try:  # azimuths are stored as 0, 2, ..., 34
        return np.ravel_multi_index((cat, elevation, azimuth // 2, lighting, instance),
                                    (*factor_sizes, instances))
    except ValueError:
        raise DisbenchError(f"{source}: labels out of range for SmallNORB's factor sizes "
                            f"{factor_sizes} x {instances} instances.") from None


def convert(chunks: list[tuple[Path, Path, Path]], cache: Path, factor_sizes=FACTOR_SIZES,
            instances: int = INSTANCES) -> np.ndarray:
    """Convert (dat, cat, info) file triples into the (N, 1, 64, 64) cache, N = grid x
    instances; every grid point and instance must appear exactly once over all files."""
    num = int(np.prod(factor_sizes)) * instances
    indices = []
    for dat, cat, info in chunks:
        indices.append(_grid_index(read_matrix(cat), read_matrix(info), factor_sizes,
                                   instances, dat.parent))
    if not np.array_equal(np.bincount(np.concatenate(indices), minlength=num), np.ones(num)):
        raise DisbenchError(f"{chunks[0][0].parent}: the SmallNORB files do not hold each "
                            f"factor combination and instance exactly once.")

    def fill(out: np.ndarray) -> None:
        for (dat, _, _), index in zip(chunks, indices):
            with _open(dat) as f:
                dtype, dims = read_header(f, dat)
                if dtype != np.uint8 or dims != (len(index), 2, 96, 96):
                    raise DisbenchError(f"{dat}: images are {dtype} {dims}, expected uint8 "
                                        f"({len(index)}, 2, 96, 96): not a SmallNORB file.")
                for start, block in read_rows(f, dims[0], dims[1:], dtype, dat, chunk=1024):
                    for i, pair in enumerate(block, start):
                        out[index[i], 0] = resize(pair[0])  # camera 0

    return build_cache(cache, (num, 1, 64, 64), fill)


def _locate(data_dir: Path, remote: Remote, verify: bool) -> Path:
    """The gzipped release file (verified), else an unzipped `.mat` as disentanglement_lib's
    download script leaves it (unverified: the digests are of the .gz), else download."""
    gz = [p for p in candidates(remote.filename, SUBDIR, data_dir) if p.is_file()]
    plain = [p for p in candidates(remote.filename[:-3], SUBDIR, data_dir) if p.is_file()]
    return plain[0] if plain and not gz else remote.fetch(data_dir, verify)


def load_smallnorb(data_dir: Path, verify: bool = True) -> GridDataset:
    """SmallNORB from the official files, looked up in the data directory, else downloaded."""
    num = int(np.prod(FACTOR_SIZES)) * INSTANCES
    images = open_cache(data_dir / CACHE, (num, 1, 64, 64))
    if images is None:
        files = [tuple(_locate(data_dir, _remote(chunk, kind), verify) for kind in KINDS)
                 for chunk in CHUNKS]
        images = convert(files, data_dir / CACHE, FACTOR_SIZES, INSTANCES)
    return GridDataset("smallnorb", FACTOR_NAMES, FACTOR_SIZES, images, source="official",
                       instances=INSTANCES)
