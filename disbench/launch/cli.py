"""`disbench sweep` and `disbench status`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from disbench.config import CONF_DIR, close_matches
from disbench.errors import DisbenchError, warn
from disbench.interrupt import Interrupted
from disbench.launch import local
from disbench.launch.state import OCCASIONAL, run_state, summarize, to_launch
from disbench.launch.status import default_results, report, watch
from disbench.launch.sweep import packs, plan


def launcher_config(args: list[str]) -> tuple[dict, list[str]]:
    """Split `launcher=NAME` / `launcher.KEY=VALUE` from the run overrides."""
    name = "local"
    keys, rest = [], []
    for arg in args:
        if arg.startswith("launcher="):
            name = arg.split("=", 1)[1]
        elif arg.startswith("launcher."):
            keys.append(arg[len("launcher."):])
        else:
            rest.append(arg)
    path = CONF_DIR / "launcher" / f"{name}.yaml"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise DisbenchError(f"unknown launcher '{name}'{close_matches(name, valid.split(', '))}; "
                            f"valid: {valid}")
    cfg = OmegaConf.load(path)
    for item in keys:
        key = item.split("=", 1)[0]
        section, _, inner = key.partition(".")  # launcher.eval.KEY: a key of a section
        options = cfg if not inner else cfg.get(section) if isinstance(
            cfg.get(section), Mapping) else {}
        if (inner or key) not in options or section not in cfg:
            valid = [k for k in options if k != "name"] or [k for k in cfg if k != "name"]
            hint = close_matches(inner or key, valid)
            raise DisbenchError(f"launcher '{name}' has no option '{key}'{hint}; valid: "
                                f"{', '.join(valid)}")
        cfg.merge_with(OmegaConf.from_dotlist([item]))
    return OmegaConf.to_container(cfg), rest


def sweep_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="disbench sweep")
    parser.add_argument("sweep", help="a name in sweeps/ or a path to a sweep .yaml")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run, "
                        "launcher=local|slurm, launcher.KEY=VALUE")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, launch nothing")
    parser.add_argument("--retry-failed", action="store_true", help="launch failed runs again")
    parser.add_argument("--wait", action="store_true", help="slurm: block until the jobs end")
    parser.add_argument("--then-eval", action="store_true",
                        help="with eval.defer=true: then score the trained runs through the "
                             "same launcher (on SLURM, tasks that start once training ended)")
    args = parser.parse_intermixed_args(argv)  # options before or after the overrides
    launcher, overrides = launcher_config(args.overrides)
    start = time.perf_counter()
    study, runs = plan(args.sweep, overrides)
    states = [run_state(r.run_dir) for r in runs]
    pending = [runs[i] for i in to_launch(states, args.retry_failed)]
    counts = summarize(states)
    for run, state in zip(runs, states):
        if state == "unreadable":
            warn(f"{run.run_dir.status_file} is unreadable; the sweep runs {run.run_id} again, "
                 f"which rewrites it from the run's config")
    print(f"sweep {args.sweep} -> study {study}: {len(runs)} runs, "
          + ", ".join(f"{v} {k}" for k, v in counts.items() if v or k not in OCCASIONAL)
          + f"; to run: {len(pending)}  (planned in {time.perf_counter() - start:.1f} s)")
    size = launcher.get("pack", 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DisbenchError(f"launcher.pack={size}: expected a whole number >= 1 (runs "
                            f"trained at once in one process; 1: one run per process)")
    if size > 1 and pending and trains_on_cpu(launcher, pending[0].accelerator) \
            and not launcher.get("pack_on_cpu"):
        print(f"launcher.pack={size} ignored: these runs train on CPU, where a pack is slower "
              f"per image than runs alone (docs/benchmarks.md); one run per task "
              f"(launcher.pack_on_cpu=true packs them anyway)")
        size = 1
    tasks = packs(pending, size)
    if len(tasks) < len(pending):
        print(pack_plan(tasks))
    if args.then_eval and not all(r.deferred for r in runs):
        raise DisbenchError("--then-eval scores the runs that training left unscored: add "
                            "eval.defer=true (without it, each run is scored as it ends)")
    if args.dry_run or not (pending or args.then_eval):
        return 0
    if launcher["name"] == "local":
        try:
            result = local.launch(tasks, launcher.get("workers")) if tasks else {}
        except Interrupted as stop:  # launch() said what was left and how to go on
            return stop.exit_code
        code = 1 if result.get("failed") else 0
        if args.then_eval:
            code = max(code, then_eval(runs, launcher))
        return code
    from disbench.launch import slurm

    if not args.then_eval:
        return slurm.launch(study, tasks, launcher, wait=args.wait)
    jobs = slurm.submit(study, tasks, launcher) if tasks else []
    # every run of the sweep: the ones training now are scored once their jobs have ended
    code = then_eval(runs, launcher, after=slurm.array_ids(jobs), wait=args.wait,
                     pending={r.run_id for r in pending})
    return max(code, slurm.wait_for(jobs, tasks) if args.wait and jobs else 0)


def then_eval(runs, launcher: dict, after: list[str] = (), wait: bool = False,
              pending: set[str] = frozenset()) -> int:
    """`--then-eval`: score the sweep's trained runs (and, after the jobs `after`, the ones
    still to train) through the launcher, as `disbench eval` does."""
    from disbench.launch.task import ScoreTask
    from disbench.metrics.cli import launch_scoring

    todo = [r.run_dir.path for r in runs
            if r.run_id in pending or run_state(r.run_dir) == "trained"]
    print(f"then scoring: {len(todo)} run(s)")
    return launch_scoring(todo, launcher, ScoreTask(), wait=wait, after=after)


def trains_on_cpu(launcher: dict, accelerator: str) -> bool:
    """Whether the launcher's tasks will train on CPU: `trainer.accelerator=cpu`, or no GPU
    where they run (this machine's for the local launcher, `gpus_per_task` for SLURM)."""
    if accelerator == "cpu":
        return True
    if launcher["name"] == "slurm":
        return not launcher.get("gpus_per_task")
    import torch

    return not torch.cuda.is_available()


def pack_plan(tasks) -> str:
    """How the runs are packed: tasks and their sizes, and the models that train solo."""
    packed = [t for t in tasks if len(t) > 1]
    solo = sorted({t[0].model for t in tasks if len(t) == 1 and t[0].pack_key is None})
    line = (f"packed: {sum(map(len, packed))} runs in {len(packed)} tasks of up to "
            f"{max(map(len, packed))} runs; {len(tasks) - len(packed)} runs alone")
    if solo:
        line += f" ({', '.join(solo)}: not packable, each run in a process of its own)"
    return line


def status_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="disbench status")
    parser.add_argument("study")
    parser.add_argument("--results", type=Path, default=None,
                        help="results root (default $DISBENCH_RESULTS or ./results)")
    parser.add_argument("--watch", action="store_true",
                        help="refresh the view until nothing of the study runs or is queued")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between refreshes with --watch (default 10)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        raise DisbenchError(f"--interval {args.interval:g}: expected seconds > 0")
    if args.watch:
        watch(args.results or default_results(), args.study, args.interval)
    else:
        print(report(args.results or default_results(), args.study))
    return 0
