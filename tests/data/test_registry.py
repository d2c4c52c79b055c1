"""The registry, the config files and GridDataset's hidden instances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import disbench
from disbench import data
from disbench.data import GridDataset
from disbench.errors import DisbenchError

CONF = Path(disbench.__file__).parent / "conf" / "data"
OFFICIAL = ["dsprites", "shapes3d", "smallnorb", "cars3d", "mpi3d_toy", "mpi3d_realistic",
            "mpi3d_real"]


def test_every_dataset_has_a_config_whose_keys_the_loader_accepts():
    configs = {p.stem: yaml.safe_load(p.read_text()) for p in CONF.glob("*.yaml")}
    assert sorted(configs) == data.names()
    for name, config in configs.items():
        assert config.pop("name") == name
        assert set(config) <= set(data.options(name)), name
        if name in OFFICIAL or name.endswith("_dsprites") and name != "dsprites_procedural":
            assert config["verify"] is True


def test_every_dataset_is_described():
    for name in data.names():
        info = data.info(name)
        assert info.name == name and len(info.factor_names) == len(info.factor_sizes)
        for remote in info.remotes:
            algorithm = (remote.checksum or "none:").split(":")[0]
            assert algorithm in ("sha256", "md5") or remote.filename == "scream.jpg"
    assert data.info("smallnorb").num_images == 48600
    assert data.info("mpi3d_real").num_images == 1036800


def test_unknown_name_bad_option_bad_dir(tmp_path):
    with pytest.raises(DisbenchError, match="unknown dataset 'nope'; valid names: cars3d"):
        data.load("nope", tmp_path)
    with pytest.raises(DisbenchError, match="bad option for dataset 'shapes3d'.*accepts: verify"):
        data.load("shapes3d", tmp_path, colour=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DisbenchError, match="is not a directory"):
        data.load("xysquares", tmp_path / "file")


def test_unwritable_data_dir_for_a_procedural_dataset(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DisbenchError, match="could not write the dataset cache"):
        data.load("dsprites_procedural", tmp_path / "file" / "sub")


def test_offline_official_dataset_says_what_to_do(data_dir, monkeypatch):
    from disbench.data import shapes3d

    remote = shapes3d.REMOTE
    monkeypatch.setattr(shapes3d, "REMOTE", remote.__class__(
        "http://127.0.0.1:9/3dshapes.h5", remote.subdir, remote.filename, remote.checksum,
        remote.what))
    with pytest.raises(DisbenchError) as err:
        data.load("shapes3d")
    assert "3D Shapes is not on disk" in str(err.value)
    assert str(data_dir / "3dshapes" / "3dshapes.h5") in str(err.value)


def test_instances():
    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1)  # 2 x 3 grid x 2 instances
    ds = GridDataset("t", ("a", "b"), (2, 3), images, "test", instances=2)
    assert not ds.deterministic and len(ds) == 12
    assert list(ds.index_of(np.array([[0, 0], [1, 2]]))) == [0, 10]
    assert ds.factors_of(np.array([10, 11])).tolist() == [[1, 2], [1, 2]]
    obs = ds.sample_observations_from_factors(np.array([[1, 2]] * 100), np.random.default_rng(0))
    assert set(np.round(obs.ravel() * 255).astype(int)) == {10, 11}
    with pytest.raises(ValueError, match="x 3 instances"):
        GridDataset("t", ("a", "b"), (2, 3), images, "test", instances=3)
    assert GridDataset("t", ("a",), (12,), images, "test").deterministic
