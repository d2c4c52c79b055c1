"""A small synthetic run table for report tests: every score column the report uses, with
numbers shaped roughly like the study's (metrics rise with the regularisation strength, the
sampled representation's total correlation falls while the mean one's does not).

``synthetic_table()``: 2 models x 3 strengths x ``seeds`` seeds per dataset (18 runs by
default), enough for every exhibit, small enough to build a report in a few seconds.
``traversal_roots(table, folder)``: a study folder with a tiny ``traversal.png`` per run,
for ``build_report(..., study_roots=...)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from disbench.aggregate.table import to_frame
from disbench.report import stats

STUDY = "synth"
MODELS = {"betavae": ("beta", [1.0, 4.0, 16.0]), "factorvae": ("gamma", [10.0, 30.0, 100.0])}


def synthetic_table(datasets=("dsprites",), seeds: int = 3, seed: int = 0) -> pd.DataFrame:
    """One completed, scored run per dataset, model, strength and seed."""
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng([seed, 1])  # the generation scores' own draws
    rows = []
    for dataset in datasets:
        for model, (hp, values) in MODELS.items():
            for i, value in enumerate(values):
                for s in range(seeds):
                    quality = rng.random()
                    row = {
                        "source": "disbench", "study": STUDY,
                        "run_id": f"{model}-{dataset}-v{i}-s{s}", "model": model,
                        "dataset": dataset, "data_source": "official", "seed": s,
                        "arch": "locatello", "latent_dim": 10, "max_steps": 300_000,
                        "batch_size": 64, "lr": 1e-4, "strength_name": hp,
                        "strength": value, f"hp.{hp}": value, "state": "completed",
                        "step": 300_000, "attempts": 1, "device": "cuda", "host": "h",
                        "started_at": 0.0, "finished_at": 1.0, "duration_s": 1.0,
                        "eval_settings": "locatello", "eval_key": "0123456789",
                        "eval_boosting": "sklearn",
                        "train.reconstruction": 50 + 5 * i + rng.normal(),
                        "train.kl": 20 - i + rng.normal(),
                        "train.elbo": -(70 + 4 * i) + rng.normal(),
                        "train.loss": 70 + 4 * i,
                    }
                    for column, _ in stats.METRICS:
                        row[column] = 0.3 * quality + 0.05 * i + 0.05 * rng.normal()
                    row.update({"heldout.reconstruction": 51 + 5 * i + rng.normal(),
                                "heldout.kl": 20 - i + rng.normal()})
                    if seeds > 1:  # UDR compares the seeds of a setting
                        row.update({"udr.lasso": 0.3 + 0.5 * quality + 0.05 * rng.normal(),
                                    "udr.spearman": 0.4 + 0.4 * quality + 0.05 * rng.normal()})
                    row["heldout.elbo"] = -(row["heldout.reconstruction"] + row["heldout.kl"])
                    row.update({"generation.fd_factors.samples": 400 - 50 * i + noise.normal(),
                                "generation.fd_factors.reconstructions": 90 + noise.normal()})
                    row[stats.FAIRNESS[0][0]] = 0.3 - 0.2 * quality + 0.02 * rng.normal()
                    row[stats.TC_MEAN] = 3 + 0.1 * i + 0.1 * rng.normal()
                    row[stats.TC_SAMPLED] = 3 - 0.4 * i + 0.1 * rng.normal()
                    rows.append(row)
    return to_frame(rows)


def traversal_roots(table: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """``{study: folder/study}`` with ``<run_id>/traversal.png`` (a 64x48 gradient, one
    colour per run) for every run of ``table``."""
    roots = {}
    for n, (study, run_id) in enumerate(zip(table["study"], table["run_id"])):
        root = roots.setdefault(study, folder / study)
        ramp = np.linspace(0, 255, 64, dtype=np.uint8)
        pixels = np.zeros((48, 64, 3), dtype=np.uint8)
        pixels[..., 0] = ramp
        pixels[..., 1] = (37 * n) % 256
        pixels[..., 2] = ramp[::-1]
        (root / run_id).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / run_id / "traversal.png")
    return roots
