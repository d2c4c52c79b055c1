"""Dataset files on disk: lookup, download with checksum, atomic writes, streaming reads.

Downloads go to a temporary file beside the target, are checked against the
published digest and only then renamed into place, so a file at its final path
is always complete. Nothing from a downloaded file is ever unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from disbench.errors import DisbenchError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """One official release file: its URL, published digest, and place under the data dir."""

    url: str
    subdir: str
    filename: str
    checksum: str | None  # "sha256:<hex>" or "md5:<hex>"; None where nothing is published
    what: str

    def fetch(self, data_dir: Path, verify_file: bool = True, alternative: str = "") -> Path:
        return find_or_download(self.filename, self.subdir, data_dir, self.url, self.checksum,
                                verify_file, self.what, alternative)


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, checksum: str) -> None:
    """Raise if `path` does not match `checksum` ("sha256:<hex>", "md5:<hex>", ...)."""
    algorithm, _, expected = checksum.partition(":")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DisbenchError(
            f"{path} is corrupt or not the expected file: its {algorithm} is {actual}, "
            f"expected {expected}. Delete it and download it again, or pass "
            f"data.verify=false to use it unchecked."
        )


def _writable_partial(target: Path) -> Path:
    """Create the target's directory and an empty partial file beside it, or say why not."""
    partial = target.with_name(target.name + f".part-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.touch()
    except OSError as err:
        raise DisbenchError(f"cannot write to the data directory {target.parent}: {err}. Set "
                            f"paths.data (or $DISBENCH_DATA) to a writable directory.") from None
    return partial


def download(url: str, target: Path, checksum: str | None, what: str) -> Path:
    """Download `url` to `target` with a progress bar; verify; rename atomically."""
    partial = _writable_partial(target)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {what}") as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
        if total is not None and partial.stat().st_size != total:
            raise DisbenchError(
                f"download of {what} from {url} was cut off: got {partial.stat().st_size} of "
                f"{total} bytes; the partial file was deleted. Try again."
            )
        if checksum:
            try:
                verify(partial, checksum)
            except DisbenchError:
                raise DisbenchError(
                    f"download of {what} from {url} failed its checksum ({checksum}); the "
                    f"partial file was deleted. The server may serve another version: "
                    f"check the URL, or set data.verify=false at your own risk."
                ) from None
        os.replace(partial, target)
        return target
    except http.client.IncompleteRead as err:
        raise DisbenchError(
            f"download of {what} from {url} was cut off: got {len(err.partial)} more bytes, "
            f"{err.expected} missing; the partial file was deleted. Try again.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        raise DisbenchError(f"could not download {what} from {url}: {err}") from None
    finally:
        partial.unlink(missing_ok=True)


def candidates(filename: str, subdir: str, data_dir: Path) -> list[Path]:
    """Where `subdir/filename` may already be: the data directory, then disentanglement_lib's
    $DISENTANGLEMENT_LIB_DATA."""
    paths = [data_dir / subdir / filename]
    if os.environ.get("DISENTANGLEMENT_LIB_DATA"):
        paths.append(Path(os.environ["DISENTANGLEMENT_LIB_DATA"]) / subdir / filename)
    return paths


def find_or_download(
    filename: str,
    subdir: str,
    data_dir: Path,
    url: str,
    checksum: str | None,
    verify_file: bool,
    what: str,
    alternative: str = "",
) -> Path:
    """Find `subdir/filename` (see `candidates`), else download it into the data directory."""
    paths = candidates(filename, subdir, data_dir)
    for path in paths:
        if path.is_file():
            if verify_file and checksum:
                verify(path, checksum)
            return path
    try:
        return download(url, paths[0], checksum if verify_file else None, what)
    except DisbenchError as err:
        looked = " and ".join(str(p) for p in paths)
        raise DisbenchError(
            f"{what} is not on disk (looked at {looked}) and {err}. Download it yourself from "
            f"{url} and put it at {paths[0]}" + (f"; or {alternative}" if alternative else "")
            + "."
        ) from None


# -- reading ----------------------------------------------------------------


def open_npz(npz: Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(npz)
    except (zipfile.BadZipFile, OSError) as err:
        raise DisbenchError(f"{npz} is not a readable npz file ({err}); delete it and download "
                            f"it again.") from None


def npy_member(archive: zipfile.ZipFile, member: str, what: str):
    """Open array `member` (e.g. "images.npy") of an npz for streaming: (file, shape, dtype).

    Reads only the header, so arrays larger than memory stream out in chunks, and
    never unpickles anything (object arrays are refused).
    """
    if member not in archive.namelist():
        raise DisbenchError(f"{archive.filename} has no '{member}' array: not the {what} file.")
    try:
        f = archive.open(member)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise DisbenchError(f"{archive.filename}: '{member}' is not a readable .npy array "
                            f"({err}).") from None
    if fortran or dtype.hasobject:
        raise DisbenchError(f"{archive.filename}: '{member}' is not a plain C-order array.")
    return f, tuple(shape), dtype


def read_rows(f: BinaryIO, num: int, row_shape: tuple[int, ...], dtype, source,
              chunk: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start, block) for `num` rows of `row_shape` read from `f` in chunks of rows.

    Raises a DisbenchError naming `source` if the stream ends early or cannot be read.
    """
    dtype = np.dtype(dtype)
    row_bytes = int(np.prod(row_shape)) * dtype.itemsize
    for start in range(0, num, chunk):
        n = min(chunk, num - start)
        try:
            data = f.read(n * row_bytes)
        except (OSError, EOFError, zipfile.BadZipFile) as err:  # CRC, zlib and gzip errors
            raise DisbenchError(f"{source} is corrupt ({err}); delete it and download it "
                                f"again.") from None
        if len(data) != n * row_bytes:
            raise DisbenchError(f"{source} ends early: the file is truncated; delete it and "
                                f"download it again.")
        yield start, np.frombuffer(data, dtype=dtype).reshape(n, *row_shape)


# -- the memory-mapped cache ---------------------------------------------------


def open_cache(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """The cached uint8 image array at `path`, memory-mapped; None if absent.

    With `shape`, a cache of any other shape (from another version) is an error.
    """
    if not path.is_file():
        return None
    try:
        images = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise DisbenchError(f"the dataset cache {path} is unreadable ({err}); delete it to "
                            f"rebuild it.") from None
    if images.dtype != np.uint8 or (shape is not None and images.shape != tuple(shape)):
        raise DisbenchError(f"the dataset cache {path} holds {images.dtype} {images.shape}, "
                            f"expected uint8 {shape}; delete it to rebuild it.")
    return images


def build_cache(
    path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]
) -> np.ndarray:
    """Create the .npy cache at `path` by `fill(array)`, atomically; return it memory-mapped."""
    partial = path.with_name(path.name + f".part-{os.getpid()}.npy")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
        fill(array)
        array.flush()
        del array
        os.replace(partial, path)
    except OSError as err:
        raise DisbenchError(f"could not write the dataset cache {path}: {err}. Set paths.data "
                            f"(or $DISBENCH_DATA) to a writable directory with "
                            f"{np.prod(shape) / 2**30:.1f} GiB free.") from None
    finally:
        with contextlib.suppress(OSError):  # absent, or never creatable
            partial.unlink()
    return np.load(path, mmap_mode="r")
