"""UDR columns of the run table: groups of seeds scored from their stored codes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from store_helpers import LOCATELLO, write_run

from disbench.aggregate.table import read_study

# The 2^4 factorial in +-1 (16 points): orthogonal, standardised columns. A model whose
# codes are a signed permutation of another's scores, exactly, 1 with Spearman and
# 0.9 with Lasso (alpha 0.1 shrinks a unit coefficient): tests/metrics/test_metric_udr.py.
DESIGN = np.array(list(itertools.product([-1.0, 1.0], repeat=4)))
KL = np.array([1.0, 0.5, 2.0, 0.3])


def scored_run(root, run_id, *, seed, beta=4.0, codes=DESIGN, eval_settings=None):
    path = write_run(root, "st", run_id, hyper={"beta": beta}, seed=seed,
                     mean={"mig.mig": 0.25}, eval_settings=eval_settings)
    if codes is not None:  # as disbench.store.write_scores stores a scored run's sample
        np.savez(path / "udr_sample.npz", codes=codes.astype(np.float32), kl=KL, seed=0,
                 num_points=len(codes))
    return path


@pytest.fixture
def study(tmp_path):
    scored_run(tmp_path, "a", seed=0)
    scored_run(tmp_path, "b", seed=1, codes=-DESIGN[:, [2, 0, 3, 1]])
    scored_run(tmp_path, "c", seed=2, codes=DESIGN[:, [1, 0, 3, 2]] * [1, -1, 1, 1])
    scored_run(tmp_path, "no-codes", seed=3)  # scored before codes were stored
    (tmp_path / "st" / "no-codes" / "udr_sample.npz").unlink()
    scored_run(tmp_path, "other-beta", seed=0, beta=8.0)  # alone in its setting
    scored_run(tmp_path, "other-eval", seed=4, eval_settings=LOCATELLO)  # scored otherwise
    return tmp_path


def test_each_group_of_seeds_is_scored_from_its_stored_codes(study):
    table = read_study(study / "st").table.set_index("run_id")
    assert table.loc[["a", "b", "c"], "udr.lasso"].tolist() == pytest.approx([0.9] * 3)
    assert table.loc[["a", "b", "c"], "udr.spearman"].tolist() == pytest.approx([1.0] * 3)
    assert table.loc[["a", "b", "c"], "udr.models"].tolist() == [3.0] * 3
    for alone in ("no-codes", "other-beta", "other-eval"):
        assert table.loc[alone, ["udr.lasso", "udr.spearman", "udr.models"]].isna().all()
    # one setting over seeds: the same key; another hyperparameter: another key
    assert table.loc["a", "setting_key"] == table.loc["no-codes", "setting_key"]
    assert table.loc["a", "setting_key"] != table.loc["other-beta", "setting_key"]


def test_an_entangled_seed_lowers_the_scores_of_its_group(study):
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    scored_run(study, "d", seed=5, codes=DESIGN @ rotation)
    table = read_study(study / "st").table.set_index("run_id")
    assert table.loc["d", "udr.models"] == 4
    assert table.loc["d", "udr.lasso"] < 0.6
    # the median over the others: two of the three partners of a, b, c still agree
    assert table.loc[["a", "b", "c"], "udr.lasso"].tolist() == pytest.approx([0.9] * 3)


def test_the_command_says_how_many_runs_have_udr_and_names_unreadable_codes(
        study, disbench_in_process):
    (study / "st" / "c" / "udr_sample.npz").write_bytes(b"not a zip")
    out = disbench_in_process(["aggregate", "st", "--results", str(study)], study)
    assert out.returncode == 0, out.stderr
    assert "UDR: 2 of 6 run(s) scored" in out.stdout
    assert "udr_sample.npz cannot be read" in out.stdout
    assert "disbench eval" in out.stdout
