"""`disbench eval RUN_DIR|STUDY_DIR [eval=NAME] [--force]`: score stored runs.

For every run trained with ``eval.defer=true`` (state ``trained``), and every completed
run whose ``metrics.json`` lacks scores for the requested eval settings (or every
completed run, with ``--force``), rebuild the model and the dataset from
``config.yaml``, load ``checkpoints/last.ckpt``, score it with ``score_model`` and
rewrite ``metrics.json`` atomically, keeping its ``train`` entry. Without ``eval=``,
each run is scored with its own config's eval settings (locatello for a run trained
with ``eval=none``). A trained run is scored under its claim (each run scored once,
whoever else is scoring the study), and only then recorded completed.

Safe beside training: runs still training are never touched, and a completed run's
``status.json`` is never written. Resumable: each run's scores are written as soon as
they are computed, so a killed ``disbench eval`` redoes only the runs it had not
finished (an interrupted trained run stays trained, its claim released).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from disbench.errors import ArgumentParser, DisbenchError
from disbench.metrics.utils import MetricInputError

USAGE = ("disbench eval RUN_DIR|STUDY_DIR [eval=NAME|PATH.yaml] [launcher=local|slurm "
         "launcher.KEY=VALUE ...] [--force] [--device DEVICE] [--wait]")
HEADLINE = ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.mig",
            "dci.disentanglement", "sap.sap")


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="disbench eval", usage=USAGE,
                            description=__doc__.split("\n\n")[1],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="a run directory, or a study directory of runs")
    parser.add_argument("settings", nargs="*", metavar="eval=NAME",
                        help="eval settings: a preset (locatello, fast) or a .yaml file "
                             "(default: each run's own settings; locatello for a run "
                             "trained with eval=none); launcher=local|slurm and launcher.KEY=VALUE "
                             "score the runs as tasks of that launcher (default: one after "
                             "another in this process)")
    parser.add_argument("--wait", action="store_true", help="slurm: block until the jobs end")
    parser.add_argument("--force", action="store_true",
                        help="score every completed run again, even if already scored")
    parser.add_argument("--device", default="auto",
                        help="where to encode: auto (CUDA when available), cpu, cuda, cuda:1")
    parser.add_argument("--data", type=Path, default=None,
                        help="data directory (default: $DISBENCH_DATA, else the run's "
                             "paths.data)")
    return parser


def load_settings(spec: str) -> dict:
    """Complete eval settings from a preset name or a .yaml path."""
    from omegaconf import OmegaConf

    from disbench.metrics.evaluate import resolve_settings

    if spec.endswith((".yaml", ".yml")) or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise DisbenchError(f"eval settings file {path} does not exist")
        try:
            given = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as err:  # a YAML syntax error
            raise DisbenchError(f"cannot read eval settings {path}: {err}") from None
        if not isinstance(given, Mapping):
            raise DisbenchError(f"eval settings {path} must be a mapping")
        given.setdefault("name", path.stem)
        return resolve_settings(given)
    return resolve_settings(spec)


def _settings_arg(items: list[str]) -> str | None:
    """The `eval=` argument's value; None when not given."""
    spec = None
    for item in items:
        key, sep, value = item.partition("=")
        if key != "eval" or not sep or not value:
            raise DisbenchError(f"unexpected argument '{item}'; expected eval=NAME\nusage: {USAGE}")
        spec = value
    return spec


def find_runs(path: Path) -> list[Path]:
    """The run directory ``path``, or the run directories (with a status.json) in it."""
    if not path.is_dir():
        raise DisbenchError(f"{path} is not a directory; give a run directory or a study "
                            f"directory")
    if (path / "status.json").exists():
        return [path]
    runs = sorted(p for p in path.iterdir() if p.is_dir() and (p / "status.json").exists())
    if not runs:
        raise DisbenchError(f"no runs in {path}: neither it nor its subdirectories hold a "
                            f"status.json")
    return runs


def _normalised(obj) -> object:
    return json.loads(json.dumps(obj, sort_keys=True))


