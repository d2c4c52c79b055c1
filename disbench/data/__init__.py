"""Ground-truth datasets: `load(name, **options)` returns a dataset implementing
`GroundTruthDataset` (see `base.py`); any user object with that protocol works
wherever disbench expects a dataset."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from disbench.data.base import GridDataset, GroundTruthDataset
from disbench.errors import DisbenchError

__all__ = ["GridDataset", "GroundTruthDataset", "default_data_dir", "load", "names", "register"]

_LOADERS: dict[str, Callable[..., GroundTruthDataset]] = {}


def register(name: str, loader: Callable[..., GroundTruthDataset]) -> None:
    """Make `load(name, data_dir=..., **options)` call `loader(data_dir, **options)`."""
    _LOADERS[name] = loader


def names() -> list[str]:
    return sorted(_LOADERS)


def default_data_dir() -> Path:
    return Path(os.environ.get("DISBENCH_DATA") or Path.home() / ".cache" / "disbench")


def load(name: str, data_dir: str | Path | None = None, **options) -> GroundTruthDataset:
    """Load dataset `name`, building its memory-mapped cache on first use."""
    if name not in _LOADERS:
        raise DisbenchError(f"unknown dataset '{name}'; valid names: {', '.join(names())}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    try:
        return _LOADERS[name](data_dir, **options)
    except TypeError as err:
        raise DisbenchError(f"bad option for dataset '{name}': {err}") from None


def _register_builtin() -> None:
    from disbench.data.dsprites import load_official
    from disbench.data.dsprites_procedural import load_procedural

    register("dsprites", load_official)
    register("dsprites_procedural", load_procedural)


_register_builtin()
