"""disbench.api: the README's example runs, and errors are the commands' own."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from disbench import api
from disbench.errors import DisbenchError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    marker = "<!-- the api example: tests/test_api.py runs it -->"
    return re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_trains_aggregates_and_loads(tmp_path, data_dir, monkeypatch,
                                                        capsys):
    monkeypatch.setenv("DISBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("DISBENCH_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    outcome, table, model = scope["outcome"], scope["table"], scope["model"]
    assert outcome.state == "completed"
    assert outcome.run_dir.path.parent == tmp_path / "results" / "notebook"
    assert isinstance(table, pd.DataFrame) and list(table["run_id"]) == [outcome.run_dir.path.name]
    assert type(model).__name__ == "BetaVAE" and not model.training
    assert "completed" in capsys.readouterr().out
    # the run's pictures: the labelled sheet, the animation (-2 -> 2 -> back in 10 steps:
    # 18 frames of 100 ms; the GIF merges identical neighbours, adding their durations, and a
    # barely trained model draws some) and the reconstructions
    run = outcome.run_dir.path
    gif = Image.open(run / "traversal.gif")
    durations = []
    for frame in range(gif.n_frames):
        gif.seek(frame)
        durations.append(gif.info["duration"])
    assert sum(durations) == 18 * 100 and gif.n_frames <= 18
    for picture in ("traversal.png", "reconstructions.png"):
        Image.open(run / picture).verify()
    # the same run again: nothing to do
    assert api.train("model=betavae", "data=dsprites_procedural", "trainer=smoke", "eval=none",
                     "study=notebook").state == "skipped"


@pytest.mark.parametrize("call, args", [
    (api.train, ["model=factorvea"]),
    (api.train, ["trainer.max_steps=0"]),
    (api.sweep, ["no-such-sweep"]),
    (api.aggregate, ["no-such-study"]),
    (api.report, ["no-such-study"]),
])
def test_errors_are_the_commands_own(call, args, tmp_path, monkeypatch, disbench_in_process):
    monkeypatch.setenv("DISBENCH_RESULTS", str(tmp_path))
    command = {api.train: "train", api.sweep: "sweep", api.aggregate: "aggregate",
               api.report: "report"}[call]
    cli = disbench_in_process([command, *args], tmp_path)
    assert cli.returncode == 2
    with pytest.raises(DisbenchError) as raised:
        call(*args)
    assert cli.stderr.strip().splitlines()[0] == f"error: {raised.value}".splitlines()[0]
