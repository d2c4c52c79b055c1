"""Cost of the metric suite: array-level metrics, and the full suite on a trained model.

1. Each array-level metric on 10,000 x 10 codes (5,000 more for the test split where
   there is one), factors with dSprites' sizes.
2. `score_model` with eval=locatello on a model trained on dsprites_procedural (a
   beta-VAE trained with trainer=quick into a temporary results directory; a smoke
   model's codes are collapsed, which would let the FactorVAE score stop early):
   encoding each grid image once (the default), next to a naive path that re-encodes the
   sampled observations of every metric, as the reference does (with disbench's large
   batches, so the comparison is conservative). Encoding and each metric are timed apart.

Prints markdown. Needs $DISBENCH_DATA (or ~/.cache/disbench) to hold or receive the
procedural dSprites cache (2.9 GB).

    python bench/bench_metrics.py [--eval locatello] [--run RUN_DIR] [--skip-naive]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from disbench.metrics import (
    compute_dci,
    compute_irs,
    compute_mig,
    compute_modularity_explicitness,
    compute_sap,
    compute_unsupervised,
    score_model,
)
from disbench.metrics.cli import load_model
from disbench.metrics.evaluate import METRICS
from disbench.train.run import load_dataset

DSPRITES_SIZES = (3, 6, 40, 32, 32)


def array_level(num_train: int = 10000, num_test: int = 5000) -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    n = num_train + num_test
    factors = np.stack([rng.integers(s, size=n) for s in DSPRITES_SIZES], axis=1)
    mixing = rng.normal(size=(len(DSPRITES_SIZES), 10))
    codes = (factors / np.array(DSPRITES_SIZES)) @ mixing + 0.1 * rng.normal(size=(n, 10))
    tr, te = slice(0, num_train), slice(num_train, n)
    split = (codes[tr], factors[tr], codes[te], factors[te])
    cases = [
        ("MIG", lambda: compute_mig(codes[tr], factors[tr])),
        ("DCI (n_jobs=-1)", lambda: compute_dci(*split)),
        ("SAP", lambda: compute_sap(*split)),
        ("Modularity / explicitness", lambda: compute_modularity_explicitness(*split)),
        ("IRS", lambda: compute_irs(codes[tr], factors[tr])),
        ("Unsupervised", lambda: compute_unsupervised(codes[tr])),
    ]
    out = []
    for name, fn in cases:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
        out.append((name, time.perf_counter() - start))
    return out


def train_model(results: Path) -> Path:
    cmd = [sys.executable, "-m", "disbench.cli", "train", "model=betavae",
           "data=dsprites_procedural", "trainer=quick", "trainer.progress_bar=false",
           "eval=none", f"paths.results={results}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return next((results / "default").iterdir())


def suite(run_dir: Path, eval_name: str, encode_once: bool) -> tuple[dict, dict, float]:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    if os.environ.get("DISBENCH_DATA"):
        cfg.paths.data = os.environ["DISBENCH_DATA"]
    dataset = load_dataset(cfg)
    model = load_model(cfg, run_dir, dataset.observation_shape)
    timings: dict = {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = score_model(model, dataset, eval_name, seed=0, device="cpu",
                             encode_once=encode_once, timings=timings,
                             data_dir=cfg.paths.data)
    return scores, timings, time.perf_counter() - start


def _row(name: str, *cells: str) -> str:
    return "| " + " | ".join([name, *cells]) + " |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", default="locatello", help="eval preset")
    parser.add_argument("--run", type=Path, default=None, help="a trained run to score")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    print(f"# Metric suite cost ({platform.node()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)\n")
    print("## Array-level metrics, 10,000 x 10 codes (+ 5,000 test)\n")
    print("| metric | s |\n|---|---|")
    for name, seconds in array_level():
        print(f"| {name} | {seconds:.2f} |")
    sys.stdout.flush()

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or train_model(Path(tmp) / "results")
        paths = {"encode once": True}
        if not args.skip_naive:
            paths["naive (re-encode per metric)"] = False
        results = {}
        for label, encode_once in paths.items():
            results[label] = suite(run_dir, args.eval, encode_once)
            print(f"\n<!-- {label}: done in {results[label][2]:.0f} s -->", flush=True)

    labels = list(results)
    print(f"\n## Full suite, eval={args.eval}, one beta-VAE on dsprites_procedural, CPU\n")
    print("Seconds; a metric's time excludes encoding, which has its own row.\n")
    print(_row("step", *labels))
    print(_row("---", *["---"] * len(labels)))
    enc_cells = []
    for label in labels:
        t = results[label][1]
        enc_cells.append(f"{t['encode']:.0f} ({t['num_encoded']:,} images)")
    print(_row("encoding", *enc_cells))
    for metric in METRICS:
        cells = []
        for label in labels:
            t = results[label][1]
            cells.append(f"{t[metric] - t[metric + '.encode']:.1f}")
        print(_row(metric, *cells))
    cells = []
    for label in labels:
        t = results[label][1]["sampled"]
        cells.append(f"{t['unsupervised'] - t['unsupervised.encode']:.1f}")
    print(_row("unsupervised (sampled)", *cells))
    for step in ("heldout", "udr_sample", "generation"):  # the model's own, encoding included
        print(_row(f"{step} (with its encoding)",
                   *[f"{results[label][1][step]:.1f}" for label in labels]))
    print(_row("**total**", *[f"**{results[label][2]:.0f}**" for label in labels]))
    if len(labels) == 2:
        a, b = (results[label] for label in labels)
        print(f"\nEnd to end: {b[2] / a[2]:.1f}x faster with encode-once.")
        diffs = [abs(a[0]["mean"][k] - b[0]["mean"][k]) for k in a[0]["mean"]]
        print(f"Largest difference between the two paths' scores: {max(diffs):.2g} "
              f"(float round-off of batched convolutions can move a histogram bin or a tie).")


if __name__ == "__main__":
    main()
