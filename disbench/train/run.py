"""`run(cfg)`: train, store and score one run. Every launcher calls this.

Idempotent and resumable: a completed run is skipped; an incomplete one
continues from its last checkpoint (model, optimiser, step and generator), and
on CPU ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import platform
import socket
import time
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

import disbench
from disbench import data, models, nets, store
from disbench.config import identity, run_id
from disbench.errors import DisbenchError
from disbench.train.callbacks import RunRecorder, StepProgressBar, truncate_loss_log
from disbench.train.module import NonFiniteLoss, TrainingModule
from disbench.visualize import save_image, traversal_grid


@dataclass
class Outcome:
    """What happened to a run: completed, skipped (already completed), busy
    (another live process holds it), failed or interrupted."""

    state: str
    run_dir: store.RunDir
    reason: str = ""

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "skipped": 0, "busy": 3}.get(self.state, 1)


def versions() -> dict[str, str]:
    return {"disbench": disbench.__version__, "torch": torch.__version__,
            "pytorch_lightning": pl.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def load_dataset(cfg: DictConfig):
    options = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
               if k != "name"}
    return data.load(cfg.data.name, data_dir=cfg.paths.data, **options)


def build_model(cfg: DictConfig, observation_shape) -> models.VAE:
    encoder, decoder = nets.build(cfg.arch.name, observation_shape, cfg.arch.latent_dim)
    return models.build(OmegaConf.to_container(cfg.model, resolve=True), encoder, decoder,
                        cfg.arch.latent_dim)


def check_config(cfg: DictConfig) -> None:
    """Errors a user can fix, found before anything is written."""
    models.check(OmegaConf.to_container(cfg.model, resolve=True))
    if cfg.trainer.tensorboard and not any(
            importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise DisbenchError("trainer.tensorboard=true needs the tensorboard package: "
                            "pip install tensorboard (or set trainer.tensorboard=false)")


def _trainer(cfg: DictConfig, run: store.RunDir) -> pl.Trainer:
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    t = cfg.trainer
    callbacks = [RunRecorder(run, t.log_every_n_steps, t.checkpoint_every_n_steps)]
    if t.progress_bar:
        callbacks.append(StepProgressBar(refresh_rate=max(1, t.log_every_n_steps)))
    plugins = []
    if "SLURM_JOB_ID" in os.environ:
        # requeueing belongs to the launcher (submitit), not to Lightning
        from lightning_fabric.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=False))
    logger = False
    if t.tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        logger = TensorBoardLogger(run.path, name="tensorboard", version="")
    return pl.Trainer(
        max_steps=t.max_steps, max_epochs=-1, accelerator=t.accelerator, devices=1,
        logger=logger, callbacks=callbacks, plugins=plugins, enable_checkpointing=False,
        enable_progress_bar=bool(t.progress_bar), enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=t.log_every_n_steps, deterministic=False,
    )


def _endless():
    while True:
        yield 0


def _train(cfg: DictConfig, run: store.RunDir, dataset) -> tuple[models.VAE, pl.Trainer]:
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    model = build_model(cfg, dataset.observation_shape)
    module = TrainingModule(model, dataset, cfg.trainer.batch_size, cfg.trainer.lr,
                            cfg.trainer.betas, cfg.trainer.eps, cfg.seed)
    with warnings_filtered():
        trainer = _trainer(cfg, run)
    ckpt = None
    if run.last_checkpoint.exists():
        ckpt = str(run.last_checkpoint)
        step = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
        truncate_loss_log(run.losses, step)
        print(f"resuming {run.path.name} from step {step}")
    else:
        run.losses.unlink(missing_ok=True)
    with warnings_filtered():
        trainer.fit(module, train_dataloaders=_endless(), ckpt_path=ckpt)
    return model, trainer


@contextlib.contextmanager
def warnings_filtered():
    import warnings

    with warnings.catch_warnings():
        for pattern in (".*does not have many workers.*", ".*resuming from a checkpoint.*",
                        ".*is an iterable.*", ".*infinite.*", ".*mid-epoch.*", ".*LeafSpec.*",
                        ".*srun.*"):
            warnings.filterwarnings("ignore", message=pattern)
        yield


def _final_losses(run: store.RunDir) -> dict[str, float]:
    import csv

    with open(run.losses, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items() if k != "step"} if rows else {}


def evaluate(cfg: DictConfig, model: models.VAE, dataset, device) -> dict:
    """The metric suite's scores for metrics.json (`mean`, `sampled`, `eval` settings)."""
    eval_cfg = OmegaConf.to_container(cfg.eval, resolve=True)
    if eval_cfg["name"] == "none":
        return {"eval": eval_cfg}
    from disbench.metrics.evaluate import score_model

    return score_model(model, dataset, eval_cfg, seed=cfg.seed, device=device)


