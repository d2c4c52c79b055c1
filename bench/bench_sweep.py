"""Sweep costs: planning the 12,600-run reference study over a store that already
holds a few thousand runs, and the per-run overhead of the launchers (a sweep of
1-step runs: process start, imports, data, one step, traversal, status).

    python bench/bench_sweep.py [--stored 3000] [--runs 4] [--slurm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from disbench import store
from disbench.launch.sweep import plan


def disbench(args: list[str], results: Path, data_dir: str) -> float:
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": data_dir}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "disbench.cli", *args], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slurm", action="store_true", help="also time the slurm launcher")
    args = parser.parse_args()
    data_dir = os.environ.get("DISBENCH_DATA") or str(Path(".cache/test-data").resolve())
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        os.environ["DISBENCH_RESULTS"] = str(results)
        _, runs = plan("locatello2019")
        for run in runs[:: len(runs) // args.stored][: args.stored]:
            run.run_dir.path.mkdir(parents=True)
            store.write_json(run.run_dir.status_file, {"state": "completed"})
        times = [disbench(["sweep", "locatello2019", "--dry-run"], results, data_dir)
                 for _ in range(args.rounds)]
        print(f"| `disbench sweep locatello2019 --dry-run`, {args.stored} of 12,600 runs stored |"
              f" {statistics.median(times):.2f} s |")
        spec = Path(tmp) / "tiny.yaml"
        spec.write_text(f"study: tiny\ngrid:\n  data: dsprites_procedural\n  model: betavae\n"
                        f"blocks:\n  - seed: range(0, {args.runs})\n"
                        f"overrides: [trainer=smoke, eval=none, trainer.max_steps=1]\n")
        launchers = {"local": ["launcher.workers=1"]}
        if args.slurm:
            launchers["slurm"] = ["launcher=slurm", "launcher.cpus_per_task=2",
                                  "launcher.mem_gb=4", "launcher.array_parallelism=1", "--wait"]
        for name, options in launchers.items():
            per_run = []
            for i in range(args.rounds):
                total = disbench(["sweep", str(spec), *options], Path(tmp) / f"{name}{i}",
                                 data_dir)
                per_run.append(total / args.runs)
            print(f"| {name} launcher: wall time per 1-step run ({args.runs} runs, one at a time)"
                  f" | {statistics.median(per_run):.1f} s |")


if __name__ == "__main__":
    main()
