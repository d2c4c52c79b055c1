"""`disbench data list / info / download / show`, and its errors.

One test starts `disbench data` as a process (its end-to-end test); the others call
`disbench.data.cli.main` in this process."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import pytest

from disbench.data.cli import main


def test_the_data_command_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, "-m", "disbench.cli", "data", "info", "shapes3d",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "https://storage.googleapis.com/3d-shapes/3dshapes.h5" in out.stdout
    assert "sha256:0a0f6ed98baff276" in out.stdout


def test_list(derived_dir, capsys):
    assert main(["list", "--data-dir", str(derived_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("shapes3d", "smallnorb", "cars3d", "mpi3d_real", "xysquares", "scream_dsprites"):
        assert name in out
    assert "floor_hue:10" in out and "48,600" in out and "1,036,800" in out
    line = next(line for line in out.splitlines() if line.startswith("dsprites_procedural"))
    assert "procedural" in line and " yes " in line and "GB" in line
    line = next(line for line in out.splitlines() if line.startswith("scream_dsprites"))
    assert " partly " in line  # the scream image, not the official dSprites


def test_info(tmp_path, capsys):
    assert main(["info", "shapes3d", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "https://storage.googleapis.com/3d-shapes/3dshapes.h5" in out
    assert "sha256:0a0f6ed98baff276" in out and "options: verify=True" in out
    assert main(["info", "scream_dsprites", "--data-dir", str(tmp_path)]) == 0
    assert "checksum none published" in capsys.readouterr().out


def test_show(derived_dir, tmp_path, capsys):
    out = tmp_path / "scream.png"
    assert main(["show", "scream_dsprites", "--data-dir", str(derived_dir), "-o",
                 "source=procedural", "--out", str(out)]) == 0
    image = matplotlib.image.imread(out)
    assert image.shape[0] == 7 * 66 + 2 and image.shape[1] == 10 * 66 + 2  # 2 + 5 factor rows
    assert "row 5: orientation" in capsys.readouterr().out


def test_show_gif_varies_each_factor_in_turn(derived_dir, tmp_path, capsys):
    from PIL import Image

    from disbench import data

    out = tmp_path / "scream.gif"
    assert main(["show", "scream_dsprites", "--gif", "--data-dir", str(derived_dir), "-o",
                 "source=procedural", "--out", str(out), "--seed", "1"]) == 0
    sizes = data.load("scream_dsprites", derived_dir, source="procedural").factor_sizes
    gif = Image.open(out)
    assert gif.n_frames == sum(sizes)  # one frame per value of each factor (captions differ)
    assert gif.size == (140, 64 + 14)
    assert f"{sum(sizes)} frames: each factor in turn" in capsys.readouterr().out


@pytest.mark.slow
def test_download_procedural(xysquares_dir, capsys):
    assert main(["download", "xysquares", "--data-dir", str(xysquares_dir)]) == 0
    assert "xysquares: ready, 262,144 images" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["info", "nope"], "error: unknown dataset 'nope'"),
    (["show", "nope"], "error: unknown dataset 'nope'"),
    (["download", "nope"], "error: unknown dataset 'nope'"),
    (["download", "xysquares", "-o", "colour=red"], "error: bad option for dataset 'xysquares'"),
])
def test_errors(argv, message, tmp_path, capsys):
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_bad_data_dir(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["list", "--data-dir", str(tmp_path / "file")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_download_offline(tmp_path, capsys, monkeypatch):
    from disbench.data import shapes3d

    remote = shapes3d.REMOTE
    monkeypatch.setattr(shapes3d, "REMOTE", remote.__class__(
        "http://127.0.0.1:9/3dshapes.h5", remote.subdir, remote.filename, remote.checksum,
        remote.what))
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    assert main(["download", "shapes3d", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3D Shapes is not on disk") and "Download it yourself" in err


def test_usage_errors(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "disbench data list" in capsys.readouterr().out
