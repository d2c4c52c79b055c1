"""The analyses of Locatello et al. (2019) on a run table (one row per run).

Pure functions of a ``pandas.DataFrame`` with the columns of ``disbench.aggregate.table``;
every result is a DataFrame in a fixed row and column order, so the same table always
gives the same numbers.

- ``summary``: median and interquartile range per dataset and model (Table 1 style).
- ``rank_correlations``: Spearman rank correlation between scores, per dataset (Sec. 5.2,
  Fig. 2; with the unsupervised scores as rows, Sec. 5.4, Fig. 9);
  ``rank_correlations_per_model`` per dataset and model (UDR against the metrics, as
  Duan et al. 2020 judge it).
- ``variance_decomposition``: how much of a score's variance the model, the hyperparameter
  and the seed explain (Sec. 5.3, "seeds and hyperparameters matter more than the model").
- ``strength_trend``: median and spread of a score per regularisation strength (Fig. 5, 7).
- ``selection_transfer``: the probability that choosing the hyperparameter by one score or
  dataset beats a random choice on another (Sec. 5.4, Fig. 10-11).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The disentanglement metrics of the study, as (column, label), in the paper's order.
METRICS = (
    ("mean.beta_vae.eval_accuracy", "BetaVAE score"),
    ("mean.factor_vae.eval_accuracy", "FactorVAE score"),
    ("mean.mig.mig", "MIG"),
    ("mean.dci.disentanglement", "DCI disentanglement"),
    ("mean.modularity.modularity", "Modularity"),
    ("mean.sap.sap", "SAP"),
    ("mean.irs.irs", "IRS"),
)
# Scores that need no labels, as (column, label, better): "higher" or "lower" is the
# direction a model selection rule prefers; None: not used to select. The losses of the
# last training batch (train.*) and of a fixed sample after training (heldout.*), UDR
# (Duan et al. 2020) within each group of seeds, and the Frechet distances of decoded prior
# samples and reconstructions to the dataset (generation.*, disbench.metrics.generation):
# in the features of a classifier of the dataset's factors, and FID where the runs had
# the Inception network.
UNSUPERVISED = (
    ("train.reconstruction", "Reconstruction", "lower"),
    ("train.kl", "KL", None),
    ("sampled.unsupervised.gaussian_total_correlation", "TC (sampled)", "lower"),
    ("train.elbo", "ELBO", "higher"),
    ("heldout.reconstruction", "Reconstruction (held out)", "lower"),
    ("heldout.kl", "KL (held out)", None),
    ("heldout.elbo", "ELBO (held out)", "higher"),
    ("udr.lasso", "UDR (Lasso)", "higher"),
    ("udr.spearman", "UDR (Spearman)", "higher"),
    ("generation.fd_factors.samples", "FD of samples (factor features)", "lower"),
    ("generation.fd_factors.reconstructions", "FD of reconstructions (factor features)",
     "lower"),
    ("generation.fid.samples", "FID of samples", "lower"),
    ("generation.fid.reconstructions", "FID of reconstructions", "lower"),
)
UDR = "udr.lasso"  # Duan et al.'s main variant
# Unfairness (Locatello et al. 2019b, Sec. 4): the mean over all (target, sensitive)
# factor pairs of the mean total variation; lower is fairer.
FAIRNESS = (("mean.fairness.mean_fairness:mean_pred:mean_sens", "Unfairness"),)
TC_MEAN = "mean.unsupervised.gaussian_total_correlation"
TC_SAMPLED = "sampled.unsupervised.gaussian_total_correlation"


def present(table: pd.DataFrame, columns) -> list[str]:
    """The columns with at least one value."""
    return [c for c in columns if c in table.columns and table[c].notna().any()]


def _setting_text(value) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:g}"
    return "" if value is None or value is pd.NA else str(value)


def hyper_setting(table: pd.DataFrame) -> pd.Series:
    """One label per run for its model's hyperparameter values (all ``hp.*`` columns)."""
    hp = sorted(c for c in table.columns if c.startswith("hp."))
    label = pd.Series("", index=table.index)
    for c in hp:
        label = label + "," + c[3:] + "=" + table[c].map(_setting_text)
    return label


