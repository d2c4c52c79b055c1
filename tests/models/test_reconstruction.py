"""The reconstruction losses against explicit computations on hand-made tensors (float64),
and the augmented loss of Michlo et al. (2023) on XYSquares squares."""

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from disbench import config, models
from disbench.config import CONF_DIR
from disbench.data.xysquares import SQUARE, render, square_masks
from disbench.models.reconstruction import (
    AUGMENT_RADIUS,
    augment_weight,
    augmented,
    bernoulli,
    box_blur,
    gaussian,
    reconstruction_loss,
)

# two images, two channels, 3 x 4 pixels
LOGITS = np.array([
    [[[2.0, -1.0, 0.0, 0.5], [1.5, -0.3, 3.0, -2.0], [0.1, 0.2, -0.7, 1.0]],
     [[-1.2, 0.4, 2.2, 0.0], [0.9, -2.5, 0.3, 1.1], [-0.6, 1.8, -1.4, 0.7]]],
    [[[0.3, 0.3, -1.0, 2.0], [-0.5, 0.8, 0.0, -1.5], [1.2, -0.9, 0.6, 0.2]],
     [[2.4, -0.2, -0.8, 1.3], [0.0, 0.5, -1.1, 0.9], [-2.0, 1.0, 0.4, -0.3]]],
])
X = np.array([
    [[[1.0, 0.0, 0.5, 1.0], [0.0, 0.2, 1.0, 0.0], [0.7, 1.0, 0.0, 0.3]],
     [[0.0, 1.0, 1.0, 0.4], [0.6, 0.0, 0.1, 1.0], [0.0, 0.9, 0.0, 1.0]]],
    [[[0.2, 0.8, 0.0, 1.0], [0.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.3, 0.6]],
     [[1.0, 0.1, 0.0, 0.9], [0.4, 0.5, 0.0, 1.0], [0.0, 1.0, 0.7, 0.2]]],
])
N, C, H, W = X.shape


pytestmark = pytest.mark.usefixtures("float64")


def sigmoid(a):
    return 1 / (1 + math.exp(-a))


def per_image_sum(fn, *arrays):
    """mean over images of the sum over (c, i, j) of fn(values at that pixel)."""
    n, c, h, w = arrays[0].shape
    return sum(fn(*(a[b, k, i, j] for a in arrays)) for b in range(n) for k in range(c)
               for i in range(h) for j in range(w)) / n


def box_blur_by_loops(images, radius):
    """Each pixel: the sum of the pixels within `radius` (Chebyshev) inside the image,
    divided by the full box size (2r+1)^2: a normalised box, zeros outside the image."""
    n, c, h, w = images.shape
    out = np.zeros_like(images)
    for b in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    total = 0.0
                    for di in range(-radius, radius + 1):
                        for dj in range(-radius, radius + 1):
                            if 0 <= i + di < h and 0 <= j + dj < w:
                                total += images[b, k, i + di, j + dj]
                    out[b, k, i, j] = total / (2 * radius + 1) ** 2
    return out


def test_bernoulli_is_the_summed_cross_entropy_by_loops():
    def nll(logit, x):
        p = sigmoid(logit)
        return -(x * math.log(p) + (1 - x) * math.log(1 - p))
    expected = per_image_sum(nll, LOGITS, X)
    got = bernoulli(torch.tensor(LOGITS), torch.tensor(X)).item()
    assert got == pytest.approx(expected, rel=1e-12)


def test_gaussian_is_half_the_summed_squared_error_plus_its_constant():
    d = C * H * W
    expected = per_image_sum(lambda logit, x: 0.5 * (x - sigmoid(logit)) ** 2, LOGITS, X)
    expected += 0.5 * d * math.log(2 * math.pi)
    got = gaussian(torch.tensor(LOGITS), torch.tensor(X)).item()
    assert got == pytest.approx(expected, rel=1e-12)
    # the unit-variance Gaussian NLL of x around sigmoid(logits), pixel by pixel
    mean = torch.sigmoid(torch.tensor(LOGITS))
    nll = -torch.distributions.Normal(mean, 1.0).log_prob(torch.tensor(X))
    assert got == pytest.approx(nll.flatten(1).sum(1).mean().item(), rel=1e-12)


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_box_blur_is_the_zero_padded_normalised_box_by_loops(radius):
    got = box_blur(torch.tensor(X), radius).numpy()
    assert got.shape == X.shape
    assert np.allclose(got, box_blur_by_loops(X, radius), rtol=1e-12, atol=1e-15)


def test_box_kernel_sums_to_one_and_the_outside_is_zero():
    ones = torch.ones(1, 1, 9, 9)
    blurred = box_blur(ones, 1)[0, 0]
    assert blurred[4, 4].item() == pytest.approx(1.0)      # a full box: its weights sum to 1
    assert blurred[0, 0].item() == pytest.approx(4 / 9)    # a corner sees 4 of 9 pixels
    assert blurred[0, 4].item() == pytest.approx(6 / 9)
    # channels are blurred separately
    two = torch.zeros(1, 2, 5, 5)
    two[0, 0, 2, 2] = 1.0
    assert box_blur(two, 1)[0, 1].abs().max().item() == 0.0


