"""Sweep specs, planning and the local launcher."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from disbench.config import compose, run_id
from disbench.errors import DisbenchError
from disbench.launch.sweep import plan
from tests.models.tiny import ARCH
from tests.processes import output_to

MODEL_VALUES = {"betavae": ("beta", [1, 2, 4, 6, 8, 16]),
                "annealedvae": ("c_max", [5, 10, 25, 50, 75, 100]),
                "factorvae": ("gamma", [10, 20, 30, 40, 50, 100]),
                "dipvae1": ("lambda_od", [1, 2, 5, 10, 20, 50]),
                "dipvae2": ("lambda_od", [1, 2, 5, 10, 20, 50]),
                "betatcvae": ("beta", [1, 2, 4, 6, 8, 10])}
DATASETS = ["dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb",
            "cars3d", "shapes3d"]


@pytest.mark.slow
def test_locatello2019_is_the_reference_study():
    study, runs = plan("locatello2019")
    assert study == "locatello2019" and len(runs) == 12_600
    assert Counter(r.model for r in runs) == {m: 7 * 6 * 50 for m in MODEL_VALUES}
    assert Counter(r.data for r in runs) == {d: 6 * 6 * 50 for d in DATASETS}
    per_cell = Counter((r.model, r.data) for r in runs)
    assert set(per_cell.values()) == {300}
    values = Counter()
    for r in runs:
        name, grid = MODEL_VALUES[r.model]
        (value,) = [o.split("=")[1] for o in r.overrides if o.startswith(f"model.{name}=")]
        values[(r.model, float(value))] += 1
    assert values == {(m, float(v)): 7 * 50 for m, (_, vs) in MODEL_VALUES.items() for v in vs}
    assert "trainer=locatello" in runs[0].overrides
    steps = {r.model: [o for o in r.overrides if o.startswith("trainer.max_steps=")]
             for r in runs}
    assert steps["factorvae"] == ["trainer.max_steps=150000"]  # as many updates as the reference
    assert all(not v for m, v in steps.items() if m != "factorvae")
    # the worker composes the same overrides with Hydra and must find the same run
    for r in random.Random(0).sample(runs, 5):
        assert run_id(compose(list(r.overrides))) == r.run_id


def test_command_line_overrides_apply_to_every_run_and_merge_duplicates():
    _, runs = plan("locatello2019", ["data=dsprites_procedural", "trainer=quick"])
    assert len(runs) == 12_600 // 7
    cfg = compose(list(runs[0].overrides))
    assert cfg.data.name == "dsprites_procedural" and cfg.trainer.max_steps == 2000
    # a trainer chosen on the command line replaces the spec's trainer keys too
    factorvae = [r for r in runs if r.model == "factorvae"]
    assert len(factorvae) == 300
    assert compose(list(factorvae[0].overrides)).trainer.max_steps == 2000


def test_seed_methods_sweep():
    _, runs = plan("seed-methods")
    assert len(runs) == 90 and Counter(r.data for r in runs) == {"dsprites_procedural": 45,
                                                                  "xysquares": 45}
    assert Counter(r.model for r in runs) == {"betavae": 24, "factorvae": 12, "nashae": 12,
                                              "lagrangian_vae": 12, "critic_vae": 12,
                                              "vaegan": 12, "gvvae": 6}
    augmented = [r for r in runs if "model.reconstruction=augmented" in r.overrides]
    assert len(augmented) == 12
    for r in random.Random(0).sample(runs, 5) + augmented[:1]:
        assert run_id(compose(list(r.overrides))) == r.run_id


def test_seed_methods_2_sweep():
    _, runs = plan("seed-methods-2")
    assert len(runs) == 84 and Counter(r.data for r in runs) == {"dsprites_procedural": 42,
                                                                  "xysquares": 42}
    assert Counter(r.model for r in runs) == {m: 12 for m in (
        "betavae", "factorvae", "betatcvae", "gwae", "strkm", "attrivae", "ssvae")}
    assert all("eval=fast" in r.overrides and "trainer=quick" in r.overrides for r in runs)
    by_model = {}
    for r in runs:
        by_model.setdefault(r.model, r)
    for r in by_model.values():
        assert run_id(compose(list(r.overrides))) == r.run_id


def test_quick_and_smoke_sweeps():
    _, quick = plan("quick-dsprites")
    assert len(quick) == 26 and len({r.model for r in quick}) == 7
    _, smoke = plan("smoke")
    assert len(smoke) == 4 and all("trainer=smoke" in r.overrides for r in smoke)


@pytest.mark.parametrize("spec,message", [
    ("study: s\nblocks:\n  - model: betavae\n    model.nosuch: [1]\n", "no hyperparameter"),
    ("study: s\nblocks:\n  - model: betavae\n    trainer.nosuch: [1]\n", "unknown key"),
    ("study: s\nblocks:\n  - model: []\n", "empty"),
    ("study: s\nblocks:\n  - model: nosuchmodel\n", "nosuchmodel"),
    ("study: s\nnosuch: 1\n", "unknown top-level"),
    ("blocks: []\n", "'study' name"),
])
def test_bad_specs_are_one_clear_error(tmp_path, spec, message):
    path = tmp_path / "bad.yaml"
    path.write_text(spec)
    with pytest.raises(DisbenchError, match=message):
        plan(str(path))


def test_unknown_sweep_lists_the_shipped_ones():
    with pytest.raises(DisbenchError, match="locatello2019"):
        plan("nosuch")


def disbench(args, results, data_dir):
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "disbench.cli", *args], env=env,
                          capture_output=True, text=True)


def test_bad_launcher_options(in_process):
    out = in_process(["sweep", "smoke", "launcher=nosuch"])
    assert out.returncode == 2 and "valid: local" in out.stderr
    out = in_process(["sweep", "smoke", "launcher.nosuch=1"])
    assert out.returncode == 2 and "no option 'nosuch'" in out.stderr


def statuses(results, study):
    return {p.name: json.loads((p / "status.json").read_text())
            for p in (results / study).iterdir() if (p / "status.json").exists()}


@pytest.mark.slow
def test_local_sweep_runs_records_failures_and_carries_on(tmp_path, data_dir, in_process):
    """The end-to-end test of `disbench sweep` and `disbench status` as processes; the
    dry run and the sweep with nothing left to run are called in this process."""
    spec = tmp_path / "mixed.yaml"
    spec.write_text("study: mixed\ngrid:\n  data: dsprites_procedural\n  arch: mlp\n"
                    "blocks:\n  - model: betavae\n    model.beta: [1, .nan, 4]\n"
                    "overrides: [trainer=smoke, eval=none, \"arch.name=tests.models.tiny:Tiny\"]\n")
    out = in_process(["sweep", str(spec), "--dry-run"])
    assert out.returncode == 0 and "3 runs" in out.stdout and "to run: 3" in out.stdout
    assert not (tmp_path / "mixed").exists()
    out = disbench(["sweep", str(spec)], tmp_path, data_dir)
    assert out.returncode == 1 and "2 completed, 1 failed" in out.stdout
    states = Counter(s["state"] for s in statuses(tmp_path, "mixed").values())
    assert states == {"completed": 2, "failed": 1}
    failed = [s for s in statuses(tmp_path, "mixed").values() if s["state"] == "failed"]
    assert "non-finite loss" in failed[0]["reason"]
    again = in_process(["sweep", str(spec)])
    assert again.returncode == 0 and "to run: 0" in again.stdout
    status = disbench(["status", "mixed"], tmp_path, data_dir)
    assert "completed 2  failed 1" in status.stdout and "non-finite loss" in status.stdout


@pytest.mark.slow  # 8 fresh worker processes: 1 to 2.5 min on 2 shared cores
def test_two_concurrent_sweeps_run_each_run_once(tmp_path, data_dir):
    spec = tmp_path / "pair.yaml"
    spec.write_text("study: pair\ngrid:\n  data: dsprites_procedural\n  arch: mlp\n"
                    "  model: betavae\nblocks:\n  - seed: range(0, 4)\n"
                    "overrides: [trainer=smoke, eval=none, \"arch.name=tests.models.tiny:Tiny\"]\n")
    env = {**os.environ, "DISBENCH_RESULTS": str(tmp_path), "DISBENCH_DATA": str(data_dir)}
    procs = [subprocess.Popen([sys.executable, "-m", "disbench.cli", "sweep", str(spec)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = statuses(tmp_path, "pair")
    assert len(runs) == 4 and all(s["state"] == "completed" for s in runs.values())
    assert all(s["attempts"] == 1 for s in runs.values())  # nobody trained a run twice


@pytest.mark.slow
def test_ctrl_c_stops_a_local_sweep(tmp_path, data_dir):
    """Ctrl-C (SIGINT to the process group) ends the sweep: the run in progress is stored
    as interrupted, the runs not started are not started, and the next sweep finishes."""
    spec = tmp_path / "long.yaml"
    spec.write_text("study: long\ngrid:\n  data: dsprites_procedural\n  arch: mlp\n"
                    "  model: betavae\nblocks:\n  - seed: range(0, 4)\n"
                    "overrides: [trainer=smoke, trainer.max_steps=100000, eval=none]\n")
    env = {**os.environ, "DISBENCH_RESULTS": str(tmp_path), "DISBENCH_DATA": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "disbench.cli", "sweep", str(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # a shell's background job ignores SIGINT, and children inherit it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    def training() -> bool:  # a run has logged a step
        return (tmp_path / "long").exists() and any(
            (p / "losses.csv").exists() for p in (tmp_path / "long").iterdir())

    deadline = time.time() + 120
    while time.time() < deadline and not training():
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "interrupted: runs not started are left for the next `disbench sweep`" in err
    states = Counter(s["state"] for s in statuses(tmp_path, "long").values())
    assert states == {"interrupted": 1}, (states, out, err)


WORKER_EXIT = """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

