"""Reports of small studies: one seed per setting (the seed's share of variance cannot be
separated) and models with only one or two runs (traversals)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from synthetic import synthetic_table, traversal_roots

from disbench.report import figures
from disbench.report.build import build_report

MIG = "mean.mig.mig"
DCI = "mean.dci.disentanglement"
UNSEPARATED = ("one seed per setting in {where}: the seed's share cannot be separated from "
               "the hyperparameter's, which holds the seeds' variation too. It is shown as n/a "
               "(left blank in the CSV), not as 0; train two or more seeds per setting to "
               "measure it.")


@pytest.fixture
def drawn(monkeypatch) -> dict[str, dict]:
    """What each variance figure draws, by file name: the bars' widths per part (model,
    hyperparameter, seed), the score labels and the legend's entries."""
    seen: dict[str, dict] = {}
    save = figures._save

    def record(fig, path: Path, tight: bool = True) -> Path:
        if path.name.startswith("variance_"):
            ax = fig.axes[0]
            seen[path.name] = {
                "bars": {c.get_label(): [p.get_width() for p in c] for c in ax.containers},
                "scores": [t.get_text() for t in ax.get_yticklabels()],
                "legend": [t.get_text() for t in ax.get_legend().get_texts()],
            }
        return save(fig, path, tight)

    monkeypatch.setattr(figures, "_save", record)
    return seen


