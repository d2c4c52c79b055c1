"""Each official loader reads tiny files written in the exact release format: the
right pixels land at the right factors, and wrong files fail with one clear error."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from disbench import data
from disbench.data import cars3d, dsprites, mpi3d, shapes3d, smallnorb
from disbench.errors import DisbenchError


def grid(sizes) -> np.ndarray:
    n = int(np.prod(sizes))
    return np.stack(np.unravel_index(np.arange(n), sizes), axis=1)


# -- dSprites ---------------------------------------------------------------------

def write_dsprites_npz(path: Path, sizes) -> np.ndarray:
    """The release layout: imgs 0/1, latents_classes with the constant colour first, and
    a pickled metadata dict (which the loader must never unpickle)."""
    classes = grid(sizes)
    imgs = np.zeros((len(classes), 64, 64), np.uint8)
    for i, c in enumerate(classes):
        imgs[i, c[3], c[4]] = 1  # one pixel at (posX, posY)
    np.savez(path, imgs=imgs, latents_classes=np.column_stack([np.zeros(len(classes)), classes])
             .astype(np.int64), latents_values=classes.astype(np.float64),
             metadata=np.array({"latents_sizes": sizes}, dtype=object))
    return imgs


def test_dsprites_npz(tmp_path):
    sizes = (2, 1, 2, 3, 2)
    imgs = write_dsprites_npz(tmp_path / "d.npz", sizes)
    cache = dsprites.convert_npz(tmp_path / "d.npz", tmp_path / "c.npy", sizes)
    assert cache.shape == (24, 1, 64, 64)
    np.testing.assert_array_equal(cache[:, 0], imgs * 255)


# -- 3D Shapes --------------------------------------------------------------------

SHAPES_SIZES = (2, 2, 1, 2, 3, 2)


def write_shapes_h5(path: Path, sizes=SHAPES_SIZES, shuffle=False) -> np.ndarray:
    """keys `images` uint8 (N, 64, 64, 3) and `labels` float64 (N, 6) of factor values."""
    classes = grid(sizes)
    if shuffle:
        classes = classes[::-1]
    images = np.zeros((len(classes), 64, 64, 3), np.uint8)
    for i, c in enumerate(classes):
        images[i, 10 + c[0], 20 + c[4], 2] = 200  # a blue pixel placed by two factors
    values = classes * 0.1 + np.array([0, 0, 0, 0.75, 0, -30])
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=values.astype(np.float64))
    return images


def test_shapes3d_pixels_and_factors(data_dir, monkeypatch):
    path = data_dir / "3dshapes" / "3dshapes.h5"
    write_shapes_h5(path)
    monkeypatch.setattr(shapes3d, "FACTOR_SIZES", SHAPES_SIZES)
    monkeypatch.setattr(shapes3d, "REMOTE", shapes3d.REMOTE.__class__(
        "http://127.0.0.1:9/", "3dshapes", "3dshapes.h5", None, "3D Shapes"))
    ds = data.load("shapes3d")
    assert ds.images.shape == (48, 3, 64, 64) and ds.deterministic
    factors = np.array([[1, 0, 0, 1, 2, 1]])
    obs = ds.sample_observations_from_factors(factors, np.random.default_rng(0))
    assert obs.shape == (1, 3, 64, 64)
    assert obs[0, 2, 11, 22] == pytest.approx(200 / 255) and obs.sum() == pytest.approx(200 / 255)
    assert (data_dir / shapes3d.CACHE).is_file()
    assert isinstance(data.load("shapes3d").images, np.memmap)  # reopened from the cache


def test_shapes3d_rejects_wrong_files(data_dir, tmp_path, monkeypatch):
    path = data_dir / "3dshapes" / "3dshapes.h5"
    write_shapes_h5(path)
    # the real sizes: a file of the right name but another shape
    with pytest.raises(DisbenchError, match="another dataset's file"):
        data.load("shapes3d", verify=False)
    with pytest.raises(DisbenchError, match="corrupt or not the expected file"):
        data.load("shapes3d")  # verified against the published digest
    path.write_bytes(path.read_bytes()[:3000])  # truncated
    with pytest.raises(DisbenchError, match="not a readable HDF5 file"):
        data.load("shapes3d", verify=False)
    write_shapes_h5(path, shuffle=True)
    with pytest.raises(DisbenchError, match="not in the grid's row-major order"):
        shapes3d.convert_h5(path, tmp_path / "c.npy", SHAPES_SIZES)
    assert not (tmp_path / "c.npy").exists()


# -- SmallNORB --------------------------------------------------------------------

NORB_SIZES, NORB_INSTANCES = (2, 3, 2, 2), 2
MAGIC = {np.uint8: 0x1E3D4C55, np.int32: 0x1E3D4C54}


def write_matrix(path: Path, array: np.ndarray) -> None:
    """The NORB binary matrix format: magic, ndim, max(3, ndim) dims, little-endian data."""
    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = np.array([MAGIC[array.dtype.type], array.ndim, *dims], "<i4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(array.dtype.newbyteorder("<")).tobytes())


def norb_images(rng) -> np.ndarray:
    return rng.integers(0, 256, (96, 96)).astype(np.uint8)


def write_norb(folder: Path, rng, gz=(True, False)) -> dict:
    """Training (instance 1) and testing (instance 0) files in shuffled order; returns the
    camera-0 image of each (category, elevation, azimuth, lighting, instance)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for chunk, instance, zipped in zip(smallnorb.CHUNKS, (1, 0), gz):
        combos = grid(NORB_SIZES)[rng.permutation(int(np.prod(NORB_SIZES)))]
        pairs = np.zeros((len(combos), 2, 96, 96), np.uint8)
        for i, combo in enumerate(combos):
            pairs[i, 0] = norb_images(rng)
            pairs[i, 0, 30:60, 40:70] = 255  # a bright block: camera 0 only
            expected[(*combo, instance)] = pairs[i, 0]
        info = np.column_stack([np.full(len(combos), instance), combos[:, 1], combos[:, 2] * 2,
                                combos[:, 3]]).astype(np.int32)
        suffix = ".mat.gz" if zipped else ".mat"
        write_matrix(folder / f"smallnorb-{chunk}-dat{suffix}", pairs)
        write_matrix(folder / f"smallnorb-{chunk}-cat{suffix}", combos[:, 0].astype(np.int32))
        write_matrix(folder / f"smallnorb-{chunk}-info{suffix}", info)
    return expected


