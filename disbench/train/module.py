"""The LightningModule that trains any objective on a ground-truth dataset.

Data path: the whole dataset is one uint8 tensor on the training device; each
step draws batch indices from the run's seeded generator on that device, so
there is no DataLoader and no per-item Python. The same generator drives the
reparameterisation noise and FactorVAE's permutations, and its state is saved
in every checkpoint: a resumed run replays exactly the uninterrupted one.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytorch_lightning as pl
import torch

from disbench.models import VAE


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


class TrainingModule(pl.LightningModule):
    def __init__(self, model: VAE, dataset, batch_size: int, lr: float, betas, eps: float,
                 seed: int):
        super().__init__()
        self.model = model
        self.dataset = dataset
        self.batch_size = batch_size
        self.adam = {"lr": lr, "betas": tuple(betas), "eps": eps}
        self.seed = seed
        self.automatic_optimization = False  # FactorVAE's two losses need two backward passes
        self.generator: torch.Generator | None = None
        self._restored_generator_state: torch.Tensor | None = None
        self.images: torch.Tensor | None = None
        self.first_non_finite_step: torch.Tensor | None = None

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameter_groups(**self.adam))

    # -- the run's generator ---------------------------------------------
    def on_train_start(self) -> None:
        self.images = device_images(self.dataset.images, self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        if self._restored_generator_state is not None:
            self.generator.set_state(self._restored_generator_state)
        self.first_non_finite_step = torch.tensor(-1, device=self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["disbench_generator_state"] = self.generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._restored_generator_state = checkpoint["disbench_generator_state"]

    # -- one step ----------------------------------------------------------
    def training_step(self, batch, batch_idx):
        index = torch.randint(len(self.images), (self.batch_size,), device=self.device,
                              generator=self.generator)
        x = self.dataset.observe(self.images[index], self.generator)
        out = self.model.objective(x, step=self.global_step, generator=self.generator)
        # Remember the first non-finite step without a device sync; checked at log steps.
        bad = ~torch.isfinite(out.loss)
        self.first_non_finite_step = torch.where(
            bad & (self.first_non_finite_step < 0),
            torch.tensor(self.global_step, device=self.device), self.first_non_finite_step)

        optimizer = self.optimizers()
        optimizer.zero_grad()
        has_adversary = out.adversary_loss is not None
        self.manual_backward(out.loss, inputs=self.model.vae_parameters(),
                             retain_graph=has_adversary)
        if has_adversary:
            self.manual_backward(out.adversary_loss, inputs=self.model.adversary_parameters())
        optimizer.step()
        return {k: v.detach() for k, v in out.terms.items()}

    def check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        step = int(self.first_non_finite_step)
        if step >= 0:
            raise NonFiniteLoss(step, {k: float(v) for k, v in terms.items()})
