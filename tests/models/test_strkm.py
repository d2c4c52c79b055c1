"""St-RKM's losses against independent computations on hand-made tensors (float64), its
optimiser split, and U kept on the Stiefel manifold while it trains."""

import numpy as np
import pytest
import tiny
import torch
from omegaconf import OmegaConf
from torch import nn

from disbench import models
from disbench.models.strkm import StRKM
from disbench.train.cayley_adam import CayleyAdam
from disbench.train.optimizers import build_optimizers
from disbench.zoo import build_model

NAME = "strkm"
SHAPE = (1, 2, 2)  # four pixels
X = np.array([[0.0, 0.5, 1.0, 0.2], [0.9, 0.1, 0.3, 0.7], [0.4, 0.4, 0.8, 0.0],
              [1.0, 0.0, 0.6, 0.5], [0.2, 0.3, 0.1, 0.9]])
A = np.array([[0.5, -1.0, 0.3, 0.2], [1.2, 0.4, -0.6, 0.1], [-0.3, 0.8, 0.9, -0.5],
              [0.7, -0.2, 0.0, 1.1]])  # features phi(x) = x A, d = 4
B = np.array([[1.0, -0.5, 0.3, 0.8], [-0.4, 0.9, 1.1, -0.2], [0.6, 0.2, -1.3, 0.5],
              [0.1, -0.7, 0.4, 1.0]])  # decoder logits = z B
U, _ = np.linalg.qr(np.array([[1.0, 0.2], [0.3, -1.0], [0.5, 0.4], [-0.2, 0.7]]))  # 4 x 2

pytestmark = pytest.mark.usefixtures("float64")


class LinearEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(A))

    def forward(self, x):
        phi = x.flatten(1) @ self.weight
        return phi, torch.zeros_like(phi)


class LinearDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(B))

    def forward(self, z):
        return (z @ self.weight).view(-1, *SHAPE)


def linear_model(**hyper):
    model = models.build({"name": NAME, "feature_dim": 4, **hyper}, LinearEncoder(),
                         LinearDecoder(), 2)
    with torch.no_grad():
        model.manifold.copy_(torch.tensor(U))
    return model


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def expected_terms(variant, sigma, lambda_ae, eps):
    """The loss by explicit loops over points, pixels and features."""
    n = len(X)
    phi = X @ A
    mean = [sum(phi[i, j] for i in range(n)) / n for j in range(4)]
    centred = np.array([[phi[i, j] - mean[j] for j in range(4)] for i in range(n)])
    pca = 0.0
    for i in range(n):
        h = U.T @ centred[i]
        pca += sum((centred[i, j] - (U @ h)[j]) ** 2 for j in range(4)) / n
    recon = split = 0.0
    for i in range(n):
        h = U.T @ centred[i]
        image = sigmoid((U @ h) @ B)
        noisy = sigmoid((U @ (h + sigma * eps[i])) @ B)
        if variant == "noisy":
            recon += sum((X[i, p] - noisy[p]) ** 2 for p in range(4)) / n
        else:
            recon += sum((X[i, p] - image[p]) ** 2 for p in range(4)) / n
            split += sum((image[p] - noisy[p]) ** 2 for p in range(4)) / n
    ae = 0.5 * (recon + split) if variant == "split" else 0.5 * recon
    return {"loss": lambda_ae * ae + pca, "reconstruction": recon, "pca": pca, "split": split}


@pytest.mark.parametrize("variant,sigma,lambda_ae", [("deterministic", 1e-3, 1.0),
                                                     ("noisy", 0.3, 1.0), ("split", 0.3, 2.5)])
def test_step_losses_match_an_independent_computation(variant, sigma, lambda_ae):
    model = linear_model(variant=variant, sigma=sigma, lambda_ae=lambda_ae)
    x = torch.tensor(X).view(-1, *SHAPE)
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(4))
    eps = torch.randn((len(X), 2), generator=torch.Generator().manual_seed(4)).numpy()
    expected = expected_terms(variant, sigma, lambda_ae, eps)
    assert out.losses["model"] is out.losses["manifold"]
    for key in ("loss", "reconstruction", "pca"):
        assert out.terms[key].item() == pytest.approx(expected[key], rel=1e-10), key
    if variant == "split":
        assert out.terms["split"].item() == pytest.approx(expected["split"], rel=1e-10)
        assert expected["split"] > 0
    else:
        assert "split" not in out.terms
    assert out.terms["orthogonality"].item() < 1e-12


def test_pca_gradient_on_u_is_the_released_codes():
    # d/dU 1/n tr(C - U U^T C) = -2 C U / n, C the centred features' scatter matrix
    model = linear_model()
    x = torch.tensor(X).view(-1, *SHAPE)
    model.lambda_ae = 0.0
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(0))
    out.losses["manifold"].backward()
    phi = X @ A
    centred = phi - phi.mean(0)
    assert np.allclose(model.manifold.grad.numpy(), -2 * centred.T @ centred @ U / len(X))