def reference_resize(image: np.ndarray) -> np.ndarray:
    """disentanglement_lib: int8 view -> PIL mode "I" -> Lanczos 64x64 (unclipped)."""
    pil = Image.fromarray(image.view(np.int8))
    return np.asarray(pil.resize((64, 64), Image.Resampling.LANCZOS))


def test_smallnorb_factors_instances_and_resize(data_dir, monkeypatch):
    rng = np.random.default_rng(0)
    expected = write_norb(data_dir / "small_norb", rng)
    monkeypatch.setattr(smallnorb, "FACTOR_SIZES", NORB_SIZES)
    monkeypatch.setattr(smallnorb, "INSTANCES", NORB_INSTANCES)
    ds = data.load("smallnorb", verify=False)  # tiny files: not the published digests
    assert ds.images.shape == (48, 1, 64, 64) and ds.instances == 2 and not ds.deterministic
    for (cat, elev, azim, light, inst), image in expected.items():
        index = ds.index_of(np.array([[cat, elev, azim, light]]))[0] + inst
        ref = reference_resize(image)
        np.testing.assert_array_equal(ds.images[index, 0], np.clip(ref, 0, 255))
        assert (ds.images[index, 0, 23:37, 30:44] == 255).all()  # the block, scaled by 2/3
        assert tuple(ds.factors_of(index)) == (cat, elev, azim, light)
    # an observation shows either instance of the given factors
    factors = np.array([[1, 2, 1, 0]] * 64)
    obs = ds.sample_observations_from_factors(factors, np.random.default_rng(1))
    first = ds.images[ds.index_of(factors[:1])[0], 0] / 255
    shown = {bool(np.allclose(o[0], first)) for o in obs}
    assert shown == {True, False}