def is_scored(metrics: dict | None, expected_eval: dict) -> bool:
    """Whether ``metrics.json`` holds scores for exactly these settings."""
    from disbench.store import recorded_eval_settings

    return bool(metrics) and "mean" in metrics and "sampled" in metrics \
        and _normalised(recorded_eval_settings(metrics.get("eval"))) == _normalised(expected_eval)


class Datasets:
    """Datasets loaded so far, by their data config: a study shares a few."""

    def __init__(self, data_dir: Path | None):
        self.data_dir = data_dir
        self.loaded: dict[str, object] = {}

    def get(self, cfg):
        from omegaconf import OmegaConf

        from disbench.train.run import load_dataset

        if self.data_dir is not None:
            cfg.paths.data = str(self.data_dir)
        elif os.environ.get("DISBENCH_DATA"):
            cfg.paths.data = os.environ["DISBENCH_DATA"]
        key = json.dumps({"data": OmegaConf.to_container(cfg.data, resolve=True),
                          "dir": str(cfg.paths.data)}, sort_keys=True)
        if key not in self.loaded:
            self.loaded[key] = load_dataset(cfg)
        return self.loaded[key]


def load_model(cfg, run_dir: Path, observation_shape):
    """The run's model with the weights of ``checkpoints/last.ckpt``."""
    from disbench.zoo import build_model, checkpoint_weights, with_weights

    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    return with_weights(build_model(cfg, observation_shape), checkpoint_weights(ckpt_path),
                        ckpt_path)


def score_run(run_dir: Path, settings: dict | None, datasets: Datasets, device, force: bool
              ) -> tuple[str, str]:
    """Score one run if needed, with `settings` (None: the run's own, `own_settings`).
    Returns (outcome, message); outcome is ``scored``, ``already scored``,
    ``busy`` (another process is scoring it) or ``not completed``."""
    from disbench import store

    run = store.RunDir(run_dir)
    state = run.state
    if state == store.TRAINED:
        return _score_trained(run, settings, datasets, device)
    if state != store.COMPLETED:
        return "not completed", f"skipped {run_dir.name}: not completed (state {state})"
    unscored, cfg, settings = _lacks_scores(run, settings, force)
    if not unscored:
        return "already scored", f"skipped {run_dir.name}: already scored"
    return "scored", _score(run, cfg, settings, datasets, device)


def _lacks_scores(run, settings: dict | None, force: bool) -> tuple[bool, object, dict]:
    """Whether a completed run is to be scored (it lacks scores for `settings`, None: its
    own, or `force`), with its config and those settings."""
    from disbench import store

    cfg = run.read_config()
    settings = settings or own_settings(cfg)
    try:
        metrics = store.read_json(run.metrics)
    except json.JSONDecodeError:
        metrics = None
    return force or not is_scored(metrics, {**settings, "seed": int(cfg.seed)}), cfg, settings


def own_settings(cfg) -> dict:
    """The eval settings of the run's own config; locatello's for a run trained with
    eval=none (or stored before its config held eval settings)."""
    from omegaconf import OmegaConf

    from disbench.metrics.evaluate import resolve_settings

    own = OmegaConf.to_container(cfg, resolve=True).get("eval") or {"name": "none"}
    return load_settings("locatello") if own.get("name") == "none" else resolve_settings(own)


def _score_trained(run, settings: dict | None, datasets: Datasets, device) -> tuple[str, str]:
    """Score a run trained with its scoring deferred, under its claim; record it completed."""
    from disbench import store

    if not run.try_claim():
        owner = run.claim_owner() or {}
        return "busy", (f"skipped {run.path.name}: being scored by {owner.get('host')} pid "
                        f"{owner.get('pid')}")
    try:
        if run.state != store.TRAINED:  # scored by another process since the first look
            return "already scored", f"skipped {run.path.name}: already scored"
        cfg = run.read_config()
        settings = settings or own_settings(cfg)
        message = _score(run, cfg, settings, datasets, device)
        run.update_status(state=store.COMPLETED, scored_at=time.time())
        return "scored", message
    finally:
        run.release_claim()