def build(table, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    build_report(table, out, title="Small study",
                 study_roots=traversal_roots(table, tmp_path / "studies"))
    return out


def section(md: str, title: str) -> str:
    return re.split(rf"\n## \d+\. {re.escape(title)}\n", md)[1].split("\n## ")[0]


VARIANCE, TRAVERSALS = "Variance: model, hyperparameter, seed", "Latent traversals"
# the scores of the synthetic table: 7 metrics, unfairness, 9 unsupervised scores (losses
# of the last batch and held out, TC, the generation scores' two), and with two or more
# seeds UDR's two
ONE_SEED_SCORES, SCORES = 17, 19


def test_one_seed_per_setting_shows_the_seed_share_as_missing_not_zero(tmp_path, drawn):
    table = synthetic_table(seeds=1)  # 2 models x 3 values x 1 seed
    # MIG 0, 1, 2 (betavae) and 3, 4, 5 (factorvae): SS_model 13.5, SS_hyper 4 of 17.5
    mig = {f"{m}-dsprites-v{i}-s0": k + i for m, k in (("betavae", 0), ("factorvae", 3))
           for i in range(3)}
    table[MIG] = table["run_id"].map(mig).astype(float)
    out = build(table, tmp_path)

    csv = (out / "tables" / "variance_decomposition.csv").read_text().splitlines()
    assert csv[0] == "dataset,score,runs,model,hyperparameter,seed"
    assert "dsprites,mean.mig.mig,6,0.771429,0.228571," in csv
    assert len(csv) == 1 + ONE_SEED_SCORES and all(line.endswith(",") for line in csv[1:])

    md = (out / "report.md").read_text()
    variance = section(md, VARIANCE)
    assert f"> **Missing:** {UNSEPARATED.format(where='dsprites')}" in variance
    assert "*dsprites: share of variance (seed: n/a where it cannot be separated)*" in variance
    rows = [line for line in variance.splitlines() if line.startswith("| dsprites |")]
    assert "| dsprites | MIG | 6 | 0.771 | 0.229 | n/a |" in rows
    assert len(rows) == ONE_SEED_SCORES and all(row.endswith("| n/a |") for row in rows)
    tex = (out / "tables" / "variance_decomposition.tex").read_text()
    assert "dsprites & MIG & 6 & 0.771 & 0.229 & n/a \\\\" in tex
    assert tex.count("& n/a \\\\") == ONE_SEED_SCORES
    page = (out / "report.html").read_text()
    assert ('<p class="missing"><strong>Missing:</strong> '
            f'{UNSEPARATED.format(where="dsprites")}</p>') in page
    assert "<td>dsprites</td><td>MIG</td><td>6</td><td>0.771</td><td>0.229</td><td>n/a</td>" \
        in page

    figure = drawn["variance_dsprites.png"]
    assert figure["bars"]["seed"] == []  # no seed bar, not a bar of width 0
    assert figure["bars"]["model"][2] == pytest.approx(13.5 / 17.5)
    assert figure["bars"]["hyperparameter"][2] == pytest.approx(4 / 17.5)
    assert figure["scores"][2] == "MIG: seed n/a"
    assert all(s.endswith(": seed n/a") for s in figure["scores"])
    assert len(figure["scores"]) == ONE_SEED_SCORES
    assert figure["legend"] == ["model", "hyperparameter", "seed n/a"]


@pytest.mark.slow
def test_seed_share_is_missing_only_where_it_cannot_be_separated(tmp_path, drawn):
    table = synthetic_table(datasets=("one", "two"), seeds=2)
    table = table[(table["dataset"] == "two") | (table["seed"] == 0)]  # "one": one seed
    out = build(table, tmp_path)

    csv = (out / "tables" / "variance_decomposition.csv").read_text().splitlines()[1:]
    assert [line.endswith(",") for line in csv] == [True] * SCORES + [False] * SCORES
    md = (out / "report.md").read_text()
    variance = section(md, VARIANCE)
    assert f"> **Missing:** {UNSEPARATED.format(where='one')}" in variance
    assert "*one: share of variance (seed: n/a where it cannot be separated)*" in variance
    assert "*two: share of variance*" in variance
    rows = [line for line in variance.splitlines() if line.startswith("| two |")]
    assert len(rows) == SCORES and not any(row.endswith("| n/a |") for row in rows)
    assert drawn["variance_one.png"]["bars"]["seed"] == []
    assert len(drawn["variance_two.png"]["bars"]["seed"]) == SCORES
    assert drawn["variance_two.png"]["legend"] == ["model", "hyperparameter", "seed"]
    assert not any("n/a" in s for s in drawn["variance_two.png"]["scores"])


def test_models_with_one_or_two_runs_show_each_traversal_once(tmp_path):
    table = synthetic_table(seeds=1)
    # betavae: one run; factorvae: two runs
    keep = {"betavae-dsprites-v0-s0": 0.5, "factorvae-dsprites-v0-s0": 0.2,
            "factorvae-dsprites-v1-s0": 0.7}
    table = table[table["run_id"].isin(keep)].copy()
    table[DCI] = table["run_id"].map(keep)
    out = build(table, tmp_path)

    assert (out / "tables" / "traversal_runs.csv").read_text().splitlines() == [
        "dataset,model,which,study,run_id,value",
        "dsprites,betavae,only,synth,betavae-dsprites-v0-s0,0.5",
        "dsprites,factorvae,best,synth,factorvae-dsprites-v1-s0,0.7",
        "dsprites,factorvae,worst,synth,factorvae-dsprites-v0-s0,0.2",
    ]
    assert sorted(p.name for p in (out / "traversals").glob("*.png")) == [
        "betavae-dsprites-v0-s0.png", "factorvae-dsprites-v0-s0.png",
        "factorvae-dsprites-v1-s0.png"]
    captions = ["dsprites, betavae, only run: `betavae-dsprites-v0-s0` (DCI disentanglement 0.5)",
                "dsprites, factorvae, best: `factorvae-dsprites-v1-s0` (DCI disentanglement 0.7)",
                "dsprites, factorvae, worst: `factorvae-dsprites-v0-s0` "
                "(DCI disentanglement 0.2)"]
    traversals = section((out / "report.md").read_text(), TRAVERSALS)
    assert re.findall(r"^!\[([^\]]*)\]\(traversals/", traversals, re.M) == captions
    assert ("> **Missing:** no separate median for a model with fewer than three runs (two "
            "runs: best and worst; one run: the only run): betavae (dsprites): 1 run; "
            "factorvae (dsprites): 2 runs.") in traversals
    assert [line for line in traversals.splitlines() if line.startswith("| dsprites |")] == [
        "| dsprites | betavae | only run | synth | betavae-dsprites-v0-s0 | 0.5 |",
        "| dsprites | factorvae | best | synth | factorvae-dsprites-v1-s0 | 0.7 |",
        "| dsprites | factorvae | worst | synth | factorvae-dsprites-v0-s0 | 0.2 |",
    ]
    page = (out / "report.html").read_text()
    shown = re.findall(r"<figcaption>(dsprites, [a-z]+vae, [^<]*<code>[^<]*</code>[^<]*)"
                       r"</figcaption>", page)
    assert [re.sub(r"</?code>", "`", c) for c in shown] == captions
    assert page.count('src="data:image/png;base64,') == \
        len(list((out / "figures").glob("*.png"))) + 3


def test_overview_names_the_estimator_of_the_boosted_trees(tmp_path, drawn):
    table = synthetic_table(seeds=1)
    md = (build(table, tmp_path) / "report.md").read_text()
    assert ("Metric settings: `locatello` (DCI and downstream: scikit-learn's "
            "gradient-boosted trees, as the reference).") in md
    table["eval_boosting"] = "fast"
    md = (build(table, tmp_path / "fast") / "report.md").read_text()
    assert ("Metric settings: `locatello` (DCI and downstream: the same trees grown by "
            "LightGBM, eval.boosting=fast).") in md


def test_udr_and_fairness_exhibits_show_their_rank_correlations(tmp_path, drawn):
    from disbench.report import stats

    table = synthetic_table(seeds=3)
    out = build(table, tmp_path)
    md = (out / "report.md").read_text()
    udr = section(md, "Model selection without labels: UDR")
    fairness = section(md, "Fairness")
    written = (out / "tables" / "rank_correlation_udr.csv").read_text().splitlines()
    assert written[0] == "dataset,model," + ",".join(c for c, _ in stats.METRICS)
    expected = stats.rank_correlations_per_model(table, "udr.lasso",
                                                 [c for c, _ in stats.METRICS])["dsprites"]
    for line in written[1:]:
        _, model, *values = line.split(",")
        assert [float(v) for v in values] == pytest.approx(expected.loc[model].tolist())
    assert "*dsprites: rank correlation of UDR with each metric, per model*" in udr
    assert "| dsprites | betavae |" in udr
    assert (out / "figures" / "udr_dsprites.png").is_file()
    assert "Spearman rank correlation, unfairness vs metrics" in fairness
    assert (out / "tables" / "rank_correlation_fairness.csv").is_file()
    # UDR is a selection rule of the transfer exhibit
    transfer = (out / "tables" / "transfer_metrics.csv").read_text()
    assert "udr.lasso" in transfer and "heldout.elbo" in transfer
    assert "generation.fd_factors.samples" in transfer  # and the generation scores

    bare = table.drop(columns=[c for c in table.columns
                               if c.startswith("udr.") or "fairness" in c])
    md = (build(bare, tmp_path / "bare") / "report.md").read_text()
    assert "no run has a UDR score: it needs two or more seeds of a setting" in md
    assert "no run has a fairness score" in md


def test_a_runs_animated_traversal_is_shown_and_embedded(tmp_path):
    from PIL import Image

    table = synthetic_table(seeds=1)
    roots = traversal_roots(table, tmp_path / "studies")
    best = table.loc[table[DCI].idxmax()]  # the best betavae or factorvae: shown
    frames = [Image.new("RGB", (16, 8), (10 * t, 0, 0)) for t in range(3)]
    frames[0].save(roots[best["study"]] / best["run_id"] / "traversal.gif", save_all=True,
                   append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "out"
    build_report(table, out, title="Small study", study_roots=roots)
    md = (out / "report.md").read_text()
    assert f"](traversals/{best['run_id']}.gif)" in md
    assert (out / "traversals" / f"{best['run_id']}.gif").read_bytes() == \
        (roots[best["study"]] / best["run_id"] / "traversal.gif").read_bytes()
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/gif;base64,') == 1


def test_an_infinite_score_is_counted_not_drawn_and_warns_nothing(tmp_path, monkeypatch):
    """Collapsed codes have an infinite Gaussian total correlation."""
    from disbench.report import stats

    titles: dict[str, list[str]] = {}
    save = figures._save

    def record(fig, path: Path, tight: bool = True) -> Path:
        titles[path.name] = [ax.get_title() for ax in fig.axes]
        return save(fig, path, tight)

    monkeypatch.setattr(figures, "_save", record)
    table = synthetic_table(seeds=2)
    table.loc[table.index[:3], stats.TC_SAMPLED] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = build(table, tmp_path)
    panels = [t for name, ts in titles.items() if name.startswith("distributions") for t in ts]
    assert any(t.endswith("(3 infinite, not drawn)") for t in panels), panels
    csv = (out / "tables" / "variance_decomposition.csv").read_text().splitlines()
    (tc,) = [line for line in csv if f",{stats.TC_SAMPLED}," in line]
    assert tc.split(",")[2] == str(len(table) - 3)  # runs used: the infinite ones left out
