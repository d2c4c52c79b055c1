"""The run table from a hand-made store: exact rows, columns, values and left-out runs.

`disbench aggregate` runs as a process once (its end-to-end test); the other commands
are called in this process (`disbench_in_process`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from store_helpers import FAST, LOCATELLO, write_run

from disbench.aggregate.table import (
    EVAL,
    IDENTITY,
    STATUS,
    TIMINGS,
    eval_key,
    read_study,
    read_table,
    write_table,
)
from disbench.errors import DisbenchError


def disbench(args, cwd, **env):
    """`disbench ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "disbench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


@pytest.fixture
def store(tmp_path):
    """Two completed runs, one failed, one with a corrupt status.json, one with a corrupt
    metrics.json, one stopped mid-run, and a folder that is not a run."""
    write_run(tmp_path, "st", "betavae-a", hyper={"beta": 4.0}, seed=0,
              train={"loss": 10.0, "reconstruction": 8.0, "kl": 2.0, "elbo": -10.0},
              heldout={"reconstruction": 8.5, "kl": 2.5, "elbo": -11.0},
              mean={"mig.mig": 0.25, "dci.disentanglement": 0.5},
              sampled={"unsupervised.gaussian_total_correlation": 1.5})
    write_run(tmp_path, "st", "factorvae-b", model="factorvae", hyper={"gamma": 10.0}, seed=1,
              train={"loss": 12.0, "reconstruction": 9.0, "kl": 3.0, "elbo": -12.0,
                     "discriminator_objective": 0.6},
              mean={"mig.mig": 0.125, "dci.disentanglement": 0.75},
              sampled={"unsupervised.gaussian_total_correlation": 2.5})
    write_run(tmp_path, "st", "betavae-failed", hyper={"beta": 16.0}, state="failed", step=3,
              reason="non-finite loss at step 3: {'loss': nan}")
    bad_status = write_run(tmp_path, "st", "betavae-corrupt-status", hyper={"beta": 1.0})
    (bad_status / "status.json").write_text('{"state": "compl')
    bad_metrics = write_run(tmp_path, "st", "betavae-corrupt-metrics", hyper={"beta": 2.0})
    (bad_metrics / "metrics.json").write_text("not json")
    write_run(tmp_path, "st", "betavae-stopped", hyper={"beta": 8.0}, state="running", step=10)
    (tmp_path / "st" / "report").mkdir()
    return tmp_path


def test_table_has_exactly_the_completed_runs_and_columns(store):
    got = read_study(store / "st")
    table = got.table
    assert list(table["run_id"]) == ["betavae-a", "factorvae-b"]
    expected_columns = (
        IDENTITY + ["hp.beta", "hp.gamma"] + STATUS + TIMINGS + EVAL + ["setting_key"]
        + ["train.discriminator_objective", "train.elbo", "train.kl", "train.loss",
           "train.reconstruction", "heldout.elbo", "heldout.kl", "heldout.reconstruction",
           "mean.dci.disentanglement", "mean.mig.mig",
           "sampled.unsupervised.gaussian_total_correlation"])
    assert list(table.columns) == expected_columns
    first = table.iloc[0].to_dict()
    assert {k: first[k] for k in ("source", "study", "model", "dataset", "data_source", "seed",
                                  "arch", "latent_dim", "max_steps", "batch_size", "lr",
                                  "strength_name", "strength", "hp.beta", "state", "step",
                                  "duration_s", "eval_settings")} == {
        "source": "disbench", "study": "st", "model": "betavae",
        "dataset": "dsprites_procedural", "data_source": "procedural", "seed": 0,
        "arch": "mlp", "latent_dim": 10, "max_steps": 20, "batch_size": 64, "lr": 0.0001,
        "strength_name": "beta", "strength": 4.0, "hp.beta": 4.0, "state": "completed",
        "step": 20, "duration_s": 12.5, "eval_settings": "fast"}
    assert pd.isna(first["hp.gamma"]) and pd.isna(first["train.discriminator_objective"])
    assert first["eval_key"] == eval_key(FAST)
    assert first["eval_boosting"] == "sklearn"
    # settings stored before `boosting` existed were scikit-learn's: the same key
    assert eval_key({k: v for k, v in FAST.items() if k != "boosting"}) == eval_key(FAST)
    assert table["eval_key"].tolist() == [eval_key(FAST)] * 2  # seeds 0 and 1: one setting
    assert first["mean.mig.mig"] == 0.25 and first["train.elbo"] == -10.0
    assert first["heldout.elbo"] == -11.0 and pd.isna(table.iloc[1]["heldout.elbo"])
    assert first["sampled.unsupervised.gaussian_total_correlation"] == 1.5
    second = table.iloc[1]
    assert (second["model"], second["strength_name"], second["strength"], second["seed"]) == \
        ("factorvae", "gamma", 10.0, 1)
    assert second["mean.dci.disentanglement"] == 0.75


def test_left_out_runs_are_listed_with_their_reason(store):
    skipped = {s.run_id: s for s in read_study(store / "st").skipped}
    assert set(skipped) == {"betavae-failed", "betavae-corrupt-status",
                            "betavae-corrupt-metrics", "betavae-stopped"}
    assert skipped["betavae-failed"].state == "failed"
    assert "non-finite loss at step 3" in skipped["betavae-failed"].reason
    assert skipped["betavae-corrupt-status"].state == "unreadable"
    assert "status.json cannot be read" in skipped["betavae-corrupt-status"].reason
    assert "metrics.json cannot be read" in skipped["betavae-corrupt-metrics"].reason
    assert skipped["betavae-stopped"].state == "incomplete"
    assert "step 10 of 20" in skipped["betavae-stopped"].reason


def test_aggregate_command_writes_parquet_and_csv_beside_the_study(store, disbench_in_process):
    out = disbench(["aggregate", "st", "--results", str(store)], store)
    assert out.returncode == 0, out.stderr
    assert "2 completed run(s) in the table, 4 left out" in out.stdout
    assert "left out st/betavae-failed: failed: non-finite loss" in out.stdout
    table = read_table(store / "st.parquet")
    assert list(table["run_id"]) == ["betavae-a", "factorvae-b"]
    assert table["seed"].tolist() == [0, 1]
    csv = (store / "st.csv").read_text()
    assert csv.splitlines()[0] == ",".join(table.columns)
    again = disbench_in_process(["aggregate", "st", "--results", str(store), "--out",
                                 str(store / "copy")], store)
    assert again.returncode == 0
    assert (store / "copy.csv").read_bytes() == csv.encode()
    assert (store / "copy.parquet").read_bytes() == (store / "st.parquet").read_bytes()


def test_several_studies_in_one_table(store, disbench_in_process):
    write_run(store, "other", "betavae-c", hyper={"beta": 1.0}, mean={"mig.mig": 0.0})
    out = disbench_in_process(["aggregate", "st", "other", "--results", str(store)], store)
    assert out.returncode == 0, out.stderr
    table = read_table(store / "st+other.parquet")
    assert list(zip(table["study"], table["run_id"])) == [
        ("other", "betavae-c"), ("st", "betavae-a"), ("st", "factorvae-b")]


def test_mixed_metric_settings_are_flagged(store, disbench_in_process):
    write_run(store, "st", "betavae-z", hyper={"beta": 6.0}, mean={"mig.mig": 0.3},
              eval_settings=LOCATELLO)
    out = disbench_in_process(["aggregate", "st", "--results", str(store)], store)
    assert out.returncode == 0
    assert "warning: the runs were scored with different metric settings" in out.stdout
    assert f"fast ({eval_key(FAST)}): 2 runs" in out.stdout
    assert f"locatello ({eval_key(LOCATELLO)}): 1 runs" in out.stdout


@pytest.mark.parametrize("case", ["unknown", "empty", "nothing_completed"])
def test_bad_studies_end_in_one_message(tmp_path, case, disbench_in_process):
    (tmp_path / "real").mkdir()
    write_run(tmp_path, "real", "betavae-x", state="failed", reason="boom")
    study = {"unknown": "nope", "empty": "hollow", "nothing_completed": "real"}[case]
    if case == "empty":
        (tmp_path / "hollow").mkdir()
    out = disbench_in_process(["aggregate", study, "--results", str(tmp_path)], tmp_path)
    assert out.returncode == 2
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ")
    expected = {"unknown": "no study 'nope' under", "empty": "holds no runs",
                "nothing_completed": "no completed run"}[case]
    assert expected in message
    if case == "unknown":
        assert "studies there: hollow, real" in message or "studies there: real" in message
    assert "Traceback" not in out.stderr


def test_a_table_of_another_format_is_refused(tmp_path, store, disbench_in_process):
    old = tmp_path / "old.parquet"
    pd.DataFrame({"run_id": ["a"], "mig": [0.1]}).to_parquet(old)
    with pytest.raises(DisbenchError, match="table format none .* reads format 1"):
        read_table(old)
    out = disbench_in_process(["report", str(old)], tmp_path)
    assert out.returncode == 2 and "Write it again with `disbench aggregate STUDY`" in out.stderr
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    with pytest.raises(DisbenchError, match="not a readable parquet table"):
        read_table(garbage)


def test_write_table_round_trips(tmp_path, store):
    table = read_study(store / "st").table
    parquet, csv = write_table(table, tmp_path / "t")
    back = read_table(parquet)
    pd.testing.assert_frame_equal(back, table)
    assert json.loads(json.dumps(list(back.columns))) == list(table.columns)
