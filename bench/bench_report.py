"""Aggregation and report at the reference study's scale: `disbench aggregate` and
`disbench report` on a synthetic store of 12,600 completed runs.

1. Writes a synthetic `locatello2019` study in the real store layout (not timed): 7
   datasets x 6 models x their 6 study values x 50 seeds, each run folder holding
   status.json (identity and run id as `disbench sweep locatello2019` plans them),
   metrics.json (`train`, `eval` = the complete eval=locatello settings, every score a
   run scored with them has on the mean and the sampled representation), config.yaml,
   a 40-row losses.csv and a small traversal.png. Scores are seeded random numbers that
   depend on the hyperparameter, the model and the dataset plus a per-run effect and
   noise, so correlations, trends and variance shares are not degenerate.
2. Runs the installed CLI as child processes, each `--repeats` times:
   `disbench aggregate locatello2019 --results ROOT` and
   `disbench report locatello2019 --results ROOT --out DIR` (which aggregates itself, then
   builds). Wall time (median) and the command's peak resident memory and CPU time, by
   GNU time (`/usr/bin/time -v`; without it, from the child's rusage, whose peak memory
   then includes this process's own, inherited by the fork).

Prints markdown. Goals: aggregate < 10 s, report < 60 s.

    python bench/bench_report.py [--repeats 3] [--store DIR] [--seeds 50]

`--store DIR` keeps the synthetic results root in DIR (written on the first call, reused
after). The runs are stored as `disbench train` stores them (each scored with its own
seed; FactorVAE's list-valued discriminator_betas in the identity).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from importlib import metadata
from pathlib import Path

import numpy as np
import yaml

STUDY = "locatello2019"
DATASETS = ("dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb",
            "cars3d", "shapes3d")
NUM_FACTORS = {"dsprites": 5, "color_dsprites": 5, "noisy_dsprites": 5, "scream_dsprites": 5,
               "smallnorb": 4, "cars3d": 3, "shapes3d": 6}
# model -> (hyperparameter the study sweeps, its values), as in sweeps/locatello2019.yaml
MODELS = {
    "betavae": ("beta", (1, 2, 4, 6, 8, 16)),
    "annealedvae": ("c_max", (5, 10, 25, 50, 75, 100)),
    "factorvae": ("gamma", (10, 20, 30, 40, 50, 100)),
    "dipvae1": ("lambda_od", (1, 2, 5, 10, 20, 50)),
    "dipvae2": ("lambda_od", (1, 2, 5, 10, 20, 50)),
    "betatcvae": ("beta", (1, 2, 4, 6, 8, 10)),
}
# the model's own loss terms, after loss, reconstruction, kl, elbo
EXTRA_LOSSES = {"annealedvae": ("capacity",), "betatcvae": ("total_correlation",),
                "dipvae1": ("dip_penalty",), "dipvae2": ("dip_penalty",),
                "factorvae": ("total_correlation", "discriminator_objective")}
LOSS_ROWS = 40
GOALS = {"aggregate": 10.0, "report": 60.0}


# -- the synthetic store ------------------------------------------------------------
def tiny_png(width: int = 64, height: int = 40) -> bytes:
    """A small grey-gradient PNG (8-bit greyscale), written without PIL."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes((x * 4 + y * 2) % 256 for x in range(width))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def versions() -> dict[str, str]:
    import disbench

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"disbench": disbench.__version__, "torch": version("torch"),
            "pytorch_lightning": version("pytorch_lightning"), "numpy": np.__version__,
            "python": platform.python_version()}


def composed_configs(root: Path) -> dict[tuple[str, str], dict]:
    """The resolved config of every (model, data) pair, as the sweep composes it."""
    from omegaconf import OmegaConf

    from disbench import config

    base = ["trainer=locatello", "eval=locatello", f"study={STUDY}", f"paths.results={root}"]
    out = {}
    with config.composer() as compose:
        for model in MODELS:
            for data in DATASETS:
                cfg = compose([f"model={model}", f"data={data}", *base])
                out[model, data] = OmegaConf.to_container(cfg, resolve=True)
    return out


