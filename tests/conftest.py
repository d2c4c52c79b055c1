import os
import subprocess
import sys
import warnings
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