def quantiles(values: np.ndarray, qs) -> np.ndarray:
    """np.quantile's linear interpolation, where an infinite score (the Gaussian total
    correlation of collapsed codes) stays infinite instead of becoming NaN (inf - inf)."""
    ordered = np.sort(values)
    position = np.asarray(qs, dtype=float) * (len(ordered) - 1)
    low, high = ordered[np.floor(position).astype(int)], ordered[np.ceil(position).astype(int)]
    weight = position - np.floor(position)
    with np.errstate(invalid="ignore"):
        between = low + (high - low) * weight
    return np.where((weight == 0) | (low == high), low, between)


def summary(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Median, quartiles and IQR of each column per dataset and model (long format:
    dataset, model, score, runs, median, q25, q75, iqr); the IQR of a score whose
    quartiles are both infinite is NaN."""
    rows = []
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=True):
        for column in columns:
            values = group[column].dropna().to_numpy(dtype=float)
            if not len(values):
                continue
            q25, median, q75 = quantiles(values, [0.25, 0.5, 0.75])
            with np.errstate(invalid="ignore"):
                iqr = q75 - q25
            rows.append({"dataset": dataset, "model": model, "score": column,
                         "runs": len(values), "median": median, "q25": q25, "q75": q75,
                         "iqr": iqr})
    return pd.DataFrame(rows, columns=["dataset", "model", "score", "runs", "median", "q25",
                                       "q75", "iqr"])


def rank_correlations(table: pd.DataFrame, rows: list[str], columns: list[str]
                      ) -> dict[str, pd.DataFrame]:
    """Spearman rank correlation of each row score with each column score over the runs
    of each dataset: {dataset: DataFrame (rows x columns)}. NaN where a score is
    constant or has fewer than 3 runs with both values."""
    out = {}
    for dataset, group in table.groupby("dataset", sort=True):
        matrix = pd.DataFrame(np.nan, index=rows, columns=columns)
        for r in rows:
            for c in columns:
                pair = group[[r]].dropna() if r == c else group[[r, c]].dropna()
                if len(pair) < 3:
                    continue
                if r == c:  # ranked over the runs that have both scores
                    matrix.loc[r, c] = 1.0 if pair[r].nunique() > 1 else np.nan
                    continue
                a, b = pair[r].rank().to_numpy(), pair[c].rank().to_numpy()
                if a.std() == 0 or b.std() == 0:
                    continue
                matrix.loc[r, c] = float(np.corrcoef(a, b)[0, 1])
        out[dataset] = matrix
    return out


def rank_correlations_per_model(table: pd.DataFrame, row: str, columns: list[str]
                                ) -> dict[str, pd.DataFrame]:
    """``rank_correlations`` of one score with each column over the runs of each model:
    {dataset: DataFrame (models x columns)}."""
    out = {}
    for dataset, group in table.groupby("dataset", sort=True):
        out[dataset] = pd.DataFrame(
            [rank_correlations(runs, [row], columns)[dataset].loc[row].rename(model)
             for model, runs in group.groupby("model", sort=True)])
    return out


def variance_decomposition(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The share of each score's variance (per dataset) explained by the model, by the
    hyperparameter within the model, and by the seed within a (model, hyperparameter)
    setting: the nested sums of squares SS_total = SS_model + SS_hyper + SS_seed, divided
    by SS_total. Long format: dataset, score, runs, model, hyperparameter, seed.

    All three shares are NaN for a constant score. The seed's share is NaN when no setting
    holds two or more runs (one seed per setting): SS_seed is then zero by construction, not
    by measurement, and the seeds' variation is inside the hyperparameter's share. An
    infinite score (the Gaussian total correlation of collapsed codes) has no variance to
    share: its runs are left out, and `runs` counts those used."""
    rows = []
    frame = table.assign(_setting=hyper_setting(table))
    for dataset, group in frame.groupby("dataset", sort=True):
        for column in columns:
            data = group[["model", "_setting", column]].dropna()
            data = data[np.isfinite(data[column].to_numpy(dtype=float))]
            y = data[column].to_numpy(dtype=float)
            if len(y) < 2:
                continue
            total = float(((y - y.mean()) ** 2).sum())
            model_mean = data.groupby("model")[column].transform("mean").to_numpy()
            cells = data.groupby(["model", "_setting"])[column]
            cell_mean = cells.transform("mean").to_numpy()
            if total <= 1e-12 * max(1.0, float(np.abs(y).max()) ** 2) * len(y):
                shares = (np.nan, np.nan, np.nan)
            else:
                replicated = int(cells.size().max()) >= 2
                shares = (float(((model_mean - y.mean()) ** 2).sum()) / total,
                          float(((cell_mean - model_mean) ** 2).sum()) / total,
                          float(((y - cell_mean) ** 2).sum()) / total if replicated
                          else np.nan)
            rows.append({"dataset": dataset, "score": column, "runs": len(y),
                         "model": shares[0], "hyperparameter": shares[1], "seed": shares[2]})
    return pd.DataFrame(rows, columns=["dataset", "score", "runs", "model", "hyperparameter",
                                       "seed"])


def strength_trend(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Median, min and max over seeds of each score per dataset, model and regularisation
    strength (models without a strength are left out). Long format."""
    rows = []
    data = table[table["strength"].notna()]
    for (dataset, model, strength), group in data.groupby(["dataset", "model", "strength"],
                                                          sort=True):
        for column in columns:
            values = group[column].dropna().to_numpy(dtype=float)
            if len(values):
                rows.append({"dataset": dataset, "model": model,
                             "strength_name": group["strength_name"].iloc[0],
                             "strength": float(strength), "score": column,
                             "runs": len(values), "median": float(np.median(values)),
                             "min": float(values.min()), "max": float(values.max())})
    return pd.DataFrame(rows, columns=["dataset", "model", "strength_name", "strength", "score",
                                       "runs", "median", "min", "max"])


def _pick(scores: list[np.ndarray], choice: np.ndarray) -> np.ndarray:
    """scores[h][choice[:, h]] for every repetition (rows) and setting h (columns)."""
    return np.stack([s[choice[:, h]] for h, s in enumerate(scores)], axis=1)


def _win_rate(source: list[np.ndarray], target: list[np.ndarray], source_sign: float,
              same_runs: bool, rng: np.random.Generator, repeats: int) -> float:
    """P(target score of the setting the source prefers > that of a random setting)."""
    settings = len(source)
    counts = np.array([len(s) for s in source])
    choice = (rng.random((repeats, settings)) * counts).astype(int)
    src = _pick(source, choice) * source_sign
    if same_runs:
        tgt = _pick(target, choice)
    else:
        counts_t = np.array([len(t) for t in target])
        tgt = _pick(target, (rng.random((repeats, settings)) * counts_t).astype(int))
    chosen = np.argmax(src, axis=1)
    rand = rng.integers(0, settings, size=repeats)
    a, b = tgt[np.arange(repeats), chosen], tgt[np.arange(repeats), rand]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def _cells(table: pd.DataFrame) -> dict[tuple, dict[str, pd.DataFrame]]:
    """{(dataset, model): {hyperparameter setting: its runs in seed order}}."""
    frame = table.assign(_setting=hyper_setting(table)).sort_values(["seed", "run_id"])
    cells: dict[tuple, dict[str, pd.DataFrame]] = {}
    for (dataset, model, setting), runs in frame.groupby(["dataset", "model", "_setting"],
                                                         sort=True):
        cells.setdefault((dataset, model), {})[setting] = runs
    return cells


def _values(runs: pd.DataFrame, *columns: str) -> list[np.ndarray]:
    """Each column's values over the runs that have all of ``columns``."""
    values = [runs[c].to_numpy(dtype=float) for c in columns]
    keep = np.all([np.isfinite(v) for v in values], axis=0)
    return [v[keep] for v in values]


def _model_rate(src: dict, tgt: dict, sign: float, same_runs: bool, rng, repeats: int):
    """One model's win rate over the settings both sides have runs for, or None when
    fewer than two settings remain."""
    settings = [s for s in sorted(set(src) & set(tgt)) if len(src[s]) and len(tgt[s])]
    if len(settings) < 2:
        return None
    return _win_rate([src[s] for s in settings], [tgt[s] for s in settings], sign, same_runs,
                     rng, repeats)


def selection_transfer(table: pd.DataFrame, sources: list[tuple[str, float]],
                       targets: list[str], across: str = "metrics", repeats: int = 1000,
                       seed: int = 0) -> dict[str, pd.DataFrame]:
    """Model selection transfer (Locatello et al. 2019, Sec. 5.4).

    For each model with at least two hyperparameter settings: draw one run (seed) per
    setting, take the setting with the best source score, and compare its target score
    with that of a setting drawn uniformly at random (ties count one half). The
    probability is the mean over ``repeats`` draws and then over models; 0.5 means the
    rule is no better than chance.

    ``across="metrics"``: source and target are scores of the same runs, per dataset:
    {dataset: DataFrame (source x target)}. ``sources`` are (column, sign) pairs, sign
    +1 when higher is better. ``across="datasets"``: the same score selects on one
    dataset and is evaluated on another, runs drawn independently (on the diagonal: the
    hyperparameter chosen on one seed, judged on another): {score: DataFrame (source
    dataset x target dataset)} for the target columns.
    """
    if across not in ("metrics", "datasets"):
        raise ValueError(f"across must be 'metrics' or 'datasets', got {across!r}")
    rng = np.random.default_rng(seed)
    cells = _cells(table)
    datasets = sorted({d for d, _ in cells})
    models = sorted({m for _, m in cells})
    out: dict[str, pd.DataFrame] = {}
    if across == "metrics":
        for dataset in datasets:
            matrix = pd.DataFrame(np.nan, index=[s for s, _ in sources], columns=targets)
            for source, sign in sources:
                for target in targets:
                    rates = []
                    for model in models:
                        runs = cells.get((dataset, model), {})
                        pairs = {s: _values(r, source, target) for s, r in runs.items()}
                        rate = _model_rate({s: p[0] for s, p in pairs.items()},
                                           {s: p[1] for s, p in pairs.items()}, sign, True,
                                           rng, repeats)
                        if rate is not None:
                            rates.append(rate)
                    if rates:
                        matrix.loc[source, target] = float(np.mean(rates))
            out[dataset] = matrix
        return out
    for column in targets:
        scores = {key: {s: _values(r, column)[0] for s, r in runs.items()}
                  for key, runs in cells.items()}
        matrix = pd.DataFrame(np.nan, index=datasets, columns=datasets)
        for a in datasets:
            for b in datasets:
                rates = []
                for model in models:
                    rate = _model_rate(scores.get((a, model), {}), scores.get((b, model), {}),
                                       1.0, False, rng, repeats)
                    if rate is not None:
                        rates.append(rate)
                if rates:
                    matrix.loc[a, b] = float(np.mean(rates))
        out[column] = matrix
    return out


def rank_runs(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The best, median and worst run by ``column`` per dataset and model: dataset,
    model, which, study, run_id, value. Ties are broken by run id. Each run appears once:
    a model with two runs has a best and a worst, one with a single run only that run
    (which: "only")."""
    rows = []
    data = table.dropna(subset=[column])
    for (dataset, model), group in data.groupby(["dataset", "model"], sort=True):
        ordered = group.sort_values([column, "run_id"], ascending=[False, True])
        n = len(ordered)
        picks = (("only", 0),) if n == 1 else (("best", 0), ("worst", n - 1)) if n == 2 else \
            (("best", 0), ("median", (n - 1) // 2), ("worst", n - 1))
        for which, pos in picks:
            run = ordered.iloc[pos]
            rows.append({"dataset": dataset, "model": model, "which": which,
                         "study": run["study"], "run_id": run["run_id"],
                         "value": float(run[column])})
    return pd.DataFrame(rows, columns=["dataset", "model", "which", "study", "run_id", "value"])
