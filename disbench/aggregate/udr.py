"""UDR columns of a study's table, from the codes its runs stored when they were scored.

Duan et al. (2020) score a model by how much its representation agrees with those of
models trained with the same objective and hyperparameters but other seeds. Each scored
run stores its codes and KL per dimension of the shared UDR sample (``udr_sample.npz``,
``disbench.metrics.udr.model_udr_sample``), so the aggregate scores every group of seeds
with ``udr_from_codes`` without loading a model: a run's ``udr.lasso`` and
``udr.spearman`` equal what ``compute_udr(dataset, [its group's models], seed=0,
num_data_points=udr.num_points)`` gives it, with the reference's Lasso and Spearman
similarities and KL threshold 0.01; ``udr.models`` is the size of the group.

A group is the runs with the same ``setting_key`` (identity but the seed) and the same
``eval_key`` (scored alike, so on the same sample). A run without stored codes (scored
before they were stored, or a deterministic encoder), or alone in its group, gets no UDR.
"""

from __future__ import annotations

import warnings

from disbench import store
from disbench.metrics.udr import CORRELATIONS, ZERO_CODE_KL, udr_from_codes

COLUMNS = [f"udr.{c}" for c in CORRELATIONS] + ["udr.models"]


def add_udr(rows: list[dict], runs: list[store.RunDir]) -> list[str]:
    """Fill the UDR columns of ``rows`` (one per run of ``runs``, same order) in place;
    returns notes: runs whose stored codes cannot be read, groups with an inactive model
    (no dimension above the KL threshold: its pairs score 0)."""
    problems = []
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row, run in zip(rows, runs):
        try:
            sample = store.read_udr_sample(run)
        except store.CorruptFile as err:
            problems.append(str(err))
            continue
        if sample is not None and row.get("eval_key"):
            groups.setdefault((row["setting_key"], row["eval_key"]), []).append((row, sample))
    for members in groups.values():
        if len(members) < 2:
            continue
        codes = [sample["codes"] for _, sample in members]
        kl = [sample["kl"] for _, sample in members]
        for correlation in CORRELATIONS:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scores = udr_from_codes(codes, kl, correlation)["model_scores"]
            for (row, _), score in zip(members, scores):
                row[f"udr.{correlation}"] = float(score)
        if caught:
            idle = [row["run_id"] for row, sample in members
                    if not (sample["kl"] > ZERO_CODE_KL).any()]
            problems.append(f"UDR: {', '.join(idle)} encode nothing (no dimension with a mean "
                            f"KL above {ZERO_CODE_KL}); their pairs score 0")
        for row, _ in members:
            row["udr.models"] = float(len(members))
    return problems


def udr_count(table) -> int:
    """How many rows of a table have a UDR score."""
    return int(table["udr.lasso"].notna().sum()) if "udr.lasso" in table.columns else 0
