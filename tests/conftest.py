import multiprocessing
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """The data directory of the tests, where nothing else says one (the caches a metric
    keeps there, such as the generation scores' feature extractors, stay out of the
    user's), is the test session's own.

    Under pytest-xdist (`-n N`), each worker process and what it starts runs on its own
    share of the CPUs, so that N workers' torch threads do not fight over the same cores
    (and `trainer.threads`' default, the CPUs a process may use, is that share)."""
    os.environ.setdefault("DISBENCH_DATA", str(REPO / ".cache" / "test-data"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if not worker or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    share = cpus[int(worker.removeprefix("gw")) % len(cpus)::count] if count <= len(cpus) \
        else [cpus[int(worker.removeprefix("gw")) % len(cpus)]]
    os.sched_setaffinity(0, share)


def pytest_collection_modifyitems(config, items):
    """The SLURM tests share one single-node cluster: under pytest-xdist with
    `--dist loadgroup` they run one after another on one worker. The long tests (SLURM,
    then slow) start first, so that the short ones fill the workers in the end."""
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
    items.sort(key=lambda item: 0 if item.get_closest_marker("slurm") else
               1 if item.get_closest_marker("slow") else 2)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A data directory shared by the whole test session (the procedural dSprites
    cache is rendered once, ~12 s, 2.9 GB); $DISBENCH_DATA wins if set."""
    path = Path(os.environ.get("DISBENCH_DATA") or REPO / ".cache" / "test-data")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def disbench_in_process(monkeypatch, capsys):
    """`disbench ARGS` called in this process (`disbench.cli.main`), as a
    `subprocess.CompletedProcess`: the return value or `SystemExit` code is `returncode`,
    what it printed is `stdout` and `stderr`. `env` entries are set for the call (and
    stay until the test ends); `cwd` is the working directory. Hydra's global state,
    `sys.argv` and the warnings format are restored afterwards.

    A fresh process (`python -m disbench.cli`) costs seconds of imports: keep that for
    the one end-to-end test of each command, and for tests about the process itself."""
    from hydra.core.global_hydra import GlobalHydra

    from disbench.cli import main

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # `disbench train` rewrites it
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)

    def call(args, cwd=None, **env) -> subprocess.CompletedProcess:
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()  # only what this command prints
        try:
            code = main(list(args))
        except SystemExit as exit_:  # as the interpreter turns it into an exit status
            code = 0 if exit_.code is None else exit_.code
            if not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
        finally:
            GlobalHydra.instance().clear()  # `disbench train` runs Hydra's app
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["disbench", *args], code, out.out, out.err)

    yield call
    GlobalHydra.instance().clear()


@pytest.fixture
def in_process(disbench_in_process, tmp_path, data_dir):
    """`disbench ARGS` in this process with tmp_path as $DISBENCH_RESULTS and the shared
    data directory as $DISBENCH_DATA."""
    return lambda args: disbench_in_process(args, DISBENCH_RESULTS=tmp_path,
                                            DISBENCH_DATA=data_dir)


@pytest.fixture(scope="session")
def new_process():
    """`multiprocessing.Process` for a test about a process of its own (killed, stopped)
    that runs one of the test's functions: forked from a server that has imported torch,
    Lightning and disbench's training once, where a fresh interpreter spends seconds on
    those imports each time. Nothing runs in the server, so each process starts as a new
    one would; but with the server's environment, not the test's (pass paths as
    overrides, not in $DISBENCH_RESULTS)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["disbench.config", "disbench.models", "disbench.train.run"])
    return context.Process
