"""Trained models as files a model hub takes as they are, and back: ``export`` and ``load``.

An exported run is a folder (docs/zoo.md)::

    model.safetensors   the objective's weights (its state dict), nothing else
    config.json         what the model is: objective, architecture, data, observation
                        shape, training, run id, and the run's complete resolved config
    metrics.json        the run's scores, as stored
    README.md           a model card: what it is, how it was trained, its scores, how to
                        load it, the traversal image
    traversal.png, traversal.gif, reconstructions.png   the run's pictures, if any

``load(path)`` rebuilds the objective from ``config.json`` and the weights, without
Lightning and without unpickling; it also loads a run directory, from its
``config.yaml`` and ``checkpoints/last.ckpt`` (read with torch's weights-only loader).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from disbench import models, nets, store
from disbench.errors import DisbenchError, first_line

FORMAT = "disbench-model"
FORMAT_VERSION = 1
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"


def build_model(cfg: DictConfig, observation_shape) -> models.Objective:
    """The objective of a run config with its networks, initialised as `arch.init` says.
    The networks are as wide as the objective asks (`Objective.network_width`)."""
    hyper = OmegaConf.to_container(cfg.model, resolve=True)
    cls, checked = models.check(hyper)
    width = cls.network_width(cfg.arch.latent_dim, checked)
    encoder, decoder = nets.build(cfg.arch.name, tuple(observation_shape), width)
    model = models.build(hyper, encoder, decoder, cfg.arch.latent_dim)
    nets.initialise(model, cfg.arch.init)
    return model


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """The objective's state dict in a run's Lightning checkpoint (weights-only load)."""
    if not path.is_file():
        raise DisbenchError(f"{path} is missing")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated or corrupt
        raise DisbenchError(f"{path} cannot be read ({first_line(err)}); "
                            f"restore it, or train the run again") from None
    return {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()
            if k.startswith("model.")}


def with_weights(model: models.Objective, weights: dict, source: Path) -> models.Objective:
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise DisbenchError(f"{source} does not fit the model of its config: {err}") from None
    return model


def _observation_shape(run: store.RunDir, cfg: DictConfig) -> list[int]:
    """The run's observation shape: recorded in status.json, or read off its dataset."""
    shape = (run.status() or {}).get("observation_shape")
    if shape:
        return list(shape)
    from disbench.train.run import load_dataset

    return list(load_dataset(cfg).observation_shape)


# -- export ----------------------------------------------------------------------
def _model_card(info: dict, metrics: dict, has_traversal: bool) -> str:
    objective = dict(info["objective"])
    name = objective.pop("name")
    arch, training = info["arch"], info["training"]
    scores = (metrics or {}).get("mean", {})
    headline = [(k, v) for k, v in scores.items()
                if k in ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.mig",
                         "dci.disentanglement", "modularity.modularity", "sap.sap", "irs.irs",
                         "fairness.mean_fairness:mean_pred:mean_sens")]
    heldout = (metrics or {}).get("heldout", {})
    lines = [
        "---", "library_name: disbench",
        f"tags: [disentanglement, representation-learning, {name}, {info['data']['name']}]",
        "---", "",
        f"# {name} on {info['data']['name']}, seed {info['seed']}", "",
        f"A `{name}` objective trained with disbench (run `{info['run_id']}` of study "
        f"`{info['study']}`): an encoder from {info['observation_shape']} observations to "
        f"{arch['latent_dim']} latent dimensions and its decoder.", "",
        "## Training", "",
        "| setting | value |", "|---|---|",
        *[f"| `model.{k}` | `{json.dumps(v)}` |" for k, v in sorted(objective.items())],
        f"| architecture | `{arch['name']}`, latent_dim {arch['latent_dim']} |",
        f"| data | `{json.dumps(info['data'])}` |",
        f"| steps | {training.get('max_steps')} (batch size {training.get('batch_size')}, "
        f"learning rate {training.get('lr')}) |",
        f"| seed | {info['seed']} |", "",
        "## Scores", "",
    ]
    if headline or heldout:
        settings = (metrics.get("eval") or {}).get("name")
        lines += [f"Metric settings `{settings}` (disbench's `eval={settings}`); every score "
                  "is in `metrics.json`.", "", "| score | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.4g} |" for k, v in headline]
        lines += [f"| held-out `{k}` | {v:.4g} |" for k, v in heldout.items()]
    else:
        lines.append("Not scored (`disbench eval` scores the run from its checkpoint).")
    lines += [
        "", "## Loading", "",
        "```python", "import disbench", "",
        "model = disbench.load(\"path/to/this/folder\")  # device=\"cuda\" for a GPU",
        "mean, log_var = model.encode(x)  # x: float32 (N, C, H, W) in [0, 1]",
        "logits = model.decode(mean)      # the image is sigmoid(logits)", "```", "",
        "`disbench.metrics.evaluate(dataset, disbench.metrics.model_representation(model))` "
        "scores it on any ground-truth dataset. No Lightning and no pickle: the weights are "
        "safetensors, the configuration JSON.",
    ]
    if has_traversal:
        lines += ["", "## Latent traversal", "",
                  "Each row sweeps one latent dimension over [-2, 2] from one observation's "
                  "mean code.", "", "![traversal](traversal.png)"]
    return "\n".join(lines) + "\n"


