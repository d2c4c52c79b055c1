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
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

import disbench
from disbench import config, data, models, nets, store
from disbench.config import identity, run_id
from disbench.errors import DisbenchError, warn
from disbench.interrupt import stopping_signals
from disbench.train.callbacks import RunRecorder, StepProgressBar, truncate_loss_log
from disbench.train.module import NonFiniteLoss, TrainingModule
from disbench.train.optimizers import build_optimizers, check_losses
from disbench.visualize import save_image, traversal_grid


@dataclass
class Outcome:
    """What happened to a run: completed, skipped (already completed), busy
    (another live process holds it), failed or interrupted (`code`: 128 + the signal)."""

    state: str
    run_dir: store.RunDir
    reason: str = ""
    code: int | None = None

    @property
    def exit_code(self) -> int:
        if self.code is not None:
            return self.code
        return {"completed": 0, "skipped": 0, "busy": 3}.get(self.state, 1)


def versions() -> dict[str, str]:
    return {"disbench": disbench.__version__, "torch": torch.__version__,
            "pytorch_lightning": pl.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def load_dataset(cfg: DictConfig):
    options = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
               if k != "name"}
    return data.load(cfg.data.name, data_dir=cfg.paths.data, **options)


def build_model(cfg: DictConfig, observation_shape) -> models.Objective:
    """The objective with its networks, initialised as `arch.init` says."""
    encoder, decoder = nets.build(cfg.arch.name, observation_shape, cfg.arch.latent_dim)
    model = models.build(OmegaConf.to_container(cfg.model, resolve=True), encoder, decoder,
                         cfg.arch.latent_dim)
    nets.initialise(model, cfg.arch.init)
    return model


def check_objective(cfg: DictConfig, dataset) -> None:
    """Refuse, before anything is written, an objective whose optimisers are ill-declared,
    whose step's losses don't match them, or that cannot encode and decode: one step on
    two observations, on the CPU, with a generator of its own (the run's seeding comes
    after)."""
    try:
        _check_objective(cfg, dataset)
    except DisbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - a plug-in's own error, said in one line
        raise DisbenchError(f"model '{cfg.model.name}' cannot train on '{cfg.data.name}' with "
                            f"arch '{cfg.arch.name}': {type(err).__name__}: {err}") from None


def _check_objective(cfg: DictConfig, dataset) -> None:
    model = build_model(cfg, dataset.observation_shape)
    optimizers = build_optimizers(model, {"lr": cfg.trainer.lr, "betas": tuple(cfg.trainer.betas),
                                          "eps": cfg.trainer.eps})
    _, observations = dataset.sample(2, np.random.default_rng(0))
    x = torch.as_tensor(observations, dtype=torch.float32)
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(0))
    check_losses(model, out.losses, optimizers)
    with torch.no_grad():
        model.decode(model.encode(x)[0])


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def check_config(cfg: DictConfig) -> None:
    """Errors a user can fix, found before anything is written."""
    config.check(cfg)
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


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was saved at; raises if the file cannot be read whole."""
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def readable_checkpoint(run: store.RunDir) -> tuple[Path | None, int]:
    """The checkpoint to resume from and its step: `last.ckpt`, else `previous.ckpt`, with a
    warning line; an unreadable file is moved aside (`*.unreadable`) so that no later save
    rotates it over the good one. (None, 0) when there is none: train from scratch."""
    for path in (run.last_checkpoint, run.previous_checkpoint):
        if not path.exists():
            continue
        try:
            step = checkpoint_step(path)
        except Exception as err:  # truncated, corrupt, or not a checkpoint
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            problem = str(err).strip().splitlines()[0][:200] if str(err).strip() else \
                type(err).__name__
            warn(f"{path} is unreadable ({problem}); kept aside as {aside.name}")
            continue
        if path == run.previous_checkpoint:
            warn(f"resuming from the checkpoint before it, {path.name} (step {step})")
        return path, step
    return None, 0


def _train(cfg: DictConfig, run: store.RunDir, dataset) -> tuple[models.Objective, pl.Trainer]:
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    model = build_model(cfg, dataset.observation_shape)
    module = TrainingModule(model, dataset, cfg.trainer.batch_size, cfg.trainer.lr,
                            cfg.trainer.betas, cfg.trainer.eps, cfg.seed)
    with warnings_filtered():
        trainer = _trainer(cfg, run)
    ckpt, step = readable_checkpoint(run)
    if ckpt is not None:
        truncate_loss_log(run.losses, step)
        print(f"resuming {run.path.name} from step {step}", flush=True)
    else:
        if run.losses.exists():
            print(f"no readable checkpoint: {run.path.name} starts again from step 0",
                  flush=True)
        run.losses.unlink(missing_ok=True)
    with warnings_filtered():
        trainer.fit(module, train_dataloaders=_endless(),
                    ckpt_path=None if ckpt is None else str(ckpt))
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


def evaluate(cfg: DictConfig, model: models.Objective, dataset, device) -> dict:
    """The metric suite's scores for metrics.json (`mean`, `sampled`, `eval` settings)."""
    eval_cfg = OmegaConf.to_container(cfg.eval, resolve=True)
    if eval_cfg["name"] == "none":
        return {"eval": eval_cfg}
    from disbench.metrics.evaluate import score_model

    return score_model(model, dataset, eval_cfg, seed=cfg.seed, device=device)


def _previous_status(rd: store.RunDir) -> dict:
    try:
        return rd.status() or {}
    except store.CorruptFile:
        return {}  # reported by _stored_state


