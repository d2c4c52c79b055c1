"""`disbench report SOURCE... [--out DIR] [--eval NAME] [--rank-by SCORE]`: the study's
comparison report.

Reads the sources as `disbench aggregate` does (studies, .parquet tables, disentanglement_lib
.json results) and writes report.md, a self-contained report.html, the figures (PNG) and the
tables (CSV and LaTeX) into DIR (default: `<results>/<study>/report/`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from disbench.aggregate.cli import Collected, collect, print_outcome, source_parser
from disbench.launch.status import default_results

USAGE = ("disbench report SOURCE... [--results DIR] [--out DIR] [--eval NAME_OR_KEY] "
         "[--rank-by SCORE]")


def main(argv: list[str]) -> int:
    parser = source_parser("disbench report", USAGE, __doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, default=None,
                        help="the report folder (default: <results>/<study>/report)")
    parser.add_argument("--eval", default=None, metavar="NAME_OR_KEY",
                        help="report only the runs scored with these metric settings (a preset "
                             "name or an eval_key); needed when the runs mix settings")
    parser.add_argument("--rank-by", default=None, metavar="SCORE",
                        help="the score that picks the best, median and worst runs for the "
                             "traversals, a table column (default: mean.dci.disentanglement; "
                             "without metrics: train.elbo)")
    args = parser.parse_args(argv)
    collected = collect(args.sources, args.results or default_results())
    print_outcome(collected, sys.stderr)
    out = args.out or default_folder(collected)
    written = write_report(collected, out, args.eval, args.rank_by)
    print(f"wrote {written[0]} and {written[1]} ({len(written) - 2} tables, figures in "
          f"{out / 'figures'})")
    return 0


def default_folder(collected: Collected) -> Path:
    return collected.default_dir / collected.name / "report"


def write_report(collected: Collected, out: Path, eval_settings: str | None = None,
                 rank_by: str | None = None) -> list[Path]:
    """The report of the collected sources in ``out``; the files written."""
    from disbench.report.build import build_report

    return build_report(collected.aggregate.table, out,
                        title=f"disbench report: {collected.name}",
                        skipped=collected.aggregate.skipped, study_roots=collected.study_roots,
                        eval_settings=eval_settings, rank_by=rank_by)