def export_run(run_dir: Path, out: Path) -> Path:
    """Write one run as an exported folder ``out`` (module doc); returns ``out``."""
    from safetensors.torch import save_file

    run = store.RunDir(run_dir)
    status = run.status()
    if status is None:
        raise DisbenchError(f"{run_dir} is not a run directory (no status.json)")
    if status.get("state") not in (store.COMPLETED, store.TRAINED):
        raise DisbenchError(f"{run_dir.name} is {status.get('state')}, not trained: finish it "
                            f"(`disbench train` or its sweep) before exporting it")
    cfg = run.read_config()
    weights = checkpoint_weights(run.last_checkpoint)
    shape = _observation_shape(run, cfg)
    with_weights(build_model(cfg, shape), weights, run.last_checkpoint)  # it loads back
    metrics = store.read_json(run.metrics) or {}
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("paths", None)  # this machine's folders
    info = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "run_id": status.get("run_id", run_dir.name), "study": status.get("study"),
        "seed": container["seed"], "objective": container["model"],
        "arch": container["arch"], "data": container["data"], "observation_shape": shape,
        "training": container["trainer"], "state": status.get("state"),
        "step": status.get("step"), "versions": status.get("versions"),
        "config": container,
    }
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in weights.items()}
    save_file(tensors, str(out / WEIGHTS), metadata={"format": FORMAT})
    store.write_json(out / CONFIG, info)
    store.write_json(out / "metrics.json", metrics)
    for picture in (run.traversal, run.traversal_gif, run.reconstructions):
        if picture.is_file():
            shutil.copyfile(picture, out / picture.name)
    has_traversal = run.traversal.is_file()
    store.write_atomic(out / CARD, _model_card(info, metrics, has_traversal))
    return out


def export(source: Path, out: Path) -> list[Path]:
    """Export a run directory into ``out``, or every trained run of a study directory into
    ``out/<run id>``; returns the folders written."""
    if (source / "status.json").is_file():
        return [export_run(source, out)]
    if not source.is_dir():
        raise DisbenchError(f"{source} is neither a run directory nor a study directory")
    runs = sorted(p for p in source.iterdir() if (p / "status.json").is_file())
    trained = [p for p in runs if store.RunDir(p).state in (store.COMPLETED, store.TRAINED)]
    if not trained:
        raise DisbenchError(f"{source} holds no trained run ({len(runs)} run(s), none "
                            f"completed or trained)")
    return [export_run(p, out / p.name) for p in trained]


# -- load ------------------------------------------------------------------------
def load(path: str | Path, device: str | torch.device = "cpu") -> models.Objective:
    """A trained objective, in eval mode on ``device``, from an exported folder
    (``model.safetensors`` + ``config.json``) or a run directory."""
    path = Path(path)
    if (path / WEIGHTS).is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            info = json.loads((path / CONFIG).read_text())
        except (OSError, ValueError) as err:
            raise DisbenchError(f"{path / CONFIG} cannot be read ({err}); export the run "
                                f"again") from None
        if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
            raise DisbenchError(f"{path / CONFIG} is not a disbench model of format "
                                f"{FORMAT_VERSION} (format {info.get('format')!r}, version "
                                f"{info.get('format_version')!r})")
        try:
            weights = load_file(str(path / WEIGHTS))
        except (OSError, SafetensorError) as err:
            raise DisbenchError(f"{path / WEIGHTS} cannot be read ({err})") from None
        model = build_model(OmegaConf.create(info["config"]), info["observation_shape"])
        model = with_weights(model, weights, path / WEIGHTS)
    elif (path / "config.yaml").is_file():
        run = store.RunDir(path)
        cfg = run.read_config()
        model = build_model(cfg, _observation_shape(run, cfg))
        model = with_weights(model, checkpoint_weights(run.last_checkpoint),
                             run.last_checkpoint)
    else:
        raise DisbenchError(f"{path} holds no model: neither {WEIGHTS} (an exported run) nor "
                            f"config.yaml (a run directory)")
    return model.eval().to(device)
