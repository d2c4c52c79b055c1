"""One task of a launcher: a sweep task composes a run's overrides and calls the same
`run` as `disbench train` (or, for a pack, `launcher.pack`, several runs' overrides and
`run_pack`); a scoring task scores runs as `disbench eval` does."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from disbench.launch.sweep import PlannedRun


def execute(overrides: tuple[str, ...], log_path: str | None = None,
            threads: int | None = None) -> tuple[str, str]:
    """Train one run with `threads` CPU threads (unless its overrides set trainer.threads);
    returns (state, reason). Never raises: a failure is a result."""
    from disbench.train.run import run

    return _train([overrides], log_path, threads, lambda cfgs: [run(cfgs[0])])[0]


def train_task(task: list[PlannedRun], threads: int | None = None) -> list[tuple[str, str]]:
    """A sweep task as the launchers call it: train the task's run (or pack of runs)."""
    return execute_task([r.overrides for r in task],
                        [str(r.run_dir.path / "train.log") for r in task], threads)


@dataclass(frozen=True)
class ScoreTask:
    """A scoring task as the launchers call it (`disbench eval ... launcher=...`): score
    each run of the task with `disbench eval`'s `score_run`, the output in its eval.log;
    `settings` is an `eval=` value (None: a trained run's own settings)."""

    settings: str | None = None
    device: str = "auto"
    force: bool = False
    data: str | None = None  # the data directory (None: $DISBENCH_DATA, else the run's)
    # what the local launcher says when it is stopped
    command = "disbench eval"
    resumes = "are scored again"

    def __call__(self, task: list[PlannedRun], threads: int | None = None
                 ) -> list[tuple[str, str]]:
        import torch

        from disbench.errors import warnings_as_lines
        from disbench.metrics.cli import Datasets, load_settings, score_run
        from disbench.metrics.evaluate import resolve_device

        warnings_as_lines()
        if threads:
            torch.set_num_threads(threads)
        results = []
        try:
            settings = load_settings(self.settings) if self.settings else None
            device = resolve_device(self.device)
            datasets = Datasets(None if self.data is None else Path(self.data))
            for run in task:
                with open(run.run_dir.path / "eval.log", "a") as log, \
                        contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    os.environ["TQDM_DISABLE"] = "1"
                    try:
                        state, message = score_run(run.run_dir.path, settings, datasets,
                                                   device, self.force)
                    except Exception as err:  # noqa: BLE001 - a result, the task goes on
                        state, message = "failed", f"{type(err).__name__}: {err}"
                    print(message, flush=True)
                results.append((state, message))
        finally:
            _stop_joblib_workers()
        return results


def execute_task(overrides: list[tuple[str, ...]], log_paths: list[str],
                 threads: int | None = None) -> list[tuple[str, str]]:
    """A sweep task: one run (`execute`), or several trained as one pack; returns each
    run's (state, reason). A pack writes its output to `pack.log` beside its first run's
    train.log, and each run's train.log says where that is. Never raises."""
    if len(overrides) == 1:
        return [execute(overrides[0], log_paths[0], threads)]
    from disbench.train.run_pack import run_pack

    log_path = Path(log_paths[0]).with_name("pack.log")
    for path in log_paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"trained in a pack of {len(overrides)} runs; the pack's log: {log_path}\n")
    return _train(overrides, str(log_path), threads, run_pack)


def _train(overrides: list[tuple[str, ...]], log_path: str | None, threads: int | None,
           train) -> list[tuple[str, str]]:
    """Compose each run's config and `train` them (`run` or `run_pack`), with the output
    in `log_path`; (state, reason) per run, a failure being a result."""
    from disbench.config import compose
    from disbench.errors import DisbenchError, warnings_as_lines

    warnings_as_lines()
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a") if log_path else None  # noqa: SIM115
    try:
        with (contextlib.redirect_stdout(log or sys.stdout),
              contextlib.redirect_stderr(log or sys.stderr)):
            if log:
                os.environ["TQDM_DISABLE"] = "1"
            launcher = [f"trainer.threads={threads}"] if threads else []
            cfgs = [compose([*launcher, *o, "trainer.progress_bar=false"]) for o in overrides]
            return [(o.state, o.reason) for o in train(cfgs)]
    except DisbenchError as err:
        return [("failed", str(err))] * len(overrides)
    except Exception as err:  # recorded in the store by run(); reported, sweep carries on
        return [("failed", f"{type(err).__name__}: {err}")] * len(overrides)
    finally:
        _stop_joblib_workers()
        if log:
            log.close()


def _stop_joblib_workers() -> None:
    """joblib's idle workers would hold a sweep worker's exit for 300 s (see
    `disbench.metrics.downstream.stop_workers`); scoring stops them, and so does a task
    whatever way its run ended. A process that never started them has none to stop (and
    need not import the metrics)."""
    if "joblib.externals.loky" not in sys.modules:
        return
    from disbench.metrics.downstream import stop_workers

    stop_workers()
