"""Each objective's 30-step loss log is the golden one recorded in tests/models/golden/
(see golden_runs.py): refactoring the training step must not change a number."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from golden_runs import GOLDEN, MODELS, losses  # noqa: E402


def rows(text: str) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_loss_log_is_the_golden_one(model, tmp_path, data_dir):
    got = rows(losses(model, tmp_path, data_dir))
    expected = rows((GOLDEN / f"{model}.csv").read_text())
    assert [r["step"] for r in got] == list(range(1, 31))
    assert got[0].keys() == expected[0].keys()
    for g, e in zip(got, expected, strict=True):
        for key in e:  # relative 1e-6: the same kernels give the same bits; others, nearly
            assert g[key] == pytest.approx(e[key], rel=1e-6, abs=1e-9), (g["step"], key)
