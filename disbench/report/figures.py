"""The report's figures (matplotlib, Agg backend), each saved as a PNG.

PNGs are written without a timestamp or software tag, so the same table gives the same
bytes with the same matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

DPI = 110
PNG_METADATA = {"Software": None}


def _save(fig, path: Path, tight: bool = True) -> Path:
    """Grids of many panels lay themselves out (``tight=False``): fitting their bounding
    box would draw every tick label twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path


def _layout(fig) -> None:
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.9 / width, right=1 - 0.2 / width, bottom=0.9 / height,
                        top=1 - 0.75 / height, wspace=0.35, hspace=0.75)


def _grid(panels: int, ncols: int, width: float = 3.2, height: float = 2.6):
    ncols = max(1, min(ncols, panels))
    nrows = max(1, -(-panels // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    return fig, list(axes.flat)


def _text_color(cmap: str, level: float) -> str:
    """Readable text on a cell: the diverging map is dark at both ends, viridis when low."""
    dark = abs(level - 0.5) > 0.35 if cmap == "RdBu_r" else level < 0.55
    return "white" if dark else "black"


def heatmap(matrix: pd.DataFrame, path: Path, title: str, labels: dict[str, str],
            vmin: float = -1.0, vmax: float = 1.0, cmap: str = "RdBu_r",
            xlabel: str = "", ylabel: str = "") -> Path:
    """A matrix with its values written in the cells (NaN cells left blank)."""
    rows, cols = len(matrix.index), len(matrix.columns)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * cols + 1.6, 0.9 + 0.5 * rows + 0.9))
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax,
                      aspect="auto")
    ax.set_xticks(range(cols), [labels.get(c, c) for c in matrix.columns], rotation=45,
                  ha="right")
    ax.set_yticks(range(rows), [labels.get(r, r) for r in matrix.index])
    for i in range(rows):
        for j in range(cols):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color=_text_color(cmap, (values[i, j] - vmin) / (vmax - vmin)))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def distributions(data: pd.DataFrame, columns: list[str], labels: dict[str, str], path: Path,
                  title: str) -> Path:
    """One panel per score: a box per model, every run as a dot. Infinite scores cannot be
    drawn: the panel's title counts them."""
    models = sorted(data["model"].unique())
    fig, axes = _grid(len(columns), 4)
    for ax, column in zip(axes, columns):
        groups = [data.loc[data["model"] == m, column].dropna().to_numpy(dtype=float)
                  for m in models]
        infinite = sum(int(np.isinf(g).sum()) for g in groups)
        groups = [g[np.isfinite(g)] for g in groups]
        shown = [i for i, g in enumerate(groups) if len(g)]
        ax.boxplot([groups[i] for i in shown], positions=shown, widths=0.6,
                   showfliers=False, medianprops={"color": "tab:red"})
        for i in shown:
            g = groups[i]
            offsets = np.linspace(-0.18, 0.18, len(g)) if len(g) > 1 else np.zeros(1)
            ax.scatter(i + offsets, g, s=6, color="black", alpha=0.5, zorder=3)
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_title(labels.get(column, column)
                     + (f" ({infinite} infinite, not drawn)" if infinite else ""), fontsize=9)
    fig.suptitle(title, fontsize=10)
    _layout(fig)
    return _save(fig, path, tight=False)


def _strength_axis(ax, strengths: np.ndarray, name: str) -> np.ndarray:
    """The study's values are roughly geometric: one evenly spaced tick per value."""
    ax.set_xticks(range(len(strengths)), [f"{v:g}" for v in strengths], fontsize=7)
    ax.set_xlabel(name, fontsize=8)
    ax.minorticks_off()
    return np.arange(len(strengths))


def strength_trend(trend: pd.DataFrame, columns: list[str], labels: dict[str, str],
                   path: Path, title: str) -> Path:
    """Rows: scores; columns: models. Median over seeds against the regularisation
    strength, the band spanning the seeds' min and max."""
    models = sorted(trend["model"].unique())
    fig, axes = plt.subplots(len(columns), len(models),
                             figsize=(2.6 * len(models), 2.0 * len(columns)), squeeze=False,
                             sharey="row")
    for i, column in enumerate(columns):
        for j, model in enumerate(models):
            ax = axes[i][j]
            part = trend[(trend["model"] == model) & (trend["score"] == column)]
            part = part.sort_values("strength")
            if len(part):
                x = _strength_axis(ax, part["strength"].to_numpy(dtype=float),
                                   part["strength_name"].iloc[0])
                ax.fill_between(x, part["min"], part["max"], alpha=0.25, color="tab:blue")
                ax.plot(x, part["median"], marker="o", ms=3, color="tab:blue")
            if i == 0:
                ax.set_title(model, fontsize=9)
            if j == 0:
                ax.set_ylabel(labels.get(column, column), fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    _layout(fig)
    return _save(fig, path, tight=False)


def total_correlation(trend: pd.DataFrame, mean_col: str, sampled_col: str, path: Path,
                      title: str) -> Path:
    """Per model: Gaussian total correlation of the mean and of the sampled representation
    against the regularisation strength (median over seeds, band: min to max)."""
    models = sorted(trend["model"].unique())
    fig, axes = _grid(len(models), 4, width=3.0, height=2.4)
    for ax, model in zip(axes, models):
        for column, label, color in ((mean_col, "mean", "tab:orange"),
                                     (sampled_col, "sampled", "tab:blue")):
            part = trend[(trend["model"] == model) & (trend["score"] == column)]
            part = part.sort_values("strength")
            if not len(part):
                continue
            x = _strength_axis(ax, part["strength"].to_numpy(dtype=float),
                               part["strength_name"].iloc[0])
            ax.fill_between(x, part["min"], part["max"], alpha=0.2, color=color)
            ax.plot(x, part["median"], marker="o", ms=3, color=color, label=label)
        ax.set_title(model, fontsize=9)
        ax.set_ylabel("Gaussian TC", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize=8, ncols=2)
    fig.suptitle(title, fontsize=10)
    _layout(fig)
    return _save(fig, path, tight=False)


def variance_shares(shares: pd.DataFrame, labels: dict[str, str], path: Path,
                    title: str) -> Path:
    """Stacked horizontal bars: the share of each score's variance from the model, the
    hyperparameter and the seed. A share that is NaN (cannot be separated) is not drawn,
    and the score's label says so ("MIG: seed n/a"; "MIG: n/a (constant)" when all three
    are), as does the legend when no score has that share."""
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.38 * len(shares)))
    y = np.arange(len(shares))
    left = np.zeros(len(shares))
    parts = (("model", "tab:blue"), ("hyperparameter", "tab:orange"), ("seed", "tab:gray"))
    for part, color in parts:
        values = shares[part].to_numpy(dtype=float)
        drawn = np.isfinite(values)
        ax.barh(y[drawn], values[drawn], left=left[drawn], color=color, label=part)
        left[drawn] += values[drawn]
    names = []
    for row in shares.itertuples(index=False):
        name = labels.get(row.score, row.score)
        missing = [part for part, _ in parts if not np.isfinite(getattr(row, part))]
        if len(missing) == len(parts):
            name += ": n/a (constant)"
        elif missing:
            name += ": " + ", ".join(missing) + " n/a"
        names.append(name)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of variance")
    handles = [Patch(color=color, label=part if shares[part].notna().any() else f"{part} n/a")
               for part, color in parts]
    ax.legend(handles=handles, fontsize=8, loc="lower right", ncols=3,
              bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=10, loc="left")
    return _save(fig, path)
