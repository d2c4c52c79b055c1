"""The commands as Python functions, for notebooks and scripts.

Each takes what its command takes (the same overrides, the same sources) and raises
disbench's own errors (``disbench.errors.DisbenchError``) with the command's messages::

    from disbench import api

    outcome = api.train("model=betavae", "data=dsprites_procedural", "trainer=smoke")
    table = api.aggregate("default")        # a pandas DataFrame, one row per run
    model = api.load(outcome.run_dir.path)  # the trained objective
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from disbench.errors import DisbenchError
from disbench.zoo import load

__all__ = ["aggregate", "load", "report", "sweep", "train"]


def train(*overrides: str):
    """``disbench train OVERRIDES``: train (and score) one run, or go on with it.

    Returns the run's ``disbench.train.run.Outcome``: ``state`` (completed, trained,
    skipped, busy, failed, interrupted), ``run_dir`` (``.path``: its folder) and ``reason``.
    """
    from disbench.config import check_overrides, compose
    from disbench.train.run import run

    check_overrides(list(overrides))
    return run(compose(list(overrides)))


def sweep(name_or_path: str, *overrides: str, dry_run: bool = False,
          retry_failed: bool = False, wait: bool = False, then_eval: bool = False) -> int:
    """``disbench sweep NAME_OR_PATH OVERRIDES [--dry-run] ...``; returns its exit code
    (0: every launched run ended as asked). ``aggregate`` reads the results."""
    from disbench.launch.cli import sweep_main

    flags = {"--dry-run": dry_run, "--retry-failed": retry_failed, "--wait": wait,
             "--then-eval": then_eval}
    return sweep_main([name_or_path, *overrides, *(f for f, on in flags.items() if on)])


def aggregate(*sources: str, results: str | Path | None = None,
              out: str | Path | None = None) -> pd.DataFrame:
    """``disbench aggregate SOURCES``: one row per completed run, as a DataFrame; with
    ``out``, also written as ``out.parquet`` and ``out.csv``."""
    from disbench.aggregate.cli import collect
    from disbench.aggregate.table import write_table
    from disbench.launch.status import default_results

    collected = collect(list(sources), Path(results) if results else default_results())
    table = collected.aggregate.table
    if out is not None:
        if not len(table):
            raise DisbenchError(f"{collected.name}: no completed run, so there is no table to "
                                f"write")
        write_table(table, Path(out))
    return table


def report(*sources: str, out: str | Path | None = None, results: str | Path | None = None,
           eval: str | None = None, rank_by: str | None = None) -> list[Path]:  # noqa: A002
    """``disbench report SOURCES [--out DIR] [--eval NAME] [--rank-by SCORE]``; returns the
    files written (report.md, report.html, then the tables and figures)."""
    from disbench.aggregate.cli import collect
    from disbench.launch.status import default_results
    from disbench.report.cli import default_folder, write_report

    collected = collect(list(sources), Path(results) if results else default_results())
    return write_report(collected, Path(out) if out else default_folder(collected), eval,
                        rank_by)
