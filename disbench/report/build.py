"""``build_report(table, out)``: the exhibits of Locatello et al. (2019) from a run table.

Each exhibit adapts to what the table holds (datasets, models, hyperparameter values,
seeds, scores) and says what it cannot show. Output folder::

    report.md  report.html  figures/*.png  tables/*.csv  tables/*.tex
    traversals/*.png, traversals/*.gif
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from disbench.aggregate.table import SCORES, Skipped, mixed_settings
from disbench.errors import DisbenchError
from disbench.report import figures, stats
from disbench.report.document import Figure, Missing, Section, Table, Text, write_document

REFERENCE_STEPS = 300_000  # the study's training length
WHICH = {"only": "only run"}  # how the traversal exhibit names stats.rank_runs' "which"


def _labels() -> dict[str, str]:
    labels = {c: label for c, label in stats.METRICS + stats.FAIRNESS}
    labels.update({c: label for c, label, _ in stats.UNSUPERVISED})
    labels[stats.TC_MEAN] = "TC (mean)"
    return labels


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def select_settings(table: pd.DataFrame, eval_settings: str | None) -> pd.DataFrame:
    """The scored runs under one evaluation setting (or the unscored runs, if none is
    scored). A table mixing settings needs ``eval_settings`` (a name or a key)."""
    if eval_settings is not None:
        chosen = table[(table["eval_settings"] == eval_settings)
                       | (table["eval_key"] == eval_settings)]
        if not len(chosen):
            found = sorted(set(table["eval_settings"].dropna()) | set(table["eval_key"].dropna()))
            raise DisbenchError(f"no run was scored with eval settings '{eval_settings}'; "
                                f"found: {', '.join(found) or 'none (no run is scored)'}")
        table = chosen
    mixed = mixed_settings(table)
    if mixed:
        found = "; ".join(f"{k}: {v} runs" for k, v in mixed.items())
        raise DisbenchError(
            f"the runs were scored with different metric settings ({found}); their scores "
            f"are not comparable. Rescore them alike (`disbench eval STUDY_DIR eval=NAME "
            f"--force`) or report one setting with --eval NAME_OR_KEY.")
    return table


def _overview(table: pd.DataFrame, skipped: list[Skipped]) -> Section:
    steps = sorted(table["max_steps"].dropna().unique())
    estimators = {"sklearn": "scikit-learn's gradient-boosted trees, as the reference",
                  "fast": "the same trees grown by LightGBM, eval.boosting=fast"}
    settings = sorted({f"`{name}` (DCI and downstream: {estimators.get(boosting, boosting)})"
                       for name, boosting in zip(table["eval_settings"], table["eval_boosting"])
                       if isinstance(name, str)})
    counts = (table.groupby(["dataset", "model"]).size().unstack(fill_value=0)
              .reset_index().rename(columns={"dataset": "dataset \\ model"}))
    seeds = table.groupby(["dataset", "model"])["seed"].nunique()
    seed_range = (f"{seeds.min()}" if seeds.min() == seeds.max()
                  else f"{seeds.min()}-{seeds.max()}")
    lines = [
        f"{len(table)} runs from {', '.join(sorted(table['study'].unique()))} "
        f"({', '.join(sorted(table['source'].unique()))}): "
        f"{table['dataset'].nunique()} dataset(s), {table['model'].nunique()} model(s), "
        f"{seed_range} seed(s) per dataset and model.",
        "Training length: " + ", ".join(
            f"{int(s):,} steps ({100 * s / REFERENCE_STEPS:.3g}% of the study's "
            f"{REFERENCE_STEPS:,})" for s in steps) + "."
        + (" **These models are far from trained: the numbers below compare the pipeline, "
           "not the methods.**" if steps and max(steps) < REFERENCE_STEPS / 10 else ""),
        "Metric settings: " + (", ".join(settings) if settings
                               else "none (the runs were not scored)") + ".",
    ]
    blocks: list = [Text("\n\n".join(lines)),
                    Table("runs", counts, caption="Runs per dataset and model")]
    if skipped:
        frame = pd.DataFrame([s.__dict__ for s in skipped])
        blocks += [Text(f"{len(skipped)} run(s) left out:"),
                   Table("skipped", frame, caption="Runs left out, and why")]
    return Section("Overview", blocks)


def _summary(table, metrics, unsup, labels) -> Section:
    every = [c for c in table.columns
             if c.startswith(SCORES)]
    long = stats.summary(table, every)
    blocks: list = [Text("Median and interquartile range [25th, 75th percentile] over the "
                         "runs (all hyperparameter values and seeds) of each model. The CSV "
                         "holds every score; the page shows the study's metrics and the "
                         "unsupervised scores.")]
    if not metrics + unsup:
        blocks.append(Missing("no scores to summarise."))
    for dataset in sorted(table["dataset"].unique()):
        mine = long[long["dataset"] == dataset]
        # metrics lie in [0, 1]: two decimals; losses and TC: three significant digits
        cells = mine.assign(cell=[
            f"{m:.2f} [{a:.2f}, {b:.2f}]" if score in metrics else
            f"{m:.3g} [{a:.3g}, {b:.3g}]" for score, m, a, b in
            zip(mine["score"], mine["median"], mine["q25"], mine["q75"])])
        wide = cells.pivot(index="model", columns="score", values="cell")
        # two tables on the page (narrow enough to read), one CSV with every score
        for name, columns, what in ((f"summary_{_slug(dataset)}", metrics, "metrics"),
                                    (f"summary_unsupervised_{_slug(dataset)}", unsup,
                                     "unsupervised scores")):
            if not columns:
                continue
            shown = wide[columns].rename(columns=labels).reset_index()
            frame = mine if what == "metrics" else mine[mine["score"].isin(columns)]
            blocks.append(Table(name, frame, shown,
                                caption=f"{dataset}, {what}: median [IQR]"))
    if not metrics:
        blocks.append(Missing("no disentanglement metric scores: the runs were trained with "
                              "`eval=none`. Score them with `disbench eval STUDY_DIR`."))
    return Section("Scores per dataset and model", blocks)


def _correlations(table, metrics, labels, fig_dir) -> Section:
    blocks: list = [Text("Spearman rank correlation between the metrics over all runs of a "
                         "dataset (the study's Fig. 2): do the metrics agree on which "
                         "models are better?")]
    if len(metrics) < 2:
        return Section("Rank correlation between metrics",
                       blocks + [Missing("fewer than two metrics were scored.")])
    blocks += _matrices(stats.rank_correlations(table, metrics, metrics), key="dataset",
                        rows="score", stem="rank_corr", title="{name}: Spearman rank correlation",
                        caption="{name}: Spearman rank correlation between metrics",
                        table="rank_correlation_metrics",
                        table_caption="Spearman rank correlation between metrics",
                        labels=labels, fig_dir=fig_dir)
    return Section("Rank correlation between metrics", blocks)


def _matrices(matrices: dict[str, pd.DataFrame], *, key: str, rows: str, stem: str,
              title: str, caption: str, table: str, table_caption: str, labels, fig_dir,
              **heatmap) -> list:
    """A heatmap per matrix ({key value: matrix}) and one table stacking them all, the key
    (dataset or score) as its first column. ``title``/``caption`` format with ``{name}``."""
    blocks: list = []
    frames = []
    for name, matrix in matrices.items():
        frames.append(matrix.rename_axis(rows).reset_index().assign(**{key: name}))
        shown_name = labels.get(name, name)
        blocks.append(Figure(figures.heatmap(matrix, fig_dir / f"{stem}_{_slug(name)}.png",
                                             title.format(name=shown_name), labels, **heatmap),
                             caption.format(name=shown_name)))
    frame = pd.concat(frames)
    frame = frame[[key, *[c for c in frame.columns if c != key]]]
    blocks.append(Table(table, frame, frame.rename(columns=labels).replace(labels),
                        caption=table_caption))
    return blocks


def _distributions(table, metrics, unsup, labels, fig_dir) -> Section:
    columns = metrics + unsup
    blocks: list = [Text("Each score's distribution per model (boxes: quartiles; dots: runs), "
                         "over all hyperparameter values and seeds (the study's Fig. 3, 4).")]
    if not columns:
        return Section("Distributions per model", blocks + [Missing("no scores.")])
    for dataset in sorted(table["dataset"].unique()):
        data = table[table["dataset"] == dataset]
        blocks.append(Figure(figures.distributions(
            data, columns, labels, fig_dir / f"distributions_{_slug(dataset)}.png",
            f"{dataset}"), f"{dataset}: scores per model"))
    return Section("Distributions per model", blocks)


def _strength(table, metrics, labels, fig_dir) -> tuple[Section, Section]:
    swept = table[table["strength"].notna()]
    n_values = swept.groupby(["dataset", "model"])["strength"].nunique()
    trend_cols = metrics + stats.present(table, [stats.TC_MEAN, stats.TC_SAMPLED])
    trend = stats.strength_trend(swept, trend_cols)
    text = Text("Median over seeds (line) and the seeds' range (band) against each model's "
                "regularisation strength (beta for beta-VAE and beta-TCVAE, C_max for "
                "AnnealedVAE, gamma for FactorVAE, lambda_od for DIP-VAE).")
    score_sec = Section("Scores against regularisation strength", [text])
    tc_sec = Section("Total correlation of the sampled and the mean representation", [Text(
        "Gaussian total correlation of the sampled representation (codes drawn from the "
        "posterior) and of the mean representation against the regularisation strength "
        "(the study's Fig. 1): regularising the aggregate posterior does not make the mean "
        "representation factorised.")])
    unswept = sorted(set(table["model"]) - set(swept["model"]))
    if len(n_values) == 0 or n_values.max() < 2:
        missing = Missing("no model was trained with two or more regularisation strengths.")
        return (Section(score_sec.title, score_sec.blocks + [missing]),
                Section(tc_sec.title, tc_sec.blocks + [missing]))
    if unswept:
        note = Missing(f"models without a regularisation strength: {', '.join(unswept)}.")
        score_sec.blocks.append(note)
        tc_sec.blocks.append(note)
    trend_table = Table("strength_trend", trend, trend.replace({"score": labels}),
                        caption="Median, min and max over seeds per regularisation strength",
                        on_page=False)
    if metrics:
        for dataset in sorted(swept["dataset"].unique()):
            part = trend[trend["dataset"] == dataset]
            score_sec.blocks.append(Figure(figures.strength_trend(
                part, metrics, labels, fig_dir / f"strength_{_slug(dataset)}.png", dataset),
                f"{dataset}: metrics against regularisation strength"))
        score_sec.blocks.append(trend_table)
    else:
        score_sec.blocks.append(Missing("no metric scores."))
    if stats.TC_MEAN in trend_cols and stats.TC_SAMPLED in trend_cols:
        for dataset in sorted(swept["dataset"].unique()):
            part = trend[trend["dataset"] == dataset]
            tc_sec.blocks.append(Figure(figures.total_correlation(
                part, stats.TC_MEAN, stats.TC_SAMPLED,
                fig_dir / f"total_correlation_{_slug(dataset)}.png", dataset),
                f"{dataset}: Gaussian total correlation, sampled vs mean"))
        if not metrics:
            tc_sec.blocks.append(trend_table)
    else:
        tc_sec.blocks.append(Missing("the unsupervised scores of the mean and the sampled "
                                     "representation were not computed."))
    return score_sec, tc_sec


def _variance(table, metrics, unsup, labels, fig_dir) -> Section:
    blocks: list = [Text(
        "The share of each score's variance over a dataset's runs explained by the model, by "
        "the hyperparameter value within the model, and by the random seed within a model "
        "and hyperparameter value (nested sums of squares; the study's Sec. 5.3 question: "
        "does the model matter more than the seed?).")]
    columns = metrics + unsup
    shares = stats.variance_decomposition(table, columns)
    if not len(shares):
        return Section("Variance: model, hyperparameter, seed",
                       blocks + [Missing("no scores with two or more runs.")])
    if table["model"].nunique() < 2:
        blocks.append(Missing("a single model: its share is zero by construction."))
    # the seed's share is NaN where no setting has two runs (constant scores: all are NaN)
    unseparated = shares[shares["seed"].isna() & shares["model"].notna()]
    if len(unseparated):
        where = []
        for dataset, part in unseparated.groupby("dataset", sort=True):
            scored = shares[(shares["dataset"] == dataset) & shares["model"].notna()]
            where.append(dataset if len(part) == len(scored) else
                         f"{dataset} ({', '.join(labels.get(c, c) for c in part['score'])})")
        blocks.append(Missing(
            f"one seed per setting in {'; '.join(where)}: the seed's share cannot be "
            "separated from the hyperparameter's, which holds the seeds' variation too. It "
            "is shown as n/a (left blank in the CSV), not as 0; train two or more seeds per "
            "setting to measure it."))
    for dataset in sorted(shares["dataset"].unique()):
        part = shares[shares["dataset"] == dataset]
        caption = f"{dataset}: share of variance"
        if part["seed"].isna().any() and part["model"].notna().any():
            caption += " (seed: n/a where it cannot be separated)"
        blocks.append(Figure(figures.variance_shares(
            part, labels, fig_dir / f"variance_{_slug(dataset)}.png", dataset), caption))
    parts = ["model", "hyperparameter", "seed"]
    shown = shares.assign(score=shares["score"].map(lambda c: labels.get(c, c)))
    shown[parts] = shown[parts].astype(object).where(shown[parts].notna(), "n/a")
    caption = "Share of variance from model, hyperparameter and seed"
    if shares[parts].isna().any(axis=None):
        caption += " (n/a: cannot be separated, or a constant score)"
    blocks.append(Table("variance_decomposition", shares, shown, caption=caption))
    return Section("Variance: model, hyperparameter, seed", blocks)


def _unsupervised(table, metrics, unsup, labels, fig_dir) -> Section:
    blocks: list = [Text(
        "Spearman rank correlation of the scores that need no labels (reconstruction loss, "
        "KL and ELBO of the last training batch and of a fixed sample after training, total "
        "correlation of the sampled representation, UDR) with each metric (the study's "
        "Fig. 9): can models be selected without ground-truth factors?")]
    if not metrics or not unsup:
        return Section("Unsupervised scores against metrics",
                       blocks + [Missing("needs both metric scores and unsupervised scores.")])
    blocks += _matrices(stats.rank_correlations(table, unsup, metrics), key="dataset",
                        rows="score", stem="unsupervised",
                        title="{name}: unsupervised scores vs metrics",
                        caption="{name}: rank correlation of unsupervised scores with metrics",
                        table="rank_correlation_unsupervised",
                        table_caption="Spearman rank correlation, unsupervised scores vs "
                                      "metrics", labels=labels, fig_dir=fig_dir)
    return Section("Unsupervised scores against metrics", blocks)


def _udr(table, metrics, labels, fig_dir) -> Section:
    title = "Model selection without labels: UDR"
    blocks: list = [Text(
        "UDR (Duan et al. 2020) scores a run by how closely its representation matches "
        "those of the other seeds of its setting (Lasso similarity of the codes of one "
        "shared sample, computed by `disbench aggregate` from the codes stored at scoring). "
        "Spearman rank correlation of UDR with each metric over the runs of each model (all "
        "hyperparameter values and seeds), per dataset: does UDR rank a model's runs as the "
        "metrics that need labels do? The selection-transfer exhibit adds UDR as a "
        "selection rule.")]
    if stats.UDR not in stats.present(table, [stats.UDR]):
        return Section(title, blocks + [Missing(
            "no run has a UDR score: it needs two or more seeds of a setting, scored with "
            "the codes of the UDR sample stored (`disbench eval STUDY_DIR --force` stores "
            "them for runs scored without).")])
    if not metrics:
        return Section(title, blocks + [Missing("no metric scores to compare UDR with.")])
    blocks += _matrices(stats.rank_correlations_per_model(table, stats.UDR, metrics),
                        key="dataset", rows="model", stem="udr",
                        title="{name}: UDR vs metrics, per model",
                        caption="{name}: rank correlation of UDR with each metric, per model",
                        table="rank_correlation_udr",
                        table_caption="Spearman rank correlation of UDR with the metrics, "
                                      "per dataset and model", labels=labels, fig_dir=fig_dir)
    return Section(title, blocks)


def _fairness(table, metrics, fair, labels, fig_dir) -> Section:
    title = "Fairness"
    blocks: list = [Text(
        "Unfairness (Locatello et al. 2019, \"On the Fairness of Disentangled "
        "Representations\", Sec. 4): for every target and sensitive factor, how much a "
        "classifier of the target trained on the codes changes its predictions when only "
        "the sensitive factor is changed (total variation, averaged over the pairs); lower "
        "is fairer. Spearman rank correlation with each metric per dataset (their Fig. 4: "
        "are more disentangled representations fairer?).")]
    if not fair:
        return Section(title, blocks + [Missing(
            "no run has a fairness score (the runs were scored before fairness joined the "
            "suite, or without it: `disbench eval STUDY_DIR --force`).")])
    if not metrics:
        return Section(title, blocks + [Missing("no metric scores to compare with.")])
    blocks += _matrices(stats.rank_correlations(table, fair, metrics), key="dataset",
                        rows="score", stem="fairness",
                        title="{name}: unfairness vs metrics",
                        caption="{name}: rank correlation of unfairness with the metrics",
                        table="rank_correlation_fairness",
                        table_caption="Spearman rank correlation, unfairness vs metrics",
                        labels=labels, fig_dir=fig_dir)
    return Section(title, blocks)


def _transfer(table, metrics, unsup_rules, labels, fig_dir) -> Section:
    blocks: list = [Text(
        "The probability that choosing each model's hyperparameter value by one score "
        "(rows) gives a better score on another (columns) than a value chosen at random, "
        "one random seed per value, ties counted one half, averaged over models (the "
        "study's Sec. 5.4, Fig. 10-11). 0.5 is chance. Across datasets, the same metric "
        "selects on one dataset and is judged on another.")]
    settings = table.assign(_s=stats.hyper_setting(table)).groupby(["dataset", "model"])["_s"]
    if not len(settings.nunique()) or settings.nunique().max() < 2 or not metrics:
        return Section("Model selection transfer", blocks + [Missing(
            "needs metric scores and a model trained with two or more hyperparameter "
            "values.")])
    sources = [(m, 1.0) for m in metrics] + unsup_rules
    probability = {"vmin": 0.0, "vmax": 1.0, "cmap": "viridis", "labels": labels,
                   "fig_dir": fig_dir}
    blocks += _matrices(stats.selection_transfer(table, sources, metrics), key="dataset",
                        rows="selected_by", stem="transfer_metrics",
                        title="{name}: P(selection beats random)",
                        caption="{name}: selection by one score, judged by another",
                        table="transfer_metrics",
                        table_caption="P(selection beats random), across metrics",
                        xlabel="judged by", ylabel="selected by", **probability)
    if table["dataset"].nunique() < 2:
        blocks.append(Missing("transfer across datasets needs runs on two or more datasets."))
        return Section("Model selection transfer", blocks)
    blocks += _matrices(stats.selection_transfer(table, [], metrics, across="datasets"),
                        key="score", rows="selected_on", stem="transfer_datasets",
                        title="{name}: P(selection beats random)",
                        caption="{name}: selection on one dataset, judged on another",
                        table="transfer_datasets",
                        table_caption="P(selection beats random), across datasets",
                        xlabel="judged on", ylabel="selected on", **probability)
    return Section("Model selection transfer", blocks)


def _traversals(table, metrics, rank_by, labels, out, study_roots) -> Section:
    title = "Latent traversals"
    if rank_by is None:  # a metric if there is one, else the ELBO (the text says which)
        candidates = ("mean.dci.disentanglement", *metrics, "train.elbo")
        rank_by = next((c for c in candidates if c in stats.present(table, [c])), None)
    if rank_by is None:
        return Section(title, [Missing("no score to rank the runs by.")])
    if rank_by not in table.columns or table[rank_by].isna().all():
        scores = [c for c in table.columns
                  if c.startswith(SCORES)]
        raise DisbenchError(f"--rank-by {rank_by}: no run has that score; scores: "
                            f"{', '.join(scores) or 'none'}")
    ranked = stats.rank_runs(table, rank_by)
    few = ranked.groupby(["dataset", "model"]).size()
    few = [f"{m} ({d}): {n} run{'s' if n > 1 else ''}" for (d, m), n in few.items() if n < 3]
    blocks: list = [Text(
        f"The best, median and worst run of each model by {labels.get(rank_by, rank_by)} "
        f"(`{rank_by}`). Each image decodes one observation's mean code with one latent "
        "swept over [-2, 2] per row (labelled with the latent and its KL, sorted by KL, "
        "where the run drew a labelled sheet); an animation, where the run has one, sweeps "
        "every latent at once.")]
    if few:
        blocks.append(Missing(
            "no separate median for a model with fewer than three runs (two runs: best and "
            f"worst; one run: the only run): {'; '.join(few)}."))
    missing = []
    for row in ranked.itertuples(index=False):
        root = study_roots.get(row.study)
        source = root / row.run_id / "traversal.png" if root is not None else None
        which = WHICH.get(row.which, row.which)
        caption = (f"{row.dataset}, {row.model}, {which}: `{row.run_id}` "
                   f"({labels.get(rank_by, rank_by)} {row.value:.3g})")
        if source is None or not source.is_file():
            missing.append(row.run_id)
            continue
        for picture in (source, source.with_suffix(".gif")):  # the sheet, the animation
            if not picture.is_file():
                continue
            target = out / "traversals" / f"{row.run_id}{picture.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_bytes() != picture.read_bytes():
                shutil.copyfile(picture, target)
            blocks.append(Figure(target, caption if picture.suffix == ".png"
                                 else f"{caption}, animated"))
    blocks.append(Table("traversal_runs", ranked,
                        ranked.assign(which=ranked["which"].replace(WHICH),
                                      value=ranked["value"].round(4)),
                        caption=f"Best, median and worst run per model by "
                                f"{labels.get(rank_by, rank_by)}"))
    if missing:
        blocks.append(Missing(f"no traversal.png for {len(missing)} run(s) (imported "
                              f"results or runs stored elsewhere): {', '.join(missing[:6])}"
                              + (" ..." if len(missing) > 6 else "")))
    return Section(title, blocks)


def build_report(table: pd.DataFrame, out: Path, *, title: str,
                 skipped: list[Skipped] | None = None,
                 study_roots: Mapping[str, Path] | None = None,
                 eval_settings: str | None = None, rank_by: str | None = None) -> list[Path]:
    """Write the report of ``table`` (completed runs) into ``out``; the files written."""
    if not len(table):
        raise DisbenchError("no completed run to report on.")
    table = select_settings(table, eval_settings)
    labels = _labels()
    metrics = stats.present(table, [c for c, _ in stats.METRICS])
    fair = stats.present(table, [c for c, _ in stats.FAIRNESS])
    unsup = stats.present(table, [c for c, _, _ in stats.UNSUPERVISED])
    unsup_rules = [(c, 1.0 if better == "higher" else -1.0)
                   for c, _, better in stats.UNSUPERVISED if better and c in unsup]
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    for folder in ("figures", "tables", "traversals"):  # nothing stale from an older build
        shutil.rmtree(out / folder, ignore_errors=True)
    strength, tc = _strength(table, metrics, labels, fig_dir)
    sections = [
        _overview(table, skipped or []),
        _summary(table, metrics + fair, unsup, labels),
        _correlations(table, metrics, labels, fig_dir),
        _distributions(table, metrics + fair, unsup, labels, fig_dir),
        strength,
        tc,
        _variance(table, metrics + fair, unsup, labels, fig_dir),
        _unsupervised(table, metrics, unsup, labels, fig_dir),
        _udr(table, metrics, labels, fig_dir),
        _transfer(table, metrics, unsup_rules, labels, fig_dir),
        _fairness(table, metrics, fair, labels, fig_dir),
        _traversals(table, metrics, rank_by, labels, out, dict(study_roots or {})),
    ]
    return write_document(title, sections, out)
