"""Ground-truth datasets: `load(name, **options)` returns a dataset implementing
`GroundTruthDataset` (see `base.py`); any user object with that protocol works
wherever disbench expects a dataset.

`data.name` is a registered name, an entry point of group `disbench.datasets`, or an
import path `package.module:function` to a loader `(data_dir, **options) -> dataset`
(see `disbench.plugins`)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

from disbench import plugins
from disbench.data.base import DatasetInfo, GridDataset, GroundTruthDataset
from disbench.errors import DisbenchError

__all__ = ["DatasetInfo", "GridDataset", "GroundTruthDataset", "default_data_dir", "info",
           "load", "names", "options", "register"]

_LOADERS: dict[str, Callable[..., GroundTruthDataset]] = {}
_INFOS: dict[str, DatasetInfo] = {}


def register(name: str, loader: Callable[..., GroundTruthDataset],
             info: DatasetInfo | None = None) -> None:
    """Make `load(name, data_dir=..., **options)` call `loader(data_dir, **options)`;
    `info` describes it to `disbench data list / info`."""
    _LOADERS[name] = loader
    if info is not None:
        _INFOS[name] = info


def names() -> list[str]:
    return sorted(_LOADERS)


def info(name: str) -> DatasetInfo | None:
    """The registered description of dataset `name`, if it has one."""
    _loader(name)
    return _INFOS.get(name)


def options(name: str) -> dict[str, object]:
    """The options `load(name, ...)` accepts, with their defaults."""
    return _defaults(_loader(name))


def _defaults(loader: Callable) -> dict[str, object]:
    params = list(inspect.signature(loader).parameters.values())[1:]  # after data_dir
    return {p.name: p.default for p in params}


def default_data_dir() -> Path:
    return Path(os.environ.get("DISBENCH_DATA") or Path.home() / ".cache" / "disbench")


def _loader(name: str) -> Callable[..., GroundTruthDataset]:
    return plugins.resolve("dataset", name, _LOADERS, callable,
                           "a loader function (data_dir, **options) -> dataset")


def load(name: str, data_dir: str | Path | None = None, **options) -> GroundTruthDataset:
    """Load dataset `name`, building its memory-mapped cache on first use."""
    loader = _loader(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        raise DisbenchError(f"the data directory {data_dir} is not a directory; set paths.data "
                            f"(or $DISBENCH_DATA) to a directory.")
    try:
        inspect.signature(loader).bind(data_dir, **options)
    except TypeError as err:
        raise DisbenchError(f"bad option for dataset '{name}': {err}; it accepts: "
                            f"{', '.join(_defaults(loader)) or 'no options'}") from None
    return loader(data_dir, **options)


def _register_builtin() -> None:
    from disbench.data import (
        cars3d,
        dsprites,
        dsprites_procedural,
        dsprites_variants,
        mpi3d,
        shapes3d,
        smallnorb,
        xysquares,
    )

    register("dsprites", dsprites.load_official, dsprites.INFO)
    register("dsprites_procedural", dsprites_procedural.load_procedural,
             dsprites_procedural.INFO)
    register("color_dsprites", dsprites_variants.load_color, dsprites_variants.COLOR_INFO)
    register("noisy_dsprites", dsprites_variants.load_noisy, dsprites_variants.NOISY_INFO)
    register("scream_dsprites", dsprites_variants.load_scream, dsprites_variants.SCREAM_INFO)
    register("shapes3d", shapes3d.load_shapes3d, shapes3d.INFO)
    register("smallnorb", smallnorb.load_smallnorb, smallnorb.INFO)
    register("cars3d", cars3d.load_cars3d, cars3d.INFO)
    for variant in mpi3d.VARIANTS:
        register(f"mpi3d_{variant}", mpi3d.LOADERS[variant], mpi3d.INFOS[variant])
    register("xysquares", xysquares.load_xysquares, xysquares.INFO)


_register_builtin()
