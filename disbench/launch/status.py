"""`disbench status STUDY [--watch]`: counts by state, the progress line, counts by model and
dataset; the unfinished, failed and unreadable runs."""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from pathlib import Path

from disbench import store
from disbench.launch.progress import measure, render
from disbench.launch.state import OCCASIONAL, STATES, run_state


def default_results() -> Path:
    return Path(os.environ.get("DISBENCH_RESULTS") or "results")


def study_runs(results: Path, study: str) -> list[store.RunDir]:
    root = store.study_dir(results, study)
    return [store.RunDir(p) for p in sorted(root.iterdir())
            if p.is_dir() and (p / "status.json").exists()]


def progress(status: dict) -> str:
    """`step 175 of 2000 (checkpoint at 150)`: where a run stands and where it resumes."""
    text = f"step {status.get('step', 0)} of {status.get('max_steps')}"
    checkpoint = status.get("checkpoint_step")
    if checkpoint is not None and checkpoint != status.get("step"):
        text += f" (resumes from its checkpoint at step {checkpoint})"
    return text


# SLURM states of a task that has not ended (sacct)
ACTIVE_SLURM = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING",
                "COMPLETING")


def report(results: Path, study: str) -> str:
    return view(results, study)[0]


def view(results: Path, study: str) -> tuple[str, bool]:
    """`disbench status`'s text, and whether the study is still moving (a run running, or
    a SLURM task of it pending or running)."""
    from disbench.launch.slurm import job_states

    runs = study_runs(results, study)
    states = [run_state(r) for r in runs]
    shown = [s for s in STATES if s != "new" and (s not in OCCASIONAL or s in states)]
    counts = Counter(states)
    lines = [f"study {study}: {len(runs)} runs in {results / study}",
             "  " + "  ".join(f"{s} {counts[s]}" for s in shown),
             render(measure(runs), label="progress")]
    by_group: dict[tuple, Counter] = defaultdict(Counter)
    failures, unfinished, unreadable = [], [], []
    for run, state in zip(runs, states):
        if state == "unreadable":
            unreadable.append(run)
            by_group[("?", "?")][state] += 1
            continue
        status = run.status() or {}
        ident = status.get("identity", {})
        key = (ident.get("model", {}).get("name", "?"), ident.get("data", {}).get("name", "?"))
        by_group[key][state] += 1
        if state == "failed":
            failures.append((run.path.name, status.get("reason")))
        elif state in ("running", "incomplete"):
            why = f", {status['reason']}" if status.get("reason") else ""
            unfinished.append(f"  {run.path.name}: {state}, {progress(status)}{why}")
    lines.append("\n| model | data | " + " | ".join(shown) + " |")
    lines.append("|---|---|" + "---|" * len(shown))
    for (model, data), group in sorted(by_group.items()):
        lines.append(f"| {model} | {data} | " + " | ".join(str(group[s]) for s in shown) + " |")
    slurm = job_states(results, study)
    if slurm:
        lines.append("\nSLURM tasks: " + "  ".join(f"{k} {v}" for k, v in sorted(slurm.items())))
    if counts["trained"]:
        lines.append(f"\n{counts['trained']} run(s) trained, not yet scored (eval.defer): "
                     f"`disbench eval {results / study}` scores them")
    if unfinished:
        lines.append("\nunfinished runs (`disbench sweep` or `disbench train` resumes them):")
        lines += unfinished
    if failures:
        lines.append("\nfailed runs:")
        lines += [f"  {name}: {reason}" for name, reason in failures]
    if unreadable:
        lines.append(f"\nunreadable runs ({store.REPAIR_BY_RERUN}):")
        lines += [f"  {run.status_file}" for run in unreadable]
    moving = bool(counts["running"]) or any((slurm or {}).get(s) for s in ACTIVE_SLURM)
    return "\n".join(lines), moving


def watch(results: Path, study: str, interval: float = 10.0, stream=None) -> None:
    """`disbench status --watch`: the view again every ``interval`` seconds (the screen
    cleared on a terminal) until nothing of the study is running or queued."""
    import sys

    stream = stream or sys.stdout
    while True:
        text, moving = view(results, study)
        clear = "\x1b[H\x1b[2J" if stream.isatty() else ""
        print(f"{clear}{text}\n\n{time.strftime('%H:%M:%S')}: "
              + (f"refreshing every {interval:g} s (Ctrl-C to stop watching)" if moving
                 else "nothing of the study is running or queued"), file=stream, flush=True)
        if not moving:
            return
        time.sleep(interval)