def scored_task():
    from joblib import Parallel, delayed  # as DCI and the downstream task use it
    from disbench.launch import task
    Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))
    task._stop_joblib_workers()
    return "done"

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as one:
        print(one.submit(scored_task).result())
"""


def test_a_sweep_worker_exits_once_its_run_is_done(tmp_path):
    """joblib's idle workers would hold a sweep worker's exit for 300 s after every scored
    run (a multiprocessing child waits for its children); the task stops them."""
    script = tmp_path / "worker_exit.py"
    script.write_text(WORKER_EXIT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


def train_command(overrides: list[str], log: str) -> None:
    """`disbench train OVERRIDES` as a process's whole work, its output in `log`."""
    from disbench.cli import main

    output_to(log)
    sys.exit(main(["train", *overrides]))


def test_a_run_completed_by_another_process_before_the_claim_is_not_trained_again(
        tmp_path, data_dir, monkeypatch, new_process):
    """Two sweeps start the same run; one completes it while the other is still loading
    the dataset. The other takes the released claim, and must then see it completed."""
    from disbench.train import run as run_module

    overrides = ["model=betavae", "data=dsprites_procedural", "arch=mlp", ARCH,
                 "trainer=smoke", "eval=none", f"paths.results={tmp_path}",
                 f"paths.data={data_dir}"]
    load = run_module.load_dataset
    log = tmp_path / "other.log"

    def load_while_another_process_completes_the_run(cfg):
        dataset = load(cfg)
        other = new_process(target=train_command, args=(overrides, str(log)))
        other.start()
        other.join(timeout=600)
        if other.exitcode is None:
            other.kill()
        assert other.exitcode == 0, log.read_text()[-2000:]
        return dataset

    monkeypatch.setattr(run_module, "load_dataset", load_while_another_process_completes_the_run)
    outcome = run_module.run(compose(overrides))
    assert outcome.state == "skipped"
    status = json.loads(outcome.run_dir.status_file.read_text())
    assert (status["state"], status["attempts"]) == ("completed", 1)
    assert not outcome.run_dir.claim_file.exists()


