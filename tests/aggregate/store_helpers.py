"""Hand-made run stores in the real layout, for the aggregation and report tests."""

from __future__ import annotations

import json
from pathlib import Path

FAST = {"name": "fast", "seed": 0, "mig": {"num_train": 1000, "num_bins": 20}}
LOCATELLO = {"name": "locatello", "seed": 0, "mig": {"num_train": 10000, "num_bins": 20}}


def write_run(root: Path, study: str, run_id: str, *, model: str = "betavae",
              hyper: dict | None = None, data: str = "dsprites_procedural", seed: int = 0,
              state: str = "completed", reason: str | None = None, step: int = 20,
              train: dict | None = None, mean: dict | None = None, sampled: dict | None = None,
              heldout: dict | None = None, eval_settings: dict | None = None,
              traversal: bytes | None = None) -> Path:
    """One run directory with status.json and (for completed runs) metrics.json."""
    path = root / study / run_id
    path.mkdir(parents=True)
    status = {
        "state": state, "reason": reason, "step": step, "max_steps": 20, "run_id": run_id,
        "study": study, "data_source": "procedural", "host": "node1", "pid": 1,
        "device": "cpu", "attempts": 1, "started_at": 1000.0, "updated_at": 1010.0,
        "identity": {"model": {"name": model, **(hyper or {})}, "data": {"name": data},
                     "arch": {"name": "mlp", "latent_dim": 10},
                     "trainer": {"max_steps": 20, "batch_size": 64, "lr": 0.0001,
                                 "betas": [0.9, 0.999], "eps": 1e-08},
                     "seed": seed},
    }
    if state == "completed":
        status.update(finished_at=1012.5, duration_s=12.5)
    (path / "status.json").write_text(json.dumps(status))
    if state == "completed":
        # as real runs: each scored with its own seed
        metrics = {"train": train or {}, "eval": {**(eval_settings or FAST), "seed": seed}}
        if mean is not None:
            metrics["mean"] = mean
            metrics["sampled"] = sampled or {}
            metrics["heldout"] = heldout or {}
        (path / "metrics.json").write_text(json.dumps(metrics))
    if traversal is not None:
        (path / "traversal.png").write_bytes(traversal)
    return path
