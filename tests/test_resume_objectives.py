"""Every objective, killed with SIGKILL between two checkpoints and run again, ends
bit-identical on CPU to an uninterrupted run: its loss log, every network, every
optimiser's state, the objective's buffers (dual variables, controllers) and the
generator."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from disbench.config import compose
from disbench.models import MODELS
from disbench.train.run import run
from tests.models.tiny import ARCH
from tests.processes import output_to, signal_at_step

OVERRIDES = ["data=dsprites_procedural", "arch=mlp", ARCH, "trainer=smoke", "eval=none",
             "trainer.max_steps=15", "trainer.checkpoint_every_n_steps=5",
             "trainer.batch_size=16", "trainer.threads=1"]
KILLED_AT = 12  # after the checkpoint of step 10, before the one of step 15


def train_and_kill(args: list[str], log: str) -> None:
    """The killed process: trains the run and kills itself with SIGKILL once step
    KILLED_AT is logged; its output goes to `log`."""
    from disbench.train import callbacks

    output_to(log)
    signal_at_step(callbacks.RunRecorder, KILLED_AT, signal.SIGKILL)
    run(compose(args))


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
def test_killed_run_resumes_bit_identical(model, tmp_path, data_dir, new_process):
    log = tmp_path / "killed.log"
    killed = new_process(target=train_and_kill,
                         args=(overrides(model, tmp_path / "b", data_dir), str(log)))
    killed.start()
    try:
        reference = run(compose(overrides(model, tmp_path / "a", data_dir)))  # meanwhile
        assert reference.state == "completed", reference.reason
        killed.join(timeout=300)
    finally:
        if killed.exitcode is None:
            killed.kill()
            killed.join()
    assert killed.exitcode == -9, log.read_text()[-2000:]
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
