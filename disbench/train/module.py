"""The LightningModule that trains any objective on a ground-truth dataset.

The objective owns its step (`Objective.step`): the module draws the batch, asks for
one loss per named optimiser, back-propagates each into its optimiser's parameters
only, steps every optimiser, then calls the objective's `after_step`.

Data path: the whole dataset is one uint8 tensor on the training device; each
step draws batch indices from the run's seeded generator on that device, so
there is no DataLoader and no per-item Python. The same generator drives the
reparameterisation noise and the objectives' own draws, and its state is saved
in every checkpoint: a resumed run replays exactly the uninterrupted one.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytorch_lightning as pl
import torch

from disbench.errors import DisbenchError
from disbench.models import Objective
from disbench.models.base import Labels
from disbench.train.optimizers import NamedOptimizers, build_optimizers, check_losses


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, terms: dict[str, float]):
        self.step, self.terms = step, terms
        super().__init__(f"non-finite loss at step {step}: {terms}")


def device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The dataset's uint8 array as a tensor on `device` (a zero-copy view on CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # memory-mapped arrays are read-only
        tensor = torch.from_numpy(images)
    return tensor if device.type == "cpu" else tensor.to(device)


def labelled_subset(num_images: int, fraction: float, seed: int) -> np.ndarray:
    """The indices of the run's labelled images: round(fraction * N) of the N images (at
    least one), drawn without replacement from the run's seed, in increasing order."""
    count = max(1, round(fraction * num_images))
    rng = np.random.default_rng([seed, 0x1abe1])  # its own stream: no other draw moves it
    return np.sort(rng.choice(num_images, size=count, replace=False))


def labelled_factors(dataset, index: np.ndarray) -> np.ndarray:
    """The factors of images `index`, each scaled to [0, 1] (value index / (size - 1))."""
    if not callable(getattr(dataset, "factors_of", None)):
        raise DisbenchError(f"dataset '{dataset.name}' cannot label its images (it has no "
                            f"factors_of(index)); a semi-supervised objective needs a grid "
                            f"dataset (disbench.data.base.GridDataset)")
    sizes = np.maximum(np.asarray(dataset.factor_sizes) - 1, 1)
    return (dataset.factors_of(index) / sizes).astype(np.float32)


class TrainingModule(pl.LightningModule):
    def __init__(self, model: Objective, dataset, batch_size: int, lr: float, betas, eps: float,
                 seed: int):
        super().__init__()
        self.model = model
        self.dataset = dataset
        self.batch_size = batch_size
        self.adam = {"lr": lr, "betas": tuple(betas), "eps": eps}
        self.seed = seed
        self.automatic_optimization = False  # one backward pass per named loss
        self.generator: torch.Generator | None = None
        self._restored_generator_state: torch.Tensor | None = None
        self.images: torch.Tensor | None = None
        self.first_non_finite_step: torch.Tensor | None = None
        self.device_step: torch.Tensor | None = None  # global_step, kept on the device
        self.labelled_index: torch.Tensor | None = None  # labelled images, if the objective
        self.labelled_factors: torch.Tensor | None = None  # takes labels

    def __setattr__(self, name, value):
        # Lightning records the hook it is in, on the module, about 30 times per step;
        # nn.Module's checks on each assignment cost a third of Lightning's own per-step
        # time, and a hook's name is never a parameter, buffer or module
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_optimizers(self):
        return NamedOptimizers(build_optimizers(self.model, self.adam))

    # -- the run's generator ---------------------------------------------
    def on_train_start(self) -> None:
        self.images = device_images(self.dataset.images, self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        if self._restored_generator_state is not None:
            self.generator.set_state(self._restored_generator_state)
        self.first_non_finite_step = torch.tensor(-1, device=self.device)
        self.device_step = torch.tensor(self.global_step, device=self.device)
        fraction = self.objective.label_fraction
        if fraction is not None:
            index = labelled_subset(len(self.images), fraction, self.seed)
            self.labelled_index = torch.from_numpy(index).to(self.device)
            self.labelled_factors = torch.from_numpy(labelled_factors(self.dataset, index)
                                                     ).to(self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["disbench_generator_state"] = self.generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restored_generator_state = checkpoint["disbench_generator_state"]

    # -- one step ----------------------------------------------------------
    def draw_batch(self) -> torch.Tensor:
        index = torch.randint(len(self.images), (self.batch_size,), device=self.device,
                              generator=self.generator)
        return self.dataset.observe(self.images[index], self.generator)

    def draw_labels(self) -> Labels | None:
        """A batch of the labelled subset (with replacement), for an objective that takes
        labels; None (and no draw) for any other."""
        if self.labelled_index is None:
            return None
        pick = torch.randint(len(self.labelled_index), (self.batch_size,), device=self.device,
                             generator=self.generator)
        x = self.dataset.observe(self.images[self.labelled_index[pick]], self.generator)
        return Labels(x, self.labelled_factors[pick], tuple(self.dataset.factor_names))

    def objective_step(self, x: torch.Tensor, step: int, labels: Labels | None = None):
        """(losses, terms) of the objective's step on `x` (and `labels`, if it takes them)."""
        extra = {} if labels is None else {"labels": labels}
        out = self.model.step(x, step=step, generator=self.generator, **extra)
        self._last_step = out
        return out.losses, out.terms

    def total(self, loss: torch.Tensor) -> torch.Tensor:
        """What is back-propagated for one named loss (a pack sums its runs')."""
        return loss

    def training_step(self, batch, batch_idx):
        x = self.draw_batch()
        labels = self.draw_labels()
        step = self.global_step
        optimizer = self.optimizers()
        named: NamedOptimizers = optimizer.optimizer
        for name, updates in self.objective.updates.items():
            for _ in range(updates - 1):  # the extra updates of one optimiser
                losses, _ = self.objective_step(x, step, labels)
                named.zero_grad()
                self.manual_backward(self.total(losses[name]), inputs=named.params(name))
                named.named[name].step()
        losses, terms = self.objective_step(x, step, labels)
        if batch_idx == 0:
            check_losses(self.objective, losses, named.named)
        # Remember the first non-finite step on the device (per run, in a pack): no copy
        # from the host, which would wait for the device every step; checked at log steps.
        bad = ~torch.stack([torch.isfinite(loss) for loss in losses.values()]).all(0)
        first = self.first_non_finite_step
        first.copy_(torch.where(bad & (first < 0), self.device_step, first))
        self.device_step += 1

        optimizer.zero_grad()
        names = list(losses)
        for i, name in enumerate(names):
            self.manual_backward(self.total(losses[name]), inputs=named.params(name),
                                 retain_graph=i < len(names) - 1)
        optimizer.step()
        self.after_step(step)
        return {k: v.detach() for k, v in terms.items()}

    @property
    def objective(self) -> Objective:
        """The objective whose step this module runs."""
        return self.model

    def after_step(self, step: int) -> None:
        self.model.after_step(step, self._last_step)

    def check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        step = int(self.first_non_finite_step)
        if step >= 0:
            raise NonFiniteLoss(step, {k: float(v) for k, v in terms.items()})
