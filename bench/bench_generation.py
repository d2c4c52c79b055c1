"""Cost of the generation scores (disbench.metrics.generation) on dsprites_procedural.

1. Training the factor classifier whose features `fd_factors` uses, into an empty cache
   (the one-off cost per dataset and data directory), and loading it from that cache.
2. The scores of one trained model at the `fast` and `locatello` settings' `num_samples`,
   the extractor cached, medians of `--repeats` runs.

Prints markdown. Needs $DISBENCH_DATA (or ~/.cache/disbench) to hold or receive the
procedural dSprites cache (2.9 GB).

    python bench/bench_generation.py --run RUN_DIR [--threads N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from disbench.config import load_eval_preset
from disbench.metrics.cli import load_model
from disbench.metrics.evaluate import EVAL_CONF_DIR
from disbench.metrics.generation import extractor_accuracy, factor_extractor, generation_scores
from disbench.train.run import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True, help="a trained run to score")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    cfg = OmegaConf.load(args.run / "config.yaml")
    if os.environ.get("DISBENCH_DATA"):
        cfg.paths.data = os.environ["DISBENCH_DATA"]
    dataset = load_dataset(cfg)
    model = load_model(cfg, args.run, dataset.observation_shape).eval()
    fid = {name: load_eval_preset(EVAL_CONF_DIR / f"{name}.yaml")["fid"]
           for name in ("fast", "locatello")}
    settings = fid["fast"]
    extractor_args = (settings["extractor_steps"], settings["extractor_batch_size"],
                      settings["extractor_features"])

    print(f"# Generation scores ({platform.node()}, {os.cpu_count()} CPU cores, torch "
          f"{torch.__version__}, {args.threads} threads), {cfg.model.name} on {dataset.name}\n")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        extractor, _ = factor_extractor(dataset, *extractor_args, cache)
        trained = time.perf_counter() - start
        start = time.perf_counter()
        factor_extractor(dataset, *extractor_args, cache)
        loaded = time.perf_counter() - start
    accuracy = extractor_accuracy(extractor, dataset, 2000, np.random.default_rng(1))
    print("| step | s |\n|---|---|")
    print(f"| training the extractor ({extractor_args[0]} steps of {extractor_args[1]}) "
          f"| {trained:.0f} |")
    print(f"| loading it from the cache | {loaded:.2f} |")
    for name, preset in fid.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = generation_scores(model, dataset, preset["num_samples"], extractor,
                                       np.random.default_rng(0))
            times.append(time.perf_counter() - start)
        print(f"| scores at `{name}` ({preset['num_samples']:,} images per set; median of "
              f"{args.repeats}) | {statistics.median(times):.1f} |")
    print(f"\nExtractor accuracy per factor on 2,000 fresh observations: "
          f"{', '.join(f'{n} {a:.2f}' for n, a in zip(dataset.factor_names, accuracy))}")
    print(f"Scores at the last setting: {scores}")


if __name__ == "__main__":
    main()
