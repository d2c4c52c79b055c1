"""Sweep specs: a study name plus a union of blocks, each block a grid.

    study: locatello2019
    grid:                     # crossed with every block
      data: [dsprites, shapes3d]
      seed: range(0, 50)      # or a list; range(a, b) is a..b-1
    blocks:
      - model: betavae
        model.beta: [1, 2, 4]
      - model: factorvae
        model.gamma: [10, 20]
    overrides: [trainer=quick]  # applied to every run (the command line's come after)

The command line wins over the spec: a key it sets replaces the spec's values of that
key, and a config group it chooses (`trainer=quick`) replaces the spec's values of the
keys inside that group as well (a block's `trainer.max_steps`).

A run is the list of Hydra overrides that `disbench train` would take. Planning
composes the Hydra config once per distinct choice of config groups and applies
the other values to a plain copy, so a 12,600-run plan takes seconds; the
worker composes the same overrides with Hydra, which gives the same run id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from disbench import config, models, store
from disbench.errors import DisbenchError
from disbench.train import trackers

SWEEPS_DIR = Path(__file__).resolve().parents[1] / "sweeps"
GROUPS = ("model", "data", "arch", "trainer", "eval")
_RANGE = re.compile(r"^range\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)$")


@dataclass(frozen=True)
class PlannedRun:
    overrides: tuple[str, ...]
    run_id: str
    model: str
    data: str
    run_dir: store.RunDir
    # runs with the same key may train as one pack (launcher.pack); None: solo only
    pack_key: str | None = None
    accelerator: str = "auto"
    deferred: bool = False  # eval.defer: scored later by `disbench eval`


def pack_key(cfg: dict) -> str | None:
    """What the runs of one pack share: the whole config but the seed and the
    hyperparameters the objective declares packable; None if it is not packable, or if
    the run logs to a tracker (`trainer.logger`: one tracker run per training process)."""
    names = models.packable(models.resolve(cfg["model"]["name"]))
    if names is None or set(trackers.requested(cfg.get("trainer", {}))) - {"none"}:
        return None
    shared = {**cfg, "seed": None,
              "model": {k: v for k, v in cfg["model"].items() if k not in names}}
    return hashlib.sha1(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()


def packs(runs: list[PlannedRun], size: int) -> list[list[PlannedRun]]:
    """The sweep's tasks: runs with one pack key in groups of up to `size`, in plan order
    (a group starts where its first run is); runs that cannot be packed alone."""
    open_groups: dict[str, list[PlannedRun]] = {}
    tasks: list[list[PlannedRun]] = []
    for run in runs:
        if size == 1 or run.pack_key is None:
            tasks.append([run])
            continue
        group = open_groups.get(run.pack_key)
        if group is None or len(group) == size:
            group = open_groups[run.pack_key] = []
            tasks.append(group)
        group.append(run)
    return tasks


def spec_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = SWEEPS_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
    raise DisbenchError(f"no sweep '{name_or_path}': not a .yaml file, nor one of the shipped "
                        f"sweeps ({', '.join(names)})")


def _values(key: str, value, where: str) -> list:
    if isinstance(value, str) and (m := _RANGE.match(value)):
        value = list(range(int(m.group(1)), int(m.group(2))))
    values = value if isinstance(value, list) else [value]
    if not values:
        raise DisbenchError(f"{where}: '{key}' has an empty list of values: the grid is empty")
    return values


def load_spec(path: Path) -> dict:
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DisbenchError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("study"), str):
        raise DisbenchError(f"{path}: a sweep spec is a mapping with a 'study' name and 'blocks'")
    unknown = set(spec) - {"study", "grid", "blocks", "overrides"}
    if unknown:
        raise DisbenchError(f"{path}: unknown top-level keys {sorted(unknown)}; valid: study, "
                            f"grid, blocks, overrides")
    blocks = spec.get("blocks") or [{}]
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise DisbenchError(f"{path}: 'blocks' must be a list of mappings (key: values)")
    return spec


def expand(spec: dict, where: str = "sweep") -> list[dict]:
    """Every run of the spec as an ordered {key: value} mapping."""
    runs = []
    for i, block in enumerate(spec.get("blocks") or [{}]):
        axes = {**(spec.get("grid") or {}), **block}
        keys = list(axes)
        lists = [_values(k, axes[k], f"{where}, block {i + 1}") for k in keys]
        runs.extend(dict(zip(keys, combo)) for combo in itertools.product(*lists))
    return runs


def _format(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


def _has_dotted(cfg: dict, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _set_dotted(cfg: dict, key: str, value, where: str) -> dict:
    """A copy of `cfg` with `key` set; only the dicts on the key's path are copied."""
    *parents, leaf = key.split(".")
    out = dict(cfg)
    node = out
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise DisbenchError(f"{where}: unknown key '{key}'")
        node[part] = dict(node[part])
        node = node[part]
    if leaf not in node and not (parents and parents[0] == "model"):
        raise DisbenchError(f"{where}: unknown key '{key}'")
    node[leaf] = value
    return out