def run(cfg: DictConfig) -> Outcome:
    """Train, store and score the run that `cfg` describes."""
    rid = run_id(cfg)
    rd = store.run_dir_for(cfg.paths.results, cfg.study, rid)
    if rd.state == store.COMPLETED:
        print(f"{rid} is already completed: {rd.path}")
        return Outcome("skipped", rd)
    check_config(cfg)
    dataset = load_dataset(cfg)
    rd.create()
    if not rd.try_claim():
        owner = rd.claim_owner() or {}
        print(f"{rid} is being trained by {owner.get('host')} pid {owner.get('pid')}: {rd.path}")
        return Outcome("busy", rd)
    started = time.time()
    try:
        store.write_atomic(rd.config, OmegaConf.to_yaml(cfg, resolve=True))
        status = rd.status() or {}
        rd.update_status(
            state=store.RUNNING, run_id=rid, study=cfg.study, identity=identity(cfg),
            max_steps=cfg.trainer.max_steps, host=socket.gethostname(), pid=os.getpid(),
            started_at=status.get("started_at", started), attempts=status.get("attempts", 0) + 1,
            versions=versions(), reason=None, data_source=getattr(dataset, "source", "user"),
        )
        model, trainer = _train(cfg, rd, dataset)
        if trainer.global_step < cfg.trainer.max_steps:
            raise KeyboardInterrupt
        device = trainer.strategy.root_device
        scores = evaluate(cfg, model, dataset, device)
        model = model.cpu().eval()
        _, observation = dataset.sample(1, np.random.default_rng(cfg.seed))
        save_image(rd.traversal, traversal_grid(model, observation[0]))
        store.write_json(rd.metrics, {"train": _final_losses(rd), **scores})
        rd.update_status(state=store.COMPLETED, step=trainer.global_step,
                         finished_at=time.time(), duration_s=time.time() - started,
                         device=str(device))
        print(f"{rid} completed: {rd.path}")
        return Outcome("completed", rd)
    except NonFiniteLoss as err:
        reason = f"non-finite loss at step {err.step}: {err.terms}"
        rd.update_status(state=store.FAILED, reason=reason, step=err.step,
                         finished_at=time.time())
        print(f"{rid} failed: {reason}")
        return Outcome("failed", rd, reason)
    except (KeyboardInterrupt, SystemExit) as err:
        # Ctrl-C (Lightning turns it into SystemExit) or a launcher's preemption handler
        # (submitit requeues, then exits): record it and let the exit go on.
        rd.update_status(state=store.INTERRUPTED, reason="interrupted", finished_at=time.time())
        print(f"{rid} interrupted; run the same command again to resume: {rd.path}")
        if isinstance(err, SystemExit):
            raise
        return Outcome("interrupted", rd, "interrupted")
    except DisbenchError as err:
        rd.update_status(state=store.FAILED, reason=str(err), finished_at=time.time())
        raise
    except Exception as err:
        rd.update_status(state=store.FAILED, reason=f"{type(err).__name__}: {err}",
                         finished_at=time.time())
        raise
    finally:
        rd.release_claim()