DEFERRED_SPEC = """study: deferred
grid:
  data: dsprites_procedural
  model: betavae
blocks:
  - seed: [0, 1]
overrides: [trainer=smoke, "arch.name=tests.models.tiny:Tiny", eval=tiny, eval.defer=true,
            "+eval.representations.mean=[mig]", "+eval.representations.sampled=[]",
            "hydra.searchpath=[file://{conf}]"]
"""


@pytest.mark.slow
def test_then_eval_scores_the_runs_a_deferred_sweep_trained(tmp_path, data_dir, in_process):
    """`disbench sweep ... eval.defer=true --then-eval`: the local launcher trains the runs
    (each ends trained), then scores them in tasks of their own; `disbench eval STUDY
    launcher=local` then has nothing left to score."""
    from pathlib import Path

    spec = tmp_path / "deferred.yaml"
    spec.write_text(DEFERRED_SPEC.format(conf=Path(__file__).parent / "conf"))
    refused = in_process(["sweep", str(spec), "eval.defer=false", "--then-eval"])
    assert refused.returncode == 2 and "--then-eval scores the runs" in refused.stderr
    env = {**os.environ, "DISBENCH_RESULTS": str(tmp_path), "DISBENCH_DATA": str(data_dir)}
    out = subprocess.run([sys.executable, "-m", "disbench.cli", "sweep", str(spec),
                          "--then-eval", "launcher.workers=2"], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "summary: 2 trained" in out.stdout and "then scoring: 2 run(s)" in out.stdout
    assert "summary: 2 scored" in out.stdout
    runs = statuses(tmp_path, "deferred")
    assert len(runs) == 2
    for name, status in runs.items():
        assert status["state"] == "completed" and "trained_at" in status and \
            "scored_at" in status
        run = tmp_path / "deferred" / name
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["eval"]["name"] == "tiny" and set(metrics["mean"]) == {"mig.mig"}
        assert "scored " in (run / "eval.log").read_text()
    again = in_process(["eval", str(tmp_path / "deferred"), "launcher=local"])
    assert again.returncode == 0 and "0 of 2 run(s) to score" in again.stdout
