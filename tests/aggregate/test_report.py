"""`disbench report` on hand-made stores, the committed study and a fresh smoke sweep.

`disbench report` runs as a process once (its end-to-end test); the other calls are in
this process (`disbench_in_process`)."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from store_helpers import FAST, LOCATELLO, write_run

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "results" / "quick-dsprites"


def disbench(args, cwd, timeout=600, **env):
    """`disbench ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "disbench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=timeout)


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 16), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


METRIC_NAMES = ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.mig",
                "dci.disentanglement", "modularity.modularity", "sap.sap", "irs.irs")


def scored_study(root: Path, study: str = "st", eval_settings=FAST) -> None:
    """2 models x 3 values x 3 seeds with scores that rise with the hyperparameter."""
    rng = np.random.default_rng(0)
    models = {"betavae": ("beta", [1.0, 4.0, 16.0]), "dipvae1": ("lambda_od", [1.0, 5.0, 20.0])}
    for (model, (hp, values)), i, seed in itertools.product(models.items(), range(3), range(3)):
        value = values[i]
        mean = {name: i * 0.2 + rng.normal() * 0.05 for name in METRIC_NAMES}
        mean["unsupervised.gaussian_total_correlation"] = 3.0 + rng.normal() * 0.1
        write_run(root, study, f"{model}-{i}-s{seed}", model=model, hyper={hp: value},
                  seed=seed, mean=mean,
                  sampled={"unsupervised.gaussian_total_correlation": 3.0 - i},
                  train={"reconstruction": 60.0 - i, "kl": 10.0 + i, "elbo": -70.0 + rng.normal(),
                         "loss": 70.0},
                  eval_settings=eval_settings, traversal=png(10 * i + seed))


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_report_has_every_exhibit_and_the_same_tables_every_time(tmp_path,
                                                                 disbench_in_process):
    scored_study(tmp_path)
    write_run(tmp_path, "st", "betavae-failed", state="failed", reason="non-finite loss")
    out = disbench(["report", "st", "--results", str(tmp_path)], tmp_path)
    assert out.returncode == 0, out.stderr
    report = tmp_path / "st" / "report"
    md = (report / "report.md").read_text()
    for title in ("Overview", "Scores per dataset and model", "Rank correlation between metrics",
                  "Distributions per model", "Scores against regularisation strength",
                  "Total correlation of the sampled and the mean representation",
                  "Variance: model, hyperparameter, seed", "Unsupervised scores against metrics",
                  "Model selection without labels: UDR", "Model selection transfer",
                  "Fairness", "Latent traversals"):
        assert f". {title}\n" in md
    assert "18 runs from st (disbench)" in md
    assert "betavae-failed" in md and "non-finite loss" in md
    assert "transfer across datasets needs runs on two or more datasets" in md
    # best, median and worst betavae by DCI disentanglement are copied and shown
    ranked = (report / "tables" / "traversal_runs.csv").read_text().splitlines()
    assert [line.split(",")[2] for line in ranked if ",betavae," in line] == \
        ["best", "median", "worst"]
    assert len(list((report / "traversals").glob("*.png"))) == 6
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list(report.rglob("*.png")))
    first = digest(report)
    assert any(name.endswith(".tex") for name in first)
    again = disbench_in_process(["report", "st", "--results", str(tmp_path)], tmp_path)
    assert again.returncode == 0
    second = digest(report)
    tables = [n for n in first if n.startswith("tables/") or n == "report.md"]
    assert {n: first[n] for n in tables} == {n: second[n] for n in tables}


def test_report_refuses_mixed_metric_settings_unless_one_is_chosen(tmp_path,
                                                                   disbench_in_process):
    scored_study(tmp_path)
    write_run(tmp_path, "st", "betavae-other", mean={"mig.mig": 0.5}, eval_settings=LOCATELLO)
    out = disbench_in_process(["report", "st", "--results", str(tmp_path)], tmp_path)
    assert out.returncode == 2
    assert "scored with different metric settings (fast" in out.stderr
    assert "--eval NAME_OR_KEY" in out.stderr and "Traceback" not in out.stderr
    chosen = disbench_in_process(["report", "st", "--results", str(tmp_path), "--eval", "fast"],
                                 tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert "18 runs from st" in (tmp_path / "st" / "report" / "report.md").read_text()
    unknown = disbench_in_process(["report", "st", "--results", str(tmp_path), "--eval", "nope"],
                                  tmp_path)
    assert unknown.returncode == 2 and "no run was scored with eval settings 'nope'" in \
        unknown.stderr


def test_report_without_metrics_says_what_is_missing(tmp_path, disbench_in_process):
    for seed in range(3):
        write_run(tmp_path, "plain", f"vae-s{seed}", model="vae", seed=seed,
                  train={"reconstruction": 50.0 + seed, "kl": 5.0, "elbo": -55.0 - seed,
                         "loss": 55.0 + seed}, traversal=png(seed))
    out = disbench_in_process(["report", "plain", "--results", str(tmp_path), "--out",
                               str(tmp_path / "r")], tmp_path)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    assert "no disentanglement metric scores: the runs were trained with `eval=none`" in md
    assert "no model was trained with two or more regularisation strengths" in md
    assert "by ELBO (`train.elbo`)" in md  # traversals ranked without labels
    bad = disbench_in_process(["report", "plain", "--results", str(tmp_path), "--rank-by",
                               "mean.mig.mig"], tmp_path)
    assert bad.returncode == 2 and "--rank-by mean.mig.mig: no run has that score" in bad.stderr


def test_report_on_unknown_or_empty_study(tmp_path, disbench_in_process):
    (tmp_path / "hollow").mkdir()
    for study, message in (("nope", "no study 'nope'"), ("hollow", "holds no runs")):
        out = disbench_in_process(["report", study, "--results", str(tmp_path)], tmp_path)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(not (COMMITTED / "report").is_dir(), reason="no committed study")
@pytest.mark.slow
def test_committed_report_is_what_the_committed_runs_give(tmp_path, disbench_in_process):
    """`make report` output is current: rebuilding from the committed runs gives the same
    tables and the same report.md."""
    results = tmp_path / "results"
    shutil.copytree(COMMITTED, results / "quick-dsprites",
                    ignore=shutil.ignore_patterns("report", "checkpoints"))
    out = disbench_in_process(["report", "quick-dsprites", "--results", str(results)],
                              tmp_path)
    assert out.returncode == 0, out.stderr
    built, committed = digest(results / "quick-dsprites" / "report"), digest(COMMITTED / "report")
    tables = sorted(n for n in committed if n.startswith("tables/") or n == "report.md")
    assert tables and {n: built.get(n) for n in tables} == {n: committed[n] for n in tables}


@pytest.mark.slow
def test_report_on_a_fresh_smoke_sweep(tmp_path, data_dir, disbench_in_process):
    env = {"DISBENCH_RESULTS": str(tmp_path), "DISBENCH_DATA": str(data_dir)}
    # the local launcher trains each run in a process of its own
    sweep = disbench_in_process(["sweep", "smoke", "arch.name=tests.models.tiny:Tiny"], tmp_path,
                                **env)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    # the sweep's progress line after each run, from the store
    assert "sweep [#####---------------] 1/4 ended (1 completed)" in sweep.stdout
    assert "sweep [####################] 4/4 ended (4 completed), 0 running, 0 to go" \
        in sweep.stdout
    out = disbench_in_process(["report", "smoke"], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "smoke" / "report" / "report.md").read_text()
    assert "4 runs from smoke (disbench)" in md
    assert "20 steps (0.00667% of the study's 300,000)" in md
    assert len(list((tmp_path / "smoke" / "report" / "traversals").glob("*.png"))) >= 3
