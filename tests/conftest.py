import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A data directory shared by the whole test session (the procedural dSprites
    cache is rendered once, ~12 s, 2.9 GB); $DISBENCH_DATA wins if set."""
    path = Path(os.environ.get("DISBENCH_DATA") or REPO / ".cache" / "test-data")
    path.mkdir(parents=True, exist_ok=True)
    return path