def score_keys(num_factors: int, downstream_sizes: list[int]) -> tuple[list[str], list[str]]:
    """(mean, sampled) score keys of a run scored with the full suite."""
    mean = ["beta_vae.eval_accuracy", "beta_vae.train_accuracy", "dci.completeness",
            "dci.disentanglement", "dci.informativeness_test", "dci.informativeness_train",
            "factor_vae.eval_accuracy", "factor_vae.num_active_dims",
            "factor_vae.train_accuracy", "irs.irs", "irs.num_active_dims", "mig.mig",
            "modularity.explicitness_test", "modularity.explicitness_train",
            "modularity.modularity", "sap.sap"]
    unsupervised = ["unsupervised.gaussian_total_correlation",
                    "unsupervised.gaussian_wasserstein_correlation",
                    "unsupervised.gaussian_wasserstein_correlation_norm",
                    "unsupervised.mutual_info_score"]
    for predictor in ("logreg", "gbt"):
        for n in downstream_sizes:
            key = f"downstream.{predictor}_{n}"
            mean += [f"{key}_{agg}_{split}_accuracy" for agg in ("mean", "min")
                     for split in ("train", "test")]
            mean += [f"{key}_{split}_accuracy_factor_{j}" for split in ("train", "test")
                     for j in range(num_factors)]
    return sorted(mean + unsupervised), list(unsupervised)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def block_scores(rng: np.random.Generator, d: int, m: int, seeds: int,
                 mean_keys: list[str], num_factors: int) -> dict[str, np.ndarray]:
    """Scores of one (dataset, model) block: arrays of shape (6 values, seeds).

    A run's latent quality depends on the dataset, the model, the hyperparameter (with a
    model-dependent direction) and a per-run effect; each metric loads on it with its own
    weight and noise, so metrics agree partly. Losses trade reconstruction against KL
    along the hyperparameter."""
    h = np.linspace(0.0, 1.0, 6)[:, None]
    run = rng.normal(size=(6, seeds))
    direction = (1.0, -0.5, 0.8, 0.3, 0.6, 1.2)[m]
    quality = 0.4 * (d - 3) / 3 + 0.3 * (m - 2.5) / 2.5 + direction * (h - 0.5) + 0.7 * run

    def bounded(lo: float, hi: float, weight: float, noise: float, shift: float = 0.0):
        x = weight * quality + shift + noise * rng.normal(size=quality.shape)
        return lo + (hi - lo) * _sigmoid(x)

    s: dict[str, np.ndarray] = {
        "beta_vae.eval_accuracy": bounded(0.55, 1.0, 1.2, 0.5, 0.5),
        "factor_vae.eval_accuracy": bounded(0.3, 1.0, 1.0, 0.6),
        "mig.mig": bounded(0.0, 0.6, 1.3, 0.5, -1.0),
        "dci.disentanglement": bounded(0.0, 0.9, 1.1, 0.5, -0.5),
        "dci.completeness": bounded(0.0, 0.9, 0.9, 0.6, -0.5),
        "dci.informativeness_test": bounded(0.3, 1.0, 0.3, 0.5, 1.0),
        "modularity.modularity": bounded(0.6, 1.0, -0.3, 0.8, 0.5),
        "modularity.explicitness_test": bounded(0.5, 1.0, 0.4, 0.5, 0.5),
        "sap.sap": bounded(0.0, 0.25, 0.9, 0.6, -1.0),
        "irs.irs": bounded(0.2, 0.9, 0.5, 0.9),
    }
    s["beta_vae.train_accuracy"] = np.minimum(1.0, s["beta_vae.eval_accuracy"] + 0.01)
    s["factor_vae.train_accuracy"] = np.minimum(1.0, s["factor_vae.eval_accuracy"] + 0.01)
    s["dci.informativeness_train"] = np.minimum(1.0, s["dci.informativeness_test"] + 0.05)
    s["modularity.explicitness_train"] = np.minimum(1.0, s["modularity.explicitness_test"]
                                                    + 0.02)
    active = np.clip(np.round(10 - 6 * h + rng.normal(0, 1.5, size=quality.shape)), 1, 10)
    s["factor_vae.num_active_dims"] = active
    s["irs.num_active_dims"] = active
    tc_mean = np.exp(0.5 + 1.5 * h + 0.4 * rng.normal(size=quality.shape))
    s["unsupervised.gaussian_total_correlation"] = tc_mean
    s["unsupervised.gaussian_wasserstein_correlation"] = 0.8 * tc_mean + 0.1 * np.abs(
        rng.normal(size=quality.shape))
    s["unsupervised.gaussian_wasserstein_correlation_norm"] = bounded(0.05, 0.6, 0.5, 0.5)
    s["unsupervised.mutual_info_score"] = bounded(0.05, 0.8, 0.6, 0.5)
    for key in mean_keys:
        if not key.startswith("downstream.") or "_factor_" not in key:
            continue
        rest = key[len("downstream."):]
        predictor, n = rest.split("_")[:2]
        level = np.log10(int(n)) - 2.5 + (0.3 if predictor == "gbt" else 0.0)
        shift = level + (0.4 if "_train_" in key else 0.0) - 0.2 * int(key.rsplit("_", 1)[1])
        s[key] = bounded(1.0 / num_factors, 1.0, 0.4, 0.3, shift)
    for key in mean_keys:
        if key.startswith("downstream.") and "_factor_" not in key:
            stem, agg, split = key.rsplit("_", 3)[0], *key.rsplit("_", 3)[1:3]
            parts = np.stack([s[f"{stem}_{split}_accuracy_factor_{j}"]
                              for j in range(num_factors)])
            s[key] = parts.mean(axis=0) if agg == "mean" else parts.min(axis=0)
    return s


