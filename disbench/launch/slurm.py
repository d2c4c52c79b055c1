"""The SLURM launcher: submitit job arrays, one `sbatch` per chunk of tasks (a task is a
run, or a pack of runs with `launcher.pack`).

Each task calls the same `execute` as the local launcher. Tasks are
checkpointable: on a time-out or preemption submitit requeues the same task,
which finds its run's claim (same SLURM task id), takes it over and resumes from
the last checkpoint. Lightning's own SLURM requeueing is switched off in
`disbench.train.run`, so the two never fight.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import submitit

from disbench import store
from disbench.errors import DisbenchError
from disbench.launch.progress import measure, render
from disbench.launch.sweep import PlannedRun
from disbench.launch.task import train_task


class SweepTask(submitit.helpers.Checkpointable):
    """One task: `work` (training, or a `ScoreTask`) on its runs; `checkpoint()`
    (inherited) resubmits the same call on preemption."""

    def __init__(self, threads: int, work=train_task):
        self.threads, self.work = threads, work

    def __call__(self, task: list[PlannedRun]) -> list[tuple[str, str]]:
        return self.work(task, self.threads)


def scoring_launcher(launcher: dict) -> dict:
    """The launcher's settings for scoring tasks: its `eval` block over the rest."""
    return {**launcher, **{k: v for k, v in (launcher.get("eval") or {}).items()
                           if v is not None}}


def slurm_folder(results: Path, study: str, launcher: dict) -> Path:
    """Where submitit writes its logs: `launcher.folder`, else `<results>/<study>/.slurm`."""
    return Path(launcher.get("folder") or results / study / ".slurm")


def jobs_record(results: Path, study: str) -> Path:
    """The study's record of submitted jobs, in the study whatever `launcher.folder` is."""
    return results / study / ".slurm" / "jobs.json"


def _executor(folder: Path, name: str, launcher: dict, after: list[str] = ()
              ) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    additional = dict(launcher.get("additional_parameters") or {})
    if after:  # start once these jobs have ended, however they ended
        additional["dependency"] = "afterany:" + ":".join(after)
    params = {
        "name": name,
        "timeout_min": int(launcher["timeout_min"]),
        "cpus_per_task": int(launcher["cpus_per_task"]),
        "mem_gb": launcher["mem_gb"],
        "slurm_array_parallelism": int(launcher["array_parallelism"]),
        "slurm_setup": list(launcher.get("setup") or []),
        "slurm_additional_parameters": additional,
    }
    if launcher.get("gpus_per_task"):
        params["slurm_gpus_per_task"] = int(launcher["gpus_per_task"])
    if launcher.get("partition"):
        params["slurm_partition"] = launcher["partition"]
    executor.update_parameters(**params)
    return executor


def _record(path: Path, folder: Path, jobs: list, tasks: list[list[PlannedRun]]) -> None:
    """Append the submitted job ids, their runs and log folder to the study's jobs.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = store.read_json(path) or {"jobs": []}
    for job, task in zip(jobs, tasks):
        for run in task:
            record["jobs"].append({"job_id": job.job_id, "run_id": run.run_id,
                                   "logs": str(folder), "submitted_at": time.time()})
    store.write_json(path, record)


def launch(study: str, tasks: list[list[PlannedRun]], launcher: dict, wait: bool = False,
           work=train_task, after: list[str] = ()) -> int:
    """Submit `tasks` (`submit`); with `wait`, block until they end; the exit code."""
    jobs = submit(study, tasks, launcher, work, after)
    return wait_for(jobs, tasks, progress=work is train_task) if wait else 0


def submit(study: str, tasks: list[list[PlannedRun]], launcher: dict, work=train_task,
           after: list[str] = ()) -> list:
    """Submit `tasks` as array jobs doing `work` (training, or a `ScoreTask`), starting
    after the jobs `after` if any; the submitted jobs."""
    if shutil.which("sbatch") is None:
        raise DisbenchError("launcher=slurm needs SLURM's sbatch, which is not on this machine's "
                            "PATH; run on a cluster login node, or use launcher=local")
    results = tasks[0][0].run_dir.path.parents[1]
    folder = slurm_folder(results, study, launcher)
    folder.mkdir(parents=True, exist_ok=True)
    scoring = work is not train_task
    executor = _executor(folder, f"disbench-{'eval-' if scoring else ''}{study}", launcher,
                         after)
    task = SweepTask(int(launcher["cpus_per_task"]), work)
    size = int(launcher["max_array_size"])
    jobs = []
    for start in range(0, len(tasks), size):
        chunk = tasks[start:start + size]
        try:
            submitted = executor.map_array(task, chunk)
        except Exception as err:  # sbatch refused: undo what this sweep already submitted
            if jobs:
                subprocess.run(["scancel", *{j.job_id.split("_")[0] for j in jobs}], check=False)
            raise DisbenchError(f"SLURM refused the submission ({err}); nothing is left "
                                f"submitted. Check the launcher options: "
                                f"{json.dumps(launcher)}") from None
        _record(jobs_record(results, study), folder, submitted, chunk)
        jobs += submitted
    arrays = array_ids(jobs)
    runs = sum(len(t) for t in tasks)
    print(f"submitted {runs} runs {'to score ' if scoring else ''}as {len(jobs)} tasks in "
          f"{len(arrays)} array job(s): {', '.join(arrays)}"
          + (f" (starting after {', '.join(after)})" if after else "")
          + f"; logs in {folder}; follow with `disbench status {study}`")
    return jobs


def array_ids(jobs: list) -> list[str]:
    return sorted({j.job_id.split("_")[0] for j in jobs})


def wait_for(jobs: list, tasks: list[list[PlannedRun]], progress: bool = True,
             poll_seconds: float = 5.0) -> int:
    """Wait for the jobs, printing (training: ``progress``) the sweep's progress line from
    the store whenever its counts change, then a summary; 1 if a run failed."""
    runs = [run.run_dir for task in tasks for run in task]
    start, shown = time.time(), None
    while not all(job.done() for job in jobs):
        if progress:
            line = render(measure(runs, since=start))
            counts = line.split(";")[0]
            if counts != shown:  # the counts changed, not only the clock
                print(line, flush=True)
                shown = counts
        time.sleep(poll_seconds)
    if progress:
        print(render(measure(runs, since=start)), flush=True)
    states: Counter = Counter()
    for job, task_runs in zip(jobs, tasks):
        try:
            results = job.result()
        except Exception as err:  # the task itself died (killed, out of memory, ...)
            results = [("failed", f"SLURM task {job.job_id} died: {err}")] * len(task_runs)
        for run, (state, reason) in zip(task_runs, results):
            states[state] += 1
            if state == "failed":
                print(f"  failed {run.run_id}: {reason}")
    print("summary: " + ", ".join(f"{v} {k}" for k, v in states.items()))
    return 1 if states.get("failed") else 0


def job_states(results: Path, study: str) -> dict[str, int] | None:
    """Counts of SLURM states of the study's recorded tasks, from sacct; None if unknown."""
    try:
        record = store.read_json(jobs_record(results, study))
    except ValueError:  # a corrupt record: the states are unknown, the runs' own are shown
        return None
    if not record or shutil.which("sacct") is None:
        return None
    arrays = sorted({j["job_id"].split("_")[0] for j in record["jobs"]})
    out = subprocess.run(["sacct", "-n", "-P", "-X", "--format=JobID,State", "-j",
                          ",".join(arrays)], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    states = Counter(line.split("|")[1].split()[0] for line in out.stdout.splitlines() if line)
    return dict(states)
