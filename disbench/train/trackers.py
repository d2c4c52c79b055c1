"""Experiment trackers: `trainer.logger=none|tensorboard|mlflow|wandb|csv`, or a list.

Lightning's own loggers, fed by disbench at its log cadence (the store stays the source of
truth; a tracker is a view of it):

- the run's resolved config as parameters (flattened: `model.beta`, `trainer.lr`, ...);
- the loss terms every `trainer.log_every_n_steps` steps (the rows of losses.csv);
- at the end, the scores of metrics.json (`mean/<metric>.<score>`, `sampled/...`,
  `heldout/...`) at the last step, and the traversal image (MLflow: an artifact; W&B and
  TensorBoard: an image);
- tagged with the study, run id, model and dataset (MLflow: tags, experiment = the study;
  W&B: group = the study, tags, run name = the run id; TensorBoard and CSV: the run's own
  folder).

A resumed run continues its tracker run: MLflow's run id is kept in status.json
(`trackers.mlflow`); W&B's run id is the run id (`resume="allow"`); TensorBoard appends to
the run's `tensorboard/` folder. The CSV logger writes one file per attempt
(`csv/version_N/metrics.csv`; losses.csv has the whole run).

Where: TensorBoard and CSV in the run's folder; MLflow at `$MLFLOW_TRACKING_URI`, else a
file store `<results>/mlruns`; W&B in the project `$WANDB_PROJECT` (default `disbench`),
its files in the run's folder (`WANDB_MODE=offline` keeps them there).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from disbench import store
from disbench.errors import DisbenchError

TRACKERS = ("none", "tensorboard", "mlflow", "wandb", "csv")
PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",),
            "wandb": ("wandb",)}
INSTALL = {"tensorboard": "pip install tensorboard", "mlflow": "pip install 'disbench[mlflow]'",
           "wandb": "pip install 'disbench[wandb]'"}


def requested(trainer) -> list:
    """`trainer.logger` of a trainer config (DictConfig or dict) as a list, unchecked."""
    value = trainer.get("logger", "none")
    return [value] if isinstance(value, str) else list(value or [])


def names(cfg: DictConfig) -> list[str]:
    """The trackers `trainer.logger` asks for, checked: one `DisbenchError` naming the bad
    value or the missing package."""
    chosen = requested(cfg.trainer)
    bad = [v for v in chosen if v not in TRACKERS]
    if bad or not all(isinstance(v, str) for v in chosen):
        raise DisbenchError(f"trainer.logger={OmegaConf.to_container(cfg.trainer).get('logger')}"
                            f": expected one of {', '.join(TRACKERS)}, or a list of them")
    chosen = [v for v in dict.fromkeys(chosen) if v != "none"]
    for tracker in chosen:
        if tracker in PACKAGES and not any(importlib.util.find_spec(m)
                                           for m in PACKAGES[tracker]):
            raise DisbenchError(f"trainer.logger={tracker} needs the {PACKAGES[tracker][0]} "
                                f"package: {INSTALL[tracker]} (or leave {tracker} out of "
                                f"trainer.logger)")
    return chosen


def _tags(cfg: DictConfig, run_id: str) -> dict[str, str]:
    return {"study": str(cfg.study), "run_id": run_id, "model": str(cfg.model.name),
            "dataset": str(cfg.data.name)}


def build(cfg: DictConfig, run: store.RunDir, run_id: str) -> list:
    """The Lightning loggers of `trainer.logger` for this run (none: []); a tracker that
    cannot start is one `DisbenchError` naming it."""
    loggers = []
    for tracker in names(cfg):
        try:
            logger = _start(tracker, cfg, run, run_id)
        except Exception as err:  # noqa: BLE001 - the tracker's own error, in one line
            first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
            raise DisbenchError(f"trainer.logger={tracker} could not start: "
                                f"{type(err).__name__}: {first}") from None
        loggers.append(logger)
    if loggers:
        params = _flat(OmegaConf.to_container(cfg, resolve=True))
        params.pop("paths.results", None)
        params.pop("paths.data", None)
        for logger in loggers:
            logger.log_hyperparams(params)
    return loggers


def _start(tracker: str, cfg: DictConfig, run: store.RunDir, run_id: str):
    tags = _tags(cfg, run_id)
    if tracker == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        return TensorBoardLogger(run.path, name="tensorboard", version="")
    if tracker == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(run.path, name="csv")
    if tracker == "mlflow":
        from pytorch_lightning.loggers import MLFlowLogger

        uri = os.environ.get("MLFLOW_TRACKING_URI") or \
            Path(cfg.paths.results).resolve().joinpath("mlruns").as_uri()
        if uri.startswith("file:"):  # MLflow 3 keeps its file store behind this switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        stored = (run.status() or {}).get("trackers") or {}
        logger = MLFlowLogger(experiment_name=str(cfg.study), run_name=run_id,
                              tracking_uri=uri, tags=tags, run_id=stored.get("mlflow"))
        run.update_status(trackers={**stored, "mlflow": logger.run_id})
        return logger
    from pytorch_lightning.loggers import WandbLogger

    return WandbLogger(name=run_id, id=run_id, resume="allow", save_dir=str(run.path),
                       project=os.environ.get("WANDB_PROJECT", "disbench"),
                       group=str(cfg.study), tags=[tags["model"], tags["dataset"], tags["study"]])


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_terms(loggers: list, terms: dict[str, float], step: int) -> None:
    for logger in loggers:
        logger.log_metrics(terms, step=step)


def log_results(loggers: list, metrics: dict, traversal: Path, step: int) -> None:
    """The scores of metrics.json and the traversal image, at the last step."""
    scores = {f"{part}/{key}": float(value)
              for part in store.SCORE_PARTS
              for key, value in (metrics.get(part) or {}).items()}
    for logger in loggers:
        name = type(logger).__name__
        if scores:
            logger.log_metrics(scores, step=step)
        if not traversal.is_file():
            continue
        if name == "MLFlowLogger":
            logger.experiment.log_artifact(logger.run_id, str(traversal))
        elif name == "WandbLogger":
            logger.log_image(key="traversal", images=[str(traversal)], step=step)
        elif name == "TensorBoardLogger":
            import numpy as np
            from PIL import Image

            image = np.asarray(Image.open(traversal).convert("RGB"))
            logger.experiment.add_image("traversal", image, step, dataformats="HWC")
        logger.save()


def finish(loggers: list) -> None:
    for logger in loggers:
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()
