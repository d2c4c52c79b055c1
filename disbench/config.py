"""Config helpers: composing the Hydra tree, and a run's identity.

A run is identified by a hash of the config keys that change its result (model
and hyperparameters, data and its source, architecture, training length and
optimiser, seed). Paths, study, launcher, logging, checkpoint cadence, device
and evaluation settings do not change what is trained, so they are left out:
`disbench eval` can score a stored run with other metric settings without
creating a new run (the settings used are recorded in metrics.json).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).parent / "conf"

# keys of a config group that do not change what is trained
NOT_IDENTITY = {
    "data": {"verify", "url", "checksum"},
    "trainer": {"checkpoint_every_n_steps", "log_every_n_steps", "accelerator",
                "progress_bar", "tensorboard"},
}
IDENTITY_GROUPS = ("model", "data", "arch", "trainer")


def identity(cfg: DictConfig | dict) -> dict:
    """The part of a resolved config that determines the trained model. Model
    hyperparameters are normalised by the model's signature (beta=1 == beta=1.0)."""
    from disbench import models

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out = {}
    for group in IDENTITY_GROUPS:
        out[group] = {k: v for k, v in cfg[group].items() if k not in NOT_IDENTITY.get(group, ())}
    _, hyper = models.check(out["model"])
    out["model"] = {"name": out["model"]["name"], **hyper}
    out["seed"] = int(cfg["seed"])
    return out


def run_id(cfg: DictConfig | dict) -> str:
    """`<model>-<data>-s<seed>-<hash>`: readable, and unique per identity."""
    ident = identity(cfg)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    return f"{ident['model']['name']}-{ident['data']['name']}-s{ident['seed']}-{digest}"


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The resolved config for `overrides`, as `disbench train` would see it."""
    with composer() as compose_one:
        return compose_one(overrides)


@contextmanager
def composer():
    """A function composing configs, for many composes under one Hydra initialisation."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda overrides=None: hydra_compose(config_name="config",
                                                   overrides=list(overrides or []))
