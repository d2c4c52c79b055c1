"""Training a pack: several runs of one objective in one process, in lock-step.

`PackedTrainingModule` is the solo `TrainingModule` with a `Pack` in place of the
objective: one training step draws every run's batch from that run's own generator,
runs the vectorised step, back-propagates the sum of the runs' losses (each run's
parameters receive only their own run's gradient) and steps the optimisers over the
stacked tensors. Each run keeps its own loss log, status and checkpoints:
`PackRecorder` writes them, and `PackCheckpointIO` splits the pack's checkpoint into
one solo checkpoint per run (and joins them again to resume), so a run can resume
packed or alone. A run whose loss turns non-finite is recorded failed with its step;
its slice of the pack no longer reaches a gradient, a log or a checkpoint, and the
others go on.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from disbench.models import Objective
from disbench.store import RunDir
from disbench.train.callbacks import append_loss_row, save_checkpoint_atomically
from disbench.train.module import TrainingModule, device_images
from disbench.train.optimizers import NamedOptimizers
from disbench.train.pack import Pack, run_optimizer_state, stack_optimizer_states


class PackedTrainingModule(TrainingModule):
    """Trains `members` (the runs' objectives, built as each would be alone) at once;
    `seeds`: each run's seed, which seeds its generator."""

    def __init__(self, members: list[Objective], dataset, batch_size: int, lr: float, betas,
                 eps: float, seeds: list[int]):
        super().__init__(Pack(members), dataset, batch_size, lr, betas, eps, seed=0)
        self.seeds = list(seeds)
        self.generators: list[torch.Generator] = []
        self._restored_generator_states: list[torch.Tensor] | None = None
        self.alive: torch.Tensor | None = None  # per run: still training
        self.failed: dict[int, tuple[int, dict[str, float]]] = {}  # run -> (step, terms)

    @property
    def pack(self) -> Pack:
        return self.model

    @property
    def objective(self) -> Objective:
        return self.pack.template

    def configure_optimizers(self):
        return NamedOptimizers(self.pack.optimizers(self.adam))

    # -- the runs' generators ---------------------------------------------
    def on_train_start(self) -> None:
        self.images = device_images(self.dataset.images, self.device)
        self.generators = [torch.Generator(device=self.device).manual_seed(s)
                           for s in self.seeds]
        if self._restored_generator_states is not None:
            for g, state in zip(self.generators, self._restored_generator_states):
                g.set_state(state)
        self.first_non_finite_step = torch.full((self.pack.size,), -1, device=self.device)
        self.device_step = torch.tensor(self.global_step, device=self.device)
        self.alive = torch.ones(self.pack.size, dtype=torch.bool, device=self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["disbench_generator_states"] = [g.get_state() for g in self.generators]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restored_generator_states = checkpoint["disbench_generator_states"]

    # -- one step ----------------------------------------------------------
    def draw_batch(self) -> torch.Tensor:
        batches = []
        for g in self.generators:  # each run's draws, in the order it makes them alone
            index = torch.randint(len(self.images), (self.batch_size,), device=self.device,
                                  generator=g)
            batches.append(self.dataset.observe(self.images[index], g))
        return torch.stack(batches)

    def objective_step(self, x: torch.Tensor, step: int, labels=None):
        return self.pack.step(x, step, self.generators)  # packable objectives take no labels

    def total(self, loss: torch.Tensor) -> torch.Tensor:
        # a failed run's loss gets no gradient (its parameters are its own: nothing of it
        # reaches the other runs either way)
        return torch.where(self.alive, loss, torch.zeros_like(loss)).sum()

    def after_step(self, step: int) -> None:
        """Packable objectives keep no state outside their tensors (`check_packable`)."""

    # -- failures ------------------------------------------------------------
    def running(self) -> list[int]:
        return [i for i in range(self.pack.size) if i not in self.failed]

    def check_finite(self, terms: dict[str, list[float]]) -> list[int]:
        """The runs whose loss turned non-finite since the last check; they are recorded
        in `failed` (step, terms at this check) and stop training."""
        first = self.first_non_finite_step.tolist()
        new = [i for i in self.running() if first[i] >= 0]
        for i in new:
            self.failed[i] = (first[i], {k: v[i] for k, v in terms.items()})
            self.alive[i] = False
        return new

    # -- one checkpoint per run ----------------------------------------------
    def run_checkpoints(self, checkpoint: dict) -> dict[int, dict]:
        """The pack's checkpoint as one solo checkpoint per running run (at a save, the
        checkpoint's tensors are the pack's own)."""
        params = self.pack.optimizer_params()
        shared = {k: v for k, v in checkpoint.items()
                  if k not in ("state_dict", "optimizer_states", "disbench_generator_states")}
        return {run: {
            **shared,
            "state_dict": {f"model.{n}": t for n, t in self.pack.run_state_dict(run).items()},
            "optimizer_states": [{
                name: run_optimizer_state(packed, params[name], run)
                for name, packed in checkpoint["optimizer_states"][0].items()}],
            "disbench_generator_state": checkpoint["disbench_generator_states"][run],
        } for run in self.running()}

    def join_checkpoints(self, runs: list[dict]) -> dict:
        """The pack's checkpoint from its runs' solo checkpoints (all at one step)."""
        steps = {c["global_step"] for c in runs}
        if len(steps) != 1:
            raise ValueError(f"the runs' checkpoints are at different steps {sorted(steps)}")
        states = [{k.removeprefix("model."): v for k, v in c["state_dict"].items()} for c in runs]
        state = {f"model.{k}": v for k, v in self.pack.stacked_state_dict(states).items()}
        packed_optimizers = {
            name: stack_optimizer_states([c["optimizer_states"][0][name] for c in runs], params)
            for name, params in self.pack.optimizer_params().items()}
        return {**{k: v for k, v in runs[0].items()
                   if k not in ("state_dict", "optimizer_states", "disbench_generator_state")},
                "state_dict": state, "optimizer_states": [packed_optimizers],
                "disbench_generator_states": [c["disbench_generator_state"] for c in runs]}


class PackCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O for a pack: a save writes each running run's own
    checkpoint (atomically, the one before kept as previous.ckpt); a load reads the
    runs' checkpoints `resume_from` and joins them."""

    def __init__(self, module: PackedTrainingModule, runs: list[RunDir],
                 resume_from: list[Path] | None = None):
        super().__init__()
        self.module, self.runs, self.resume_from = module, runs, resume_from

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        for run, member in self.module.run_checkpoints(checkpoint).items():
            save_checkpoint_atomically(
                self.runs[run],
                lambda tmp, member=member: super(PackCheckpointIO, self).save_checkpoint(
                    member, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        location = map_location or (lambda storage, loc: storage)
        runs = [super(PackCheckpointIO, self).load_checkpoint(p, location, weights_only)
                for p in self.resume_from]
        return self.module.join_checkpoints(runs)


class PackRecorder(pl.Callback):
    """What `RunRecorder` does for a solo run, for every running run of a pack; a run
    whose loss turned non-finite is handed to `on_failure(run, step, terms)`."""

    def __init__(self, runs: list[RunDir], log_every: int, checkpoint_every: int,
                 on_failure):
        self.runs, self.log_every, self.checkpoint_every = runs, log_every, checkpoint_every
        self.on_failure = on_failure

    def on_train_start(self, trainer, module):
        for run in self.runs:
            run.update_status(device=str(module.device))

    def on_train_batch_end(self, trainer, module: PackedTrainingModule, outputs, batch,
                           batch_idx):
        step = trainer.global_step
        log = step % self.log_every == 0 or step == trainer.max_steps
        checkpoint = step % self.checkpoint_every == 0 or step == trainer.max_steps
        if not (log or checkpoint):
            return
        terms = {k: v.tolist() for k, v in outputs.items()}
        for run in module.check_finite(terms):
            self.on_failure(run, *module.failed[run])
        running = module.running()
        if not running:
            trainer.should_stop = True
            return
        fields = {}
        if log:
            for i in running:
                append_loss_row(self.runs[i], step, {k: v[i] for k, v in terms.items()})
                self.runs[i].heartbeat()
            if "loss" in terms:
                trainer.progress_bar_metrics.update(
                    loss=sum(terms["loss"][i] for i in running) / len(running))
            fields["step"] = step
        if checkpoint:
            trainer.save_checkpoint(self.runs[running[0]].checkpoints / "pack.ckpt")
            fields.update(step=step, checkpoint_step=step)
        for i in running:
            self.runs[i].update_status(**fields)
