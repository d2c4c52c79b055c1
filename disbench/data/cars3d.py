"""Cars3D (Reed et al. 2015, "Deep visual analogy-making"): 183 car models rendered
at 4 elevations x 24 azimuths, 128x128 RGB, from the release's per-car `.mat` files
(`cars/*.mat`, key `im` of shape (128, 128, 3, 24 azimuths, 4 elevations)), resized
to 64x64 as disentanglement_lib's cars3d.py does. Factors: elevation 4, azimuth
24, object 183 (the .mat files in sorted name order; the reference used the
directory listing's order, which only relabels this categorical factor).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from disbench.data.base import DatasetInfo, GridDataset
from disbench.data.files import Remote, build_cache, candidates, open_cache
from disbench.errors import DisbenchError

FACTOR_NAMES = ("elevation", "azimuth", "object")
FACTOR_SIZES = (4, 24, 183)
SUBDIR = "cars"  # disentanglement_lib's folder name
# The archive's MD5 as listed by nmichlo/disent (cars3d data file, "full" hash); no
# SHA-256 is published.
REMOTE = Remote("http://www.scottreed.info/files/nips2015-analogy-data.tar.gz", SUBDIR,
                "nips2015-analogy-data.tar.gz", "md5:4e866a7919c1beedf53964e6f7a23686",
                "the Cars3D archive")
CACHE = "cars3d/cars3d_uint8.npy"

INFO = DatasetInfo(
    "cars3d", "Cars3D (Reed et al. 2015), per-car .mat files resized to 64x64",
    FACTOR_NAMES, FACTOR_SIZES, channels=3, source="official",
    remotes=(REMOTE,), subdirs=(SUBDIR, "cars3d"), ready=(CACHE,),
)


def resize(image: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 -> (64, 64, 3). The reference's `thumbnail((64, 64), ANTIALIAS)` of
    a square image is this Lanczos resize (for 128 -> 64 Pillow's reducing_gap does not
    apply either)."""
    return np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))


def read_mat(path: Path, factor_sizes) -> np.ndarray:
    """The `im` array of one car, checked: uint8 (S, S, 3, azimuths, elevations)."""
    from scipy.io import loadmat

    try:
        im = loadmat(path, variable_names=["im"]).get("im")
    except Exception as err:  # scipy raises assorted types for non-MATLAB files
        raise DisbenchError(f"{path} is not a readable MATLAB file ({type(err).__name__}: "
                            f"{err}); delete it and extract it again.") from None
    elevations, azimuths = factor_sizes[:2]
    if im is None or im.dtype != np.uint8 or im.ndim != 5 or im.shape[0] != im.shape[1] \
            or im.shape[2:] != (3, azimuths, elevations):
        got = "no 'im'" if im is None else f"'im' {im.dtype} {im.shape}"
        raise DisbenchError(f"{path}: {got}, expected uint8 (S, S, 3, {azimuths}, "
                            f"{elevations}): not a Cars3D file.")
    return im


def convert(mat_files: list[Path], cache: Path, factor_sizes=FACTOR_SIZES) -> np.ndarray:
    """Resize every car's images into the (N, 3, 64, 64) cache, grid (elevation, azimuth,
    object); `mat_files` gives the objects in order."""
    if len(mat_files) != factor_sizes[2]:
        raise DisbenchError(f"expected {factor_sizes[2]} Cars3D .mat files, found "
                            f"{len(mat_files)}" + (f" in {mat_files[0].parent}" if mat_files
                                                   else "") + ".")

    def fill(out: np.ndarray) -> None:
        grid = out.reshape(*factor_sizes, 3, 64, 64)
        for obj, path in enumerate(mat_files):
            im = read_mat(path, factor_sizes)
            for elevation in range(factor_sizes[0]):
                for azimuth in range(factor_sizes[1]):
                    image = resize(im[:, :, :, azimuth, elevation])
                    grid[elevation, azimuth, obj] = image.transpose(2, 0, 1)

    return build_cache(cache, (int(np.prod(factor_sizes)), 3, 64, 64), fill)


def extract_cars(archive: Path, target: Path) -> None:
    """Unpack only `data/cars/*.mat` of the release archive into `target`, atomically."""
    partial = target.with_name(target.name + f".part-{os.getpid()}")
    try:
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = Path(member.name)
                if member.isfile() and name.parent.name == "cars" and name.suffix == ".mat":
                    with tar.extractfile(member) as src, open(partial / name.name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if not any(partial.glob("*.mat")):
            raise DisbenchError(f"{archive} holds no data/cars/*.mat: not the Cars3D archive.")
        for path in partial.iterdir():
            os.replace(path, target / path.name)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DisbenchError(f"could not unpack {archive} ({err}); delete it and download it "
                            f"again.") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def find_mat_files(data_dir: Path, verify: bool = True) -> list[Path]:
    """The per-car .mat files in `cars/` (data dir or $DISENTANGLEMENT_LIB_DATA), sorted;
    else the release archive is downloaded and unpacked into the data directory."""
    for folder in candidates("", SUBDIR, data_dir):
        mats = sorted(folder.glob("*.mat"))
        if mats:
            return mats
    archive = REMOTE.fetch(data_dir, verify)
    extract_cars(archive, data_dir / SUBDIR)
    if archive.parent == data_dir / SUBDIR:  # ours, not disentanglement_lib's
        archive.unlink()
    return sorted((data_dir / SUBDIR).glob("*.mat"))


def load_cars3d(data_dir: Path, verify: bool = True) -> GridDataset:
    """Cars3D from the official .mat files, looked up in the data directory, else downloaded."""
    images = open_cache(data_dir / CACHE, (int(np.prod(FACTOR_SIZES)), 3, 64, 64))
    if images is None:
        images = convert(find_mat_files(data_dir, verify), data_dir / CACHE, FACTOR_SIZES)
    return GridDataset("cars3d", FACTOR_NAMES, FACTOR_SIZES, images, source="official")