def test_smallnorb_rejects_wrong_files(data_dir, monkeypatch):
    rng = np.random.default_rng(0)
    folder = data_dir / "small_norb"
    write_norb(folder, rng)
    monkeypatch.setattr(smallnorb, "FACTOR_SIZES", NORB_SIZES)
    monkeypatch.setattr(smallnorb, "INSTANCES", NORB_INSTANCES)
    with pytest.raises(DisbenchError, match="corrupt or not the expected file"):
        data.load("smallnorb")  # .gz files checked against the published digests
    cat = folder / f"smallnorb-{smallnorb.CHUNKS[1]}-cat.mat"
    cat.write_bytes(b"\x00" * 40)
    with pytest.raises(DisbenchError, match="not a NORB binary matrix"):
        data.load("smallnorb", verify=False)
    write_matrix(cat, np.zeros(24, np.int32))  # every label category 0: grid points repeat
    with pytest.raises(DisbenchError, match="exactly once"):
        data.load("smallnorb", verify=False)
    monkeypatch.setattr(smallnorb, "FACTOR_SIZES", (5, 9, 18, 6))  # the real sizes
    with pytest.raises(DisbenchError, match="exactly once"):
        data.load("smallnorb", verify=False)
    assert not (data_dir / smallnorb.CACHE).exists()


def test_smallnorb_truncated_images(tmp_path):
    write_norb(tmp_path, np.random.default_rng(0), gz=(True, True))
    dat = tmp_path / f"smallnorb-{smallnorb.CHUNKS[0]}-dat.mat.gz"
    dat.write_bytes(dat.read_bytes()[:5000])
    chunks = [tuple(tmp_path / f"smallnorb-{c}-{k}.mat.gz" for k in smallnorb.KINDS)
              for c in smallnorb.CHUNKS]
    with pytest.raises(DisbenchError, match="corrupt|truncated"):
        smallnorb.convert(chunks, tmp_path / "c.npy", NORB_SIZES, NORB_INSTANCES)
    assert not (tmp_path / "c.npy").exists()


# -- Cars3D -----------------------------------------------------------------------

CARS_SIZES = (2, 3, 4)  # elevation, azimuth, object


def car(obj: int) -> np.ndarray:
    """`im` of one car: (128, 128, 3, azimuths, elevations), a colour per (elev, azim, obj)
    and a white 16x16 square for elevation 1, azimuth 2."""
    elevations, azimuths, _ = CARS_SIZES
    im = np.zeros((128, 128, 3, azimuths, elevations), np.uint8)
    for e in range(elevations):
        for a in range(azimuths):
            im[:, :, :, a, e] = (40 * e + 1, 20 * a + 2, 30 * obj + 3)
    im[32:48, 64:80, :, 2, 1] = 255
    return im


def write_cars(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for obj in range(CARS_SIZES[2]):
        scipy.io.savemat(folder / f"car_{obj:03d}_mesh.mat", {"im": car(obj),
                                                              "mask": np.zeros((2, 2))})


def check_cars(ds) -> None:
    assert ds.images.shape == (24, 3, 64, 64)
    rng = np.random.default_rng(0)
    for e, a, o in grid(CARS_SIZES):
        obs = ds.sample_observations_from_factors(np.array([[e, a, o]]), rng)[0] * 255
        np.testing.assert_allclose(obs[:, 5, 5], (40 * e + 1, 20 * a + 2, 30 * o + 3), atol=1e-3)
        white = (e, a) == (1, 2)
        np.testing.assert_allclose(obs[:, 20, 36], 255 if white else obs[:, 5, 5], atol=1e-3)


def test_cars3d_from_mat_files(data_dir, monkeypatch):
    write_cars(data_dir / "cars")
    monkeypatch.setattr(cars3d, "FACTOR_SIZES", CARS_SIZES)
    ds = data.load("cars3d")
    check_cars(ds)
    # the reference's thumbnail, for an image with detail
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3)).astype(np.uint8)
    pil = Image.fromarray(image)
    pil.thumbnail((64, 64), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(cars3d.resize(image), np.asarray(pil))


def test_cars3d_downloads_and_unpacks_the_archive(data_dir, server, monkeypatch, tmp_path):
    write_cars(tmp_path / "data" / "cars")
    (tmp_path / "data" / "sprites").mkdir()
    (tmp_path / "data" / "sprites" / "sprite.mat").write_bytes(b"not cars")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "data", arcname="data")
    server.files["cars.tar.gz"] = buffer.getvalue()
    (tmp_path / "a.tgz").write_bytes(buffer.getvalue())
    from data_file_helpers import sha256

    monkeypatch.setattr(cars3d, "FACTOR_SIZES", CARS_SIZES)
    monkeypatch.setattr(cars3d, "REMOTE", cars3d.REMOTE.__class__(
        server.url + "cars.tar.gz", "cars", "nips2015-analogy-data.tar.gz",
        sha256(tmp_path / "a.tgz"), "the Cars3D archive"))
    check_cars(data.load("cars3d"))
    assert sorted(p.name for p in (data_dir / "cars").iterdir()) == \
        [f"car_{i:03d}_mesh.mat" for i in range(4)]  # cars only; the archive removed


