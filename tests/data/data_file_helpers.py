"""Helpers shared by the dataset tests (a module with a unique name: pytest puts every
test folder on sys.path, so `from conftest import ...` would find another folder's)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def write_jpeg(path: Path, width: int = 700, height: int = 548) -> None:
    """A stand-in for the Scream image: a smooth colour gradient, as JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(path, quality=95)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
