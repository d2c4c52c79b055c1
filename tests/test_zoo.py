"""The model-zoo format: `disbench export` and `disbench.load`, round trip and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

import disbench
from disbench.errors import DisbenchError
from disbench.zoo import build_model, export

SHAPE = [1, 6, 6]
CONFIG = {"seed": 3, "study": "st", "data": {"name": "dsprites_procedural"},
          "arch": {"name": "mlp", "latent_dim": 4, "init": "torch"},
          "model": {"name": "betavae", "beta": 4.0, "reconstruction": "bernoulli",
                    "augment_radius": 31},
          "trainer": {"max_steps": 20, "batch_size": 8, "lr": 1e-4},
          "paths": {"results": "/somewhere/results", "data": "/somewhere/data"}}


def make_run(study, name, state="completed", seed=3):
    """A run directory as training leaves it, with a model of random weights."""
    run = study / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = {**CONFIG, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "status.json").write_text(json.dumps({
        "state": state, "run_id": name, "study": "st", "step": 20,
        "observation_shape": SHAPE, "versions": {"disbench": disbench.__version__}}))
    (run / "metrics.json").write_text(json.dumps({
        "train": {"loss": 1.5}, "eval": {"name": "fast"},
        "mean": {"mig.mig": 0.25, "dci.disentanglement": 0.5},
        "heldout": {"reconstruction": 20.0, "kl": 2.0, "elbo": -22.0}}))
    (run / "traversal.png").write_bytes(b"\x89PNG not really")
    torch.manual_seed(seed)
    model = build_model(OmegaConf.create(cfg), SHAPE)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "global_step": 20}, run / "checkpoints" / "last.ckpt")
    return run, model.eval()


def codes(model, x):
    with torch.inference_mode():
        mean, log_var = model.encode(x)
    return mean.numpy(), log_var.numpy()


def test_an_exported_run_loads_back_with_the_same_codes(tmp_path):
    run, original = make_run(tmp_path / "st", "betavae-a")
    out = tmp_path / "zoo" / "betavae-a"
    assert export(run, out) == [out]
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "metrics.json", "model.safetensors", "traversal.png"]
    info = json.loads((out / "config.json").read_text())
    assert info["format"] == "disbench-model" and info["format_version"] == 1
    assert (info["run_id"], info["study"], info["seed"]) == ("betavae-a", "st", 3)
    assert info["objective"] == CONFIG["model"] and info["observation_shape"] == SHAPE
    assert info["training"]["max_steps"] == 20 and info["data"] == {"name": "dsprites_procedural"}
    assert "paths" not in info["config"]  # this machine's folders stay here
    assert json.loads((out / "metrics.json").read_text()) == \
        json.loads((run / "metrics.json").read_text())
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: disbench\n")
    assert "# betavae on dsprites_procedural, seed 3" in card
    assert "| `dci.disentanglement` | 0.5 |" in card and "held-out `elbo` | -22 |" in card
    assert 'disbench.load("path/to/this/folder")' in card and "![traversal](traversal.png)" in card

    x = torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(0))
    expected = codes(original, x)
    for source in (out, run):  # the exported folder, and the run directory itself
        loaded = disbench.load(source)
        assert type(loaded).__name__ == "BetaVAE" and not loaded.training
        for got, want in zip(codes(loaded, x), expected):
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_loading_an_exported_run_needs_neither_lightning_nor_pickle(tmp_path):
    run, _ = make_run(tmp_path / "st", "betavae-a")
    export(run, tmp_path / "zoo")
    probe = ("import sys, pickle, torch, disbench\n"  # any unpickling fails:
             "pickle.load = pickle.loads = pickle.Unpickler = torch.load = None\n"
             f"model = disbench.load({str(tmp_path / 'zoo')!r})\n"
             "print(type(model).__name__, 'pytorch_lightning' in sys.modules, "
             "'lightning' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["BetaVAE", "False", "False"]


def test_a_study_exports_its_trained_runs_only(tmp_path, disbench_in_process):
    study = tmp_path / "st"
    make_run(study, "betavae-a", seed=0)
    make_run(study, "betavae-b", seed=1)
    make_run(study, "betavae-running", state="running", seed=2)
    out = disbench_in_process(["export", str(study), "--out", str(tmp_path / "zoo")], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"exported {tmp_path / 'zoo' / 'betavae-a'}",
                                       f"exported {tmp_path / 'zoo' / 'betavae-b'}"]
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["betavae-a", "betavae-b"]
    running = disbench_in_process(["export", str(study / "betavae-running"), "--out",
                                   str(tmp_path / "x")], tmp_path)
    assert running.returncode == 2
    assert "betavae-running is running, not trained" in running.stderr


@pytest.mark.parametrize("spoil, match", [
    (lambda zoo: (zoo / "config.json").write_text("{not json"), "config.json cannot be read"),
    (lambda zoo: (zoo / "model.safetensors").write_bytes(b"\x00" * 10),
     "model.safetensors cannot be read"),
    (lambda zoo: (zoo / "config.json").write_text('{"format": "other"}'),
     "not a disbench model of format 1"),
])
def test_a_spoilt_export_is_refused_with_one_message(tmp_path, spoil, match):
    run, _ = make_run(tmp_path / "st", "betavae-a")
    export(run, tmp_path / "zoo")
    spoil(tmp_path / "zoo")
    with pytest.raises(DisbenchError, match=match):
        disbench.load(tmp_path / "zoo")


def test_bad_sources_and_arguments(tmp_path, disbench_in_process):
    with pytest.raises(DisbenchError, match="holds no model"):
        disbench.load(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DisbenchError, match="holds no trained run"):
        export(tmp_path / "empty", tmp_path / "out")
    missing = disbench_in_process(["export", str(tmp_path)], tmp_path)
    assert missing.returncode == 2
    assert "the following arguments are required: --out" in missing.stderr
    assert "usage: disbench export RUN_DIR|STUDY_DIR --out DIR" in missing.stderr
