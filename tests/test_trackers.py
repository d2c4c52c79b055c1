"""Experiment trackers for real: MLflow (a local file store, read back with its client),
W&B (offline, its run file read back) and Lightning's CSV logger, from one training run;
a resumed run continues its tracker run; bad values are one message."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from disbench import store
from disbench.config import compose
from disbench.errors import DisbenchError
from disbench.launch.sweep import pack_key
from disbench.train import trackers
from disbench.train.run import run

TINY_EVAL = Path(__file__).parent / "conf"
OVERRIDES = ["model=betavae", "data=dsprites_procedural", "arch=mlp", "trainer=smoke",
             "trainer.log_every_n_steps=5", f"hydra.searchpath=[file://{TINY_EVAL}]",
             "eval=tiny", "+eval.representations.mean=[mig]",
             "+eval.representations.sampled=[]", "study=tracked"]


def wandb_records(run_dir: Path) -> list:
    """The records of W&B's offline run file: a LevelDB-style log (a 7-byte file header,
    32 KiB blocks of chunks with a 7-byte header: checksum, length, type) of protobuf
    `Record`s."""
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("wandb/offline-run-*/*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    records, chunks, pos, block = [], [], 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the block's padding
            pos += left
            continue
        chunks.append(data[pos + 7:pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or its last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


@pytest.fixture
def tracked(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("DISBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DISBENCH_DATA", str(data_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose([*OVERRIDES, "trainer.logger=[mlflow,wandb,csv]"])
    outcome = run(cfg)
    assert outcome.state == "completed", outcome.reason
    return cfg, outcome.run_dir, tmp_path


@pytest.mark.slow
def test_one_run_reaches_mlflow_wandb_and_csv(tracked):
    from mlflow.tracking import MlflowClient

    cfg, rd, tmp_path = tracked
    metrics = json.loads(rd.metrics.read_text())
    mig = metrics["mean"]["mig.mig"]
    losses = list(csv.DictReader(rd.losses.open()))
    steps = [int(row["step"]) for row in losses]
    assert steps == [5, 10, 15, 20]

    # MLflow: tags, parameters, the loss history, the scores, the traversal
    mlflow_id = json.loads(rd.status_file.read_text())["trackers"]["mlflow"]
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    found = client.get_run(mlflow_id)
    assert {k: found.data.tags[k] for k in ("study", "run_id", "model", "dataset")} == {
        "study": "tracked", "run_id": rd.path.name, "model": "betavae",
        "dataset": "dsprites_procedural"}
    assert client.get_experiment(found.info.experiment_id).name == "tracked"
    assert found.data.params["model.beta"] == "4.0" and found.data.params["seed"] == "0"
    history = client.get_metric_history(mlflow_id, "loss")
    assert [m.step for m in history] == steps
    assert [m.value for m in history] == pytest.approx([float(r["loss"]) for r in losses])
    assert found.data.metrics["mean/mig.mig"] == pytest.approx(mig)
    assert found.data.metrics["heldout/elbo"] == pytest.approx(metrics["heldout"]["elbo"])
    assert [a.path for a in client.list_artifacts(mlflow_id)] == ["traversal.png"]

    # W&B offline: the run, its group and tags, the config, the history, the image
    records = wandb_records(rd.path)
    (header,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (header.run_id, header.display_name, header.run_group) == (rd.path.name,
                                                                      rd.path.name, "tracked")
    assert list(header.tags) == ["betavae", "dsprites_procedural", "tracked"]
    config = {u.key: json.loads(u.value_json) for r in records
              if r.WhichOneof("record_type") == "config" for u in r.config.update}
    assert config["model.beta"] == 4.0
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json)
                for i in r.history.item} for r in records
               if r.WhichOneof("record_type") == "history"]
    assert [h["trainer/global_step"] for h in history if "loss" in h] == steps
    assert [h["mean/mig.mig"] for h in history if "mean/mig.mig" in h] == pytest.approx([mig])
    assert any(h.get("traversal/_type") == "images/separated" for h in history)

    # Lightning's CSV logger: the same rows, and the scores
    rows = list(csv.DictReader((rd.path / "csv" / "version_0" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r.get("loss")] == steps
    assert [float(r["mean/mig.mig"]) for r in rows if r.get("mean/mig.mig")] == \
        pytest.approx([mig])


@pytest.mark.slow
def test_a_resumed_run_continues_its_tracker_runs(tracked):
    cfg, rd, _ = tracked
    first = json.loads(rd.status_file.read_text())["trackers"]["mlflow"]
    again = trackers.build(cfg, rd, rd.path.name)  # as training resumes: the stored ids
    try:
        by_kind = {type(logger).__name__: logger for logger in again}
        assert by_kind["MLFlowLogger"].run_id == first
        assert by_kind["WandbLogger"].experiment.id == rd.path.name
        assert json.loads(rd.status_file.read_text())["trackers"]["mlflow"] == first
    finally:
        trackers.finish(again)


@pytest.mark.parametrize("value, match", [
    ("foo", r"trainer.logger=foo: expected one of none, tensorboard, mlflow, wandb, csv"),
    ("[csv,bar]", r"expected one of none, tensorboard, mlflow, wandb, csv, or a list"),
])
def test_an_unknown_tracker_is_one_message(value, match, tmp_path, monkeypatch):
    monkeypatch.setenv("DISBENCH_RESULTS", str(tmp_path))
    with pytest.raises(DisbenchError, match=match):
        trackers.names(compose([f"trainer.logger={value}"]))


def test_a_missing_package_is_named_with_its_install(monkeypatch):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(DisbenchError, match=r"trainer.logger=mlflow needs the mlflow package: "
                                            r"pip install 'disbench\[mlflow\]'"):
        trackers.names(compose(["trainer.logger=[csv,mlflow]"]))
    assert trackers.names(compose(["trainer.logger=[none,csv,csv]"])) == ["csv"]


def test_a_tracked_run_trains_alone_not_in_a_pack():
    plain = compose(["model=betavae"])
    tracked = compose(["model=betavae", "trainer.logger=csv"])
    from omegaconf import OmegaConf

    assert pack_key(OmegaConf.to_container(plain, resolve=True)) is not None
    assert pack_key(OmegaConf.to_container(tracked, resolve=True)) is None


def test_no_tracker_is_no_logger_and_nothing_recorded(tmp_path):
    rd = store.RunDir(tmp_path / "r")
    rd.path.mkdir()
    assert trackers.build(compose(["trainer.logger=none"]), rd, "r") == []
    assert not rd.status_file.exists()
