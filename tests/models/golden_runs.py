"""Golden loss logs: a fixed-seed 30-step CPU run of each objective, recorded before the
objectives move onto their own training step, so that the move is checked to change
nothing. `python tests/models/golden_runs.py` writes them again (only on purpose)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from disbench.config import compose
from disbench.train.run import run

GOLDEN = Path(__file__).parent / "golden"
MODELS = ("vae", "betavae", "annealedvae", "factorvae", "dipvae1", "dipvae2", "betatcvae")
# one thread: CPU sums are then in one order; log every step; the reference conv net with
# PyTorch's initialisation (the one of the runs before arch.init existed)
OVERRIDES = ["data=dsprites_procedural", "arch=locatello", "arch.init=torch", "trainer=smoke",
             "eval=none", "trainer.max_steps=30", "trainer.log_every_n_steps=1",
             "trainer.checkpoint_every_n_steps=30", "trainer.threads=1", "seed=7"]


def losses(model: str, results: Path, data_dir: Path) -> str:
    """losses.csv of the golden run of `model`."""
    cfg = compose([f"model={model}", *OVERRIDES, f"paths.results={results}",
                   f"paths.data={data_dir}"])
    outcome = run(cfg)
    assert outcome.state == "completed", outcome.reason
    return outcome.run_dir.losses.read_text()


if __name__ == "__main__":
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".cache/test-data")
    results = Path(tempfile.mkdtemp())
    try:
        for name in MODELS:
            (GOLDEN / f"{name}.csv").write_text(losses(name, results, data_dir))
    finally:
        shutil.rmtree(results)
