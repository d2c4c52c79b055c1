"""The sweep's progress line (from the store) and `disbench status --watch`."""

from __future__ import annotations

import io
import json

import pytest

from disbench import store
from disbench.launch import status as status_module
from disbench.launch.progress import measure, render


def write(root, name, state, started=None, duration=None, claim=False):
    run = store.RunDir(root / name)
    run.path.mkdir(parents=True)
    if state != "new":
        fields = {"state": state, "run_id": name, "identity": {
            "model": {"name": "betavae"}, "data": {"name": "dsprites"}}}
        if started is not None:
            fields["started_at"] = started
        if duration is not None:
            fields["duration_s"] = duration
        (run.path / "status.json").write_text(json.dumps(fields))
    if claim:
        assert run.try_claim()  # held by this (live) process: running
    return run


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "st"
    runs = [write(root, "a", "completed", started=1000.0, duration=100.0),
            write(root, "b", "completed", started=1100.0, duration=300.0),
            write(root, "c", "failed", started=1200.0, duration=200.0),
            write(root, "d", "running", started=1300.0, claim=True),
            write(root, "e", "running", started=1350.0, claim=True),
            write(root, "f", "interrupted", started=1400.0),  # its process is gone
            write(root, "g", "new")]
    return root, runs


def test_counts_elapsed_and_time_left(study):
    _, runs = study
    progress = measure(runs, now=1600.0)
    assert progress.ended == 3 and progress.total == 7 and not progress.done
    assert progress.elapsed == 600.0  # since the first start
    # median duration of the ended runs (200 s) x 4 to go / 2 running at once
    assert progress.left == 400.0
    assert render(progress) == ("sweep [#########-----------] 3/7 ended (2 completed, "
                                "1 failed), 2 running, 2 to go; 10:00 elapsed, about 6:40 left")
    since = measure(runs, since=1500.0, now=1600.0)
    assert since.elapsed == 100.0


def test_an_ended_sweep_and_one_not_started():
    assert render(measure([])) == "sweep [####################] 0/0 ended, 0 running, 0 to go"


def test_an_ended_sweep_says_no_time_left(tmp_path):
    runs = [write(tmp_path, "a", "completed", started=0.0, duration=3700.0),
            write(tmp_path, "b", "trained", started=10.0, duration=3600.0)]
    progress = measure(runs, now=3710.0)
    assert progress.done and progress.left == 0.0
    assert render(progress, "progress") == ("progress [####################] 2/2 ended (1 "
                                            "completed, 1 trained), 0 running, 0 to go; "
                                            "1:01:50 elapsed")


def test_status_shows_the_line_and_watch_refreshes_until_nothing_runs(study, monkeypatch):
    root, runs = study
    text, moving = status_module.view(root.parent, "st")  # g has no status.json: not listed
    assert moving and "progress [##########----------] 3/6 ended" in text
    refreshes = []

    def sleep(seconds):  # between two views: the running runs end
        refreshes.append(seconds)
        for run in runs[3:5]:
            run.update_status(state="completed", duration_s=50.0)
            run.release_claim()

    monkeypatch.setattr(status_module.time, "sleep", sleep)
    out = io.StringIO()
    status_module.watch(root.parent, "st", interval=2.5, stream=out)
    shown = out.getvalue()
    assert refreshes == [2.5]
    assert shown.count("study st: 6 runs") == 2
    assert "refreshing every 2.5 s (Ctrl-C to stop watching)" in shown
    assert shown.rstrip().endswith("nothing of the study is running or queued")
    assert "5/6 ended (4 completed, 1 failed), 0 running, 1 to go" in shown
    assert "\x1b[2J" not in shown  # the screen is cleared on a terminal only


def test_watch_refuses_a_bad_interval(study, disbench_in_process):
    root, _ = study
    out = disbench_in_process(["status", "st", "--results", str(root.parent), "--watch",
                               "--interval", "0"], root.parent)
    assert out.returncode == 2 and "--interval 0: expected seconds > 0" in out.stderr
