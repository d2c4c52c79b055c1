"""Where a sweep stands, from the store: one line that a local sweep, `disbench sweep
--wait` on SLURM and `disbench status [--watch]` all print.

    sweep [########------------] 8/20 ended (7 completed, 1 failed), 2 running,
    10 to go; 12:30 elapsed, about 16:40 left

"Ended" counts completed, trained (scoring deferred) and failed runs. The time left is
the median duration of the runs that ended, times the runs still to go, divided by the
runs running at once (at least one): an estimate, not a promise.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

from disbench import store
from disbench.launch.state import run_state

ENDED = ("completed", "trained", "failed")
WIDTH = 20


@dataclass
class Progress:
    counts: Counter
    total: int
    elapsed: float | None  # seconds since the first run started
    left: float | None     # estimated seconds until the last run ends

    @property
    def ended(self) -> int:
        return sum(self.counts[s] for s in ENDED)

    @property
    def done(self) -> bool:
        return self.ended == self.total


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def measure(runs: list[store.RunDir], since: float | None = None,
            now: float | None = None) -> Progress:
    """The progress of ``runs`` (their states, elapsed and estimated time left); elapsed
    counts from ``since`` (default: when the first of them started)."""
    now = time.time() if now is None else now
    counts: Counter = Counter()
    starts, durations = [], []
    for run in runs:
        state = run_state(run)
        counts[state] += 1
        if state == "unreadable":
            continue
        status = run.status() or {}
        if status.get("started_at") is not None:
            starts.append(float(status["started_at"]))
        if state in ENDED and status.get("duration_s") is not None:
            durations.append(float(status["duration_s"]))
    first = since if since is not None else min(starts, default=None)
    elapsed = now - first if first is not None else None
    to_go = len(runs) - sum(counts[s] for s in ENDED)
    left = None
    if durations and to_go:
        left = statistics.median(durations) * to_go / max(1, counts["running"])
    elif not to_go:
        left = 0.0
    return Progress(counts, len(runs), elapsed, left)


def render(progress: Progress, label: str = "sweep") -> str:
    """The one-line view of the module doc."""
    ended, total, counts = progress.ended, progress.total, progress.counts
    filled = round(WIDTH * ended / total) if total else WIDTH
    parts = [f"{counts[s]} {s}" for s in ENDED if counts[s]]
    line = (f"{label} [{'#' * filled}{'-' * (WIDTH - filled)}] {ended}/{total} ended"
            + (f" ({', '.join(parts)})" if parts else "")
            + f", {counts['running']} running, {total - ended - counts['running']} to go")
    if progress.elapsed is not None:
        line += f"; {_clock(progress.elapsed)} elapsed"
        if progress.left is not None and not progress.done:
            line += f", about {_clock(progress.left)} left"
    return line
