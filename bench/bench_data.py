"""Dataset benchmarks: cache build time and size, time to open a cache, and batch
sampling throughput on CPU; prints a markdown table.

The procedural datasets are rendered in full. The official ones are built from
synthetic files in the release formats: SmallNORB and Cars3D at full size, 3D
Shapes and MPI3D at `--scale` of their images (smaller grids), with the full-size
time extrapolated linearly. Everything goes to a temporary directory, removed
afterwards (~12 GB at the default scale).

    python bench/bench_data.py [--scale 0.1] [--batches 280] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch
from PIL import Image

from disbench import data
from disbench.data import cars3d, mpi3d, shapes3d, smallnorb
from disbench.data.files import open_cache

BATCH = 64
ROUNDS = 7


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def disk_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- synthetic release files ------------------------------------------------------

def write_shapes3d(path: Path, sizes) -> None:
    num = int(np.prod(sizes))
    labels = np.stack(np.unravel_index(np.arange(num), sizes), 1).astype(np.float64)
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:  # the release is gzip-compressed HDF5
        images = f.create_dataset("images", (num, 64, 64, 3), np.uint8, compression="gzip",
                                  chunks=(100, 64, 64, 3))
        for start in range(0, num, 4000):
            n = min(4000, num - start)
            block = np.full((n, 64, 64, 3), 90, np.uint8)
            block[:, 20:44, 20:44] = rng.integers(0, 256, (n, 1, 1, 3), dtype=np.uint8)
            images[start:start + n] = block
        f.create_dataset("labels", data=labels)


def write_matrix(path: Path, array: np.ndarray, magic: int) -> None:
    dims = list(array.shape) + [1] * (3 - array.ndim)
    with open(path, "wb") as f:
        f.write(np.array([magic, array.ndim, *dims], "<i4").tobytes())
        f.write(array.tobytes())


def write_smallnorb(folder: Path) -> list[tuple[Path, Path, Path]]:
    """Both files at full size, uncompressed (.mat as disentanglement_lib leaves them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    num = int(np.prod(smallnorb.FACTOR_SIZES))
    grid = np.stack(np.unravel_index(np.arange(num), smallnorb.FACTOR_SIZES), 1)
    chunks = []
    for chunk, instances in zip(smallnorb.CHUNKS, ((4, 6, 7, 8, 9), (0, 1, 2, 3, 5))):
        combos = np.concatenate([grid] * len(instances))
        instance = np.repeat(instances, num)
        paths = tuple(folder / f"smallnorb-{chunk}-{kind}.mat" for kind in smallnorb.KINDS)
        pairs = rng.integers(0, 256, (len(combos), 2, 96, 96), dtype=np.uint8)
        write_matrix(paths[0], pairs, 0x1E3D4C55)
        write_matrix(paths[1], combos[:, 0].astype(np.int32), 0x1E3D4C54)
        info = np.column_stack([instance, combos[:, 1], combos[:, 2] * 2, combos[:, 3]])
        write_matrix(paths[2], info.astype(np.int32), 0x1E3D4C54)
        chunks.append(paths)
    return chunks


def write_cars3d(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for obj in range(cars3d.FACTOR_SIZES[2]):
        im = rng.integers(0, 256, (128, 128, 3, 24, 4), dtype=np.uint8)
        paths.append(folder / f"car_{obj:03d}_mesh.mat")
        scipy.io.savemat(paths[-1], {"im": im})
    return paths


def write_mpi3d(path: Path, sizes) -> None:
    num = int(np.prod(sizes))
    images = np.random.default_rng(0).integers(0, 256, (num, 64, 64, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=images)


# -- measurements -----------------------------------------------------------------

def throughput(dataset, batches: int, rounds: int = ROUNDS) -> tuple[float, float]:
    """Training's data path on CPU: a torch view of the memory-mapped images, random
    batches of 64 by index, then `observe` with a torch generator, one thread.

    Returns images / s of wall time in the fastest of `rounds` rounds (as timeit
    reports), and images per CPU-second of this process over all rounds: other
    processes share the machine, and the CPU time is what they disturb least.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        images = torch.from_numpy(dataset.images)
    generator = torch.Generator().manual_seed(0)

    def batch():
        index = torch.randint(len(images), (BATCH,), generator=generator)
        return dataset.observe(images[index], generator)

    os.sync()  # a cache just written is still being flushed to disk, which slows reads
    for start in range(0, len(dataset.images), 8192):  # read once: the page cache is warm
        np.asarray(dataset.images[start:start + 8192]).max()
    for _ in range(20):
        batch()
    per_round = batches // rounds
    cpu = time.process_time()
    walls = [timed(lambda: [batch() for _ in range(per_round)])[1] for _ in range(rounds)]
    cpu = time.process_time() - cpu
    return per_round * BATCH / min(walls), rounds * per_round * BATCH / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--batches", type=int, default=280)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-data-", dir=args.workdir))
    rows = []

    def report(name, source, cache, build_s, scale, dataset, open_s):
        extrapolated = f"{build_s / scale:.0f}" if scale < 1 else ""
        built = f"{build_s:.1f}" if build_s else "(dSprites')"
        rows.append((name, source, f"{len(dataset.images):,}", built, extrapolated,
                     f"{disk_size(cache) / 2**30:.2f}", f"{open_s * 1000:.1f}",
                     *(f"{rate:,.0f}" for rate in throughput(dataset, args.batches))))
        print(" | ".join(rows[-1]), flush=True)

    try:
        # procedural: rendered in full by the loaders themselves
        for name in ("dsprites_procedural", "xysquares"):
            _, build_s = timed(lambda name=name: data.load(name, work))
            dataset, open_s = timed(lambda name=name: data.load(name, work))
            report(name, "procedural", work / data.info(name).ready[0], build_s, 1, dataset,
                   open_s)
        (work / "scream").mkdir()
        y, x = np.mgrid[0:548, 0:700]
        Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)).save(
            work / "scream" / "scream.jpg")
        for name in ("color_dsprites", "noisy_dsprites", "scream_dsprites"):
            dataset, open_s = timed(lambda name=name: data.load(name, work, source="procedural"))
            report(name, "derived (procedural)", work / data.info("dsprites_procedural").ready[0],
                   0, 1, dataset, open_s)

        # official formats from synthetic files
        sizes = list(shapes3d.FACTOR_SIZES)
        sizes[2] = max(1, round(sizes[2] * args.scale))
        write_shapes3d(work / "src" / "3dshapes.h5", sizes)
        cache = work / "shapes3d.npy"
        _, build_s = timed(lambda: shapes3d.convert_h5(work / "src" / "3dshapes.h5", cache,
                                                       sizes))
        images, open_s = timed(lambda: open_cache(cache))
        report("shapes3d", "official format", cache, build_s, sizes[2] / 10,
               data.GridDataset("shapes3d", shapes3d.FACTOR_NAMES, sizes, images, "bench"),
               open_s)

        chunks = write_smallnorb(work / "src" / "small_norb")
        cache = work / "smallnorb.npy"
        _, build_s = timed(lambda: smallnorb.convert(chunks, cache))
        images, open_s = timed(lambda: open_cache(cache))
        report("smallnorb", "official format", cache, build_s, 1, data.GridDataset(
            "smallnorb", smallnorb.FACTOR_NAMES, smallnorb.FACTOR_SIZES, images, "bench",
            instances=smallnorb.INSTANCES), open_s)

        mats = write_cars3d(work / "src" / "cars")
        cache = work / "cars3d.npy"
        _, build_s = timed(lambda: cars3d.convert(mats, cache))
        images, open_s = timed(lambda: open_cache(cache))
        report("cars3d", "official format", cache, build_s, 1, data.GridDataset(
            "cars3d", cars3d.FACTOR_NAMES, cars3d.FACTOR_SIZES, images, "bench"), open_s)

        sizes = list(mpi3d.FACTOR_SIZES)
        sizes[6] = max(1, round(sizes[6] * args.scale))
        write_mpi3d(work / "src" / "mpi3d.npz", sizes)
        cache = work / "mpi3d.npy"
        _, build_s = timed(lambda: mpi3d.convert_npz(work / "src" / "mpi3d.npz", cache, sizes))
        images, open_s = timed(lambda: open_cache(cache))
        report("mpi3d_*", "official format", cache, build_s, sizes[6] / 40, data.GridDataset(
            "mpi3d", mpi3d.FACTOR_NAMES, sizes, images, "bench"), open_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{platform.node()}: {os.cpu_count()} CPU cores, torch {torch.__version__}; "
          f"sampling on 1 thread: best of {ROUNDS} rounds of {args.batches // ROUNDS} batches "
          f"of {BATCH}\n")
    header = ("dataset", "source", "images", "build s", "full-size build s (est.)", "cache GiB",
              "open ms", "sampling images/s (wall)", "images per CPU-s")
    # open: memory-mapping the cache (+ reading the Scream JPEG)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
