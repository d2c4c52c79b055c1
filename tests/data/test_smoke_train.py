"""A few training steps on every dataset that needs no download."""

from __future__ import annotations

import pytest

from disbench.config import compose
from disbench.train.run import run

PROCEDURAL = {  # name -> (data directory fixture, extra overrides)
    "dsprites_procedural": ("procedural_dir", []),
    "color_dsprites": ("derived_dir", ["data.source=procedural"]),
    "noisy_dsprites": ("derived_dir", ["data.source=procedural"]),
    "scream_dsprites": ("derived_dir", ["data.source=procedural"]),
    "xysquares": ("xysquares_dir", []),
}


@pytest.mark.parametrize("name", list(PROCEDURAL))
def test_smoke_train_procedural(name, request, tmp_path):
    fixture, extra = PROCEDURAL[name]
    data_dir = request.getfixturevalue(fixture)
    cfg = compose([f"data={name}", *extra, "trainer=smoke", "eval=none", "trainer.max_steps=3",
                   f"paths.results={tmp_path}", f"paths.data={data_dir}", "arch=mlp"])
    outcome = run(cfg)
    assert outcome.state == "completed", outcome.reason
    assert outcome.run_dir.traversal.is_file()
