"""`disbench status STUDY`: counts by state, by model and dataset, and the failures."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

from disbench import store
from disbench.launch.state import STATES, run_state


def default_results() -> Path:
    return Path(os.environ.get("DISBENCH_RESULTS") or "results")


def study_runs(results: Path, study: str) -> list[store.RunDir]:
    root = store.study_dir(results, study)
    return [store.RunDir(p) for p in sorted(root.iterdir())
            if p.is_dir() and (p / "status.json").exists()]


def report(results: Path, study: str) -> str:
    runs = study_runs(results, study)
    states = [run_state(r) for r in runs]
    lines = [f"study {study}: {len(runs)} runs in {results / study}",
             "  " + "  ".join(f"{s} {Counter(states)[s]}" for s in STATES if s != "new")]
    by_group: dict[tuple, Counter] = defaultdict(Counter)
    failures = []
    for run, state in zip(runs, states):
        ident = (run.status() or {}).get("identity", {})
        key = (ident.get("model", {}).get("name", "?"), ident.get("data", {}).get("name", "?"))
        by_group[key][state] += 1
        if state == "failed":
            failures.append((run.path.name, (run.status() or {}).get("reason")))
    shown = [s for s in STATES if s != "new"]
    lines.append("\n| model | data | " + " | ".join(shown) + " |")
    lines.append("|---|---|" + "---|" * len(shown))
    for (model, data), counts in sorted(by_group.items()):
        lines.append(f"| {model} | {data} | " + " | ".join(str(counts[s]) for s in shown) + " |")
    from disbench.launch.slurm import job_states

    slurm = job_states(results, study)
    if slurm:
        lines.append("\nSLURM tasks: " + "  ".join(f"{k} {v}" for k, v in sorted(slurm.items())))
    if failures:
        lines.append("\nfailed runs:")
        lines += [f"  {name}: {reason}" for name, reason in failures]
    return "\n".join(lines)
