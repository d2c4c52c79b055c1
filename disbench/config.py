"""Config helpers: composing the Hydra tree, a run's identity, and the checks that refuse
a config that cannot work before anything is written (`check`, `check_overrides`).

A run is identified by a hash of the config keys that change its result (model
and hyperparameters, data and its source, architecture, training length and
optimiser, seed). Paths, study, launcher, logging, checkpoint cadence, device
and evaluation settings do not change what is trained, so they are left out:
`disbench eval` can score a stored run with other metric settings without
creating a new run (the settings used are recorded in metrics.json).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from disbench.errors import DisbenchError

CONF_DIR = Path(__file__).parent / "conf"

# keys of a config group that do not change what is trained
NOT_IDENTITY = {
    "data": {"verify", "url", "checksum"},
    "trainer": {"checkpoint_every_n_steps", "log_every_n_steps", "accelerator",
                "progress_bar", "logger", "threads",
                "tensorboard"},  # trainer.logger's predecessor, in configs stored before it
}
IDENTITY_GROUPS = ("model", "data", "arch", "trainer")
# keys added after runs were first stored, at the value that reproduces those runs: left
# out of the identity at that value, so that the stored runs keep their ids
IMPLICIT = {"arch": {"init": "torch"},
            "model": {"reconstruction": "bernoulli", "augment_radius": 31},
            "trainer": {"precision": 32}}


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
    for group, implicit in IMPLICIT.items():
        out[group] = {k: v for k, v in out[group].items()
                      if k not in implicit or v != implicit[k]}
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


# -- values that cannot work --------------------------------------------------------

TOP_LEVEL = ("model", "data", "arch", "trainer", "eval", "seed", "study", "paths")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# key: (test, what would be valid)
RULES = {
    "seed": (_is_int, "an integer"),
    "trainer.max_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "trainer.eps": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "trainer.betas": (lambda v: isinstance(v, list) and len(v) == 2
                      and all(_is_number(b) and 0 <= b < 1 for b in v),
                      "two numbers in [0, 1), e.g. [0.9,0.999]"),
    "trainer.checkpoint_every_n_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.log_every_n_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.threads": (lambda v: v is None or (_is_int(v) and v >= 1),
                        "an integer >= 1, or null for the CPUs this process may use"),
    "trainer.accelerator": (lambda v: v in ("auto", "cpu", "gpu", "cuda", "mps"),
                            "auto, cpu, gpu, cuda or mps"),
    "trainer.precision": (lambda v: v in (32, "bf16-mixed"),
                          "32 (the reference) or bf16-mixed"),
    "arch.latent_dim": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "arch.init": (lambda v: v in ("reference", "torch"), "reference or torch"),
}


def close_matches(key: str, valid) -> str:
    """` (did you mean a or b?)` for the valid names close to `key`, else ''."""
    near = difflib.get_close_matches(key, list(valid), n=3)
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def _allowed_keys(group: str, node: dict) -> list[str]:
    """The keys a group's config may hold: those of its shipped options (trainer, arch),
    the dataset loader's options (data)."""
    if group == "data":
        from disbench import data

        return ["name", *data.options(node.get("name"))]
    return _option_keys(group)


@functools.cache
def _option_keys(group: str) -> list[str]:
    keys: dict[str, None] = {}
    for option in sorted((CONF_DIR / group).glob("*.yaml")):
        keys.update(dict.fromkeys(k for k in OmegaConf.load(option) if k != "defaults"))
    return list(keys)


def _check_keys(cfg: dict) -> None:
    unknown = [k for k in cfg if k not in TOP_LEVEL]
    if unknown:
        key = unknown[0]
        raise DisbenchError(f"unknown config key '{key}'{close_matches(key, TOP_LEVEL)}; valid "
                            f"top-level keys: {', '.join(TOP_LEVEL)}")
    for group in ("trainer", "arch", "data"):
        allowed = _allowed_keys(group, cfg[group])
        for key in cfg[group]:
            if key not in allowed:
                raise DisbenchError(f"unknown key '{group}.{key}'{close_matches(key, allowed)}; "
                                    f"valid keys of {group}: {', '.join(allowed)}")


