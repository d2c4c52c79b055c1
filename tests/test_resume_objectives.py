"""Every objective, killed with SIGKILL between two checkpoints and run again, ends
bit-identical on CPU to an uninterrupted run: its loss log, every network, every
optimiser's state, the objective's buffers (dual variables, controllers) and the
generator."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from disbench.config import compose
from disbench.models import MODELS
from disbench.train.run import run
from tests.models.tiny import ARCH

OVERRIDES = ["data=dsprites_procedural", "arch=mlp", ARCH, "trainer=smoke", "eval=none",
             "trainer.max_steps=30", "trainer.checkpoint_every_n_steps=10",
             "trainer.batch_size=16", "trainer.threads=1"]
KILLED_AT = 25  # after the checkpoint of step 20, before the one of step 30

# a process that trains the run and kills itself with SIGKILL once step KILLED_AT is logged
KILLER = """
import os, signal, sys
from disbench.config import compose
from disbench.train import callbacks
from disbench.train.run import run
from tests.models.tiny import ARCH

log = callbacks.RunRecorder.on_train_batch_end
def on_train_batch_end(self, trainer, *args):
    log(self, trainer, *args)
    if trainer.global_step == {step}:
        os.kill(os.getpid(), signal.SIGKILL)
callbacks.RunRecorder.on_train_batch_end = on_train_batch_end
run(compose(sys.argv[1:]))
"""


def overrides(model, results, data_dir):
    return [f"model={model}", *OVERRIDES, f"paths.results={results}", f"paths.data={data_dir}"]


def same(a, b, where=""):
    """Whether two checkpoint trees are equal, tensor for tensor (bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}/{i}")
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_killed_run_resumes_bit_identical(model, tmp_path, data_dir):
    killed = subprocess.Popen([sys.executable, "-c", KILLER.format(step=KILLED_AT),
                               *overrides(model, tmp_path / "b", data_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reference = run(compose(overrides(model, tmp_path / "a", data_dir)))  # meanwhile
    assert reference.state == "completed", reference.reason
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == -9, stderr[-2000:]
    (run_dir,) = (tmp_path / "b" / "default").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"
    assert len((run_dir / "losses.csv").read_text().splitlines()) == 1 + KILLED_AT

    resumed = run(compose(overrides(model, tmp_path / "b", data_dir)))
    assert resumed.state == "completed", resumed.reason
    assert json.loads((run_dir / "status.json").read_text())["attempts"] == 2
    assert (reference.run_dir.losses.read_text() == (run_dir / "losses.csv").read_text())
    a = torch.load(reference.run_dir.last_checkpoint, weights_only=True)
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for key in ("state_dict", "optimizer_states", "disbench_generator_state", "global_step"):
        same(a[key], b[key], key)
