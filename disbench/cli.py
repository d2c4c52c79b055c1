"""The `disbench` command: `disbench <command> [args]`.

`disbench train` is a Hydra app (every config key overridable, `-m` for
multirun, `--cfg job` to print the config); the other commands take ordinary
arguments.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from disbench.errors import DisbenchError, warnings_as_lines
from disbench.interrupt import Interrupted, stopping_signals

USAGE = """usage: disbench <command> [args]

commands:
  train [overrides]   train one run (Hydra app: model=factorvae data=dsprites_procedural
                      trainer=quick seed=1; -m for multirun; --cfg job to print the config)
  sweep NAME_OR_PATH [overrides] [launcher=local|slurm] [launcher.KEY=VALUE]
        [--dry-run] [--retry-failed] [--wait]
                      plan a sweep (sweeps/*.yaml), skip completed runs, launch the rest
  status STUDY [--results DIR]
                      runs of a study by state, model and dataset; the failures
  eval RUN_DIR|STUDY_DIR [eval=NAME] [--force]
                      score stored runs from their checkpoints (what is missing, or all)
  aggregate STUDY... [--results DIR] [--out STEM]
                      one table (parquet + CSV) of the studies' runs; also reads .parquet
                      tables and disentanglement_lib aggregated results (.json)
  report STUDY... [--out DIR] [--eval NAME] [--rank-by SCORE]
                      the comparison report: report.md, report.html, figures, tables
  data list|info|download|show
                      the datasets: what is there, fetch files, look at samples
  export RUN_DIR|STUDY_DIR --out DIR
                      trained runs as model-hub folders (safetensors weights, config.json,
                      metrics.json, a model card); disbench.load(DIR) loads one back

Run `disbench train --help` for the config groups and their options."""


def _fail(err: DisbenchError) -> None:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(err.exit_code)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def _train_app(cfg: DictConfig) -> int:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from disbench.train.run import run

    try:
        outcome = run(cfg)
    except DisbenchError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        _fail(err)
    if outcome.state == "interrupted" or (
            outcome.exit_code and HydraConfig.get().mode != RunMode.MULTIRUN):
        sys.exit(outcome.exit_code)  # a stopping signal ends a multirun too
    return outcome.exit_code


# Hydra's flags: those that only print help, and those that take a value
_HELP_FLAGS = {"-h", "--help", "--hydra-help", "--version", "-i", "--info", "-sc",
               "--shell-completion"}
_VALUE_FLAGS = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn",
                "--config-name", "-cd", "--config-dir"}


def _train_overrides(args: list[str]) -> list[str] | None:
    """The overrides among `disbench train`'s arguments; None when only help is asked."""
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in _HELP_FLAGS:
            return None
        elif arg in _VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def train_main(args: list[str]) -> int:
    """`disbench train`: the overrides are checked (one `error:` line for an unknown option,
    key or a value that cannot work, exit 2), then Hydra runs the app."""
    overrides = _train_overrides(args)
    if overrides is not None:
        from disbench.config import check_overrides

        check_overrides(overrides)
    sys.argv = ["disbench train", *args]
    _train_app()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings_as_lines()
    try:
        with stopping_signals():  # SIGTERM and SIGHUP end a command as Ctrl-C does
            return _dispatch(argv)
    except BrokenPipeError:  # `disbench status STUDY | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as err:  # outside a run, which records its own interruption
        stop = err if isinstance(err, Interrupted) else Interrupted()
        print(f"interrupted ({stop.signal_name}); run the same command again to go on",
              file=sys.stderr)
        return stop.exit_code


def export_main(args: list[str]) -> int:
    """`disbench export RUN_DIR|STUDY_DIR --out DIR`."""
    from pathlib import Path

    from disbench.errors import ArgumentParser

    parser = ArgumentParser(prog="disbench export",
                            usage="disbench export RUN_DIR|STUDY_DIR --out DIR",
                            description="Trained runs as model-hub folders (docs/zoo.md).")
    parser.add_argument("source", type=Path, help="a run directory, or a study directory")
    parser.add_argument("--out", type=Path, required=True,
                        help="the folder of a run; for a study, one folder per run in it")
    parsed = parser.parse_args(args)
    from disbench.zoo import export

    for folder in export(parsed.source, parsed.out):
        print(f"exported {folder}")
    return 0


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "train":
        try:
            return train_main(rest)
        except DisbenchError as err:
            _fail(err)
    if command in ("sweep", "status"):
        from disbench.launch.cli import status_main, sweep_main

        try:
            return (sweep_main if command == "sweep" else status_main)(rest)
        except DisbenchError as err:
            _fail(err)
    if command == "eval":
        from disbench.metrics.cli import main as eval_main

        return eval_main(rest)
    if command in ("aggregate", "report"):
        from disbench.aggregate.cli import main as aggregate_main
        from disbench.report.cli import main as report_main

        try:
            return (aggregate_main if command == "aggregate" else report_main)(rest)
        except DisbenchError as err:
            _fail(err)
    if command == "data":
        from disbench.data.cli import main as data_main

        return data_main(rest)
    if command == "export":
        try:
            return export_main(rest)
        except DisbenchError as err:
            _fail(err)
    print(f"error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
