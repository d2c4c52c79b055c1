"""`run(cfg)`: train, store and score one run. Every launcher calls this.

Idempotent and resumable: a completed run is skipped; an incomplete one
continues from its last checkpoint (model, optimiser, step and generator), and
on CPU ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
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
from disbench import config, data, models, store
from disbench.config import identity, run_id
from disbench.errors import DisbenchError, first_line, warn
from disbench.interrupt import stopping_signals
from disbench.models.base import Labels
from disbench.train import trackers
from disbench.train.callbacks import RunRecorder, StepProgressBar, truncate_loss_log
from disbench.train.module import NonFiniteLoss, TrainingModule, labelled_factors, labelled_subset
from disbench.train.optimizers import build_optimizers, check_losses
from disbench.visualize import save_pictures
from disbench.zoo import build_model


@dataclass
class Outcome:
    """What happened to a run: completed, trained (scoring deferred), skipped (already
    completed, or trained with scoring deferred), busy (another live process holds it),
    failed or interrupted (`code`: 128 + the signal)."""

    state: str
    run_dir: store.RunDir
    reason: str = ""
    code: int | None = None

    @property
    def exit_code(self) -> int:
        if self.code is not None:
            return self.code
        return {"completed": 0, "trained": 0, "skipped": 0, "busy": 3}.get(self.state, 1)


def versions() -> dict[str, str]:
    return {"disbench": disbench.__version__, "torch": torch.__version__,
            "pytorch_lightning": pl.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def load_dataset(cfg: DictConfig):
    options = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
               if k != "name"}
    return data.load(cfg.data.name, data_dir=cfg.paths.data, **options)


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
    generator = torch.Generator().manual_seed(0)
    extra = {}
    if model.label_fraction is not None:
        index = labelled_subset(len(dataset), model.label_fraction, cfg.seed)[:2]
        labelled = dataset.observe(torch.from_numpy(dataset.images[index]), generator)
        extra["labels"] = Labels(labelled, torch.from_numpy(labelled_factors(dataset, index)),
                                 tuple(dataset.factor_names))
    out = model.step(x, step=0, generator=generator, **extra)
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
    trackers.names(cfg)


def _trainer(cfg: DictConfig, recorder: pl.Callback, checkpoint_io=None,
             loggers: list = ()) -> pl.Trainer:
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    t = cfg.trainer
    callbacks = [recorder]
    if t.progress_bar:
        callbacks.append(StepProgressBar(refresh_rate=max(1, t.log_every_n_steps)))
    plugins = [] if checkpoint_io is None else [checkpoint_io]
    if "SLURM_JOB_ID" in os.environ:
        # requeueing belongs to the launcher (submitit), not to Lightning
        from lightning_fabric.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=False))
    return pl.Trainer(
        max_steps=t.max_steps, max_epochs=-1, accelerator=t.accelerator, devices=1,
        precision=str(t.precision), logger=list(loggers) or False,
        callbacks=callbacks, plugins=plugins, enable_checkpointing=False,
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
            warn(f"{path} is unreadable ({first_line(err)}); kept aside as {aside.name}")
            continue
        if path == run.previous_checkpoint:
            warn(f"resuming from the checkpoint before it, {path.name} (step {step})")
        return path, step
    return None, 0


def resume_point(run: store.RunDir) -> tuple[Path | None, int]:
    """The checkpoint a run resumes from and its step (None, 0: from scratch); the loss
    log is cut back to that step."""
    ckpt, step = readable_checkpoint(run)
    if ckpt is not None:
        truncate_loss_log(run.losses, step)
        print(f"resuming {run.path.name} from step {step}", flush=True)
    else:
        if run.losses.exists():
            print(f"no readable checkpoint: {run.path.name} starts again from step 0",
                  flush=True)
        run.losses.unlink(missing_ok=True)
    return ckpt, step


def _train(cfg: DictConfig, run: store.RunDir, dataset) -> tuple[models.Objective, pl.Trainer]:
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    model = build_model(cfg, dataset.observation_shape)
    module = TrainingModule(model, dataset, cfg.trainer.batch_size, cfg.trainer.lr,
                            cfg.trainer.betas, cfg.trainer.eps, cfg.seed)
    t = cfg.trainer
    with warnings_filtered():
        trainer = _trainer(cfg, RunRecorder(run, t.log_every_n_steps,
                                            t.checkpoint_every_n_steps),
                           loggers=trackers.build(cfg, run, run_id(cfg)))
    if model.label_fraction is not None:
        record_labelled(run, len(dataset), model.label_fraction, cfg.seed)
    ckpt, _ = resume_point(run)
    with warnings_filtered():
        trainer.fit(module, train_dataloaders=_endless(),
                    ckpt_path=None if ckpt is None else str(ckpt))
    return model, trainer


def record_labelled(run: store.RunDir, num_images: int, fraction: float, seed: int) -> None:
    """Store which images a semi-supervised run sees labelled (`labelled.npy`, and their
    count in status.json): the subset is drawn from the run's seed."""
    import io

    index = labelled_subset(num_images, fraction, seed)
    buffer = io.BytesIO()
    np.save(buffer, index)
    store.write_atomic(run.labelled, buffer.getvalue())
    run.update_status(labelled={"fraction": fraction, "count": len(index),
                                "of": num_images, "file": run.labelled.name})


