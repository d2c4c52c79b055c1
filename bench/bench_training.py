"""Training throughput of disbench's harness next to a plain PyTorch loop.

Both train the same model, objective, batch and optimisers on the same
device-resident dataset; the rounds alternate in one process and the
medians are reported. Also: the wall time from `disbench train` starting to
its first training step being done.

    python bench/bench_training.py [--steps 100] [--rounds 3] [--models betavae factorvae ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from disbench import store
from disbench.config import compose
from disbench.models import MODELS
from disbench.train.callbacks import RunRecorder
from disbench.train.module import TrainingModule, device_images
from disbench.train.optimizers import build_optimizers
from disbench.train.run import _endless, _trainer, build_model, load_dataset, warnings_filtered

WARMUP = 10


def plain_loop(cfg, dataset, steps: int, device: torch.device) -> float:
    """images/s of a hand-written loop doing what the harness's step does: the objective's
    step, one backward pass per named loss into its optimiser's parameters, every
    optimiser's step, the after-step hook (and the extra updates an objective asks for)."""
    pl.seed_everything(cfg.seed, verbose=False)
    model = build_model(cfg, dataset.observation_shape).to(device)
    t = cfg.trainer
    optimizers = build_optimizers(model, {"lr": t.lr, "betas": tuple(t.betas), "eps": t.eps})
    params = {name: [p for g in o.param_groups for p in g["params"]]
              for name, o in optimizers.items()}
    images = device_images(dataset.images, device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    start = 0.0
    for step in range(WARMUP + steps):
        if step == WARMUP:
            sync(device)
            start = time.perf_counter()
        index = torch.randint(len(images), (t.batch_size,), device=device, generator=generator)
        x = dataset.observe(images[index], generator)
        for name, updates in model.updates.items():
            for _ in range(updates - 1):
                extra = model.step(x, step=step, generator=generator)
                optimizers[name].zero_grad()
                extra.losses[name].backward(inputs=params[name])
                optimizers[name].step()
        out = model.step(x, step=step, generator=generator)
        for o in optimizers.values():
            o.zero_grad()
        names = list(out.losses)
        for i, name in enumerate(names):
            out.losses[name].backward(inputs=params[name], retain_graph=i < len(names) - 1)
        for o in optimizers.values():
            o.step()
        model.after_step(step, out)
    sync(device)
    return steps * t.batch_size / (time.perf_counter() - start)


class Stopwatch(pl.Callback):
    def __init__(self, device):
        self.device, self.start, self.end = device, 0.0, 0.0

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == WARMUP:
            sync(self.device)
            self.start = time.perf_counter()
        if trainer.global_step == trainer.max_steps:
            sync(self.device)
            self.end = time.perf_counter()


def harness(cfg, dataset, steps: int, device: torch.device, workdir: Path) -> float:
    """images/s of disbench's Lightning step, with the run's recorder at its default cadence."""
    pl.seed_everything(cfg.seed, verbose=False)
    model = build_model(cfg, dataset.observation_shape)
    t = cfg.trainer
    module = TrainingModule(model, dataset, t.batch_size, t.lr, t.betas, t.eps, cfg.seed)
    run = store.RunDir(tempfile.mkdtemp(dir=workdir))
    run.create()
    with warnings_filtered():
        trainer = _trainer(cfg, RunRecorder(run, t.log_every_n_steps,
                                            t.checkpoint_every_n_steps), run.path)
    watch = Stopwatch(device)
    trainer.callbacks.append(watch)
    with warnings_filtered():
        trainer.fit(module, train_dataloaders=_endless())
    return steps * t.batch_size / (watch.end - watch.start)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_to_first_step(data_dir: str, workdir: Path) -> float:
    """Seconds from launching `disbench train` to its first step being logged."""
    results = Path(tempfile.mkdtemp(dir=workdir))
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": data_dir}
    start = time.time()
    subprocess.run([sys.executable, "-m", "disbench.cli", "train", "model=betavae",
                    "data=dsprites_procedural", "trainer=smoke", "eval=none",
                    "trainer.max_steps=1"],
                   env=env, check=True, capture_output=True)
    (losses,) = results.glob("default/*/losses.csv")
    return losses.stat().st_mtime - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=sorted(MODELS))
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    data_dir = os.environ.get("DISBENCH_DATA") or str(Path(".cache/test-data").resolve())
    print(f"# training throughput, {time.strftime('%Y-%m-%d')}, {platform.node()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("\n| model | device | plain loop (img/s) | disbench (img/s) | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for name in args.models:
                cfg = compose([f"model={name}", "data=dsprites_procedural",
                               f"paths.data={data_dir}",
                               f"trainer.max_steps={WARMUP + args.steps}",
                               "trainer.progress_bar=false",
                               f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}"])
                dataset = load_dataset(cfg)
                plain, ours, ratios = [], [], []
                for _ in range(args.rounds):
                    plain.append(plain_loop(cfg, dataset, args.steps, device))
                    ours.append(harness(cfg, dataset, args.steps, device, Path(tmp)))
                    ratios.append(ours[-1] / plain[-1])
                print(f"| {name} | {device.type} | {statistics.median(plain):.0f} | "
                      f"{statistics.median(ours):.0f} | {statistics.median(ratios):.3f} |",
                      flush=True)
        starts = [time_to_first_step(data_dir, Path(tmp)) for _ in range(args.rounds)]
        print(f"\ncommand start to first training step done: median {statistics.median(starts):.1f}"
              f" s over {args.rounds} runs ({', '.join(f'{s:.1f}' for s in starts)})")


if __name__ == "__main__":
    main()
