"""Color-, Noisy- and Scream-dSprites: each transform against its definition in
disentanglement_lib, on fixed torch and numpy generator states."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_file_helpers import write_jpeg
from PIL import Image

from disbench import data
from disbench.data import dsprites_variants as variants
from disbench.errors import DisbenchError

N = 16


@pytest.fixture(scope="module")
def sprites(procedural_dir) -> torch.Tensor:
    """16 stored dSprites images (uint8 0/255, (16, 1, 64, 64))."""
    ds = data.load("dsprites_procedural", procedural_dir)
    index = np.random.default_rng(0).integers(len(ds), size=N)
    return torch.from_numpy(np.ascontiguousarray(ds.images[np.sort(index)]))


def generators(seed: int = 3):
    """Two equal generators of each kind: one for observe, one to redraw what it drew."""
    torch_a, torch_b = torch.Generator(), torch.Generator()
    torch_a.manual_seed(seed)
    torch_b.manual_seed(seed)
    return [(torch_a, torch_b), (np.random.default_rng(seed), np.random.default_rng(seed))]


def draw_uniform(rng, shape, low=0.0, high=1.0) -> np.ndarray:
    if isinstance(rng, torch.Generator):
        return (torch.rand(shape, generator=rng) * (high - low) + low).numpy()
    return rng.uniform(low, high, shape).astype(np.float32)


def draw_integers(rng, high, num) -> np.ndarray:
    if isinstance(rng, torch.Generator):
        return torch.randint(high, (num,), generator=rng).numpy()
    return rng.integers(high, size=num)


def dataset(cls, sprites, **kwargs):
    images = sprites.numpy()
    return cls(cls.__name__, ("i",), (len(images),), images, "test", **kwargs)


@pytest.mark.parametrize("kind", [0, 1], ids=["torch", "numpy"])
def test_color(sprites, kind):
    rng, replay = generators()[kind]
    obs = dataset(variants.ColorDSprites, sprites).observe(sprites, rng).numpy()
    sprite = np.repeat(sprites.numpy() / 255.0, 3, axis=1)  # reference: repeat to 3 channels
    colour = draw_uniform(replay, (N, 3, 1, 1), 0.5, 1.0)
    assert obs.shape == (N, 3, 64, 64) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, sprite * colour, rtol=1e-6)
    on = obs[np.broadcast_to(sprites.numpy() == 255, obs.shape)]
    assert on.min() >= 0.5 and on.max() < 1 and (obs[sprite == 0] == 0).all()


@pytest.mark.parametrize("kind", [0, 1], ids=["torch", "numpy"])
def test_noisy(sprites, kind):
    rng, replay = generators()[kind]
    obs = dataset(variants.NoisyDSprites, sprites).observe(sprites, rng).numpy()
    sprite = np.repeat(sprites.numpy() / 255.0, 3, axis=1)
    noise = draw_uniform(replay, (N, 3, 64, 64))
    np.testing.assert_allclose(obs, np.minimum(sprite + noise, 1.0), rtol=1e-6)
    assert (obs[sprite == 1] == 1).all()
    background = obs[sprite == 0]
    assert 0 <= background.min() and background.max() < 1
    assert abs(background.mean() - 0.5) < 0.01  # U(0, 1), independent per channel
    assert not np.array_equal(obs[:, 0], obs[:, 1])


@pytest.mark.parametrize("kind", [0, 1], ids=["torch", "numpy"])
def test_scream(sprites, kind, tmp_path):
    write_jpeg(tmp_path / "scream.jpg")
    scream = variants.load_scream_image(tmp_path / "scream.jpg")
    assert scream.shape == (274, 350, 3) and scream.dtype == np.float32
    rng, replay = generators()[kind]
    obs = dataset(variants.ScreamDSprites, sprites, scream=scream).observe(sprites, rng).numpy()
    top = draw_integers(replay, 274 - 64, N)
    left = draw_integers(replay, 350 - 64, N)
    colour = draw_uniform(replay, (N, 3))
    for i in range(N):
        patch = scream[top[i]:top[i] + 64, left[i]:left[i] + 64].transpose(2, 0, 1)
        background = (patch + colour[i][:, None, None]) / 2
        mask = np.repeat(sprites[i].numpy() == 255, 3, axis=0)
        expected = np.where(mask, 1 - background, background)
        np.testing.assert_allclose(obs[i], expected, rtol=1e-6, atol=1e-7)


def test_scream_image_as_old_pil_thumbnail(tmp_path):
    """The reference's thumbnail((350, 274)) on PIL < 7: floor sizes, draft, bicubic."""
    assert variants._thumbnail_size((3648, 4500), (350, 274)) == (222, 274)
    assert variants._thumbnail_size((700, 548), (350, 274)) == (350, 274)
    assert variants._thumbnail_size((300, 200), (350, 274)) == (300, 200)
    write_jpeg(tmp_path / "big.jpg", 1400, 1100)
    image = variants.load_scream_image(tmp_path / "big.jpg")
    assert variants._thumbnail_size((1400, 1100), (350, 274)) == (348, 274)
    with Image.open(tmp_path / "big.jpg") as pil:
        pil.draft(None, (348, 274))  # 1400 // 348 = 4: decoded at quarter size
        assert pil.size == (350, 275)
        expected = np.asarray(pil.resize((348, 274), Image.Resampling.BICUBIC)) / 255
    assert image.shape == (274, 348, 3)
    np.testing.assert_allclose(image, expected, atol=1e-6)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DisbenchError, match="not a readable image"):
        variants.load_scream_image(tmp_path / "bad.jpg")


@pytest.mark.parametrize("name", ["color_dsprites", "noisy_dsprites", "scream_dsprites"])
def test_loaders_over_procedural_dsprites(name, derived_dir):
    ds = data.load(name, derived_dir, source="procedural")
    assert ds.observation_shape == (3, 64, 64) and not ds.deterministic
    assert ds.source == "procedural" and ds.images.shape[1] == 1
    rng = np.random.default_rng(0)
    factors = ds.sample_factors(8, rng)
    a = ds.sample_observations_from_factors(factors, rng)
    b = ds.sample_observations_from_factors(factors, rng)
    assert a.shape == (8, 3, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, b)  # random transforms: same factors, new observations
    with pytest.raises(DisbenchError, match="data.source must be one of official, procedural"):
        data.load(name, derived_dir, source="nope")