def _score(run, cfg, settings: dict, datasets: Datasets, device) -> str:
    """Score the run's model and write metrics.json (keeping its train entry)."""
    from disbench import store
    from disbench.metrics.evaluate import score_model

    start = time.perf_counter()
    dataset = datasets.get(cfg)
    model = load_model(cfg, run.path, dataset.observation_shape)
    scores = score_model(model, dataset, settings, seed=int(cfg.seed), device=device,
                         progress=os.environ.get("TQDM_DISABLE") != "1",
                         data_dir=cfg.paths.data)
    # read again: keep the newest train entry
    try:
        current = store.read_json(run.metrics) or {}
    except json.JSONDecodeError:
        current = {}
    store.write_scores(run, current.get("train", {}), scores)
    headline = ", ".join(f"{k}={scores['mean'][k]:.3f}" for k in HEADLINE if k in scores["mean"])
    return f"scored {run.path.name} in {time.perf_counter() - start:.1f} s: {headline}"


def main(argv: list[str]) -> int:
    """Entry point of ``disbench eval``; returns the exit code."""
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exit_:  # --help
            return int(exit_.code or 0)
        launcher_args = [a for a in args.settings if a.startswith("launcher")]
        spec = _settings_arg([a for a in args.settings if not a.startswith("launcher")])
        settings = load_settings(spec) if spec else None
        from disbench.metrics.evaluate import resolve_device

        device = resolve_device(args.device)
        runs = find_runs(args.path)
        if launcher_args:
            from disbench.launch.cli import launcher_config
            from disbench.launch.task import ScoreTask

            launcher, _ = launcher_config(launcher_args)
            work = ScoreTask(spec, args.device, args.force,
                             None if args.data is None else str(args.data))
            todo = [run for run in runs if needs_scoring(run, settings, args.force)]
            print(f"{len(todo)} of {len(runs)} run(s) to score")
            return launch_scoring(todo, launcher, work, args.wait)
    except DisbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    datasets = Datasets(args.data)
    counts = {"scored": 0, "already scored": 0, "busy": 0, "not completed": 0, "failed": 0}
    for run_dir in runs:
        try:
            outcome, message = score_run(run_dir, settings, datasets, device, args.force)
        except (DisbenchError, MetricInputError, OSError, KeyError) as err:
            counts["failed"] += 1
            print(f"error: {run_dir.name}: {err}", file=sys.stderr, flush=True)
            continue
        counts[outcome] += 1
        if outcome == "scored" or len(runs) == 1:
            print(message, flush=True)
    label = settings["name"] if settings else "(each run's own; locatello for eval=none)"
    print(f"eval={label}: "
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v or k != "busy")
          + (" (skipped)" if counts["not completed"] else ""), flush=True)
    if counts["failed"]:
        print(f"error: {counts['failed']} of {len(runs)} run(s) could not be scored",
              file=sys.stderr)
        return 1
    return 0


def needs_scoring(run_dir: Path, settings: dict | None, force: bool) -> bool:
    """Whether `score_run` would score the run: trained with its scoring deferred, or
    completed and lacking scores (`_lacks_scores`)."""
    from disbench import store

    run = store.RunDir(run_dir)
    try:
        state = run.state
        if state != store.COMPLETED:
            return state == store.TRAINED
        return _lacks_scores(run, settings, force)[0]
    except (DisbenchError, ValueError):  # unreadable: scoring it will say what is wrong
        return True


def launch_scoring(run_dirs: list[Path], launcher: dict, work, wait: bool = False,
                   after: list[str] = ()) -> int:
    """Score `run_dirs` as tasks of `launcher` (one run per task), doing `work` (a
    `ScoreTask`); SLURM tasks start after the jobs `after`. The exit code."""
    from disbench import store
    from disbench.interrupt import Interrupted
    from disbench.launch import local
    from disbench.launch.sweep import PlannedRun

    if not run_dirs:
        return 0
    tasks = [[PlannedRun((), path.name, "", "", store.RunDir(path))] for path in run_dirs]
    if launcher["name"] == "local":
        try:
            counts = local.launch(tasks, launcher.get("workers"), work)
        except Interrupted as stop:
            return stop.exit_code
        return 1 if counts.get("failed") else 0
    from disbench.launch import slurm

    return slurm.launch(run_dirs[0].parent.name, tasks, slurm.scoring_launcher(launcher),
                        wait=wait, work=work, after=after)
