"""Downloads against a local HTTP server, checksums, atomic writes and the cache."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from disbench.data import files
from disbench.errors import DisbenchError

BODY = b"official release bytes " * 1000


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_download_good_file(server, tmp_path):
    server.files["a.bin"] = BODY
    target = tmp_path / "sub" / "a.bin"
    assert files.download(server.url + "a.bin", target, digest(BODY), "A") == target
    assert target.read_bytes() == BODY
    assert list(target.parent.iterdir()) == [target]  # no partial file left


def test_download_md5_checksum(server, tmp_path):
    server.files["a.bin"] = BODY
    md5 = "md5:" + hashlib.md5(BODY).hexdigest()
    assert files.download(server.url + "a.bin", tmp_path / "a.bin", md5, "A").is_file()


def test_download_wrong_checksum_deletes_partial(server, tmp_path):
    server.files["a.bin"] = BODY
    with pytest.raises(DisbenchError, match="failed its checksum.*partial file was deleted"):
        files.download(server.url + "a.bin", tmp_path / "a.bin", digest(b"other"), "A")
    assert list(tmp_path.iterdir()) == []


def test_download_cut_off(server, tmp_path):
    server.files["a.bin"] = BODY
    server.lengths["a.bin"] = 2 * len(BODY)
    with pytest.raises(DisbenchError, match="cut off.*partial file was deleted"):
        files.download(server.url + "a.bin", tmp_path / "a.bin", None, "A")
    assert list(tmp_path.iterdir()) == []


def test_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    url = "http://127.0.0.1:9/a.bin"  # discard port: nothing listens
    with pytest.raises(DisbenchError) as err:
        files.find_or_download("a.bin", "sub", tmp_path, url, None, True, "A")
    message = str(err.value)
    assert "could not download A" in message and url in message
    assert str(tmp_path / "sub" / "a.bin") in message
    assert not (tmp_path / "sub" / "a.bin").exists()


def test_unwritable_data_dir(server, tmp_path):
    server.files["a.bin"] = BODY
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DisbenchError, match="cannot write to the data directory"):
        files.download(server.url + "a.bin", blocker / "sub" / "a.bin", None, "A")


def test_found_file_is_verified(tmp_path, monkeypatch):
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    path = tmp_path / "sub" / "a.bin"
    path.parent.mkdir()
    path.write_bytes(BODY[:100])  # truncated
    with pytest.raises(DisbenchError, match="corrupt or not the expected file"):
        files.find_or_download("a.bin", "sub", tmp_path, "http://127.0.0.1:9/", digest(BODY),
                               True, "A")
    # unverified on request
    assert files.find_or_download("a.bin", "sub", tmp_path, "http://127.0.0.1:9/",
                                  digest(BODY), False, "A") == path


def test_disentanglement_lib_data_dir_is_searched(tmp_path, monkeypatch):
    dlib = tmp_path / "dlib"
    (dlib / "sub").mkdir(parents=True)
    (dlib / "sub" / "a.bin").write_bytes(BODY)
    monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(dlib))
    found = files.find_or_download("a.bin", "sub", tmp_path / "data", "http://127.0.0.1:9/",
                                   digest(BODY), True, "A")
    assert found == dlib / "sub" / "a.bin"


def test_build_cache_is_atomic(tmp_path):
    def fill(out):
        out[0] = 1
        raise DisbenchError("source ends early")

    with pytest.raises(DisbenchError, match="ends early"):
        files.build_cache(tmp_path / "c.npy", (2, 1, 2, 2), fill)
    assert list(tmp_path.iterdir()) == []
    cache = files.build_cache(tmp_path / "c.npy", (2, 1, 2, 2), lambda out: out.fill(7))
    assert isinstance(cache, np.memmap) and cache.sum() == 7 * 8
    assert files.open_cache(tmp_path / "c.npy", (2, 1, 2, 2)).shape == (2, 1, 2, 2)
    with pytest.raises(DisbenchError, match="delete it to rebuild"):
        files.open_cache(tmp_path / "c.npy", (3, 1, 2, 2))
    assert files.open_cache(tmp_path / "absent.npy") is None


def test_unwritable_cache_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DisbenchError, match="could not write the dataset cache"):
        files.build_cache(blocker / "c.npy", (1, 1, 2, 2), lambda out: None)


def test_npz_streaming_detects_truncation(tmp_path):
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    np.savez_compressed(tmp_path / "a.npz", images=images)
    with files.open_npz(tmp_path / "a.npz", "A") as archive:
        f, shape, dtype = files.npy_member(archive, "images.npy", "A")
        assert shape == (5, 4, 4) and dtype == np.uint8
        blocks = list(files.read_rows(f, 5, (4, 4), dtype, "a.npz", chunk=2))
    assert [start for start, _ in blocks] == [0, 2, 4]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), images)
    with files.open_npz(tmp_path / "a.npz", "A") as archive:
        f, _, _ = files.npy_member(archive, "images.npy", "A")
        with pytest.raises(DisbenchError, match="truncated"):
            list(files.read_rows(f, 6, (4, 4), dtype, "a.npz"))
        with pytest.raises(DisbenchError, match="no 'labels.npy' array: not the A file"):
            files.npy_member(archive, "labels.npy", "A")
    (tmp_path / "bad.npz").write_bytes(b"PK not really")
    with pytest.raises(DisbenchError, match="not a readable npz"):
        files.open_npz(tmp_path / "bad.npz", "A")