class _GroupComposer:
    """Composed configs per choice of config groups. Each group option is composed
    once on its own and combined with the others when it only changes its own group
    (true of disbench's shipped options); otherwise the combination is composed whole."""

    def __init__(self, compose, base_overrides: list[str], where: str):
        self.compose, self.base_overrides, self.where = compose, base_overrides, where
        self.base = self._compose(())
        self.single: dict[str, dict | None] = {}
        self.combined: dict[tuple, dict] = {}

    def _compose(self, groups: tuple[str, ...]) -> dict:
        overrides = [*groups, *self.base_overrides]
        try:
            cfg = self.compose(overrides)
        except Exception as err:  # noqa: BLE001 - Hydra's composition errors
            def without(key):
                return self.compose([o for o in overrides if o.split("=")[0] != key])

            raise DisbenchError(f"{self.where}: {config.hydra_message(err, without)}") from None
        return OmegaConf.to_container(cfg, resolve=True)

    def _local(self, choice: str) -> dict | None:
        """The group's subtree for `group=option`, or None if the option reaches outside."""
        if choice not in self.single:
            group = choice.split("=", 1)[0]
            cfg = self._compose((choice,))
            rest_equal = ({k: v for k, v in cfg.items() if k != group}
                          == {k: v for k, v in self.base.items() if k != group})
            self.single[choice] = cfg[group] if rest_equal else None
        return self.single[choice]

    def __call__(self, groups: tuple[str, ...]) -> dict:
        if groups not in self.combined:
            parts = [self._local(choice) for choice in groups]
            if all(part is not None for part in parts):
                cfg = dict(self.base)
                for choice, part in zip(groups, parts):
                    cfg[choice.split("=", 1)[0]] = part
            else:
                cfg = self._compose(groups)
            self.combined[groups] = cfg
        return self.combined[groups]


def plan(name_or_path: str, cli_overrides: list[str] = ()) -> tuple[str, list[PlannedRun]]:
    """(study, runs) of a sweep, with `cli_overrides` applied to every run; duplicates
    (runs with the same id, e.g. after `data=...` on the command line) are dropped."""
    path = spec_path(name_or_path)
    spec = load_spec(path)
    where = str(path)
    base_overrides = [*(spec.get("overrides") or []), *cli_overrides]
    study = next((o.split("=", 1)[1] for o in reversed(base_overrides)
                  if o.startswith("study=")), spec["study"])
    base_overrides.append(f"study={study}")
    cli_keys = {o.split("=", 1)[0].lstrip("+~") for o in base_overrides}
    cli_groups = {o.split("=", 1)[0] for o in cli_overrides} & set(GROUPS)
    runs, seen, checked, keys = [], set(), set(), {}
    with config.composer() as compose:
        composed = _GroupComposer(compose, base_overrides, where)
        for values in expand(spec, where):
            values = {k: v for k, v in values.items()  # the command line wins
                      if k not in cli_keys and k.split(".")[0] not in cli_groups}
            groups = tuple(f"{k}={_format(v)}" for k, v in values.items() if k in GROUPS)
            cfg = composed(groups)
            settings = []
            for key, value in values.items():
                if key not in GROUPS:
                    new = not _has_dotted(cfg, key)  # a plug-in's hyperparameter: Hydra's "+"
                    settings.append(f"{'+' if new else ''}{key}={_format(value)}")
                    cfg = _set_dotted(cfg, key, value, where)
            # checked once per setting: of the seed, check() reads only its type
            setting = tuple((k, _format(v) if k != "seed" else type(v).__name__)
                            for k, v in values.items())
            try:
                if setting not in checked:
                    config.check(cfg)
                    checked.add(setting)
                rid = config.run_id(cfg)
            except DisbenchError as err:
                raise DisbenchError(f"{where}: {err}") from None
            if rid in seen:
                continue
            seen.add(rid)
            overrides = (*groups, *settings, *base_overrides)
            if setting not in keys:
                keys[setting] = pack_key(cfg)
            runs.append(PlannedRun(overrides, rid, cfg["model"]["name"], cfg["data"]["name"],
                                   store.run_dir_for(cfg["paths"]["results"], study, rid),
                                   keys[setting], cfg["trainer"]["accelerator"],
                                   bool(cfg["eval"].get("defer"))))
    return study, runs
