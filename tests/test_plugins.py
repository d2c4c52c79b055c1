"""Objectives, datasets and architectures from outside the package: the example of
docs/plugins.md run from a directory outside the package, entry points of an
installed package, and the errors of a bad import path."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from disbench import plugins

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "plugins.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


TINY = "arch.name=tiny_nets:Tiny"  # tests/models/tiny.py, copied beside the plug-in


def fast(text: str, separator: str = " ") -> str:
    """The doc's commands at test size: 20 steps on the tiny networks, no metrics
    (`separator` joins the added override to the others: ", " in a YAML list)."""
    return (text.replace("trainer=quick", f'trainer=smoke{separator}"{TINY}"')
            .replace("eval=fast", "eval=none"))


def test_the_documented_objective_is_under_40_lines():
    assert len(blocks("python")[0].strip().splitlines()) < 40


@pytest.mark.slow
def test_the_documented_plugin_trains_sweeps_and_reports_from_outside(tmp_path, data_dir):
    (tmp_path / "my_objectives.py").write_text(blocks("python")[0])
    (tmp_path / "targetkl.yaml").write_text(fast(blocks("yaml")[0], ", "))
    (tmp_path / "tiny_nets.py").write_text((REPO / "tests" / "models" / "tiny.py").read_text())
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DISBENCH_RESULTS": str(tmp_path / "r"),
           "DISBENCH_DATA": str(data_dir)}
    commands = [line for block in blocks("bash") for line in fast(block).splitlines()
                if line.startswith("disbench ")]
    assert [c.split()[1] for c in commands] == ["train", "sweep", "report"]
    for command in commands:
        out = subprocess.run([sys.executable, "-m", "disbench.cli", *shlex.split(command)[1:]],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, (command, out.stdout[-2000:], out.stderr[-2000:])
    (trained,) = (tmp_path / "r" / "default").iterdir()
    assert trained.name.startswith("my_objectives:TargetKLVAE-dsprites_procedural-s0-")
    assert "beta" in (trained / "losses.csv").read_text().splitlines()[0]
    runs = sorted(p.name.split("-")[0] for p in (tmp_path / "r" / "targetkl").iterdir()
                  if (p / "status.json").exists())
    assert runs == ["betavae"] * 2 + ["my_objectives:TargetKLVAE"] * 4
    assert (tmp_path / "r" / "targetkl" / "report" / "report.md").exists()


@pytest.fixture
def installed_package(tmp_path, monkeypatch):
    """A package installed on sys.path that registers an objective, a dataset and an
    architecture under disbench's entry-point groups."""
    (tmp_path / "plug.py").write_text(textwrap.dedent("""
        from disbench import data
        from disbench.models.betavae import BetaVAE
        from disbench.nets import mlp as small_net

        class Doubled(BetaVAE):
            pass

        def squares(data_dir, **options):
            return data.load("xysquares", data_dir, **options)
    """))
    info = tmp_path / "plug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[disbench.models]\ndoubled = plug:Doubled\n"
        "[disbench.datasets]\nsquares = plug:squares\n"
        "[disbench.archs]\nsmall = plug:small_net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.installed.cache_clear()
    yield
    plugins.installed.cache_clear()


def test_entry_points_of_an_installed_package(installed_package, in_process, tmp_path):
    out = in_process(["train", "model=betavae", "model.name=doubled", "data=xysquares",
                      "data.name=squares", "arch=mlp", "arch.name=small", "trainer=smoke",
                      "trainer.max_steps=2", "eval=none"])
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "default").iterdir()
    assert run.name.startswith("doubled-squares-s0-")


@pytest.mark.parametrize("override, message", [
    ("model.name=nosuch.module:Model", "error: model 'nosuch.module:Model': cannot import "
     "module 'nosuch.module' (No module named 'nosuch'); is its package installed or on "
     "PYTHONPATH?"),
    ("model.name=disbench.models:Nope", "error: model 'disbench.models:Nope': module "
     "'disbench.models' has no 'Nope'"),
    ("model.name=disbench.models.base:gaussian_kl", "error: model "
     "'disbench.models.base:gaussian_kl' is <function gaussian_kl"),
    ("arch.name=disbench.models:VAE", "error: architecture 'disbench.models:VAE' is <class "),
    ("data.name=disbench.errors:DisbenchWarning.__doc__", "error: dataset "
     "'disbench.errors:DisbenchWarning.__doc__' is"),
])
def test_a_bad_import_path_is_one_error_and_writes_nothing(override, message, in_process,
                                                            tmp_path):
    out = in_process(["train", override, "data=dsprites_procedural", "trainer=smoke",
                      "eval=none"])
    assert out.returncode == 2
    assert out.stderr.startswith(message) and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "default").exists()


def test_an_objective_that_cannot_step_is_refused_before_its_run_exists(tmp_path, in_process,
                                                                        monkeypatch):
    (tmp_path / "broken.py").write_text(textwrap.dedent("""
        from disbench.models import VAE, Step

        class Broken(VAE):
            def step(self, x, step, generator):
                loss = self.decode(self.encode(x)[0]).mean()
                return Step({"generator": loss}, {"loss": loss})
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = in_process(["train", "model=vae", "model.name=broken:Broken",
                      "data=dsprites_procedural", "arch=mlp", "trainer=smoke", "eval=none"])
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: Broken.step returned losses ['generator'] but "
                                  "declares the optimisers ['model']: one loss per optimiser, "
                                  "under the same names")
    assert not (tmp_path / "default").exists()
