"""What the tests' own processes (`new_process` in conftest.py) do before their work:
send their output to a log, and stop themselves with a signal at a training step."""

from __future__ import annotations

import os


def output_to(log: str) -> None:
    """This process's stdout and stderr, appended to `log`."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(out, 1)
    os.dup2(out, 2)


def signal_at_step(recorder: type, step: int, signum: int) -> None:
    """Make this process send itself `signum` once the Lightning callback class `recorder`
    has recorded training step `step`."""
    record = recorder.on_train_batch_end

    def on_train_batch_end(self, trainer, *rest):
        record(self, trainer, *rest)
        if trainer.global_step == step:
            os.kill(os.getpid(), signum)

    recorder.on_train_batch_end = on_train_batch_end