@functools.cache
def load_eval_preset(path: Path) -> dict:
    """An eval preset file, read once per process (a sweep's plan checks hundreds of
    settings), over the presets its Hydra ``defaults`` list names (``_self_`` last), as
    Hydra composes it."""
    preset = OmegaConf.load(path)
    merged = OmegaConf.create()
    for base in preset.pop("defaults", []):
        if base != "_self_":
            merged = OmegaConf.merge(merged, load_eval_preset(path.with_name(f"{base}.yaml")))
    return OmegaConf.to_container(OmegaConf.merge(merged, preset), resolve=True)


def _shipped_eval(name) -> dict | None:
    path = CONF_DIR / "eval" / f"{name}.yaml"
    return load_eval_preset(path) if path.is_file() else None


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def check(cfg: DictConfig | dict) -> None:
    """Refuse a config that cannot work, before anything is written: an unknown key
    (with the close matches), a value out of range (naming the key, the value and what
    would be valid), an unknown or negative model hyperparameter, unknown eval settings."""
    from disbench import models

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    _check_keys(cfg)
    for key, (test, valid) in RULES.items():
        value = _lookup(cfg, key)
        if not test(value):
            raise DisbenchError(f"{key}={value!r} cannot work: expected {valid}")
    models.check(cfg["model"])
    name = cfg["eval"].get("name")
    if name != "none":
        if cfg["eval"] != _shipped_eval(name):  # a shipped preset as shipped is valid (tested)
            from disbench.metrics.evaluate import resolve_settings  # imports scikit-learn

            resolve_settings(cfg["eval"])
    elif len(cfg["eval"]) > 1:
        key = next(k for k in cfg["eval"] if k != "name")
        raise DisbenchError(f"unknown key 'eval.{key}': eval=none computes no metrics and takes "
                            f"no settings; set them with eval=fast or eval=locatello")


def hydra_message(err: Exception, compose_without) -> str:
    """Hydra's multi-line composition error as one line that lists what would be valid;
    `compose_without(key)` composes the same overrides without the one setting `key`."""
    import re

    options = getattr(err, "options", None)
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", str(err))
    if options is not None and missing:
        group, name = missing.groups()
        return (f"unknown {group} '{name}'{close_matches(name, options)}; valid: "
                f"{', '.join(options)}")
    override = re.search(r"Could not override '(\w+)\.([^']+)'", str(err))
    if override:
        group, key = override.groups()
        try:
            valid = list(compose_without(f"{group}.{key}")[group])
        except Exception:  # noqa: BLE001 - the hint is best effort
            valid = []
        return (f"unknown key '{group}.{key}'{close_matches(key, valid)}; valid keys of {group}: "
                f"{', '.join(map(str, valid))}")
    return str(err).strip().splitlines()[0]


def _variants(overrides: list[str]) -> list[list[str]]:
    """The overrides with each multirun sweep (a,b / range) at each of its values in turn,
    the others at their first: every value is composed once."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:  # noqa: BLE001 - Hydra's parse errors
        raise DisbenchError(f"cannot read the overrides: {str(err).splitlines()[0]}") from None
    values = []
    for text, override in zip(overrides, parsed):
        try:
            sweep = list(override.sweep_string_iterator()) if override.is_sweep_override() \
                else None
        except Exception:  # noqa: BLE001 - glob() and interval sweeps are left to Hydra
            sweep = None
        prefix = text[:len(text) - len(text.lstrip("+~"))]
        values.append([f"{prefix}{override.key_or_group}={v}" for v in sweep] if sweep
                      else [text])
    first = [v[0] for v in values]
    out = [first]
    for i, options in enumerate(values):
        out += [[*first[:i], option, *first[i + 1:]] for option in options[1:]]
    return out


def check_overrides(overrides: list[str]) -> None:
    """What `disbench train OVERRIDES` (or `-m`) would compose, checked before Hydra runs:
    an unknown group option or key, or a value that cannot work, is one DisbenchError."""
    with composer() as compose_one:
        for variant in _variants(overrides):
            try:
                cfg = compose_one(variant)
            except Exception as err:  # noqa: BLE001 - Hydra's composition errors
                def without(key, variant=variant):
                    return compose_one([o for o in variant if o.split("=")[0] != key])

                raise DisbenchError(hydra_message(err, without)) from None
            check(cfg)
