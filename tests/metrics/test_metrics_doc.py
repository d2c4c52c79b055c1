"""docs/metrics.md: the ten-line example runs and gives the scores it claims; the suite
settings it shows are the presets'."""

import re
from pathlib import Path

import yaml

from disbench.metrics import resolve_settings
from disbench.metrics.evaluate import SUITE_SETTINGS

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


def test_the_suite_settings_block_shows_the_presets_defaults():
    """The yaml block under "Representations and seeds" is what the presets hold."""
    section = DOC.read_text().split("### Representations and seeds", 1)[1]
    block = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    assert set(block) == set(SUITE_SETTINGS)
    for preset in ("locatello", "fast"):
        settings = resolve_settings(preset)
        assert block == {key: settings[key] for key in SUITE_SETTINGS}
