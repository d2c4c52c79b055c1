"""The run's recorder: loss log, checkpoints, status heartbeat, progress bar."""

from __future__ import annotations

import csv
import os

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from disbench.store import RunDir
from disbench.train import trackers


def truncate_loss_log(path, after_step: int) -> None:
    """Drop rows logged after `after_step` (a resumed run logs them again)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= after_step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


def append_loss_row(run: RunDir, step: int, terms: dict[str, float]) -> None:
    """One row of the run's losses.csv (the header first, in a new file)."""
    new = not run.losses.exists() or run.losses.stat().st_size == 0
    with open(run.losses, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", *terms])
        writer.writerow([step, *(repr(v) for v in terms.values())])


def save_checkpoint_atomically(run: RunDir, write) -> None:
    """`write(path)` to a temporary file, then make it last.ckpt; the one before it
    becomes previous.ckpt."""
    tmp = run.checkpoints / f".last.ckpt.tmp-{os.getpid()}"
    write(tmp)
    if run.last_checkpoint.exists():
        os.replace(run.last_checkpoint, run.previous_checkpoint)
    os.replace(tmp, run.last_checkpoint)


class RunRecorder(pl.Callback):
    """Every `log_every` steps: a row of losses.csv (after a finiteness check), the step
    in status.json and a claim heartbeat; every `checkpoint_every` steps: an atomic
    checkpoint (the one before kept as previous.ckpt) and its step in status.json."""

    def __init__(self, run: RunDir, log_every: int, checkpoint_every: int):
        self.run, self.log_every, self.checkpoint_every = run, log_every, checkpoint_every
        self.last_terms = None

    def on_train_start(self, trainer, module):
        self.run.update_status(device=str(module.device))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step  # updates done so far
        self.last_terms = outputs
        fields = {}
        if step % self.log_every == 0 or step == trainer.max_steps:
            self.log_row(module, step, outputs)
            if "loss" in outputs:
                trainer.progress_bar_metrics.update(loss=float(outputs["loss"]))
            fields["step"] = step
        if step % self.checkpoint_every == 0 or step == trainer.max_steps:
            module.check_finite(outputs)
            self.save_checkpoint(trainer)
            fields.update(step=step, checkpoint_step=step)
        if fields:
            self.run.update_status(**fields)

    def log_row(self, module, step: int, terms) -> None:
        module.check_finite(terms)
        row = {k: float(v) for k, v in terms.items()}
        append_loss_row(self.run, step, row)
        trackers.log_terms(module.trainer.loggers, row, step)
        self.run.heartbeat()

    def save_checkpoint(self, trainer) -> None:
        save_checkpoint_atomically(self.run, trainer.save_checkpoint)


class StepProgressBar(TQDMProgressBar):
    """A bar over training steps (the data stream is endless, so epochs mean nothing)."""

    def on_train_epoch_start(self, trainer, *args):
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.reset(total=trainer.max_steps)
        self.train_progress_bar.initial = trainer.global_step
        self.train_progress_bar.set_description("train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = trainer.global_step
        if self._should_update(n, self.train_progress_bar.total):
            self.train_progress_bar.n = n
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
            self.train_progress_bar.refresh()

    def on_exception(self, trainer, pl_module, exception):
        # end the bar's line now: what the run prints about the interruption starts a line
        # of its own, and the closed bar is not redrawn after it
        if self._train_progress_bar is not None:
            self.train_progress_bar.close()
