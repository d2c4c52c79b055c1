"""Aggregate training throughput of packs (`launcher.pack`) against pack size, next to
the solo harness and a plain PyTorch loop, for beta-VAE and FactorVAE.

A pack of N runs trains N runs at once (N different seeds and hyperparameters); its
throughput is N x batch x steps / time. Each round measures the plain loop, the solo
harness and every pack size, alternating in one process; medians over the rounds are
reported, with the ratio of a pack's images/s to the solo harness's measured in the
same round. On a GPU, also the peak memory per run of the pack.

    python bench/bench_packing.py [--steps 50] [--rounds 3] [--sizes 1 2 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import WARMUP, Stopwatch, harness, plain_loop, sync  # noqa: E402

from disbench import store  # noqa: E402
from disbench.config import compose  # noqa: E402
from disbench.train.packed import PackedTrainingModule, PackRecorder  # noqa: E402
from disbench.train.run import _endless, _trainer, build_model, load_dataset, warnings_filtered  # noqa: E402

HYPER = {"betavae": "beta", "factorvae": "gamma"}


def packed(cfg, dataset, size: int, steps: int, device: torch.device, workdir: Path
           ) -> tuple[float, float]:
    """(aggregate images/s, peak device MiB per run) of a pack of `size` runs trained by
    disbench's packed step, with each run's recorder at its default cadence."""
    objectives = []
    for seed in range(size):
        pl.seed_everything(seed, verbose=False)
        objectives.append(build_model(cfg, dataset.observation_shape))
    for i, objective in enumerate(objectives):  # one value per run, as a sweep packs them
        name = HYPER[cfg.model.name]
        setattr(objective, name, getattr(objective, name) * (1 + i / size))
    t = cfg.trainer
    module = PackedTrainingModule(objectives, dataset, t.batch_size, t.lr, t.betas, t.eps,
                                  list(range(size)))
    runs = [store.RunDir(tempfile.mkdtemp(dir=workdir)) for _ in range(size)]
    for run in runs:
        run.create()
    recorder = PackRecorder(runs, t.log_every_n_steps, t.checkpoint_every_n_steps,
                            lambda run, step, terms: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with warnings_filtered():
        trainer = _trainer(cfg, recorder, workdir)
    watch = Stopwatch(device)
    trainer.callbacks.append(watch)
    with warnings_filtered():
        trainer.fit(module, train_dataloaders=_endless())
    memory = torch.cuda.max_memory_allocated() / 2**20 / size if device.type == "cuda" else 0.0
    return size * steps * t.batch_size / (watch.end - watch.start), memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=sorted(HYPER))
    parser.add_argument("--sizes", nargs="+", type=int, default=None,
                        help="pack sizes (default: 1 2 4 on CPU; 1 8 32 128 256 on a GPU)")
    parser.add_argument("--arch", default="locatello")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    sizes = args.sizes or ([1, 8, 32, 128, 256] if gpu else [1, 2, 4])
    data_dir = os.environ.get("DISBENCH_DATA") or str(Path(".cache/test-data").resolve())
    name = torch.cuda.get_device_name() if gpu else f"{os.cpu_count()} CPUs"
    print(f"# pack throughput, {time.strftime('%Y-%m-%d')}, {platform.node()}, {name}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, arch {args.arch}, "
          f"batch 64, {args.steps} steps after {WARMUP}, {args.rounds} rounds")
    print("\n| model | plain loop (img/s) | solo harness (img/s) | pack | pack (img/s) | "
          "pack / solo | MiB per run |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            cfg = compose([f"model={model}", "data=dsprites_procedural", f"arch={args.arch}",
                           f"paths.data={data_dir}", f"trainer.max_steps={WARMUP + args.steps}",
                           "trainer.progress_bar=false",
                           f"trainer.accelerator={'gpu' if gpu else 'cpu'}"])
            dataset = load_dataset(cfg)
            plain, solo = [], []
            rates = {s: [] for s in sizes}
            ratios = {s: [] for s in sizes}
            memory = {s: 0.0 for s in sizes}
            for _ in range(args.rounds):
                plain.append(plain_loop(cfg, dataset, args.steps, device))
                solo.append(harness(cfg, dataset, args.steps, device, Path(tmp)))
                for size in sizes:
                    rate, memory[size] = packed(cfg, dataset, size, args.steps, device,
                                                Path(tmp))
                    rates[size].append(rate)
                    ratios[size].append(rate / solo[-1])
                    sync(device)
            for i, size in enumerate(sizes):
                first = (f"| {model} | {statistics.median(plain):.0f} | "
                         f"{statistics.median(solo):.0f} " if i == 0 else "| | | ")
                print(f"{first}| {size} | {statistics.median(rates[size]):.0f} | "
                      f"{statistics.median(ratios[size]):.2f} | "
                      f"{memory[size]:.0f} |" if gpu else
                      f"{first}| {size} | {statistics.median(rates[size]):.0f} | "
                      f"{statistics.median(ratios[size]):.2f} | - |", flush=True)


if __name__ == "__main__":
    main()
