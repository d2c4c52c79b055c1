"""dSprites: the official file format (on small files written here), the download
path against a local HTTP server, and the procedural renderer's grid."""

import hashlib
import http.server
import threading

import numpy as np
import pytest

from disbench import data
from disbench.data import dsprites
from disbench.errors import DisbenchError

SMALL = (2, 1, 2, 2, 2)  # shape, scale, orientation, posX, posY


def write_official_npz(path, factor_sizes=SMALL, marked=5, shuffle=False):
    """An npz laid out like the official release, with one pixel set in image `marked`."""
    n = int(np.prod(factor_sizes))
    imgs = np.zeros((n, 64, 64), dtype=np.uint8)
    imgs[marked, 10, 20] = 1
    classes = np.concatenate(
        [np.zeros((n, 1), np.int64),
         np.stack(np.unravel_index(np.arange(n), factor_sizes), 1).astype(np.int64)], axis=1)
    if shuffle:
        classes = classes[::-1].copy()
    metadata = np.array({"latents_sizes": np.array((1, *factor_sizes))}, dtype=object)
    np.savez_compressed(path, imgs=imgs, latents_classes=classes,
                        latents_values=classes.astype(np.float64), metadata=metadata)
    return path


def test_convert_reads_images_in_grid_order(tmp_path):
    npz = write_official_npz(tmp_path / dsprites.FILENAME)
    images = dsprites.convert_npz(npz, tmp_path / "cache.npy", factor_sizes=SMALL)
    assert images.shape == (16, 1, 64, 64) and images.dtype == np.uint8
    assert images[5, 0, 10, 20] == 255 and images.sum() == 255
    dataset = data.GridDataset("dsprites", dsprites.FACTOR_NAMES, SMALL, images, "official")
    # image 5 shows factors unravel(5) = (0, 0, 1, 0, 1)
    assert dataset.index_of(np.array([[0, 0, 1, 0, 1]]))[0] == 5
    obs = dataset.sample_observations_from_factors(np.array([[0, 0, 1, 0, 1]]), None)
    assert obs.dtype == np.float32 and obs[0, 0, 10, 20] == 1.0 and obs.sum() == 1.0


def test_wrong_factor_order_is_rejected(tmp_path):
    npz = write_official_npz(tmp_path / "d.npz", shuffle=True)
    with pytest.raises(DisbenchError, match="grid order"):
        dsprites.convert_npz(npz, tmp_path / "cache.npy", factor_sizes=SMALL)


def test_truncated_file_is_rejected(tmp_path):
    npz = write_official_npz(tmp_path / "d.npz")
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(DisbenchError, match="not a readable npz"):
        dsprites.convert_npz(npz, tmp_path / "cache.npy", factor_sizes=SMALL)
    assert not (tmp_path / "cache.npy").exists()


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_then_checks_the_shape(tmp_path, http_server):
    root, url = http_server
    served = write_official_npz(root / dsprites.FILENAME)
    digest = "sha256:" + hashlib.sha256(served.read_bytes()).hexdigest()
    data_dir = tmp_path / "data"
    # the small file downloads and verifies, then is refused as not the real grid
    with pytest.raises(DisbenchError, match="another dataset's file"):
        data.load("dsprites", data_dir=data_dir, url=f"{url}/{dsprites.FILENAME}",
                  checksum=digest)
    downloaded = data_dir / "dsprites" / dsprites.FILENAME
    assert downloaded.read_bytes() == served.read_bytes()
    assert not list(downloaded.parent.glob("*.part-*"))


def test_present_file_is_verified_unless_told_not_to(tmp_path):
    data_dir = tmp_path / "data"
    write_official_npz((data_dir / "dsprites").mkdir(parents=True) or
                       data_dir / "dsprites" / dsprites.FILENAME)
    with pytest.raises(DisbenchError, match="corrupt or not the expected file"):
        data.load("dsprites", data_dir=data_dir)
    with pytest.raises(DisbenchError, match="another dataset's file"):  # read, unchecked
        data.load("dsprites", data_dir=data_dir, verify=False)


def test_disentanglement_lib_data_layout_is_found(tmp_path, monkeypatch):
    lib = tmp_path / "dlib"
    (lib / "dsprites").mkdir(parents=True)
    write_official_npz(lib / "dsprites" / dsprites.FILENAME)
    monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(lib))
    with pytest.raises(DisbenchError, match="another dataset's file"):  # found, not downloaded
        data.load("dsprites", data_dir=tmp_path / "data", verify=False, url="http://127.0.0.1:9/")


def test_unknown_dataset_lists_the_names():
    with pytest.raises(DisbenchError, match="dsprites_procedural"):
        data.load("nosuch")


# -- the procedural renderer ------------------------------------------------
@pytest.fixture(scope="module")
def procedural(data_dir):
    return data.load("dsprites_procedural", data_dir=data_dir)


def image(ds, shape, scale, orientation, x, y):
    return ds.images[ds.index_of(np.array([[shape, scale, orientation, x, y]]))[0], 0]


def test_procedural_grid_is_the_dsprites_grid(procedural):
    assert len(procedural) == 737_280 and procedural.factor_sizes == (3, 6, 40, 32, 32)
    assert procedural.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert procedural.observation_shape == (1, 64, 64) and procedural.source == "procedural"
    assert set(np.unique(image(procedural, 2, 5, 7, 3, 9))) == {0, 255}


def test_procedural_positions_translate_the_sprite(procedural):
    base = image(procedural, 0, 3, 5, 10, 12)
    assert np.array_equal(image(procedural, 0, 3, 5, 11, 12), np.roll(base, 1, axis=1))
    assert np.array_equal(image(procedural, 0, 3, 5, 10, 13), np.roll(base, 1, axis=0))


def test_procedural_scale_shape_and_orientation(procedural):
    areas = [(image(procedural, 0, s, 0, 16, 16) > 0).sum() for s in range(6)]
    assert areas == sorted(areas) and areas[-1] > 3 * areas[0]  # area ~ scale^2
    # orientation 0 and 2 pi (first and last of the 40 values) are the same sprite
    assert np.array_equal(image(procedural, 1, 5, 0, 16, 16), image(procedural, 1, 5, 39, 16, 16))
    shapes = [image(procedural, s, 5, 0, 16, 16) for s in range(3)]
    assert not np.array_equal(shapes[0], shapes[1]) and not np.array_equal(shapes[1], shapes[2])
    # the sprite stays on the canvas at the extreme positions
    for x, y in [(0, 0), (31, 31)]:
        img = image(procedural, 0, 5, 5, x, y)
        assert img[0].sum() == img[-1].sum() == img[:, 0].sum() == img[:, -1].sum() == 0