def block_sampled(rng: np.random.Generator, h: np.ndarray, shape) -> dict[str, np.ndarray]:
    tc = np.exp(1.5 - 1.8 * h + 0.3 * rng.normal(size=shape))  # falls as regularisation grows
    return {"unsupervised.gaussian_total_correlation": tc,
            "unsupervised.gaussian_wasserstein_correlation": 0.7 * tc,
            "unsupervised.gaussian_wasserstein_correlation_norm":
                0.05 + 0.3 * _sigmoid(rng.normal(size=shape)),
            "unsupervised.mutual_info_score": 0.05 + 0.5 * _sigmoid(rng.normal(size=shape))}


def block_losses(rng: np.random.Generator, model: str, d: int, values, shape) -> dict:
    h = np.linspace(0.0, 1.0, 6)[:, None]
    recon = (30 + 12 * d) * (1 + 0.8 * h) + rng.normal(0, 2, size=shape)
    kl = np.maximum(2.0, 35 * (1 - 0.7 * h) + rng.normal(0, 1.5, size=shape))
    strength = np.asarray(values, dtype=float)[:, None]
    out = {"reconstruction": recon, "kl": kl, "elbo": -(recon + kl)}
    if model == "betavae":
        out["loss"] = recon + strength * kl
    else:
        out["loss"] = recon + kl * (1 + 0.05 * strength) + np.abs(rng.normal(0, 1, size=shape))
    if model == "annealedvae":
        out["capacity"] = np.broadcast_to(strength, shape).astype(float)
    if model in ("betatcvae", "factorvae"):
        out["total_correlation"] = np.exp(1.0 - 1.5 * h + 0.3 * rng.normal(size=shape))
    if model == "factorvae":
        out["discriminator_objective"] = 0.69 + 0.05 * rng.normal(size=shape)
    if model in ("dipvae1", "dipvae2"):
        out["dip_penalty"] = np.abs(rng.normal(0.5, 0.2, size=shape)) * (1 - 0.5 * h)
    return out


def losses_csv(terms: dict[str, float], columns: list[str], max_steps: int,
               rng: np.random.Generator) -> str:
    """LOSS_ROWS rows decaying towards the final values, the last one equal to them."""
    lines = [",".join(["step", *columns])]
    for i in range(1, LOSS_ROWS + 1):
        step = max_steps * i // LOSS_ROWS
        decay = 1.0 + 3.0 * np.exp(-6.0 * i / LOSS_ROWS) if i < LOSS_ROWS else 1.0
        jitter = 1.0 + (0.01 * rng.normal() if i < LOSS_ROWS else 0.0)
        lines.append(",".join([str(step), *(repr(float(terms[c] * decay * jitter))
                                            for c in columns)]))
    return "\n".join(lines) + "\n"


def write_json(path: Path, obj) -> int:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"  # as disbench.store.write_json
    path.write_text(text)
    return len(text)


