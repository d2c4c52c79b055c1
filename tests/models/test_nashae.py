"""NashAE's losses against independent computations on hand-made tensors (float64)."""

import numpy as np
import pytest
import tiny
import torch
from torch import nn

from disbench.errors import DisbenchError
from disbench.models.nashae import NashAE, Regressors, covariance, mse_reconstruction, nash_losses
from disbench.train.optimizers import build_optimizers

Z = np.array([[0.1, 0.9, 0.5], [0.4, 0.2, 0.7], [0.8, 0.6, 0.1], [0.3, 0.3, 0.9],
              [0.6, 0.7, 0.2]])
P = np.array([[0.2, 0.5, 0.4], [0.5, 0.1, 0.9], [0.6, 0.8, 0.3], [0.1, 0.4, 0.6],
              [0.9, 0.6, 0.0]])
# a linear "regressor" ensemble: z'_i = sum_k z_k W[k, i], with W[i, i] = 0 (z_i unseen)
W = np.array([[0.0, 0.5, -1.0], [2.0, 0.0, 0.3], [-0.7, 1.5, 0.0]])


pytestmark = pytest.mark.usefixtures("float64")


def build(**hyper):
    return tiny.build("nashae", **hyper)


def images(seed=0, n=5):
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def batch_covariance(a, b):
    """Biased covariance of two columns, by an explicit sum."""
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    return sum((ai - ma) * (bi - mb) for ai, bi in zip(a, b)) / n


class LinearRegressors(nn.Module):
    def forward(self, z):
        return z @ torch.tensor(W)


def test_covariance_is_biased_batch_covariance_per_latent():
    expected = [batch_covariance(Z[:, i], P[:, i]) for i in range(3)]
    assert np.allclose(covariance(torch.tensor(Z), torch.tensor(P)).numpy(), expected)
    assert np.allclose(expected, [np.cov(Z[:, i], P[:, i], bias=True)[0, 1] for i in range(3)])


def test_mse_reconstruction_is_half_the_mean_squared_error_of_the_image():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]], [[[-0.5, 0.5], [1.0, -2.0]]]])
    x = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]], [[[0.0, 1.0], [1.0, 0.2]]]])
    expected = 0.5 * np.mean((sigmoid(logits.numpy()) - x.numpy()) ** 2)
    assert mse_reconstruction(logits, x).item() == pytest.approx(expected, rel=1e-12)


def test_each_regressor_predicts_its_latent_from_the_others_only():
    torch.manual_seed(0)
    regressors = Regressors(3)
    z = torch.tensor(Z)
    predictions = regressors(z)
    for i in range(3):
        masked = z.clone()
        masked[:, i] = 0
        assert torch.allclose(predictions[:, i], regressors.nets[i](masked)[:, 0])
        moved = z.clone()
        moved[:, i] += 1.0
        after = regressors(moved)
        assert torch.equal(after[:, i], predictions[:, i])  # its own latent is unseen
        others = [j for j in range(3) if j != i]
        assert not torch.allclose(after[:, others], predictions[:, others])


def test_regressor_architecture_is_two_hidden_selu_layers_of_40():
    net = Regressors(10).nets[0]
    linear = [m for m in net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(10, 40), (40, 40), (40, 1)]
    assert sum(isinstance(m, nn.SELU) for m in net) == 2


def test_nash_losses_values():
    adversarial, regression, predictions = nash_losses(torch.tensor(Z), LinearRegressors())
    zp = Z @ W
    assert np.allclose(predictions.numpy(), zp)
    assert adversarial.item() == pytest.approx(
        sum(batch_covariance(Z[:, i], zp[:, i]) for i in range(3)), rel=1e-12)
    assert regression.item() == pytest.approx(0.5 * np.mean((zp - Z) ** 2), rel=1e-12)


def test_adversarial_gradient_reaches_the_code_through_the_predictions_only():
    # A = sum_i 1/N sum_n c_ni (p_ni - mean p_i), c the centred (fixed) code, p = z W:
    # dA/dz_nk = sum_i W[k, i] c_ni / N. Differentiating through z_i as well would add
    # (p_nk - mean p_k) / N.
    z = torch.tensor(Z, requires_grad=True)
    adversarial, _, _ = nash_losses(z, LinearRegressors())
    adversarial.backward()
    centred = Z - Z.mean(0)
    assert np.allclose(z.grad.numpy(), centred @ W.T / len(Z))


def test_step_losses_match_an_independent_computation():
    model = build(lambda_adv=0.3)
    x = images()
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, _ = model.encoder(x)
        z = sigmoid(mean.numpy())
        logits = model.decoder(torch.tensor(z)).numpy()
        zp = model.regressors(torch.tensor(z)).numpy()
    recon = 0.5 * np.mean((sigmoid(logits) - x.numpy()) ** 2)
    cov = sum(batch_covariance(z[:, i], zp[:, i]) for i in range(3))
    assert out.losses["model"].item() == pytest.approx(0.7 * recon + 0.3 * cov, rel=1e-10)
    assert out.losses["regressors"].item() == pytest.approx(0.5 * np.mean((zp - z) ** 2),
                                                            rel=1e-10)
    assert out.terms["covariance"].item() == pytest.approx(cov, rel=1e-10)


def test_summed_reconstruction_option_is_the_vae_loss():
    model = build(lambda_adv=0.5, reconstruction="bernoulli")
    x = images(1)
    out = model.step(x, step=0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = sigmoid(model.decoder(model.encode(x)[0]).numpy())
    xn = x.numpy()
    bce = -(xn * np.log(p) + (1 - xn) * np.log(1 - p)).reshape(len(xn), -1).sum(1).mean()
    assert out.terms["reconstruction"].item() == pytest.approx(bce, rel=1e-10)


def test_encode_is_the_sigmoid_of_the_encoder_mean():
    model = build()
    x = images(2)
    code, log_var = model.encode(x)
    assert log_var is None
    assert np.allclose(code.detach().numpy(), sigmoid(model.encoder(x)[0].detach().numpy()))


def test_optimizers_and_updates():
    model = build(regressor_lr=0.02, autoencoder_lr=2e-3)
    optimizers = build_optimizers(model, {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8})
    assert set(optimizers) == {"model", "regressors"}
    ids = {name: {id(p) for g in o.param_groups for p in g["params"]}
           for name, o in optimizers.items()}
    assert ids["regressors"] == {id(p) for p in model.regressors.parameters()}
    assert ids["model"] == {id(p) for p in [*model.encoder.parameters(),
                                            *model.decoder.parameters()]}
    assert optimizers["regressors"].param_groups[0]["lr"] == 0.02
    assert optimizers["model"].param_groups[0]["lr"] == 2e-3  # the paper's, not trainer.lr
    assert build().optimizers()["model"].settings == {"lr": 1e-3}
    assert NashAE.updates == {"regressors": 5}


@pytest.mark.parametrize("value", [1.0, 1.5])
def test_lambda_must_leave_reconstruction_some_weight(value):
    with pytest.raises(ValueError, match="lambda_adv"):
        build(lambda_adv=value)


def test_unknown_reconstruction_refused():
    with pytest.raises(DisbenchError, match="reconstruction"):
        build(reconstruction="l1")
