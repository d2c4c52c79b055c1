import json
import os
import subprocess
import sys

from disbench import store


def test_write_json_is_atomic_and_readable(tmp_path):
    path = tmp_path / "status.json"
    store.write_json(path, {"state": "running", "step": 3})
    assert json.loads(path.read_text()) == {"state": "running", "step": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary left


def test_update_status_merges_fields(tmp_path):
    run = store.RunDir(tmp_path / "r")
    run.create()
    run.update_status(state="running", step=1)
    status = run.update_status(step=5)
    assert status["state"] == "running" and status["step"] == 5 and run.state == "running"


def test_claim_is_exclusive_while_owner_lives(tmp_path):
    run = store.RunDir(tmp_path / "r")
    run.create()
    assert run.try_claim()
    assert not run.try_claim()  # this process is alive: the claim stands
    run.release_claim()
    assert run.try_claim()


def test_claim_of_dead_process_is_taken_over(tmp_path):
    run = store.RunDir(tmp_path / "r")
    run.create()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = {**run._claim_info(), "pid": dead.pid}
    run.claim_file.write_text(json.dumps(info))
    assert run.claim_owner() is None
    assert run.try_claim()
    assert json.loads(run.claim_file.read_text())["pid"] == os.getpid()


def test_claim_on_other_host_goes_stale_without_heartbeat(tmp_path, monkeypatch):
    run = store.RunDir(tmp_path / "r")
    run.create()
    run.claim_file.write_text(json.dumps({"host": "elsewhere", "pid": 1, "slurm_task": None}))
    assert not run.try_claim()
    old = run.claim_file.stat().st_mtime - store.CLAIM_STALE_SECONDS - 1
    os.utime(run.claim_file, (old, old))
    assert run.try_claim()


def test_requeued_slurm_task_takes_over_its_own_claim(tmp_path, monkeypatch):
    run = store.RunDir(tmp_path / "r")
    run.create()
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    run.claim_file.write_text(json.dumps({"host": "elsewhere", "pid": 1, "slurm_task": "41_3"}))
    assert run.try_claim()


def test_a_config_stored_before_arch_init_reads_as_pytorchs_initialisation(tmp_path):
    """Runs stored before arch.init existed were trained with PyTorch's initialisation."""
    run = store.RunDir(tmp_path / "run")
    run.create()
    run.config.write_text("model: {name: betavae, beta: 4.0}\ndata: {name: xysquares}\n"
                          "arch: {name: mlp, latent_dim: 10}\nseed: 0\n")
    assert run.read_config().arch.init == "torch"
    run.config.write_text("model: {name: betavae, beta: 4.0}\ndata: {name: xysquares}\n"
                          "arch: {name: mlp, latent_dim: 10, init: reference}\nseed: 0\n")
    assert run.read_config().arch.init == "reference"