def generate(root: Path, seeds: int) -> tuple[int, int]:
    """Write the synthetic study under ``root``; (runs, bytes written)."""
    from disbench import config
    from disbench.metrics.evaluate import resolve_settings

    rng = np.random.default_rng(2019)
    cfgs = composed_configs(root)
    settings = resolve_settings("locatello")
    png = tiny_png()
    vers = versions()
    t0 = 1_790_000_000.0
    runs = written = 0
    study_dir = root / STUDY
    for d, data in enumerate(DATASETS):
        factors = NUM_FACTORS[data]
        mean_keys, sampled_keys = score_keys(factors, list(settings["downstream"]["num_train"]))
        for m, (model, (hp, values)) in enumerate(MODELS.items()):
            base = cfgs[model, data]
            shape = (len(values), seeds)
            h = np.linspace(0.0, 1.0, len(values))[:, None]
            mean = block_scores(rng, d, m, seeds, mean_keys, factors)
            sampled = block_sampled(rng, h, shape)
            losses = block_losses(rng, model, d, values, shape)
            loss_cols = ["loss", "reconstruction", "kl", "elbo", *EXTRA_LOSSES.get(model, ())]
            for i, value in enumerate(values):
                for seed in range(seeds):
                    cfg = copy.deepcopy(base)
                    cfg["model"][hp] = value
                    cfg["seed"] = seed
                    identity = config.identity(cfg)
                    rid = config.run_id(cfg)
                    path = study_dir / rid
                    path.mkdir(parents=True, exist_ok=True)
                    max_steps = cfg["trainer"]["max_steps"]
                    started = t0 + 600.0 * runs
                    duration = 4 * 3600.0 * (1 + 0.2 * rng.random())
                    status = {
                        "attempts": 1, "data_source": "official", "device": "cuda:0",
                        "duration_s": duration, "finished_at": started + duration,
                        "host": f"gpu{runs % 16:02d}", "identity": identity,
                        "max_steps": max_steps, "pid": 10_000 + runs, "reason": None,
                        "run_id": rid, "started_at": started, "state": "completed",
                        "step": max_steps, "study": STUDY,
                        "updated_at": started + duration + 0.01, "versions": vers,
                    }
                    train = {k: float(losses[k][i, seed]) for k in loss_cols}
                    metrics = {
                        "eval": {**settings, "seed": seed},
                        "mean": {k: float(mean[k][i, seed]) for k in mean_keys},
                        "sampled": {k: float(sampled[k][i, seed]) for k in sampled_keys},
                        "train": train,
                    }
                    text = yaml.safe_dump(cfg, sort_keys=False)
                    (path / "config.yaml").write_text(text)
                    csv = losses_csv(train, loss_cols, max_steps, rng)
                    (path / "losses.csv").write_text(csv)
                    (path / "traversal.png").write_bytes(png)
                    written += len(text) + len(csv) + len(png)
                    written += write_json(path / "metrics.json", metrics)
                    written += write_json(path / "status.json", status)  # last, as disbench does
                    runs += 1
    return runs, written


def check_run_ids(root: Path, seeds: int) -> None:
    """The synthetic run ids are the ones `disbench sweep locatello2019` plans."""
    from disbench.launch.sweep import plan

    _, planned = plan(STUDY, [f"paths.results={root}"])
    expected = {r.run_id for r in planned if int(r.run_id.rsplit("-s", 1)[1].split("-")[0])
                < seeds}
    found = {p.name for p in (root / STUDY).iterdir() if (p / "status.json").exists()}
    if expected != found:
        raise SystemExit(f"synthetic run ids differ from the planned ones: "
                         f"{len(found - expected)} unplanned, {len(expected - found)} missing")


# -- timing --------------------------------------------------------------------------
def disbench_command() -> list[str]:
    script = Path(sys.executable).parent / "disbench"
    found = str(script) if script.is_file() else shutil.which("disbench")
    return [found] if found else [sys.executable, "-m", "disbench.cli"]


GNU_TIME = "/usr/bin/time"


