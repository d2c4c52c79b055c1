"""`disbench eval`: scores completed runs from their checkpoints, resumable, leaves the rest."""

import json

import pytest
import torch
import yaml
from suite_fixtures import tiny_grid
from test_suite_score_model import tiny_model

from disbench import data
from disbench.metrics.cli import main


@pytest.fixture(autouse=True)
def tiny_dataset(monkeypatch):
    """A tiny grid under a registry name, for these tests only."""
    monkeypatch.setitem(data._LOADERS, "metrics_test_tiny", lambda data_dir: tiny_grid())

SETTINGS = {
    "beta_vae": {"batch_size": 8, "num_train": 60, "num_eval": 40},
    "factor_vae": {"batch_size": 8, "num_train": 60, "num_eval": 40,
                   "num_variance_estimate": 100},
    "mig": {"num_train": 100}, "dci": {"num_train": 100, "num_test": 50},
    "sap": {"num_train": 100, "num_test": 50}, "modularity": {"num_train": 100, "num_test": 50},
    "irs": {"num_train": 100}, "unsupervised": {"num_train": 100},
    "downstream": {"num_train": [20], "num_test": 50},
    "fairness": {"num_train": 100, "num_test_points_per_class": 5},
    "heldout": {"num_points": 50}, "udr": {"num_points": 50},
    "fid": {"num_samples": 100, "inception_weights": None, "extractor_steps": 20,
            "extractor_batch_size": 16, "extractor_features": 8},
}


def make_run(study, name, state, seed=0, checkpoint=True):
    run = study / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = {"seed": seed, "data": {"name": "metrics_test_tiny"},
           "paths": {"data": str(study / "data"), "results": str(study.parent)},
           "arch": {"name": "mlp", "latent_dim": 4}, "model": {"name": "vae"}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "status.json").write_text(json.dumps({"state": state}))
    if state == "completed":
        (run / "metrics.json").write_text(json.dumps({"train": {"loss": 1.5},
                                                      "eval": {"name": "none"}}))
    if checkpoint:
        state_dict = {f"model.{k}": v for k, v in tiny_model(seed).state_dict().items()}
        torch.save({"state_dict": state_dict, "global_step": 20},
                   run / "checkpoints" / "last.ckpt")
    return run


@pytest.fixture()
def study(tmp_path, monkeypatch):
    monkeypatch.delenv("DISBENCH_DATA", raising=False)
    study = tmp_path / "results" / "study"
    make_run(study, "a-completed", "completed", seed=0)
    make_run(study, "b-running", "running", seed=1)
    make_run(study, "c-failed", "failed", seed=2, checkpoint=False)
    settings = tmp_path / "tiny.yaml"
    settings.write_text(yaml.safe_dump(SETTINGS))
    return study, settings


@pytest.mark.slow
def test_scores_completed_runs_only_then_skips_them(study, capsys):
    study, settings = study
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    assert main([str(study), f"eval={settings}"]) == 0
    out = capsys.readouterr().out
    assert "scored a-completed" in out
    assert "eval=tiny: 1 scored, 0 already scored, 2 not completed, 0 failed" in out
    metrics = json.loads((study / "a-completed" / "metrics.json").read_text())
    assert metrics["train"] == {"loss": 1.5}
    assert metrics["eval"]["name"] == "tiny" and metrics["eval"]["seed"] == 0
    assert metrics["eval"]["dci"] == {"num_train": 100, "num_test": 50}
    assert 0.0 <= metrics["mean"]["beta_vae.eval_accuracy"] <= 1.0
    assert set(metrics["sampled"]) == {k for k in metrics["mean"] if k.startswith("unsup")}
    assert set(metrics["heldout"]) == {"reconstruction", "kl", "elbo"}
    assert (study / "a-completed" / "udr_sample.npz").is_file()  # beside metrics.json
    # nothing else changed: no status.json written, other runs untouched
    for path, content in before.items():
        if path.name != "metrics.json":
            assert path.read_bytes() == content, path
    assert not (study / "b-running" / "metrics.json").exists()

    written = (study / "a-completed" / "metrics.json").stat().st_mtime_ns
    assert main([str(study / "a-completed"), f"eval={settings}"]) == 0
    assert "skipped a-completed: already scored" in capsys.readouterr().out
    assert main([str(study / "b-running"), f"eval={settings}"]) == 0
    assert "skipped b-running: not completed (state running)" in capsys.readouterr().out
    assert (study / "a-completed" / "metrics.json").stat().st_mtime_ns == written

    assert main([str(study / "a-completed"), f"eval={settings}", "--force"]) == 0
    assert "scored a-completed" in capsys.readouterr().out
    assert json.loads((study / "a-completed" / "metrics.json").read_text()) == metrics


@pytest.mark.slow
def test_a_run_that_cannot_be_scored_is_reported_and_the_rest_go_on(study, capsys):
    study, settings = study
    (study / "c-failed" / "status.json").write_text(json.dumps({"state": "completed"}))
    assert main([str(study), f"eval={settings}"]) == 1
    captured = capsys.readouterr()
    assert "error: c-failed:" in captured.err and "last.ckpt is missing" in captured.err
    assert "scored a-completed" in captured.out


@pytest.mark.slow
def test_a_trained_run_is_scored_once_with_its_own_settings_then_completed(study, capsys):
    """eval.defer: a run stored as trained is scored with the settings of its own config,
    under its claim, and only then recorded completed."""
    import os
    import socket

    study, _ = study
    run = make_run(study, "d-trained", "trained", seed=3)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["eval"] = {"name": "mine", "defer": True, **SETTINGS}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.json").write_text(json.dumps({"train": {"loss": 2.5}}))

    # another live process holds the claim: left to it
    (run / "claim.json").write_text(json.dumps({"host": socket.gethostname(),
                                                "pid": os.getppid()}))
    assert main([str(run)]) == 0
    assert "skipped d-trained: being scored by" in capsys.readouterr().out
    assert json.loads((run / "status.json").read_text())["state"] == "trained"
    (run / "claim.json").unlink()

    assert main([str(run)]) == 0
    assert "scored d-trained" in capsys.readouterr().out
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and "scored_at" in status
    assert not (run / "claim.json").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"] == {"loss": 2.5}
    assert metrics["eval"]["name"] == "mine" and metrics["eval"]["seed"] == 3
    assert "defer" not in metrics["eval"]  # when it was scored is not how
    assert metrics["eval"]["dci"] == {"num_train": 100, "num_test": 50}
    assert main([str(run), "eval=" + str(study.parent.parent / "tiny.yaml")]) == 0
    assert "scored d-trained" in capsys.readouterr().out  # a completed run, other settings


@pytest.mark.parametrize("args, match", [
    (["eval=nonsense"], "unknown eval settings 'nonsense'; valid: fast, locatello"),
    (["eval=none"], "eval=none computes no metrics"),
    (["model=vae"], "unexpected argument 'model=vae'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments(study, capsys, args, match):
    study, _ = study
    assert main([str(study), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err


def test_a_path_without_runs(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no runs in" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