@contextlib.contextmanager
def warnings_filtered():
    import warnings

    with warnings.catch_warnings():
        for pattern in (".*does not have many workers.*", ".*resuming from a checkpoint.*",
                        ".*is an iterable.*", ".*infinite.*", ".*mid-epoch.*", ".*LeafSpec.*",
                        ".*srun.*"):
            warnings.filterwarnings("ignore", message=pattern)
        yield


PICTURE_SAMPLE = 64  # observations whose mean KL orders the traversal's rows


def _final_losses(run: store.RunDir) -> dict[str, float]:
    import csv

    with open(run.losses, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items() if k != "step"} if rows else {}


def evaluate(cfg: DictConfig, model: models.Objective, dataset, device) -> dict:
    """The metric suite's scores for metrics.json (`mean`, `sampled`, the model's own
    scores, the `eval` settings)."""
    eval_cfg = OmegaConf.to_container(cfg.eval, resolve=True)
    if eval_cfg["name"] == "none":
        return {"eval": eval_cfg}
    from disbench.metrics.evaluate import score_model

    return score_model(model, dataset, eval_cfg, seed=cfg.seed, device=device,
                       progress=bool(cfg.trainer.progress_bar), data_dir=cfg.paths.data)


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


def _start(cfg: DictConfig, rd: store.RunDir, dataset, threads: int) -> float:
    """Store the run's config and mark it running; returns the start time."""
    started = time.time()
    store.write_atomic(rd.config, OmegaConf.to_yaml(cfg, resolve=True))
    status = _previous_status(rd)
    rd.update_status(
        state=store.RUNNING, run_id=run_id(cfg), study=cfg.study, identity=identity(cfg),
        max_steps=cfg.trainer.max_steps, host=socket.gethostname(), pid=os.getpid(),
        started_at=status.get("started_at", started),
        attempts=status.get("attempts", 0) + 1, versions=versions(), reason=None,
        stage=None, data_source=getattr(dataset, "source", "user"), threads=threads,
        observation_shape=list(dataset.observation_shape),
    )
    return started


class _Stage:
    """The stage a run is in, for the record of an interruption."""

    def __init__(self):
        self.name = "starting"


def _finish(cfg: DictConfig, rd: store.RunDir, model: models.Objective, dataset, device,
            step: int, started: float, stage: _Stage, loggers: list = ()) -> Outcome:
    """Score a trained run, write its traversal and metrics, record it completed; with
    `eval.defer`, record it trained, unscored, for `disbench eval`. The trackers get the
    scores and the traversal."""
    deferred = bool(cfg.eval.get("defer"))
    if not deferred:
        stage.name = "scoring"
        scores = evaluate(cfg, model, dataset, device)
    stage.name = "writing the traversal"
    model = model.cpu().eval()
    _, observations = dataset.sample(PICTURE_SAMPLE, np.random.default_rng(cfg.seed))
    save_pictures(model, observations, rd.traversal, rd.traversal_gif, rd.reconstructions)
    stage.name = "recording"
    trackers.log_results(loggers, {} if deferred else scores, rd.traversal, step)
    trackers.finish(loggers)
    if deferred:
        store.write_json(rd.metrics, {"train": _final_losses(rd)})
        rd.update_status(state=store.TRAINED, step=step, trained_at=time.time(),
                         duration_s=time.time() - started, device=str(device))
        print(f"{run_id(cfg)} trained; scoring deferred (eval.defer=true): "
              f"disbench eval {rd.path.parent}")
        return Outcome("trained", rd)
    store.write_scores(rd, _final_losses(rd), scores)
    rd.update_status(state=store.COMPLETED, step=step, finished_at=time.time(),
                     duration_s=time.time() - started, device=str(device))
    print(f"{run_id(cfg)} completed: {rd.path}")
    return Outcome("completed", rd)


def _non_finite(rd: store.RunDir, step: int, terms: dict) -> Outcome:
    reason = f"non-finite loss at step {step}: {terms}"
    rd.update_status(state=store.FAILED, reason=reason, step=step, finished_at=time.time())
    print(f"{rd.path.name} failed: {reason}")
    return Outcome("failed", rd, reason)


