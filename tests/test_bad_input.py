"""Values that cannot work are refused before anything is written: one `error:` line that
names the key, the value and what would be valid; exit 2; no run directory."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from disbench.cli import main

SMOKE = ["data=dsprites_procedural", "trainer=smoke", "eval=none"]

REFUSED = {  # overrides: what the one error line says
    "trainer.max_steps=0": "trainer.max_steps=0 cannot work: expected an integer >= 1",
    "trainer.max_steps=-1": "trainer.max_steps=-1 cannot work: expected an integer >= 1",
    "trainer.batch_size=0": "trainer.batch_size=0 cannot work: expected an integer >= 1",
    "arch.latent_dim=0": "arch.latent_dim=0 cannot work: expected an integer >= 1",
    "trainer.lr=0": "trainer.lr=0 cannot work: expected a number > 0",
    "trainer.lr=-0.001": "trainer.lr=-0.001 cannot work: expected a number > 0",
    "trainer.checkpoint_every_n_steps=0":
        "trainer.checkpoint_every_n_steps=0 cannot work: expected an integer >= 1",
    "trainer.log_every_n_steps=0":
        "trainer.log_every_n_steps=0 cannot work: expected an integer >= 1",
    "trainer.threads=0": "trainer.threads=0 cannot work: expected an integer >= 1",
    "trainer.precision=16": "trainer.precision=16 cannot work: expected 32 (the reference) or "
                            "bf16-mixed",
    "model.beta=-1": "model.beta=-1 for model 'betavae': expected a value >= 0",
    "model=factorvae model.gamma=-10": "model.gamma=-10 for model 'factorvae': expected a "
                                       "value >= 0",
    "eval=fastt": "unknown eval 'fastt' (did you mean fast?); valid: fast, locatello, "
                  "locatello_fast, none",
    "model=factorvea": "unknown model 'factorvea' (did you mean factorvae?); valid: "
                       "annealedvae, attrivae, betatcvae, betavae, critic_vae, dipvae1, "
                       "dipvae2, factorvae, gvvae, gwae, lagrangian_vae, nashae, ssvae, "
                       "strkm, vae, vaegan",
    "data=dsprite": "unknown data 'dsprite' (did you mean dsprites",
    "trainer.max_step=10": "unknown key 'trainer.max_step' (did you mean max_steps?); valid "
                           "keys of trainer: max_steps, batch_size",
    "+trainer.max_step=10": "unknown key 'trainer.max_step' (did you mean max_steps?); valid "
                            "keys of trainer: max_steps, batch_size",
    "+arch.latent=3": "unknown key 'arch.latent' (did you mean latent_dim?); valid keys of "
                      "arch: name, latent_dim",
    "+data.sorce=procedural": "unknown key 'data.sorce'",
    "eval=fast +eval.mgi.num_train=10": "unknown metric(s) mgi in the eval settings",
    "+eval.mig.num_train=10": "unknown key 'eval.mig': eval=none computes no metrics",
    "+seeed=3": "unknown config key 'seeed' (did you mean seed?)",
    "-m seed=0,1 model.beta=4,-2": "model.beta=-2 for model 'betavae': expected a value >= 0",
}


@pytest.mark.parametrize("overrides", list(REFUSED))
def test_a_value_that_cannot_work_is_one_error_line(overrides, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISBENCH_RESULTS", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        main(["train", *SMOKE, *overrides.split()])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"error: {REFUSED[overrides]}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_command_line_refuses_with_exit_2_and_writes_nothing(tmp_path, data_dir):
    env = {**os.environ, "DISBENCH_RESULTS": str(tmp_path), "DISBENCH_DATA": str(data_dir)}
    out = subprocess.run([sys.executable, "-m", "disbench.cli", "train", *SMOKE,
                          "trainer.max_step=10"], env=env, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("error: unknown key 'trainer.max_step' (did you mean "
                                 "max_steps?)") and out.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_train_help_names_disbench(tmp_path):
    out = subprocess.run([sys.executable, "-m", "disbench.cli", "train", "--help"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.startswith("disbench train: train, store and score one run")
    assert "Hydra" not in out.stdout and "model: annealedvae, attrivae, betatcvae" in out.stdout


def test_disbench_warnings_are_one_line(monkeypatch):
    from disbench.errors import DisbenchWarning, warnings_as_lines
    from disbench.metrics import MetricWarning

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    warnings_as_lines()
    line = warnings.formatwarning("MIG: factor 2 is constant; skipped", MetricWarning,
                                  "/x/disbench/metrics/evaluate.py", 169,
                                  "return compute_mig(...)")
    assert line == "warning: MIG: factor 2 is constant; skipped\n"
    assert issubclass(MetricWarning, DisbenchWarning)
    other = warnings.formatwarning("something else", UserWarning, "x.py", 3, "call()")
    assert other.startswith("x.py:3: UserWarning: something else")  # others as Python shows