def _finished_files(cfg: DictConfig, rd: store.RunDir) -> bool:
    """Whether the run's own files show it finished: a final checkpoint and a metrics.json
    with its final losses and the requested evaluation."""
    try:
        metrics = store.read_json(rd.metrics) or {}
        step = checkpoint_step(rd.last_checkpoint)
    except Exception:  # noqa: BLE001 - missing or unreadable: not finished
        return False
    return (step == cfg.trainer.max_steps and "train" in metrics
            and (metrics.get("eval") or {}).get("name") == cfg.eval.name)


def _stored_state(cfg: DictConfig, rd: store.RunDir) -> str | None:
    """The run's stored state. A status.json that cannot be read is rebuilt as completed
    where the run's files show it finished, else the run goes on and rewrites it; a
    completed run's unreadable config.yaml is rewritten from `cfg` (same run id)."""
    try:
        state = (rd.status() or {}).get("state")
    except store.CorruptFile as err:
        if not _finished_files(cfg, rd):
            warn(f"{err.path} cannot be read ({err.problem}); the run goes on from its last "
                 f"checkpoint and rewrites it")
            return None
        rd.update_status(state=store.COMPLETED, run_id=run_id(cfg), study=cfg.study,
                         identity=identity(cfg), max_steps=cfg.trainer.max_steps,
                         step=cfg.trainer.max_steps, reason=None, repaired_at=time.time())
        warn(f"{err.path} could not be read ({err.problem}); rebuilt as completed from the "
             f"run's final checkpoint and metrics.json")
        state = store.COMPLETED
    if state == store.COMPLETED:
        try:
            rd.read_config()
        except DisbenchError:
            store.write_atomic(rd.config, OmegaConf.to_yaml(cfg, resolve=True))
            warn(f"{rd.config} could not be read or was missing: rewritten from this "
                 f"command's config (the same run id)")
    return state


def run(cfg: DictConfig) -> Outcome:
    """Train, store and score the run that `cfg` describes.

    SIGINT, SIGTERM and SIGHUP end it alike at every stage: the run is stored as
    interrupted with the signal and the stage, its claim released; running the same
    command again resumes it (training from the last checkpoint; scoring again)."""
    check_config(cfg)
    rid = run_id(cfg)
    rd = store.run_dir_for(cfg.paths.results, cfg.study, rid)
    if _stored_state(cfg, rd) == store.COMPLETED:
        print(f"{rid} is already completed: {rd.path}")
        return Outcome("skipped", rd)
    threads = cfg.trainer.threads or available_cpus()
    torch.set_num_threads(threads)
    with stopping_signals() as signals:
        try:
            dataset = load_dataset(cfg)
        except KeyboardInterrupt as err:
            stop = signals.interrupted(err)
            print(f"{rid} interrupted ({stop.signal_name} while loading the dataset); nothing "
                  f"was recorded; run the same command again", file=sys.stderr, flush=True)
            return Outcome("interrupted", rd, f"{stop.signal_name} while loading the dataset",
                           stop.exit_code)
        check_objective(cfg, dataset)
        rd.create()
        if not rd.try_claim():
            owner = rd.claim_owner() or {}
            print(f"{rid} is being trained by {owner.get('host')} pid {owner.get('pid')}: "
                  f"{rd.path}")
            return Outcome("busy", rd)
        stage, started = "starting", time.time()
        try:
            store.write_atomic(rd.config, OmegaConf.to_yaml(cfg, resolve=True))
            status = _previous_status(rd)
            rd.update_status(
                state=store.RUNNING, run_id=rid, study=cfg.study, identity=identity(cfg),
                max_steps=cfg.trainer.max_steps, host=socket.gethostname(), pid=os.getpid(),
                started_at=status.get("started_at", started),
                attempts=status.get("attempts", 0) + 1, versions=versions(), reason=None,
                stage=None, data_source=getattr(dataset, "source", "user"), threads=threads,
            )
            stage = "training"
            model, trainer = _train(cfg, rd, dataset)
            if trainer.global_step < cfg.trainer.max_steps:
                raise KeyboardInterrupt  # the trainer stopped early: a signal it handled
            device = trainer.strategy.root_device
            stage = "scoring"
            scores = evaluate(cfg, model, dataset, device)
            stage = "writing the traversal"
            model = model.cpu().eval()
            _, observation = dataset.sample(1, np.random.default_rng(cfg.seed))
            save_image(rd.traversal, traversal_grid(model, observation[0]))
            stage = "recording"
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
            # A stopping signal (Lightning turns Ctrl-C during fit into SystemExit), or a
            # launcher's preemption handler (submitit requeues, then exits: the exit goes on).
            foreign_exit = isinstance(err, SystemExit) and signals.received is None
            stop = signals.interrupted(err)
            reason = "exit" if foreign_exit else f"{stop.signal_name} during {stage}"
            rd.update_status(state=store.INTERRUPTED, reason=reason, stage=stage,
                             finished_at=time.time())
            print(f"{rid} interrupted ({reason}); run the same command again to resume: "
                  f"{rd.path}", file=sys.stderr, flush=True)
            if foreign_exit:
                raise
            return Outcome("interrupted", rd, reason, stop.exit_code)
        except DisbenchError as err:
            rd.update_status(state=store.FAILED, reason=str(err), finished_at=time.time())
            raise
        except Exception as err:
            rd.update_status(state=store.FAILED, reason=f"{type(err).__name__}: {err}",
                             finished_at=time.time())
            raise
        finally:
            rd.release_claim()
