"""Attri-VAE's attribute regularisation against explicit loops (float64), its step, and the
labelled training path it needs (the subset, the factors it sees, its record)."""

import json

import numpy as np
import pytest
import tiny
import torch

from disbench.config import compose
from disbench.data.base import GridDataset
from disbench.errors import DisbenchError
from disbench.models.attrivae import attribute_regularization
from disbench.models.base import Labels, gaussian_kl
from disbench.models.reconstruction import bernoulli
from disbench.train.module import labelled_factors, labelled_subset
from disbench.train.run import check_objective, run

Z = np.array([[0.3, -1.2], [1.1, 0.4], [-0.5, 0.9], [0.2, 0.1]])
A = np.array([[0.0, 1.0], [0.5, 1.0], [0.25, 0.0], [1.0, 0.5]])


def ar_by_loops(z, a, delta):
    total = 0.0
    n = len(z)
    for r in range(z.shape[1]):
        pairs = 0.0
        for i in range(n):
            for j in range(n):
                dz, da = z[i, r] - z[j, r], a[i, r] - a[j, r]
                pairs += abs(np.tanh(delta * dz) - (da > 0) + (da < 0))
        total += pairs / n**2
    return total


@pytest.mark.parametrize("delta", [1.0, 10.0])
def test_attribute_regularization_matches_loops(delta):
    got = attribute_regularization(torch.tensor(Z), torch.tensor(A), delta)
    assert got.item() == pytest.approx(ar_by_loops(Z, A, delta), rel=1e-12)


def test_attribute_regularization_vanishes_when_the_order_is_kept():
    z = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    a = torch.tensor([[0.1], [0.2], [0.5], [0.9]], dtype=torch.float64)
    # monotone: every off-diagonal pair has |tanh(delta dz)| -> 1 with the right sign
    assert attribute_regularization(z, a, 100.0).item() < 1e-12
    # reversed order: each off-diagonal pair is off by ~2; 12 of 16 pairs
    assert attribute_regularization(-z, a, 100.0).item() == pytest.approx(2 * 12 / 16)


def labels_for(x, factors, names=("a", "b", "c")):
    return Labels(x, torch.tensor(factors), names)


def test_step_adds_gamma_times_the_regularization_of_the_labelled_batch(float64):
    model = tiny.build("attrivae", beta=2.0, gamma=3.0, delta=5.0, attributes=["c", "a"])
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    xl = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    factors = [[0.0, 0.5, 1.0], [1.0, 0.0, 0.5], [0.5, 0.5, 0.0], [0.25, 1.0, 0.75]]
    out = model.step(x, 0, torch.Generator().manual_seed(7), labels=labels_for(xl, factors))

    # the same draws by hand: the batch's sample first, then the labelled batch's
    g = torch.Generator().manual_seed(7)
    mean, log_var = model.encode(x)
    z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=g)
    elbo_part = bernoulli(model.decode(z), x) + 2.0 * gaussian_kl(mean, log_var)
    mean_l, log_var_l = model.encode(xl)
    zl = mean_l + torch.exp(0.5 * log_var_l) * torch.randn(mean_l.shape, generator=g)
    f = np.array(factors)[:, [2, 0]]  # dimension 0 tied to c, 1 to a
    ar = ar_by_loops(zl[:, :2].detach().numpy(), f, 5.0)
    assert out.terms["attribute_regularization"].item() == pytest.approx(ar, rel=1e-10)
    assert out.losses["model"].item() == pytest.approx(elbo_part.item() + 3.0 * ar, rel=1e-10)


def test_unknown_attribute_and_too_many_attributes_are_refused():
    model = tiny.build("attrivae", attributes=["shape"])
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(DisbenchError, match="no factor 'shape'; its factors: a, b, c"):
        model.step(x, 0, torch.Generator(), labels=labels_for(x, [[0.0] * 3] * 2))
    with pytest.raises(ValueError, match="4 attributes for 3 latent dimensions"):
        tiny.build("attrivae", attributes=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="label_fraction"):
        tiny.build("attrivae", label_fraction=1.5)


def test_labelled_subset_is_the_seeds_own():
    a = labelled_subset(10_000, 0.01, seed=3)
    assert len(a) == 100 and len(np.unique(a)) == 100 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, labelled_subset(10_000, 0.01, seed=3))
    assert not np.array_equal(a, labelled_subset(10_000, 0.01, seed=4))
    assert len(labelled_subset(50, 0.001, seed=0)) == 1  # never none
    assert len(labelled_subset(50, 1.0, seed=0)) == 50


def test_labelled_factors_are_value_indices_scaled_to_one():
    images = np.zeros((3 * 5 * 1, 1, 2, 2), dtype=np.uint8)
    grid = GridDataset("toy", ("u", "v", "w"), (3, 5, 1), images, source="test")
    index = np.array([0, 4, 7, 14])  # row-major: (0,0,0) (0,4,0) (1,2,0) (2,4,0)
    expected = [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [1.0, 1.0, 0.0]]
    assert labelled_factors(grid, index).tolist() == expected


OVERRIDES = ["model=attrivae", "data=xysquares", "arch=mlp", tiny.ARCH, "trainer=smoke",
             "eval=none", "trainer.max_steps=6", "trainer.batch_size=8", "trainer.threads=1",
             "model.label_fraction=0.001"]


@pytest.mark.slow
def test_a_semi_supervised_run_records_its_labelled_subset(tmp_path, data_dir):
    cfg = compose([*OVERRIDES, f"paths.results={tmp_path}", f"paths.data={data_dir}",
                   "seed=2"])
    outcome = run(cfg)
    assert outcome.state == "completed", outcome.reason
    stored = np.load(outcome.run_dir.labelled)
    assert np.array_equal(stored, labelled_subset(8**6, 0.001, seed=2))
    status = json.loads(outcome.run_dir.status_file.read_text())
    assert status["labelled"] == {"fraction": 0.001, "count": 262, "of": 8**6,
                                  "file": "labelled.npy"}
    header = outcome.run_dir.losses.read_text().splitlines()[0]
    assert "attribute_regularization" in header


def test_a_factor_the_dataset_lacks_is_refused_before_training(tmp_path, data_dir):
    from disbench.train.run import load_dataset

    cfg = compose([*OVERRIDES, f"paths.results={tmp_path}", f"paths.data={data_dir}",
                   "model.attributes=[x_R,shape]"])
    with pytest.raises(DisbenchError, match="no factor 'shape'; its factors: x_R, y_R"):
        check_objective(cfg, load_dataset(cfg))
    assert not any(tmp_path.iterdir())
