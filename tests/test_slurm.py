"""The SLURM launcher on a real single-node cluster (tests/slurm/start_slurm.sh).

Under CI=true these must run: a missing cluster fails them instead of skipping. The runs
train the tiny networks (ARCH): the launcher is the subject, not the network."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.models.tiny import ARCH

pytestmark = pytest.mark.slurm
LAUNCHER = ["launcher=slurm", "launcher.mem_gb=2", "launcher.cpus_per_task=1",
            "launcher.timeout_min=20"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ok = shutil.which("sinfo") and subprocess.run(["sinfo"], capture_output=True).returncode == 0
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("no SLURM cluster: .ci/run must start one (tests/slurm/start_slurm.sh)")
        pytest.skip("no SLURM cluster here; start one with tests/slurm/start_slurm.sh (root)")


def disbench(args, results, data_dir):
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "disbench.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def statuses(results, study):
    return {p.name: json.loads((p / "status.json").read_text())
            for p in (results / study).iterdir() if (p / "status.json").exists()}


def settled_status(in_process, study):
    """`disbench status` (in this process) once SLURM has accounted for every task's end:
    `--wait` returns as soon as the tasks' results are written, and sacct may list a task
    as RUNNING a moment longer while its step ends."""
    deadline = time.time() + 60
    while True:
        out = in_process(["status", study])
        if "RUNNING" not in out.stdout or time.time() > deadline:
            return out
        time.sleep(1)


def test_smoke_sweep_completes_then_has_nothing_to_run(tmp_path, data_dir, in_process):
    out = disbench(["sweep", "smoke", *LAUNCHER, ARCH, "--wait"], tmp_path, data_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted 4 runs as 4 tasks in 1 array job(s)" in out.stdout
    assert "summary: 4 completed" in out.stdout
    runs = statuses(tmp_path, "smoke")
    assert len(runs) == 4 and {s["state"] for s in runs.values()} == {"completed"}
    again = in_process(["sweep", "smoke", *LAUNCHER, ARCH])
    assert again.returncode == 0 and "to run: 0" in again.stdout
    assert "submitted" not in again.stdout
    status = settled_status(in_process, "smoke")
    assert "SLURM tasks: COMPLETED 4" in status.stdout


def test_deferred_sweep_is_scored_by_tasks_that_start_after_training(tmp_path, data_dir):
    """eval.defer=true --then-eval: training tasks end "trained"; scoring tasks (SLURM's
    dependency afterany on the training array) score them and record them completed."""
    spec = tmp_path / "deferred.yaml"
    spec.write_text("study: deferred\ngrid:\n  data: dsprites_procedural\n  model: betavae\n"
                    "blocks:\n  - seed: [0, 1]\n"
                    f"overrides: [trainer=smoke, {ARCH}, eval=tiny, eval.defer=true, "
                    "\"+eval.representations.mean=[mig]\", \"+eval.representations.sampled=[]\", "
                    f"\"hydra.searchpath=[file://{Path(__file__).parent / 'conf'}]\"]\n")
    out = disbench(["sweep", str(spec), *LAUNCHER, "--then-eval", "--wait"], tmp_path,
                   data_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted 2 runs as 2 tasks in 1 array job(s)" in out.stdout
    assert "submitted 2 runs to score as 2 tasks in 1 array job(s)" in out.stdout
    assert "(starting after " in out.stdout and "summary: 2 scored" in out.stdout
    for name, status in statuses(tmp_path, "deferred").items():
        assert status["state"] == "completed" and status["trained_at"] < status["scored_at"]
        metrics = json.loads((tmp_path / "deferred" / name / "metrics.json").read_text())
        assert metrics["eval"]["name"] == "tiny" and set(metrics["mean"]) == {"mig.mig"}


def test_failing_run_is_recorded_and_the_others_complete(tmp_path, data_dir, in_process):
    spec = tmp_path / "mixed.yaml"
    spec.write_text("study: mixed\ngrid:\n  data: dsprites_procedural\n  arch: mlp\n"
                    "blocks:\n  - model: betavae\n    model.beta: [1, .nan]\n"
                    f"overrides: [trainer=smoke, eval=none, {ARCH}]\n")
    logs = tmp_path / "logs"  # submitit's logs outside the study: its job record stays in it
    out = disbench(["sweep", str(spec), *LAUNCHER, f"launcher.folder={logs}", "--wait"],
                   tmp_path, data_dir)
    assert out.returncode == 1 and "1 completed" in out.stdout and "1 failed" in out.stdout
    states = sorted(s["state"] for s in statuses(tmp_path, "mixed").values())
    assert states == ["completed", "failed"]
    (failed,) = [s for s in statuses(tmp_path, "mixed").values() if s["state"] == "failed"]
    assert "non-finite loss at step 0" in failed["reason"]
    assert any(logs.rglob("*.out"))
    status = settled_status(in_process, "mixed")
    assert "SLURM tasks: COMPLETED 2" in status.stdout, status.stdout


def test_rejected_option_submits_nothing(tmp_path, data_dir):
    out = disbench(["sweep", "smoke", *LAUNCHER, "launcher.partition=nosuch"], tmp_path, data_dir)
    assert out.returncode == 2 and "SLURM refused the submission" in out.stderr
    assert not any((tmp_path / "smoke").glob("*/status.json"))


def test_preempted_task_resumes_and_matches_an_uninterrupted_run(tmp_path, data_dir):
    spec = tmp_path / "long.yaml"
    # FactorVAE (two optimisers, a discriminator) on the tiny networks: 100 steps of about
    # 0.1 s, so the requeue lands mid-training
    spec.write_text("study: long\ngrid:\n  data: dsprites_procedural\n  model: factorvae\n"
                    f"blocks: [{{seed: 0}}]\noverrides: [trainer=smoke, eval=none, {ARCH}, "
                    "trainer.max_steps=100, "
                    "trainer.checkpoint_every_n_steps=20, trainer.log_every_n_steps=5]\n")
    # the same run trained in one go, locally, must log exactly the same losses; with the
    # same number of torch threads as the SLURM task (cpus_per_task=1), since the summation
    # order of a parallel reduction changes the last bits. It trains meanwhile.
    workers = os.cpu_count()  # the local launcher gives each worker cpu_count // workers threads
    env = {**os.environ, "DISBENCH_RESULTS": str(tmp_path / "local"),
           "DISBENCH_DATA": str(data_dir)}
    reference = subprocess.Popen([sys.executable, "-m", "disbench.cli", "sweep", str(spec),
                                  f"launcher.workers={workers}"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = disbench(["sweep", str(spec), *LAUNCHER], tmp_path / "slurm", data_dir)
        assert out.returncode == 0, out.stderr
        jobs = json.loads((tmp_path / "slurm/long/.slurm/jobs.json").read_text())["jobs"]
        job_id = jobs[0]["job_id"]
        status_file = next((tmp_path / "slurm" / "long").glob("*/status.json"), None)
        deadline = time.time() + 300
        while time.time() < deadline:  # wait for the second checkpoint, then preempt
            status_file = next((tmp_path / "slurm" / "long").glob("*/status.json"), None)
            if status_file and json.loads(status_file.read_text()).get("step", 0) >= 40:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the task never reached step 40")
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        while time.time() < deadline:
            status = json.loads(status_file.read_text())
            if status["state"] in ("completed", "failed"):
                break
            time.sleep(0.5)
        assert status["state"] == "completed" and status["attempts"] == 2, status
        log = (status_file.parent / "train.log").read_text()
        assert "resuming" in log
        _, stderr = reference.communicate(timeout=600)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.communicate()
    assert reference.returncode == 0, stderr
    (local_losses,) = (tmp_path / "local" / "long").glob("*/losses.csv")
    assert local_losses.parent.name == status_file.parent.name
    assert local_losses.read_text() == (status_file.parent / "losses.csv").read_text()


def test_hydra_multirun_through_submitit_slurm(tmp_path, data_dir):
    out = disbench(["train", "-m", "hydra/launcher=submitit_slurm", "hydra.launcher.mem_gb=2",
                    "hydra.launcher.cpus_per_task=1", "model=betavae", "seed=0,1",
                    "data=dsprites_procedural", "arch=mlp", ARCH, "trainer=smoke", "eval=none"],
                   tmp_path, data_dir)
    assert out.returncode == 0, out.stderr
    runs = statuses(tmp_path, "default")
    assert len(runs) == 2 and {s["state"] for s in runs.values()} == {"completed"}
    assert all(s["host"] and s["pid"] for s in runs.values())


PACKED_SPEC = f"""study: packed
grid:
  data: dsprites_procedural
  seed: [0, 1]
blocks:
  - model: betavae
    model.beta: [1, 4]
overrides: [trainer=smoke, eval=none, {ARCH}]
"""


def test_a_pack_of_four_runs_is_one_array_task(tmp_path, data_dir, in_process):
    spec = tmp_path / "packed.yaml"
    spec.write_text(PACKED_SPEC)
    args = ["sweep", str(spec), *LAUNCHER, "launcher.pack=4", "launcher.pack_on_cpu=true"]
    out = disbench([*args, "--wait"], tmp_path, data_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "packed: 4 runs in 1 tasks of up to 4 runs" in out.stdout
    assert "submitted 4 runs as 1 tasks in 1 array job(s)" in out.stdout
    assert "summary: 4 completed" in out.stdout
    runs = statuses(tmp_path, "packed")
    assert len(runs) == 4
    assert {(s["state"], s["attempts"], s["step"]) for s in runs.values()} == {
        ("completed", 1, 20)}
    record = json.loads((tmp_path / "packed" / ".slurm" / "jobs.json").read_text())
    assert len(record["jobs"]) == 4 and len({j["job_id"] for j in record["jobs"]}) == 1
    again = in_process(args)
    assert again.returncode == 0 and "to run: 0" in again.stdout
