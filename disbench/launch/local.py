"""The local launcher: a pool of worker processes, one task (a run, or a pack of runs)
per process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed, wait

from disbench.interrupt import stopping_signals
from disbench.launch.progress import measure, render
from disbench.launch.sweep import PlannedRun
from disbench.launch.task import train_task

# seconds the interrupted runs get to record themselves before the sweep stops waiting
STOP_GRACE_SECONDS = 120


def default_workers() -> int:
    """One worker per GPU; on CPU one per 4 cores (each run uses several threads)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count()
    from disbench.train.run import available_cpus

    return max(1, available_cpus() // 4)


def _in_fresh_process(work, task: list[PlannedRun], threads: int,
                      stopping: threading.Event) -> list[tuple[str, str]]:
    """One task in a new process, so that no state leaks from one task into the next.

    (A ProcessPoolExecutor with max_tasks_per_child=1 would do this, but on Python 3.11 it
    hangs once its first worker retires.)
    """
    if stopping.is_set():
        return [("interrupted", "not started: the sweep was stopped")] * len(task)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as one:
        return one.submit(work, task, threads).result()


def _stop_workers(signal_name: str) -> None:
    """Pass the stopping signal on to the worker processes (Ctrl-C reaches them from the
    terminal; SIGTERM and SIGHUP sent to the sweep alone do not)."""
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, getattr(signal, signal_name))
        except (ProcessLookupError, TypeError):
            pass


def launch(tasks: list[list[PlannedRun]], workers: int | None = None, work=train_task
           ) -> dict[str, int]:
    """Do `work` (training: `train_task`; scoring: a `ScoreTask`) on each of `tasks` (a
    run, or a pack of runs), each in a fresh process; print a progress line per finished
    run, the sweep's progress line (`disbench.launch.progress`) and a summary; return counts.

    SIGINT, SIGTERM or SIGHUP stops the sweep: the runs in progress are stored as
    interrupted (they resume from their last checkpoint), the others are not started, and
    `Interrupted` is raised once the workers have recorded their runs."""
    from disbench.train.run import available_cpus

    workers = workers or default_workers()
    threads = max(1, available_cpus() // workers)
    counts = {"completed": 0, "failed": 0, "busy": 0, "interrupted": 0, "skipped": 0}
    failures = []
    start = time.time()
    stopping = threading.Event()
    pool = ThreadPoolExecutor(workers)
    futures = {pool.submit(_in_fresh_process, work, task, threads, stopping): task
                   for task in tasks}
    total, done = sum(len(task) for task in tasks), 0
    runs = [run.run_dir for task in tasks for run in task]
    with stopping_signals() as signals:
        try:
            for future in as_completed(futures):
                task = futures[future]
                try:
                    results = future.result()
                except KeyboardInterrupt:  # the worker was stopped before its task began
                    results = [("interrupted", "stopped before the run began")] * len(task)
                except Exception as err:  # the worker process itself died
                    results = [("failed", f"worker died: {err}")] * len(task)
                for run, (state, reason) in zip(task, results):
                    done += 1
                    counts[state] = counts.get(state, 0) + 1
                    if state == "failed":
                        failures.append((run.run_id, reason))
                    print(f"[{done}/{total} {time.time() - start:6.0f}s] {state:11s} "
                          f"{run.run_id}  "
                          + "  ".join(f"{k}={v}" for k, v in counts.items() if v), flush=True)
                if work is train_task:  # the sweep's bar, from the store
                    print(render(measure(runs, since=start)), flush=True)
        except KeyboardInterrupt as err:
            stop = signals.interrupted(err)
            stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            _stop_workers(stop.signal_name)
            started = [f for f in futures if not f.cancelled()]
            try:  # wait until each interrupted run is recorded
                wait(started, timeout=STOP_GRACE_SECONDS)
            finally:
                print(f"interrupted: runs not started are left for the next "
                      f"`{getattr(work, 'command', 'disbench sweep')}`; the interrupted ones "
                      f"{getattr(work, 'resumes', 'resume from their last checkpoint')} "
                      f"({stop.signal_name}).", file=sys.stderr, flush=True)
            raise stop from None
    pool.shutdown()
    print("summary: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    for run_id, reason in failures:
        print(f"  failed {run_id}: {reason}", file=sys.stderr)
    return counts
