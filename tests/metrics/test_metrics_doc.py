"""The ten-line example of docs/metrics.md runs, and gives the scores it claims."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_the_external_model_example_runs(capsys):
    text = DOC.read_text()
    section = text.split("## Scoring your own model in ten lines", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    scores = namespace["scores"]
    assert scores["beta_vae.train_accuracy"] == 1.0
    assert scores["beta_vae.eval_accuracy"] == 1.0
    assert scores["factor_vae.eval_accuracy"] == 1.0
    assert scores["factor_vae.num_active_dims"] == 2.0
    assert scores["mig.mig"] > 0.98  # plug-in MI: a small positive bias for the other code
    assert "'beta_vae.train_accuracy': 1.0" in capsys.readouterr().out
