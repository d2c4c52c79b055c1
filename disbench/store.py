"""The run store: one plain directory per run, `<results>/<study>/<run id>/`.

Files (documented in docs/results-format.md):
  config.yaml        the resolved config
  status.json        {"state": running | completed | failed | interrupted, ...}
  losses.csv         the loss log
  metrics.json       final losses and metric scores (written before "completed")
  udr_sample.npz     the model's codes of the study's shared UDR sample (with the scores)
  labelled.npy       the indices of the images whose factors a semi-supervised run saw
  checkpoints/last.ckpt, checkpoints/previous.ckpt (the one before, a fallback)
  traversal.png, traversal.gif, reconstructions.png   the model's pictures
  train.log          a sweep task's console output (sweeps only)
  claim.json         present while a process trains the run

Every write is atomic (write a temporary file, then rename); "completed" is the
last thing written.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from disbench.errors import DisbenchError

RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
# trained with eval.defer=true: its checkpoint and traversal are stored, its scores are not yet
TRAINED = "trained"
# A claim whose owner cannot be checked (another host) is stale after this long
# without a heartbeat. Owners touch their claim at every log and checkpoint.
CLAIM_STALE_SECONDS = float(os.environ.get("DISBENCH_CLAIM_STALE_SECONDS", 600))


def write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


class CorruptFile(DisbenchError):
    """A run's file exists but cannot be read (truncated, edited, half-written)."""

    def __init__(self, path: Path, problem: str, remedy: str):
        super().__init__(f"{path} cannot be read ({problem}); {remedy}")
        self.path, self.problem = path, problem


REPAIR_BY_RERUN = ("running the run again (`disbench train` with its overrides, or its "
                   "sweep) rewrites it from the run's config")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _slurm_task() -> str | None:
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else job


def study_dir(results: Path, study: str) -> Path:
    """``<results>/<study>``; a missing study lists the studies there."""
    root = Path(results) / study
    if not root.is_dir():
        results = Path(results)
        found = sorted(p.name for p in results.iterdir() if p.is_dir()
                       and not p.name.startswith(".")) if results.is_dir() else []
        raise DisbenchError(f"no study '{study}' under {results}; studies there: "
                            f"{', '.join(found) or 'none'}")
    return root