def test_augmented_is_eq_11_by_loops():
    radius = 1
    alpha = (2 * radius + 1) ** 2
    mean = np.vectorize(sigmoid)(LOGITS)
    blurred_mean, blurred_x = box_blur_by_loops(mean, radius), box_blur_by_loops(X, radius)
    plain = per_image_sum(lambda m, x: 0.5 * (x - m) ** 2, mean, X)
    aug = per_image_sum(lambda m, x: 0.5 * (x - m) ** 2, blurred_mean, blurred_x)
    expected = plain + 0.5 * C * H * W * math.log(2 * math.pi) + alpha * aug
    got = augmented(torch.tensor(LOGITS), torch.tensor(X), radius).item()
    assert got == pytest.approx(expected, rel=1e-12)
    assert reconstruction_loss("augmented", torch.tensor(LOGITS), torch.tensor(X),
                               radius).item() == pytest.approx(expected, rel=1e-12)


def test_the_papers_radius_and_weight_everywhere():
    # box blur radius 31 (63 x 63), alpha = 63^2 = 3969 (Michlo et al., section 6.1, Table A4)
    assert AUGMENT_RADIUS == 31 and augment_weight(31) == 3969.0
    assert models.hyperparameters("vae")["augment_radius"].default == AUGMENT_RADIUS
    assert config.IMPLICIT["model"]["augment_radius"] == AUGMENT_RADIUS
    radii = {path.name: OmegaConf.load(path).get("augment_radius")
             for path in (CONF_DIR / "model").glob("*.yaml")}
    assert radii["vae.yaml"] == AUGMENT_RADIUS
    assert all(r == AUGMENT_RADIUS for r in radii.values() if r is not None), radii


# -- XYSquares -------------------------------------------------------------------------


def square(x_px: int, y_px: int) -> np.ndarray:
    """A 64x64 plane with an 8x8 square of ones at pixel offset (x_px, y_px), drawn as
    XYSquares draws its squares (rows y, columns x)."""
    plane = np.zeros((64, 64))
    plane[y_px:y_px + SQUARE, x_px:x_px + SQUARE] = 1.0
    return plane


def observation(*positions_px) -> torch.Tensor:
    """(1, 3, 64, 64): channel c shows square c at pixel offset positions_px[c]."""
    return torch.tensor(np.stack([square(x, y) for x, y in positions_px]))[None]


def as_logits(image: torch.Tensor) -> torch.Tensor:
    """A reconstruction that is `image` (sigmoid 0 or 1 to double precision)."""
    return torch.where(image > 0.5, 40.0, -40.0)


def losses(target: torch.Tensor, recon: torch.Tensor) -> dict[str, float]:
    logits = as_logits(recon)
    return {"augmented": augmented(logits, target).item(),
            "gaussian": gaussian(logits, target).item(),
            "bernoulli": bernoulli(logits, target).item()}


def test_observations_are_drawn_as_the_dataset_draws_them():
    masks = square_masks() / 255.0
    for x in range(8):
        for y in range(8):
            assert np.array_equal(square(SQUARE * x, SQUARE * y), masks[x, y])
    images = np.zeros((2**6, 3, 64, 64), dtype=np.uint8)
    render(images, positions=2)
    grid = images.reshape((2,) * 6 + (3, 64, 64)) / 255.0
    factors = (1, 0, 0, 1, 1, 1)  # x_R, y_R, x_G, y_G, x_B, y_B
    expected = observation(*((SQUARE * factors[2 * c], SQUARE * factors[2 * c + 1])
                             for c in range(3)))
    assert np.array_equal(grid[factors], expected[0].numpy())


FIXED = ((24, 40), (48, 8))  # the green and blue squares, where the shifts leave them


@pytest.mark.parametrize("axis", ["x", "y"])
def test_augmented_loss_grows_with_the_shift_where_the_plain_loss_goes_flat(axis):
    # the red square at (0, 16), and the same square shifted by s pixels along one axis
    def at(s):
        return (s, 16) if axis == "x" else (16, s)
    target = observation(at(0), *FIXED)
    shifts = range(0, 57)  # up to 7 grid steps of 8 pixels
    values = [losses(target, observation(at(s), *FIXED)) for s in shifts]
    aug = np.array([v["augmented"] for v in values])
    assert np.all(np.diff(aug) > 1.0), "augmented must grow with every pixel of shift"
    for name in ("gaussian", "bernoulli"):
        plain = np.array([v[name] for v in values])
        # overlapping (s < 8): grows with the shift; disjoint (s >= 8): one constant
        assert np.all(np.diff(plain[:SQUARE + 1]) > 0), name
        assert np.allclose(plain[SQUARE:], plain[SQUARE], rtol=0, atol=1e-9), name
        assert plain[SQUARE] > plain[0]
    # at the paper's radius, two squares seven grid steps apart still overlap once blurred
    assert aug[-1] - aug[SQUARE] > aug[SQUARE] - aug[0]


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_on_the_xysquares_grid_every_step_is_the_same_to_the_plain_loss(channel):
    # moving one square along the dataset's 8 grid positions (one factor): every position
    # but its own is equally far under the plain loss, ordered by distance under augmented
    masks = square_masks() / 255.0
    base = [masks[2, 5], masks[6, 1], masks[4, 4]]

    def image(x):
        planes = list(base)
        planes[channel] = masks[x, 5 if channel == 0 else 1 if channel == 1 else 4]
        return torch.tensor(np.stack(planes))[None]
    target = image(0)
    values = [losses(target, image(x)) for x in range(8)]
    aug = [v["augmented"] for v in values]
    assert all(b > a for a, b in zip(aug, aug[1:]))
    for name in ("gaussian", "bernoulli"):
        plain = [v[name] for v in values]
        assert plain[1] > plain[0]
        assert plain[1:] == pytest.approx([plain[1]] * 7, rel=0, abs=1e-9)