def test_encode_and_decode_use_u_and_the_running_feature_mean():
    model = linear_model()
    x = torch.tensor(X).view(-1, *SHAPE)
    model.step(x, step=0, generator=torch.Generator().manual_seed(0))
    running = 0.1 * (X @ A).mean(0)  # one step of momentum 0.1 from zero
    assert np.allclose(model.feature_mean.numpy(), running)
    code, log_var = model.encode(x[:2])
    assert log_var is None
    assert np.allclose(code.detach().numpy(), (X[:2] @ A - running) @ U)
    z = np.array([[0.3, -1.2]])
    logits = model.decode(torch.tensor(z)).detach().numpy().reshape(1, -1)
    assert np.allclose(logits, (U @ z[0]) @ B)


def tiny_model(feature_dim=6, **hyper):
    """St-RKM on the tiny networks, as wide as `feature_dim`, on 1x4x4 images, 3 latents."""
    encoder = tiny.Tiny.Encoder((1, 4, 4), feature_dim)
    decoder = tiny.Tiny.Decoder((1, 4, 4), feature_dim)
    return models.build({"name": NAME, "feature_dim": feature_dim, **hyper}, encoder, decoder, 3)


def test_u_stays_orthonormal_while_training_with_the_optimiser_pair():
    torch.manual_seed(0)
    model = tiny_model(variant="split", sigma=0.1, manifold_lr=0.02)
    assert isinstance(model, StRKM)
    optimizers = build_optimizers(model, {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8})
    start = model.manifold.detach().clone()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    for step in range(40):
        out = model.step(images[torch.randint(64, (16,), generator=generator)], step, generator)
        for o in optimizers.values():
            o.zero_grad()
        for name, loss in out.losses.items():
            params = [p for g in optimizers[name].param_groups for p in g["params"]]
            loss.backward(inputs=params, retain_graph=True)
        for o in optimizers.values():
            o.step()
    u = model.manifold.detach()
    assert (u - start).abs().max() > 1e-2  # it moved
    assert torch.linalg.matrix_norm(u.T @ u - torch.eye(3)) < 1e-6
    assert np.isfinite(out.terms["loss"].item())


def test_optimizer_split_puts_u_alone_in_cayley_adam():
    model = tiny_model(model_lr=3e-4, manifold_lr=5e-5)
    optimizers = build_optimizers(model, {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8})
    assert set(optimizers) == {"model", "manifold"}
    ids = {name: [id(p) for g in o.param_groups for p in g["params"]]
           for name, o in optimizers.items()}
    assert ids["manifold"] == [id(model.manifold)]
    assert set(ids["model"]) == {id(p) for p in [*model.encoder.parameters(),
                                                 *model.decoder.parameters()]}
    assert isinstance(optimizers["manifold"], CayleyAdam)
    assert isinstance(optimizers["model"], torch.optim.Adam)
    assert optimizers["manifold"].param_groups[0]["lr"] == 5e-5
    assert optimizers["model"].param_groups[0]["lr"] == 3e-4
    defaults = tiny_model().optimizers()
    assert defaults["model"].settings == {"lr": 2e-4}
    assert defaults["manifold"].settings == {"lr": 1e-4, "initial_v": 0.0}


def test_networks_are_built_as_wide_as_the_feature_dimension():
    cfg = OmegaConf.create({"model": {"name": NAME, "feature_dim": 7},
                            "arch": {"name": "tests.models.tiny:Tiny", "latent_dim": 3,
                                     "init": "reference"}})
    model = build_model(cfg, (1, 4, 4))
    assert model.encoder.mean.out_features == 7
    assert model.decoder.net[0].in_features == 7
    assert model.manifold.shape == (7, 3)
    u = model.manifold.detach()
    assert torch.allclose(u.T @ u, torch.eye(3), atol=1e-12)
    cfg.model = {"name": NAME}
    assert build_model(cfg, (1, 4, 4)).manifold.shape == (50, 3)  # the default d


def test_u_is_drawn_from_the_seeded_torch_rng():
    torch.manual_seed(5)
    first = tiny.build(NAME, feature_dim=6).manifold.detach()
    torch.manual_seed(5)
    assert torch.equal(first, tiny.build(NAME, feature_dim=6).manifold.detach())


def test_features_fewer_than_latents_refused():
    with pytest.raises(ValueError, match="feature_dim >= latent_dim"):
        tiny.build(NAME, feature_dim=2)


def test_networks_of_the_wrong_width_refused():
    model = tiny.build(NAME)  # tiny's networks have 3 outputs, U expects 50 features
    with pytest.raises(ValueError, match="network_width"):
        model.encode(torch.zeros(2, 1, 4, 4))