def memory_probe() -> str:
    """How the children's peak memory is measured: GNU time when there is one."""
    try:
        ok = subprocess.run([GNU_TIME, "-v", "true"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    return "gnu-time" if ok else "wait4"


def timed(cmd: list[str], log: Path, probe: str) -> dict:
    """Run ``cmd``; its wall time, exit code, peak RSS (MiB) and CPU time (user + system).

    With GNU time (`/usr/bin/time -v`) the numbers are the command's own. Without it they
    come from the child's rusage (`os.wait4`), whose peak RSS is at least this process's
    size when it started the child (a forked child counts its parent's pages until exec).
    """
    stats = log.with_suffix(".time")
    full = [GNU_TIME, "-v", "-o", str(stats), *cmd] if probe == "gnu-time" else cmd
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    got = {"wall": wall, "rc": proc.returncode, "rss_mib": usage.ru_maxrss / 1024,
           "cpu": usage.ru_utime + usage.ru_stime}
    if probe == "gnu-time":
        fields = {}
        for line in stats.read_text(errors="replace").splitlines():
            key, _, value = line.strip().rpartition(": ")
            fields[key] = value
        got["rss_mib"] = int(fields["Maximum resident set size (kbytes)"]) / 1024
        got["cpu"] = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    return got


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                   .splitlines() if line.startswith("MemTotal"))
        memory = f"{mem / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "? GiB"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{platform.node()}: {model}, {os.cpu_count()} CPU cores, {memory}; load average "
            f"at start {load}; Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command")
    parser.add_argument("--store", type=Path, default=None,
                        help="results root to write the synthetic study into (kept) or reuse")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per setting (50: the "
                        "study's 12,600 runs)")
    args = parser.parse_args()
    print(f"# Aggregate and report at the study's scale ({time.strftime('%Y-%m-%d')})\n")
    print(machine() + "\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = (args.store or Path(tmp) / "results").resolve()
        existing = root / STUDY
        if existing.is_dir() and any(existing.iterdir()):
            runs = sum(1 for p in existing.iterdir() if (p / "status.json").exists())
            print(f"reusing {runs:,} runs in {existing}", flush=True)
        else:
            start = time.perf_counter()
            runs, size = generate(root, args.seeds)
            print(f"wrote {runs:,} runs ({runs * 5:,} files, {size / 2**20:.0f} MiB) into "
                  f"{existing} in {time.perf_counter() - start:.0f} s (not timed below)",
                  flush=True)
            check_run_ids(root, args.seeds)
        base = disbench_command()
        probe = memory_probe()
        report_dir = Path(tmp) / "report"
        commands = {
            "aggregate": [*base, "aggregate", STUDY, "--results", str(root)],
            "report": [*base, "report", STUDY, "--results", str(root), "--out", str(report_dir)],
        }
        results: dict[str, list[dict]] = {name: [] for name in commands}
        failed = []
        for i in range(args.repeats):
            for name, cmd in commands.items():
                log = Path(tmp) / f"{name}-{i}.log"
                got = timed(cmd, log, probe)
                results[name].append(got)
                print(f"<!-- {name} #{i + 1}: {got['wall']:.1f} s wall, {got['cpu']:.1f} s CPU, "
                      f"peak RSS {got['rss_mib']:.0f} MiB, exit {got['rc']} -->", flush=True)
                if got["rc"] != 0:
                    failed.append(name)
                    tail = [line if len(line) < 400 else line[:400] + " ..." for line in
                            log.read_text(errors="replace").strip().splitlines()[-15:]]
                    print(f"{name} failed (exit {got['rc']}): {' '.join(cmd)}\n  "
                          + "\n  ".join(tail), flush=True)
            if failed:
                break
        if not failed and (report_dir / "report.md").is_file():
            figures = len(list((report_dir / "figures").glob("*.png")))
            tables = len(list((report_dir / "tables").glob("*.csv")))
            print(f"<!-- report: {figures} figures, {tables} CSV tables -->")
    how = ("`/usr/bin/time -v`" if probe == "gnu-time" else
           "the child's `ru_maxrss` by `os.wait4`, an upper bound")
    print(f"\n{runs:,} runs; `disbench aggregate` and `disbench report` as child processes; "
          f"median of {args.repeats}; peak RSS and CPU time by {how}\n")
    print("| command | wall s (median) | runs (wall s) | CPU s (median) | peak RSS MiB (max) "
          "| goal |")
    print("|---|---|---|---|---|---|")
    for name, got in results.items():
        if not got:
            continue
        ok = [g for g in got if g["rc"] == 0]
        walls = ", ".join(f"{g['wall']:.1f}" + ("" if g["rc"] == 0 else " (failed)")
                          for g in got)
        med = f"{statistics.median(g['wall'] for g in ok):.1f}" if ok else "failed"
        cpu = f"{statistics.median(g['cpu'] for g in ok):.1f}" if ok else "-"
        goal = GOALS[name]
        verdict = (("met" if statistics.median(g["wall"] for g in ok) < goal else "missed")
                   if ok else "-")
        print(f"| `disbench {name}` | {med} | {walls} | {cpu} | "
              f"{max(g['rss_mib'] for g in got):.0f} | < {goal:.0f} s: {verdict} |")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
