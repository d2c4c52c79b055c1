"""eval.boosting=fast against scikit-learn: agreement and speed, side by side.

For each input, DCI (10,000 training and 5,000 test points) and the downstream task's
gradient-boosted trees (10, 100 and 1,000 training points, 5,000 test points) are
computed with ``boosting="sklearn"`` and ``boosting="fast"`` in turn, in one process,
one core (``n_jobs=1``). Reported: the largest absolute difference of DCI's
disentanglement, completeness and informativeness and of the downstream accuracies
(per factor), and the CPU seconds of each side (DCI's 10,000-point fits, where the
time goes, apart). Next to each difference, in parentheses, the same difference for
scikit-learn itself with ``random_state=1`` instead of 0: how far the reference's own
tie-breaking moves the scores (the reference leaves the seed unset).

Inputs, factors with dSprites' sizes (3, 6, 40, 32, 32):

* ``partial``: ten codes; code j < 5 is factor j (scaled to [0, 1]) plus 0.3 times
  factor j+1 and noise (0.05), codes 5-9 noise: partially disentangled;
* ``entangled``: the scaled factors through a random 5 x 10 mixing matrix plus noise
  (0.1): every code depends on every factor;
* ``trained`` (``--run RUN_DIR``, a trained disbench run on dsprites_procedural): the
  run's mean codes of uniformly drawn images.

Prints markdown.

    python bench/bench_boosting.py [--inputs partial entangled] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from disbench.metrics import dci as dci_module
from disbench.metrics import downstream as downstream_module

SIZES = np.array([3, 6, 40, 32, 32])
NUM_TRAIN, NUM_TEST, SMALL = 10_000, 5_000, (10, 100, 1000)


def synthetic(kind: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    factors = np.stack([rng.integers(s, size=n) for s in SIZES], axis=1)
    scaled = factors / (SIZES - 1)
    if kind == "partial":
        codes = 0.05 * rng.normal(size=(n, 10))
        codes[:, :5] += scaled + 0.3 * np.roll(scaled, -1, axis=1)
    else:
        mixing = np.random.default_rng(1).normal(size=(5, 10))
        codes = scaled @ mixing + 0.1 * rng.normal(size=(n, 10))
    return codes, factors


def trained(run_dir: Path, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    from omegaconf import OmegaConf

    from disbench.metrics.cli import load_model
    from disbench.metrics.sampling import CodeSampler, model_representation
    from disbench.train.run import load_dataset

    cfg = OmegaConf.load(run_dir / "config.yaml")
    if os.environ.get("DISBENCH_DATA"):
        cfg.paths.data = os.environ["DISBENCH_DATA"]
    dataset = load_dataset(cfg)
    model = load_model(cfg, run_dir, dataset.observation_shape)
    sampler = CodeSampler(dataset, model_representation(model, "cpu"))
    factors, codes = sampler.sample(n, rng)
    return codes, factors


@contextlib.contextmanager
def sklearn_seeded(seed: int):
    """scikit-learn's trees with another ``random_state`` (disbench fixes 0; the reference
    leaves it unset): how far its own tie-breaking moves the scores."""
    from sklearn.ensemble import GradientBoostingClassifier

    def make(boosting: str = "sklearn"):
        return GradientBoostingClassifier(random_state=seed)

    with mock.patch.object(dci_module, "make_boosting", make), \
            mock.patch.object(downstream_module, "make_boosting", make):
        yield


def scores(codes: np.ndarray, factors: np.ndarray, boosting: str) -> tuple[dict, float, float]:
    split = (codes[:NUM_TRAIN], factors[:NUM_TRAIN], codes[NUM_TRAIN:], factors[NUM_TRAIN:])
    rest = codes[NUM_TRAIN + NUM_TEST:], factors[NUM_TRAIN + NUM_TEST:]
    start = time.process_time()
    dci = dci_module.compute_dci(*split, n_jobs=1, boosting=boosting)
    dci_seconds = time.process_time() - start
    values = {"D": dci["disentanglement"], "C": dci["completeness"],
              "I train": dci["informativeness_train"], "I test": dci["informativeness_test"]}
    for m in SMALL:
        found = downstream_module.downstream_scores(
            rest[0][:m], rest[1][:m], split[2], split[3], str(m), ("gbt",), n_jobs=1,
            boosting=boosting)
        values.update({k: v for k, v in found.items() if "_test_accuracy" in k})
    return values, dci_seconds, time.process_time() - start


def compare(codes: np.ndarray, factors: np.ndarray) -> dict:
    reference, dci_a, all_a = scores(codes, factors, "sklearn")
    fast, dci_b, all_b = scores(codes, factors, "fast")
    with sklearn_seeded(1):
        reseeded, _, _ = scores(codes, factors, "sklearn")

    def gap(other: dict, sizes: tuple[int, ...]) -> float:
        keys = [k for k in reference if any(k.startswith(f"gbt_{m}_") for m in sizes)]
        return max(abs(other[k] - reference[k]) for k in keys)

    return {
        **{k: (reference[k], fast[k], reseeded[k]) for k in ("D", "C", "I train", "I test")},
        **{f"downstream {m}": (gap(fast, (m,)), gap(reseeded, (m,))) for m in SMALL},
        "seconds": (dci_a, dci_b, all_a, all_b),
    }


def _cell(reference: float, fast: float, reseeded: float) -> str:
    return f"{reference:.4f}: {fast - reference:+.4f} ({reseeded - reference:+.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", nargs="*", default=["partial", "entangled"],
                        choices=["partial", "entangled"])
    parser.add_argument("--run", type=Path, help="a trained run: its codes are one more input")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = NUM_TRAIN + NUM_TEST + max(SMALL)
    inputs = [(kind, lambda kind=kind: synthetic(kind, np.random.default_rng(args.seed), n))
              for kind in args.inputs]
    if args.run:
        inputs.append((f"trained ({args.run.name})",
                       lambda: trained(args.run, np.random.default_rng(args.seed), n)))
    print(f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, one core per side (n_jobs=1)\n")
    print("| input | DCI D | DCI C | I train | I test | "
          + " | ".join(f"downstream n={m}" for m in SMALL)
          + " | DCI CPU s sklearn / fast (ratio) | all CPU s (ratio) |")
    print("|---" * (7 + len(SMALL)) + "|")
    for name, make in inputs:
        codes, factors = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = compare(codes, factors)
        a, b, all_a, all_b = r["seconds"]
        print(f"| {name} | " + " | ".join(_cell(*r[k]) for k in ("D", "C", "I train", "I test"))
              + " | " + " | ".join(f"{r[f'downstream {m}'][0]:.4f} "
                                   f"({r[f'downstream {m}'][1]:.4f})" for m in SMALL)
              + f" | {a:.0f} / {b:.0f} ({a / b:.1f}x) | {all_a:.0f} / {all_b:.0f} "
              f"({all_a / all_b:.1f}x) |", flush=True)


if __name__ == "__main__":
    main()
