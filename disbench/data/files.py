"""Dataset files on disk: lookup, download with checksum, and atomic writes.

Downloads go to a temporary file beside the target, are checked against the
published digest and only then renamed into place, so a file at its final path
is always complete. Nothing from a downloaded file is ever unpickled.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from disbench.errors import DisbenchError

CHUNK = 1 << 20


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


def download(url: str, target: Path, checksum: str | None, what: str) -> Path:
    """Download `url` to `target` with a progress bar; verify; rename atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".part-{os.getpid()}")
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
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DisbenchError(f"could not download {what} from {url}: {err}") from None
    finally:
        partial.unlink(missing_ok=True)


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
    """Find `subdir/filename` under the data directory (or disentanglement_lib's
    $DISENTANGLEMENT_LIB_DATA), else download it there."""
    candidates = [data_dir / subdir / filename]
    if os.environ.get("DISENTANGLEMENT_LIB_DATA"):
        candidates.append(Path(os.environ["DISENTANGLEMENT_LIB_DATA"]) / subdir / filename)
    for path in candidates:
        if path.is_file():
            if verify_file and checksum:
                verify(path, checksum)
            return path
    try:
        return download(url, candidates[0], checksum if verify_file else None, what)
    except DisbenchError as err:
        looked = " and ".join(str(p) for p in candidates)
        raise DisbenchError(
            f"{what} is not on disk (looked at {looked}) and {err}. Download it yourself from "
            f"{url} and put it at {candidates[0]}" + (f"; or {alternative}" if alternative else "")
            + "."
        ) from None


def open_cache(path: Path) -> np.ndarray | None:
    """The cached uint8 image array at `path`, memory-mapped; None if absent."""
    if not path.is_file():
        return None
    return np.load(path, mmap_mode="r")


def build_cache(
    path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]
) -> np.ndarray:
    """Create the .npy cache at `path` by `fill(array)`, atomically; return it memory-mapped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".part-{os.getpid()}.npy")
    try:
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
        fill(array)
        array.flush()
        del array
        os.replace(partial, path)
    except OSError as err:
        raise DisbenchError(f"could not write the dataset cache {path}: {err}. Set "
                            f"paths.data (or $DISBENCH_DATA) to a writable directory.") from None
    finally:
        partial.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")
