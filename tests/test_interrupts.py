"""Nothing lost, nothing misleading: stopping signals at every stage, corrupt checkpoints,
status and config files. In process where the test is not about the process itself."""

from __future__ import annotations

import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from disbench import store
from disbench.config import compose
from disbench.launch.status import report
from disbench.train import run as run_module
from disbench.train.module import TrainingModule
from disbench.train.run import run
from tests.models.tiny import ARCH

MLP_SMOKE = ["data=dsprites_procedural", "trainer=smoke", "eval=none", "arch=mlp", ARCH,
             "trainer.max_steps=8", "trainer.checkpoint_every_n_steps=4"]


def smoke_cfg(tmp_path, data_dir, *extra):
    return compose([*MLP_SMOKE, *extra, f"paths.results={tmp_path}", f"paths.data={data_dir}"])


def signal_self(name: str):
    number = getattr(signal, name)
    os.kill(os.getpid(), number)
    time.sleep(5)  # the handler raises before this ends
    raise AssertionError(f"{name} was not handled (handler {signal.getsignal(number)}, "
                         f"blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])})")


@pytest.fixture(autouse=True)
def signals_not_ignored():
    """These tests are about signals that reach the process. A suite started under nohup
    or as a shell's background job inherits SIGHUP or SIGINT ignored, and disbench leaves
    a signal ignored on purpose ignored: give each test the default handlers."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def signal_at_step(monkeypatch, step: int, name: str) -> None:
    """Send `name` to this process when training is about to take step `step` + 1."""
    training_step = TrainingModule.training_step

    def stopping(self, batch, batch_idx):
        if self.global_step == step:
            signal_self(name)
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(TrainingModule, "training_step", stopping)


def losses(run_dir: store.RunDir) -> list[dict]:
    with open(run_dir.losses, newline="") as f:
        return list(csv.DictReader(f))


def test_sigterm_while_scoring_is_recorded_and_scoring_resumes(tmp_path, data_dir, monkeypatch,
                                                                capsys):
    cfg = smoke_cfg(tmp_path, data_dir)
    real_evaluate = run_module.evaluate
    monkeypatch.setattr(run_module, "evaluate", lambda *a, **k: signal_self("SIGTERM"))
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    outcome = run(cfg)
    assert outcome.state == "interrupted" and outcome.exit_code == 128 + signal.SIGTERM
    status = outcome.run_dir.status()
    assert status["state"] == "interrupted" and status["stage"] == "scoring"
    assert status["reason"] == "SIGTERM during scoring" and status["step"] == 8
    assert not outcome.run_dir.claim_file.exists()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    err = capsys.readouterr().err
    assert "interrupted (SIGTERM during scoring); run the same command again to resume" in err

    calls = []
    monkeypatch.setattr(run_module, "evaluate", lambda *a, **k: calls.append(1) or
                        real_evaluate(*a, **k))
    trained = losses(outcome.run_dir)
    again = run(cfg)
    assert again.state == "completed" and calls == [1]
    assert "resuming" in capsys.readouterr().out
    assert losses(again.run_dir) == trained  # scoring resumed; nothing was trained again
    assert again.run_dir.status()["attempts"] == 2


def test_sighup_while_loading_data_records_nothing(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setattr(run_module, "load_dataset", lambda cfg: signal_self("SIGHUP"))
    outcome = run(smoke_cfg(tmp_path, data_dir))
    assert outcome.state == "interrupted" and outcome.exit_code == 128 + signal.SIGHUP
    assert not outcome.run_dir.path.exists()
    assert "SIGHUP while loading the dataset" in capsys.readouterr().err


def test_sigterm_while_training_shows_the_real_step(tmp_path, data_dir, monkeypatch):
    signal_at_step(monkeypatch, 6, "SIGTERM")
    outcome = run(smoke_cfg(tmp_path, data_dir))
    status = outcome.run_dir.status()
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert status["state"] == "interrupted" and status["reason"] == "SIGTERM during training"
    assert status["step"] == 6 and status["checkpoint_step"] == 4
    assert status["threads"] == run_module.available_cpus() and status["device"] == "cpu"
    text = report(tmp_path, "default")
    assert "step 6 of 8 (resumes from its checkpoint at step 4)" in text
    assert "SIGTERM during training" in text


def test_threads_are_a_config_key_and_recorded(tmp_path, data_dir):
    outcome = run(smoke_cfg(tmp_path, data_dir, "trainer.threads=1", "trainer.max_steps=2"))
    assert outcome.state == "completed"
    assert outcome.run_dir.status()["threads"] == 1 and torch.get_num_threads() == 1
    torch.set_num_threads(run_module.available_cpus())


def corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, data_dir, capsys):
    cfg = smoke_cfg(tmp_path / "a", data_dir)
    reference = run(cfg)
    rd = reference.run_dir
    assert torch.load(rd.previous_checkpoint, weights_only=True)["global_step"] == 4
    expected = losses(rd)
    # as if the run had been stopped after its last checkpoint was half-written
    rd.update_status(state="interrupted")
    corrupt(rd.last_checkpoint)
    capsys.readouterr()
    outcome = run(cfg)
    err = capsys.readouterr().err
    assert outcome.state == "completed", err
    assert f"warning: {rd.last_checkpoint} is unreadable" in err
    assert "kept aside as last.ckpt.unreadable" in err and "Traceback" not in err
    assert "warning: resuming from the checkpoint before it, previous.ckpt (step 4)" in err
    assert (rd.checkpoints / "last.ckpt.unreadable").exists()
    assert losses(rd) == expected  # steps 5-8 replayed exactly


def test_no_readable_checkpoint_restarts_from_scratch(tmp_path, data_dir, capsys):
    cfg = smoke_cfg(tmp_path, data_dir)
    rd = run(cfg).run_dir
    expected = losses(rd)
    rd.update_status(state="interrupted")
    corrupt(rd.last_checkpoint)
    rd.previous_checkpoint.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    outcome = run(cfg)
    captured = capsys.readouterr()
    assert outcome.state == "completed"
    assert "last.ckpt.unreadable" in captured.err and "previous.ckpt.unreadable" in captured.err
    assert "starts again from step 0" in captured.out
    assert losses(rd) == expected


def test_corrupt_status_is_named_everywhere_and_repaired_by_a_rerun(tmp_path, data_dir,
                                                                    capsys):
    from disbench.aggregate.table import read_study
    from disbench.launch.state import run_state
    from disbench.metrics import cli as eval_cli

    cfg = smoke_cfg(tmp_path, data_dir)
    rd = run(cfg).run_dir
    trained = losses(rd)
    rd.status_file.write_text('{"state": "compl')
    assert run_state(rd) == "unreadable"
    text = report(tmp_path, "default")
    assert "unreadable 1" in text and str(rd.status_file) in text
    (skipped,) = read_study(tmp_path / "default").skipped
    assert str(rd.status_file) in skipped.reason and "cannot be read" in skipped.reason
    assert "rewrites it" in skipped.reason
    capsys.readouterr()
    assert eval_cli.main([str(rd.path)]) == 1
    assert f"{rd.status_file} cannot be read" in capsys.readouterr().err

    outcome = run(cfg)  # the files show the run finished: rebuilt, not trained again
    err = capsys.readouterr().err
    assert outcome.state == "skipped" and "rebuilt as completed" in err
    assert rd.status()["state"] == "completed" and losses(rd) == trained


def test_corrupt_config_is_named_by_eval_and_rewritten_by_a_rerun(tmp_path, data_dir, capsys):
    from disbench.metrics import cli as eval_cli

    cfg = smoke_cfg(tmp_path, data_dir)
    rd = run(cfg).run_dir
    good = rd.config.read_text()
    rd.config.write_text("model: [unclosed\n")
    capsys.readouterr()
    assert eval_cli.main([str(rd.path)]) == 1
    err = capsys.readouterr().err
    assert f"{rd.config} cannot be read" in err and "Traceback" not in err
    assert run(cfg).state == "skipped"
    assert rd.config.read_text() == good
    assert "config.yaml could not be read" in capsys.readouterr().err


def test_corrupt_status_of_an_unfinished_run_is_rewritten_by_the_run(tmp_path, data_dir,
                                                                     monkeypatch, capsys):
    from disbench.launch.cli import sweep_main

    cfg = smoke_cfg(tmp_path, data_dir)
    monkeypatch.setattr(run_module, "evaluate", lambda *a, **k: signal_self("SIGTERM"))
    rd = run(cfg).run_dir
    monkeypatch.undo()
    rd.status_file.write_text("")
    spec = tmp_path / "one.yaml"
    spec.write_text("study: default\ngrid:\n  data: dsprites_procedural\n  arch: mlp\n"
                    "blocks:\n  - model: betavae\n"
                    f"overrides: [trainer=smoke, eval=none, {ARCH}, trainer.max_steps=8]\n")
    monkeypatch.setenv("DISBENCH_RESULTS", str(tmp_path))
    capsys.readouterr()
    assert sweep_main([str(spec), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert f"warning: {rd.status_file} is unreadable" in captured.err
    assert "1 unreadable" in captured.out and "to run: 1" in captured.out
    outcome = run(cfg)
    assert outcome.state == "completed" and rd.status()["state"] == "completed"
    assert "the run goes on from its last checkpoint" in capsys.readouterr().err


def disbench(*args, results, data_dir, **kwargs):
    env = {**os.environ, "DISBENCH_RESULTS": str(results), "DISBENCH_DATA": str(data_dir)}
    return subprocess.Popen([sys.executable, "-m", "disbench.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(predicate, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.2)
    assert predicate(), "timed out"


@pytest.mark.slow
def test_sigterm_to_a_local_sweep_stops_its_workers_and_records_the_run(tmp_path, data_dir):
    """SIGTERM to the sweep's process alone (as `kill` sends it; Ctrl-C reaches the whole
    process group): the sweep passes it on, the run in progress is stored as interrupted
    with its claim released, and the sweep exits 143 saying how to go on."""
    spec = tmp_path / "long.yaml"
    spec.write_text("study: long\ngrid:\n  data: dsprites_procedural\n  arch: mlp\n"
                    "  model: betavae\nblocks:\n  - seed: range(0, 3)\n"
                    "overrides: [trainer=smoke, trainer.max_steps=100000, eval=none]\n")
    proc = disbench("sweep", str(spec), results=tmp_path, data_dir=data_dir)
    study = tmp_path / "long"
    wait_for(lambda: study.exists() and any((p / "losses.csv").exists()
                                            for p in study.iterdir()))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "runs not started are left for the next `disbench sweep`" in err
    assert "(SIGTERM)" in err and "Traceback" not in err
    runs = [store.RunDir(p) for p in study.iterdir() if (p / "status.json").exists()]
    assert [r.status()["reason"] for r in runs] == ["SIGTERM during training"]
    assert not any(r.claim_file.exists() for r in runs)


def test_status_into_a_closed_pipe_ends_quietly(tmp_path, data_dir):
    run(smoke_cfg(tmp_path, data_dir, "trainer.max_steps=1"))
    proc = disbench("status", "default", results=tmp_path, data_dir=data_dir)
    proc.stdout.close()  # the reader is gone before anything is written, as after `| head`
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_the_interruption_is_reported_on_a_line_of_its_own(tmp_path, data_dir, monkeypatch):
    import io

    terminal = io.StringIO()  # stdout and stderr as a terminal shows them: interleaved
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    signal_at_step(monkeypatch, 3, "SIGINT")
    outcome = run(smoke_cfg(tmp_path, data_dir, "trainer.progress_bar=true"))
    err = terminal.getvalue()
    message = f"{outcome.run_dir.path.name} interrupted (SIGINT during training); run the same"
    assert "train:" in err and message in err  # the bar was drawn
    before, after = err.split(message)
    assert before.endswith("\n")  # the bar's line was ended first
    assert "train:" not in after  # and the bar is not drawn again after the message


def test_sigterm_ends_any_command_like_ctrl_c(tmp_path, data_dir, monkeypatch, capsys):
    """`disbench eval` (no run state to record: metrics.json is written whole or not at all)
    ends with the same message and exit code as a run."""
    from disbench.cli import main

    evaluate = importlib.import_module("disbench.metrics.evaluate")
    rd = run(smoke_cfg(tmp_path, data_dir, "trainer.max_steps=1")).run_dir
    monkeypatch.setattr(evaluate, "score_model", lambda *a, **k: signal_self("SIGTERM"))
    capsys.readouterr()
    before = json.loads(rd.metrics.read_text())
    assert main(["eval", str(rd.path), "eval=fast"]) == 128 + signal.SIGTERM
    assert "interrupted (SIGTERM); run the same command again" in capsys.readouterr().err
    assert json.loads(rd.metrics.read_text()) == before
