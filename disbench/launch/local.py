"""The local launcher: a pool of worker processes, one run per process."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

from disbench.launch.sweep import PlannedRun
from disbench.launch.task import execute


def default_workers() -> int:
    """One worker per GPU; on CPU one per 4 cores (each run uses several threads)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, (os.cpu_count() or 1) // 4)


def _in_fresh_process(overrides: list[str], log: str, threads: int) -> tuple[str, str]:
    """One run in a new process, so that no state leaks from one run into the next.

    (A ProcessPoolExecutor with max_tasks_per_child=1 would do this, but on Python 3.11 it
    hangs once its first worker retires.)
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as one:
        return one.submit(execute, overrides, log, threads).result()


def launch(runs: list[PlannedRun], workers: int | None = None) -> dict[str, int]:
    """Train `runs`; print a progress line per finished run and a summary; return counts."""
    workers = workers or default_workers()
    threads = max(1, (os.cpu_count() or 1) // workers)
    counts = {"completed": 0, "failed": 0, "busy": 0, "interrupted": 0, "skipped": 0}
    failures = []
    start = time.time()
    pool = ThreadPoolExecutor(workers)
    futures = {}
    for run in runs:
        log = str(run.run_dir.path / "train.log")
        futures[pool.submit(_in_fresh_process, run.overrides, log, threads)] = run
    try:
        for done, future in enumerate(as_completed(futures), 1):
            run = futures[future]
            try:
                state, reason = future.result()
            except Exception as err:  # the worker process itself died
                state, reason = "failed", f"worker died: {err}"
            counts[state] = counts.get(state, 0) + 1
            if state == "failed":
                failures.append((run.run_id, reason))
            print(f"[{done}/{len(runs)} {time.time() - start:6.0f}s] {state:11s} {run.run_id}  "
                  + "  ".join(f"{k}={v}" for k, v in counts.items() if v), flush=True)
    except KeyboardInterrupt:
        # Ctrl-C reaches the workers too: their runs stop at the next step, stored as
        # interrupted; the runs not started yet are not started.
        pool.shutdown(wait=False, cancel_futures=True)
        print("interrupted: runs not started are left for the next `disbench sweep`; the "
              "interrupted ones resume from their last checkpoint.", file=sys.stderr)
        raise
    pool.shutdown()
    print("summary: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    for run_id, reason in failures:
        print(f"  failed {run_id}: {reason}", file=sys.stderr)
    return counts