class RunDir:
    """Paths and state of one run's directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.status_file = self.path / "status.json"
        self.losses = self.path / "losses.csv"
        self.metrics = self.path / "metrics.json"
        self.udr_sample = self.path / "udr_sample.npz"
        self.labelled = self.path / "labelled.npy"
        self.checkpoints = self.path / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.ckpt"
        self.previous_checkpoint = self.checkpoints / "previous.ckpt"
        self.traversal = self.path / "traversal.png"
        self.traversal_gif = self.path / "traversal.gif"
        self.reconstructions = self.path / "reconstructions.png"
        self.claim_file = self.path / "claim.json"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def create(self) -> None:
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise DisbenchError(f"cannot write the run directory {self.path}: {err}. Set "
                                f"paths.results (or $DISBENCH_RESULTS) to a writable "
                                f"directory.") from None

    # -- status ------------------------------------------------------------
    def status(self) -> dict | None:
        """status.json's content; None if there is none; `CorruptFile` if unreadable."""
        try:
            status = read_json(self.status_file)
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            raise CorruptFile(self.status_file, str(err), REPAIR_BY_RERUN) from None
        if status is not None and not (isinstance(status, dict) and "state" in status):
            raise CorruptFile(self.status_file, "no 'state' in it", REPAIR_BY_RERUN)
        return status

    @property
    def state(self) -> str | None:
        return (self.status() or {}).get("state")

    def read_config(self):
        """config.yaml as a DictConfig; `CorruptFile` if unreadable, DisbenchError if missing."""
        from omegaconf import DictConfig, OmegaConf

        if not self.config.is_file():
            raise DisbenchError(f"{self.config} is missing; {REPAIR_BY_RERUN}")
        try:
            cfg = OmegaConf.load(self.config)
        except Exception as err:  # noqa: BLE001 - YAML errors of every kind
            raise CorruptFile(self.config, str(err).splitlines()[0], REPAIR_BY_RERUN) from None
        if not isinstance(cfg, DictConfig) or not {"model", "data", "arch", "seed"} <= set(cfg):
            raise CorruptFile(self.config, "not a run's config", REPAIR_BY_RERUN)
        from disbench.config import IMPLICIT

        # a run stored before a key existed was trained at the key's implicit value (a
        # model's missing hyperparameters take its signature's defaults, the same values)
        for group in ("arch", "trainer"):
            for key, value in IMPLICIT[group].items():
                if group in cfg and key not in cfg[group]:
                    cfg[group][key] = value
        return cfg

    def update_status(self, **fields) -> dict:
        try:
            previous = self.status() or {}
        except CorruptFile:
            previous = {}  # rewritten whole by the run that owns it
        status = {**previous, **fields, "updated_at": time.time()}
        write_json(self.status_file, status)
        return status

    # -- claim: at most one process trains a run -----------------------------
    def _claim_info(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_task": _slurm_task(),
                "claimed_at": time.time()}

    def claim_is_stale(self, info: dict) -> bool:
        """Stale: the owner process is gone (same host), the owner is this same
        SLURM task requeued, or no heartbeat for CLAIM_STALE_SECONDS."""
        if info.get("host") == socket.gethostname() and not _process_alive(int(info["pid"])):
            return True
        if info.get("slurm_task") and info.get("slurm_task") == _slurm_task():
            return True
        try:
            age = time.time() - self.claim_file.stat().st_mtime
        except FileNotFoundError:
            return True
        return age > CLAIM_STALE_SECONDS

    def claim_owner(self) -> dict | None:
        """The live claim's owner, or None if unclaimed or stale."""
        try:
            info = read_json(self.claim_file)
        except (json.JSONDecodeError, OSError):
            info = {"host": "?", "pid": -1}  # half-written by a dying owner
        if info is None or self.claim_is_stale(info):
            return None
        return info

    @contextmanager
    def _claim_mutex(self, timeout: float = 30.0):
        """Serialise claim check-and-take; a mutex left by a dead process expires after 30 s."""
        lock = self.path / ".claim.lock"
        deadline = time.time() + timeout
        while True:
            try:
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                break
            except FileExistsError:
                try:
                    if time.time() - lock.stat().st_mtime > 30:
                        lock.unlink(missing_ok=True)
                        continue
                except FileNotFoundError:
                    continue
                if time.time() > deadline:
                    raise DisbenchError(f"could not lock {lock} within {timeout:.0f} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def try_claim(self) -> bool:
        """Take the claim unless a live process holds it; a stale claim is taken over."""
        with self._claim_mutex():
            if self.claim_owner() is not None:
                return False
            write_json(self.claim_file, self._claim_info())
            return True

    def heartbeat(self) -> None:
        try:
            os.utime(self.claim_file)
        except FileNotFoundError:
            pass

    def release_claim(self) -> None:
        info = read_json(self.claim_file) if self.claim_file.exists() else None
        if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
            self.claim_file.unlink(missing_ok=True)


# the parts of metrics.json that hold scores (name -> score): the model's own held-out
# losses and generation scores, and the metric suite's on each representation
SCORE_PARTS = ("heldout", "generation", "mean", "sampled")


def write_scores(run: RunDir, train: dict, scores: dict) -> None:
    """A run's ``metrics.json``: its final losses (``train``) and ``score_model``'s result,
    whose ``udr_sample`` arrays go to ``udr_sample.npz`` first (a stale one is removed)."""
    import io

    import numpy as np

    scores = dict(scores)
    sample = scores.pop("udr_sample", None)
    if sample is None:
        run.udr_sample.unlink(missing_ok=True)
    else:
        buffer = io.BytesIO()
        np.savez(buffer, **sample)
        write_atomic(run.udr_sample, buffer.getvalue())
    write_json(run.metrics, {"train": train, **scores})


def read_udr_sample(run: RunDir) -> dict | None:
    """The arrays ``write_scores`` stored, or None when the run has none."""
    import zipfile

    import numpy as np

    try:
        with np.load(run.udr_sample) as stored:
            return {key: stored[key] for key in stored.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptFile(run.udr_sample, str(err) or type(err).__name__,
                          f"`disbench eval {run.path} --force` scores the run again and "
                          f"rewrites it") from None


def run_dir_for(results: str | Path, study: str, run_id: str) -> RunDir:
    return RunDir(Path(results) / study / run_id)


def recorded_eval_settings(settings: dict | None) -> dict | None:
    """Eval settings read from a ``metrics.json``, with the suite settings added since
    filled in as they were then: scores stored before ``boosting`` existed used
    scikit-learn's trees."""
    if not settings:
        return None
    return {"boosting": "sklearn", **settings}
