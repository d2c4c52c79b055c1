"""`disbench aggregate SOURCE... [--results DIR] [--out STEM]`: stored runs as one table.

A SOURCE is a study (a folder under the results root, or a path to one), a table that
`disbench aggregate` wrote (.parquet), or disentanglement_lib's aggregated results (.json).
The table is written as STEM.parquet and STEM.csv; by default beside the study
(`<results>/<study>.parquet`), or, for several sources, `<results>/<a>+<b>.parquet`.
Runs left out (not completed, unreadable) are listed with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from disbench.aggregate.table import (
    Aggregate,
    combine,
    mixed_settings,
    read_study,
    read_table,
    write_table,
)
from disbench.aggregate.udr import udr_count
from disbench.errors import ArgumentParser, DisbenchError
from disbench.launch.status import default_results
from disbench.store import study_dir

USAGE = "disbench aggregate SOURCE... [--results DIR] [--out STEM]"


@dataclass
class Collected:
    aggregate: Aggregate
    name: str                     # the sources' names joined by "+"
    study_roots: dict[str, Path]  # study -> folder of its run directories
    default_dir: Path             # where outputs go by default


def _read_source(source: str, results: Path) -> tuple[Aggregate, str, Path | None, Path]:
    """(aggregate, name, study folder or None, default output folder)."""
    path = Path(source)
    if source.endswith(".json"):
        from disbench.aggregate.dlib import import_dlib

        aggregate = import_dlib(path)
        return aggregate, path.stem, None, path.parent
    if source.endswith(".parquet"):
        table = read_table(path)
        return Aggregate(table), path.stem, None, path.parent
    if source.endswith(".csv"):
        raise DisbenchError(f"{source}: a CSV table cannot be read back faithfully (no types, "
                            f"no format version); give the .parquet written beside it.")
    root = path if os.sep in source and path.is_dir() else study_dir(results, source)
    return read_study(root), root.name, root, root.parent


def collect(sources: list[str], results: Path) -> Collected:
    """Every source read, as one table."""
    if not sources:
        raise DisbenchError(f"no source given; usage: {USAGE}")
    parts, names, roots, dirs = [], [], {}, []
    for source in sources:
        aggregate, name, root, folder = _read_source(source, results)
        parts.append(aggregate)
        names.append(name)
        dirs.append(folder)
        if root is not None:
            roots[root.name] = root
    name = "+".join(names)
    return Collected(combine(parts), name, roots, dirs[0] if len(dirs) == 1 else results)


def print_outcome(collected: Collected, stream=None) -> None:
    """How many runs made it into the table, the runs left out and mixed settings (on
    `stream`, default: the sys.stdout of the call)."""
    stream = stream or sys.stdout
    table, skipped = collected.aggregate.table, collected.aggregate.skipped
    print(f"{collected.name}: {len(table)} completed run(s) in the table, {len(skipped)} left "
          f"out", file=stream)
    for s in skipped:
        print(f"  left out {s.study}/{s.run_id}: {s.reason}", file=stream)
    if len(table) and collected.study_roots:
        with_udr = udr_count(table)
        print(f"UDR: {with_udr} of {len(table)} run(s) scored"
              + ("" if with_udr == len(table) else
                 " (the others lack a second seed of their setting, or stored codes of the "
                 "UDR sample: a deterministic encoder, or scored by an older disbench, which "
                 "`disbench eval STUDY --force` fixes)"), file=stream)
    for note in collected.aggregate.notes:
        print(f"  {note}", file=stream)
    mixed = mixed_settings(table)
    if mixed:
        print("warning: the runs were scored with different metric settings, whose scores "
              "are not comparable: " + "; ".join(f"{k}: {v} runs" for k, v in mixed.items())
              + ". The eval_settings and eval_key columns tell them apart.", file=stream)


def source_parser(prog: str, usage: str, description: str) -> argparse.ArgumentParser:
    """A parser taking SOURCE... and --results, whose errors end in one DisbenchError."""
    parser = ArgumentParser(prog=prog, usage=usage, description=description)
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="a study name or folder, a .parquet table, or disentanglement_lib "
                             "aggregated results (.json)")
    parser.add_argument("--results", type=Path, default=None,
                        help="the results root (default: $DISBENCH_RESULTS, else ./results)")
    return parser


def main(argv: list[str]) -> int:
    parser = source_parser("disbench aggregate", USAGE, __doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, default=None,
                        help="output path without suffix (default: beside the study)")
    args = parser.parse_args(argv)
    collected = collect(args.sources, args.results or default_results())
    print_outcome(collected)
    stem = args.out or collected.default_dir / collected.name
    if not len(collected.aggregate.table):
        raise DisbenchError(f"{collected.name}: no completed run, so there is no table to "
                            f"write; the runs left out are listed above.")
    for path in write_table(collected.aggregate.table, stem):
        print(f"wrote {path}")
    return 0
