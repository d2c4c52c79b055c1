"""A run's pictures: the labelled traversal sheet, the animation, the reconstructions."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from disbench.visualize import (
    FRAME,
    GAP,
    GRID,
    INACTIVE_KL,
    _label,
    dimension_order,
    kl_per_dimension,
    reconstruction_sheet,
    save_gif,
    traversal_animation,
    traversal_sheet,
)

LOG_VAR = torch.tensor([0.0, -2.0, -0.5])  # KL per dimension: 0 (+ mean^2 / 2), largest, ...


class Rows(torch.nn.Module):
    """A 3-latent model of 1 x 8 x 8 images: mean = [row means of rows 0, 1, 2]; the
    decoder writes latent j into row j (logits), so each cell is known."""

    def encode(self, x):
        mean = x[:, 0, :3, :].mean(-1) - 0.5
        return mean, LOG_VAR.expand_as(mean)

    def decode(self, z):
        image = torch.full((len(z), 1, 8, 8), -20.0)
        image[:, 0, :3, :] = z[:, :, None] * 4
        return image


def observations(n=5, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


def test_kl_orders_the_rows_and_marks_inactive_dimensions():
    x = observations()
    kl = kl_per_dimension(Rows(), x)
    mean = x[:, 0, :3, :].mean(-1) - 0.5
    var = np.exp(LOG_VAR.numpy())
    expected = (0.5 * (mean**2 + var - np.log(var) - 1)).mean(0)
    np.testing.assert_allclose(kl, expected, rtol=1e-5)
    assert dimension_order(kl, 3) == list(np.argsort(-expected, kind="stable"))
    assert dimension_order(None, 3) == [0, 1, 2]
    assert _label(2, np.array([0, 0, INACTIVE_KL])) == "z2 KL 0.01 inactive"
    assert _label(1, np.array([0, 0.5, 0])) == "z1 KL 0.50"


def test_sheet_has_a_bordered_cell_per_value_and_frames_the_codes_cell():
    x = observations()
    kl = kl_per_dimension(Rows(), x)
    sheet = traversal_sheet(Rows(), x[0], kl, steps=5, limit=2.0)
    cell = 32  # 8-pixel images enlarged 4x
    assert sheet.shape == (14 + 3 * (cell + GAP) + GAP, 120 + 5 * (cell + GAP) + GAP, 3)
    order = dimension_order(kl, 3)
    values = np.linspace(-2, 2, 5)
    mean = x[0, 0, :3, :].mean(-1) - 0.5
    for row, d in enumerate(order):
        y = 14 + GAP + row * (cell + GAP)
        nearest = int(np.abs(values - mean[d]).argmin())
        for col in range(5):
            x0 = 120 + GAP + col * (cell + GAP)
            corner = tuple(sheet[y - 1, x0 - 1])
            assert corner == (FRAME if col == nearest else GRID), (row, col)
            # the swept row of the image shows the value: sigmoid(4 v)
            shade = sheet[y + 4 * d + 1, x0 + 5, 0]
            assert shade == round(255 / (1 + np.exp(-4 * values[col])))


def test_animation_goes_there_and_back_and_is_a_gif(tmp_path):
    frames = traversal_animation(Rows(), observations()[0], None, steps=6)
    assert len(frames) == 2 * 6 - 2
    assert frames[0].shape == (32 + 2 * GAP, 3 * (32 + GAP) + GAP, 3)
    np.testing.assert_array_equal(frames[1], frames[-1])  # -2 -> 2 -> back
    save_gif(tmp_path / "t.gif", frames)
    gif = Image.open(tmp_path / "t.gif")
    assert gif.n_frames == 10 and gif.info["loop"] == 0


def test_reconstructions_sit_below_their_observations():
    x = observations(4)
    sheet = reconstruction_sheet(Rows(), x)
    assert sheet.shape == (2 * (32 + GAP) + GAP, 4 * (32 + GAP) + GAP, 3)
    top = sheet[GAP:GAP + 32, GAP:GAP + 32, 0]
    np.testing.assert_array_equal(top[::4, ::4], (x[0, 0] * 255).round().astype(np.uint8))
    assert sheet[GAP + 32 + GAP + 4 * 5, GAP, 0] == 0  # row 5 of a reconstruction: black
