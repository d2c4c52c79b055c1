"""`run_pack(cfgs)`: train several runs of one objective in one process, as one pack,
then store and score each. The sweep's `launcher.pack` calls this.

Each run of a pack is a run: its own directory, claim, status, config, loss log,
checkpoints, traversal and metrics, as `disbench.train.run.run` writes them. A run
that is already completed is skipped and one that another process holds is left to it;
the others resume from their own checkpoints (runs at different steps train as
separate packs, one after the other). A run whose loss turns non-finite fails alone;
a stopping signal records every unfinished run as interrupted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from disbench import store
from disbench.errors import DisbenchError
from disbench.interrupt import stopping_signals
from disbench.train.packed import PackCheckpointIO, PackedTrainingModule, PackRecorder
from disbench.train.run import (
    Outcome,
    _claim,
    _crashed,
    _endless,
    _finish,
    _interrupted,
    _load_for,
    _non_finite,
    _open,
    _Stage,
    _start,
    _trainer,
    available_cpus,
    build_model,
    check_objective,
    resume_point,
    warnings_filtered,
)


@dataclass
class _Member:
    cfg: DictConfig
    rd: store.RunDir
    stage: _Stage = field(default_factory=_Stage)
    started: float = 0.0
    outcome: Outcome | None = None


def run_pack(cfgs: list[DictConfig]) -> list[Outcome]:
    """Train, store and score the runs `cfgs` describe (one objective class, architecture,
    dataset and trainer; seeds and the objective's packable hyperparameters may differ).
    Returns each run's outcome, in order."""
    outcomes: dict[int, Outcome] = {}
    members: dict[int, _Member] = {}
    for i, cfg in enumerate(cfgs):
        rd, completed = _open(cfg)
        if completed:
            outcomes[i] = Outcome("skipped", rd)
        else:
            members[i] = _Member(cfg, rd)
    if not members:
        return [outcomes[i] for i in range(len(cfgs))]
    first = next(iter(members.values())).cfg
    threads = first.trainer.threads or available_cpus()
    torch.set_num_threads(threads)
    with stopping_signals() as signals:
        dataset, stopped = _load_for(first, signals, [m.rd for m in members.values()])
        if stopped:
            outcomes.update(zip(members, stopped))
            return [outcomes[i] for i in range(len(cfgs))]
        for i, m in list(members.items()):
            try:
                check_objective(m.cfg, dataset)
            except DisbenchError as err:
                outcomes[i] = Outcome("failed", m.rd, str(err))
                del members[i]
                continue
            claim = _claim(m.cfg, m.rd)
            if claim != "claimed":
                outcomes[i] = Outcome("busy" if claim == "busy" else "skipped", m.rd)
                del members[i]
        try:
            for m in members.values():
                m.started = _start(m.cfg, m.rd, dataset, threads)
            _train_and_score(list(members.values()), dataset)
        except (KeyboardInterrupt, SystemExit) as err:
            unfinished = [m for m in members.values() if m.outcome is None]
            for m in unfinished:
                m.outcome = _interrupted(m.rd, err, signals, m.stage.name)
            if any(m.outcome.code is None for m in unfinished):
                raise
        except Exception as err:
            for m in members.values():
                if m.outcome is None:
                    _crashed(m.rd, err)
            raise
        finally:
            for m in members.values():
                m.rd.release_claim()
        outcomes.update((i, m.outcome) for i, m in members.items())
    return [outcomes[i] for i in range(len(cfgs))]


def _train_and_score(members: list[_Member], dataset) -> None:
    """Train the members as packs of runs that resume from the same step; score each run
    as soon as its pack has trained."""
    by_step: dict[int, list[tuple[_Member, object]]] = defaultdict(list)
    for m in members:
        m.stage.name = "training"
        ckpt, step = resume_point(m.rd)
        by_step[step].append((m, ckpt))
    for step in sorted(by_step):
        group = [m for m, _ in by_step[step]]
        checkpoints = [ckpt for _, ckpt in by_step[step]]
        module, trainer = _train(group, checkpoints, dataset)
        running = [group[i] for i in module.running()]
        if running and trainer.global_step < group[0].cfg.trainer.max_steps:
            raise KeyboardInterrupt  # the trainer stopped early: a signal it handled
        device = trainer.strategy.root_device
        models = {id(m): _unstacked(module, group.index(m), m.cfg, dataset) for m in running}
        del module, trainer
        for m in running:
            try:
                m.outcome = _finish(m.cfg, m.rd, models.pop(id(m)).to(device), dataset, device,
                                    m.cfg.trainer.max_steps, m.started, m.stage)
            except Exception as err:  # noqa: BLE001 - this run fails, the others are scored
                _crashed(m.rd, err)
                m.outcome = Outcome("failed", m.rd, f"{type(err).__name__}: {err}")
                print(f"{m.rd.path.name} failed: {m.outcome.reason}", flush=True)


def _train(group: list[_Member], checkpoints: list, dataset):
    cfg = group[0].cfg
    t = cfg.trainer
    objectives = []
    for m in group:  # each run initialised exactly as it would be alone
        pl.seed_everything(m.cfg.seed, workers=False, verbose=False)
        objectives.append(build_model(m.cfg, dataset.observation_shape))
    module = PackedTrainingModule(objectives, dataset, t.batch_size, t.lr, t.betas, t.eps,
                                  [m.cfg.seed for m in group])
    del objectives
    resuming = checkpoints[0] is not None
    io = PackCheckpointIO(module, [m.rd for m in group], checkpoints if resuming else None)

    def failed(run: int, step: int, terms: dict) -> None:
        m = group[run]
        m.outcome = _non_finite(m.rd, step, terms)
        m.rd.release_claim()

    recorder = PackRecorder([m.rd for m in group], t.log_every_n_steps,
                            t.checkpoint_every_n_steps, failed)
    with warnings_filtered():
        trainer = _trainer(cfg, recorder, checkpoint_io=io)
        trainer.fit(module, train_dataloaders=_endless(),
                    ckpt_path=str(checkpoints[0]) if resuming else None)
    return module, trainer


def _unstacked(module: PackedTrainingModule, run: int, cfg: DictConfig, dataset):
    """Run `run`'s objective on its own (for scoring and the traversal)."""
    model = build_model(cfg, dataset.observation_shape)
    model.load_state_dict(module.pack.run_state_dict(run))
    return model
