"""One sweep task: compose a run's overrides and call the same `run` as `disbench train`."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


def execute(overrides: tuple[str, ...], log_path: str | None = None,
            threads: int | None = None) -> tuple[str, str]:
    """Train one run with `threads` CPU threads (unless its overrides set trainer.threads);
    returns (state, reason). Never raises: a failure is a result."""
    from disbench.config import compose
    from disbench.errors import DisbenchError, warnings_as_lines
    from disbench.train.run import run

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
            outcome = run(compose([*launcher, *overrides, "trainer.progress_bar=false"]))
        return outcome.state, outcome.reason
    except DisbenchError as err:
        return "failed", str(err)
    except Exception as err:  # recorded in the store by run(); reported, sweep carries on
        return "failed", f"{type(err).__name__}: {err}"
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
