"""`disbench train` end to end: store, skip, bad input, kill and resume.

Two tests start `disbench` as a process: the end-to-end tests of `disbench train` and of
`disbench eval` (kill -9 and resume: tests/test_resume_objectives.py); the others call
`run(compose(...))` or `disbench.cli.main` in this process (`disbench_in_process`).
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from disbench.config import compose
from disbench.errors import DisbenchError
from disbench.train.run import run
from tests.models.tiny import ARCH

SMOKE = ["data=dsprites_procedural", "trainer=smoke", "eval=none"]


def disbench(args, results, data_dir, **kwargs):
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "disbench.cli", *args], env=env,
                          capture_output=True, text=True, **kwargs)


def train(overrides, results, data_dir):
    """`disbench train OVERRIDES` in this process: the run's Outcome (`exit_code` is the
    command's exit status); a DisbenchError is the command's `error:` line and exit code."""
    return run(compose([*overrides, f"paths.results={results}", f"paths.data={data_dir}"]))


def only_run(results: Path) -> Path:
    (run,) = [p for p in (results / "default").iterdir() if p.is_dir()]
    return run


@pytest.mark.slow
def test_train_stores_a_complete_run_then_skips_it(tmp_path, data_dir, capsys):
    first = disbench(["train", "model=betavae", ARCH, *SMOKE], tmp_path, data_dir)
    assert first.returncode == 0, first.stderr
    run = only_run(tmp_path)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["step"] == 20
    assert status["data_source"] == "procedural"
    assert status["identity"]["model"] == {"name": "betavae", "beta": 4.0}
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert set(rows[0]) == {"step", "loss", "reconstruction", "kl", "elbo"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert (run / "traversal.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 20
    assert str(run) in first.stdout

    again = train(["model=betavae", ARCH, *SMOKE], tmp_path, data_dir)
    assert again.exit_code == 0 and "already completed" in capsys.readouterr().out
    assert json.loads((run / "status.json").read_text())["finished_at"] == status["finished_at"]


def test_unknown_model_lists_valid_names(in_process):
    out = in_process(["train", "model=nosuch", *SMOKE])
    assert out.returncode != 0
    assert "factorvae" in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_wrong_hyperparameter_type_is_one_clear_message(tmp_path, in_process):
    out = in_process(["train", "model.beta=abc", *SMOKE])
    assert out.returncode == 2 and "model.beta='abc'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "default").exists()


def test_unknown_hyperparameter(in_process):
    out = in_process(["train", "+model.gama=3", *SMOKE])
    assert out.returncode == 2 and "no hyperparameter 'gama'" in out.stderr


def test_non_finite_loss_marks_the_run_failed(tmp_path, data_dir):
    out = train(["model.beta=nan", *SMOKE], tmp_path, data_dir)
    assert out.exit_code == 1
    status = json.loads((only_run(tmp_path) / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 0
    assert "non-finite loss at step 0" in status["reason"]
    assert not (only_run(tmp_path) / "metrics.json").exists()


def test_unwritable_results_dir(tmp_path, data_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DisbenchError, match="cannot write the run directory") as err:
        train(SMOKE, blocker / "results", data_dir)
    assert err.value.exit_code == 2


def test_missing_official_dsprites_offline_names_the_alternative(tmp_path):
    # a DisbenchError is one `error:` line, no traceback
    with pytest.raises(DisbenchError, match="data=dsprites_procedural") as err:
        train(["data=dsprites", "trainer=smoke", "+data.url=http://127.0.0.1:9/none.npz"],
              tmp_path, tmp_path / "data")
    assert err.value.exit_code == 2


@pytest.mark.slow
def test_hydra_multirun_trains_each_combination(tmp_path, in_process):
    out = in_process(["train", "-m", "model=betavae", "seed=0,1", "arch=mlp", ARCH, *SMOKE])
    assert out.returncode == 0, out.stderr
    runs = sorted(p.name for p in (tmp_path / "default").iterdir())
    assert len(runs) == 2 and runs[0].startswith("betavae-dsprites_procedural-s0-")
    assert all(json.loads((tmp_path / "default" / r / "status.json").read_text())["state"]
               == "completed" for r in runs)
    assert (tmp_path / ".multirun").is_dir()  # Hydra's own files stay under the results root


TINY_EVAL = Path(__file__).parent / "conf"
# the scoring tests train on XYSquares: 6 factors of 8 values, where dSprites' 113 classes
# cost the metrics' classifiers twice the time
SCORED = ["arch=mlp", ARCH, "data=xysquares", "trainer=smoke"]
SCORES = ["beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.mig",
          "dci.disentanglement", "sap.sap", "modularity.modularity", "irs.irs",
          "unsupervised.gaussian_total_correlation", "downstream.logreg_100_mean_test_accuracy"]


@pytest.mark.slow
def test_run_ends_with_every_metric_in_its_metrics_file(tmp_path, data_dir):
    out = train([*SCORED, f"hydra.searchpath=[file://{TINY_EVAL}]", "eval=tiny"], tmp_path,
                data_dir)
    assert out.exit_code == 0, out.reason
    metrics = json.loads((only_run(tmp_path) / "metrics.json").read_text())
    assert metrics["eval"]["name"] == "tiny" and metrics["eval"]["dci"]["num_train"] == 200
    assert metrics["eval"]["seed"] == 0
    for score in SCORES:
        assert 0.0 <= metrics["mean"][score] <= 1.0 or score.startswith("unsup"), score
    assert set(metrics["sampled"]) >= {"unsupervised.gaussian_total_correlation"}
    assert metrics["sampled"]["unsupervised.gaussian_total_correlation"] != \
        metrics["mean"]["unsupervised.gaussian_total_correlation"]


@pytest.mark.slow
def test_deferred_scoring_stores_a_trained_run_that_eval_or_a_rerun_completes(
        tmp_path, data_dir, disbench_in_process):
    """eval.defer=true: training ends "trained" (checkpoint, losses, traversal; no scores),
    a rerun with eval.defer skips it, a sweep does not launch it, `disbench status` counts
    it, and a rerun without eval.defer scores it and records it completed."""
    from disbench.launch.state import run_state, to_launch
    from disbench.launch.status import report

    deferred = ["arch=mlp", ARCH, "data=dsprites_procedural", "trainer=smoke",
                f"hydra.searchpath=[file://{TINY_EVAL}]", "eval=tiny",
                "+eval.representations.mean=[mig,sap]", "+eval.representations.sampled=[]",
                "eval.defer=true"]
    out = train(deferred, tmp_path, data_dir)
    assert (out.state, out.exit_code) == ("trained", 0)
    run_dir = only_run(tmp_path)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "trained" and status["step"] == 20 and "trained_at" in status
    assert not (run_dir / "claim.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"train"}
    assert (run_dir / "traversal.png").exists()
    assert train(deferred, tmp_path, data_dir).state == "skipped"
    assert run_state(out.run_dir) == "trained" and to_launch(["trained"]) == []
    text = report(tmp_path, "default")
    assert "trained 1" in text and f"disbench eval {tmp_path / 'default'}` scores them" in text
    aggregated = disbench_in_process(["aggregate", "default", "--results", str(tmp_path)])
    assert f"left out default/{run_dir.name}: trained, not yet scored (eval.defer)" in \
        aggregated.stdout + aggregated.stderr

    scored = train(deferred[:-1], tmp_path, data_dir)  # the same run, scored in the same task
    assert scored.state == "completed"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and status["attempts"] == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval"]["name"] == "tiny" and set(metrics["mean"]) == {"mig.mig", "sap.sap"}


@pytest.mark.slow
def test_disbench_eval_fills_in_a_run_trained_without_metrics(tmp_path, data_dir, in_process):
    assert train([*SCORED, "eval=none"], tmp_path, data_dir).exit_code == 0
    run = only_run(tmp_path)
    before = json.loads((run / "metrics.json").read_text())
    assert before["eval"] == {"name": "none"} and "mean" not in before
    out = disbench(["eval", str(run), f"eval={TINY_EVAL / 'eval' / 'tiny.yaml'}"], tmp_path,
                   data_dir)
    assert out.returncode == 0, out.stderr
    after = json.loads((run / "metrics.json").read_text())
    assert after["train"] == before["train"] and after["eval"]["name"] == "tiny"
    assert all(score in after["mean"] for score in SCORES)
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    again = in_process(["eval", str(run), f"eval={TINY_EVAL / 'eval' / 'tiny.yaml'}"])
    assert again.returncode == 0 and json.loads((run / "metrics.json").read_text()) == after


def test_tensorboard_without_the_package_is_one_clear_message(tmp_path, data_dir):
    import importlib.util

    overrides = [*SMOKE, "trainer.logger=tensorboard", "trainer.max_steps=2"]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        assert train(overrides, tmp_path, data_dir).exit_code == 0
        assert (only_run(tmp_path) / "tensorboard").is_dir()
    else:
        with pytest.raises(DisbenchError, match="pip install tensorboard") as err:
            train(overrides, tmp_path, data_dir)
        assert err.value.exit_code == 2
        assert not (tmp_path / "default").exists()