def _interrupted(rd: store.RunDir, err: BaseException, signals, stage: str) -> Outcome:
    """Record a run stopped by a signal (or by a launcher's exit, re-raised by the caller:
    `Outcome.code` is None then)."""
    # A stopping signal (Lightning turns Ctrl-C during fit into SystemExit), or a
    # launcher's preemption handler (submitit requeues, then exits: the exit goes on).
    foreign_exit = isinstance(err, SystemExit) and signals.received is None
    stop = signals.interrupted(err)
    reason = "exit" if foreign_exit else f"{stop.signal_name} during {stage}"
    rd.update_status(state=store.INTERRUPTED, reason=reason, stage=stage,
                     finished_at=time.time())
    print(f"{rd.path.name} interrupted ({reason}); run the same command again to resume: "
          f"{rd.path}", file=sys.stderr, flush=True)
    return Outcome("interrupted", rd, reason, None if foreign_exit else stop.exit_code)


def _crashed(rd: store.RunDir, err: Exception) -> None:
    reason = str(err) if isinstance(err, DisbenchError) else f"{type(err).__name__}: {err}"
    rd.update_status(state=store.FAILED, reason=reason, finished_at=time.time())


def _open(cfg: DictConfig) -> tuple[store.RunDir, bool]:
    """The run's directory, and whether there is nothing to do (said so): the run is
    completed, or trained with its scoring deferred. A trained run without `eval.defer`
    goes on: it is scored now."""
    check_config(cfg)
    rid = run_id(cfg)
    rd = store.run_dir_for(cfg.paths.results, cfg.study, rid)
    return rd, _nothing_left(cfg, rd, _stored_state(cfg, rd))


def _nothing_left(cfg: DictConfig, rd: store.RunDir, state: str | None) -> bool:
    """Whether a run in `state` has nothing left to do (said so)."""
    if state == store.COMPLETED:
        print(f"{rd.path.name} is already completed: {rd.path}")
        return True
    if state == store.TRAINED and cfg.eval.get("defer"):
        print(f"{rd.path.name} is already trained; its scoring is deferred: disbench eval "
              f"{rd.path}")
        return True
    return False


def _claim(cfg: DictConfig, rd: store.RunDir) -> str:
    """Claim the run: "claimed", "busy" (another live process holds it) or "completed"
    (another process completed it, or trained it with scoring deferred, since `_open`
    looked, and released it)."""
    rd.create()
    if not rd.try_claim():
        owner = rd.claim_owner() or {}
        print(f"{rd.path.name} is being trained by {owner.get('host')} pid "
              f"{owner.get('pid')}: {rd.path}")
        return "busy"
    if _nothing_left(cfg, rd, _stored_state(cfg, rd)):
        rd.release_claim()
        return "completed"
    return "claimed"


def _load_for(cfg: DictConfig, signals, rds: list[store.RunDir]):
    """The dataset, or the runs' interrupted outcomes (nothing recorded yet)."""
    try:
        return load_dataset(cfg), None
    except KeyboardInterrupt as err:
        stop = signals.interrupted(err)
        for rd in rds:
            print(f"{rd.path.name} interrupted ({stop.signal_name} while loading the dataset); "
                  f"nothing was recorded; run the same command again", file=sys.stderr,
                  flush=True)
        return None, [Outcome("interrupted", rd, f"{stop.signal_name} while loading the "
                              f"dataset", stop.exit_code) for rd in rds]


def run(cfg: DictConfig) -> Outcome:
    """Train, store and score the run that `cfg` describes.

    SIGINT, SIGTERM and SIGHUP end it alike at every stage: the run is stored as
    interrupted with the signal and the stage, its claim released; running the same
    command again resumes it (training from the last checkpoint; scoring again)."""
    rd, completed = _open(cfg)
    if completed:
        return Outcome("skipped", rd)
    threads = cfg.trainer.threads or available_cpus()
    torch.set_num_threads(threads)
    with stopping_signals() as signals:
        dataset, stopped = _load_for(cfg, signals, [rd])
        if stopped:
            return stopped[0]
        check_objective(cfg, dataset)
        claim = _claim(cfg, rd)
        if claim != "claimed":
            return Outcome("busy" if claim == "busy" else "skipped", rd)
        stage = _Stage()
        try:
            started = _start(cfg, rd, dataset, threads)
            stage.name = "training"
            model, trainer = _train(cfg, rd, dataset)
            if trainer.global_step < cfg.trainer.max_steps:
                raise KeyboardInterrupt  # the trainer stopped early: a signal it handled
            return _finish(cfg, rd, model, dataset, trainer.strategy.root_device,
                           trainer.global_step, started, stage, trainer.loggers)
        except NonFiniteLoss as err:
            return _non_finite(rd, err.step, err.terms)
        except (KeyboardInterrupt, SystemExit) as err:
            outcome = _interrupted(rd, err, signals, stage.name)
            if outcome.code is None:
                raise
            return outcome
        except Exception as err:
            _crashed(rd, err)
            raise
        finally:
            rd.release_claim()