def test_cars3d_rejects_wrong_files(data_dir, monkeypatch):
    write_cars(data_dir / "cars")
    with pytest.raises(DisbenchError, match="expected 183 Cars3D .mat files, found 4"):
        data.load("cars3d")
    monkeypatch.setattr(cars3d, "FACTOR_SIZES", CARS_SIZES)
    scipy.io.savemat(data_dir / "cars" / "car_001_mesh.mat", {"im": np.zeros((64, 64, 3))})
    with pytest.raises(DisbenchError, match="not a Cars3D file"):
        data.load("cars3d")
    (data_dir / "cars" / "car_001_mesh.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(DisbenchError, match="not a readable MATLAB file"):
        data.load("cars3d")
    assert not (data_dir / cars3d.CACHE).exists()


# -- MPI3D ------------------------------------------------------------------------

MPI_SIZES = (2, 1, 2, 1, 1, 2, 3)


def write_mpi3d(path: Path, compressed: bool) -> np.ndarray:
    images = np.zeros((int(np.prod(MPI_SIZES)), 64, 64, 3), np.uint8)
    for i, c in enumerate(grid(MPI_SIZES)):
        images[i, c[5], c[6], c[0]] = 100 + i  # channel by colour, place by the two axes
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, images=images)
    return images


@pytest.mark.parametrize("variant,compressed", [("toy", True), ("real", False)])
def test_mpi3d(data_dir, monkeypatch, variant, compressed):
    write_mpi3d(data_dir / f"mpi3d_{variant}" / f"mpi3d_{variant}.npz", compressed)
    monkeypatch.setattr(mpi3d, "FACTOR_SIZES", MPI_SIZES)
    ds = data.load(f"mpi3d_{variant}", verify=False)
    assert ds.name == f"mpi3d_{variant}" and ds.images.shape == (24, 3, 64, 64)
    for i, c in enumerate(grid(MPI_SIZES)):
        obs = ds.sample_observations_from_factors(c[None], np.random.default_rng(0))[0]
        assert obs[c[0], c[5], c[6]] * 255 == pytest.approx(100 + i)
        assert obs.sum() * 255 == pytest.approx(100 + i)


def test_mpi3d_rejects_wrong_files(data_dir, tmp_path):
    path = data_dir / "mpi3d_toy" / "mpi3d_toy.npz"
    write_mpi3d(path, compressed=False)
    with pytest.raises(DisbenchError, match="expected uint8 \\(1036800, 64, 64, 3\\)"):
        data.load("mpi3d_toy", verify=False)
    with pytest.raises(DisbenchError, match="corrupt or not the expected file"):
        data.load("mpi3d_toy")
    write_dsprites_npz(path, (1, 1, 1, 2, 2))  # another dataset's npz under this name
    with pytest.raises(DisbenchError, match="no 'images.npy' array: not the MPI3D file"):
        data.load("mpi3d_toy", verify=False)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DisbenchError, match="not a readable npz"):
        data.load("mpi3d_toy", verify=False)
