"""Cayley ADAM (Li, Li & Todorovic, ICLR 2020, Algorithm 2) on the Stiefel manifold."""

import io

import numpy as np
import pytest
import torch

from disbench.train.cayley_adam import CayleyAdam, orthonormality_error

# a symmetric matrix with a known spectrum; its top-3 eigenvalues sum to 2.7
SPECTRUM = [1.0, 0.9, 0.8, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4]


def symmetric_matrix():
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 10)))
    return q @ np.diag(SPECTRUM) @ q.T


def start(dtype=torch.float64, d=10, m=3):
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((d, m)))
    return torch.nn.Parameter(torch.tensor(q, dtype=dtype))


def objective(u, a):
    """-tr(U^T A U): minimised by the top-m eigenvectors of A."""
    return -torch.trace(u.T @ a @ u)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_top_eigenvectors_stay_orthonormal_and_reach_the_optimum(dtype):
    a_np = symmetric_matrix()
    optimum = -np.sort(np.linalg.eigvalsh(a_np))[::-1][:3].sum()  # independent of SPECTRUM
    a = torch.tensor(a_np, dtype=dtype)
    u = start(dtype)
    optimizer = CayleyAdam([u], lr=0.02)
    values, worst = [], 0.0
    for _ in range(1000):
        optimizer.zero_grad()
        loss = objective(u, a)
        loss.backward()
        optimizer.step()
        values.append(loss.item())
        worst = max(worst, orthonormality_error(u.detach()).item())
    assert worst < 1e-5
    assert values[-1] < values[100] < values[0]
    assert objective(u, a).item() == pytest.approx(optimum, abs=1e-4)
    assert optimum == pytest.approx(-2.7, abs=1e-12)


def test_state_dict_round_trip_continues_identically():
    a = torch.tensor(symmetric_matrix(), dtype=torch.float32)

    def train(u, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            objective(u, a).backward()
            optimizer.step()

    u = start(torch.float32)
    optimizer = CayleyAdam([u], lr=0.05)
    train(u, optimizer, 7)
    saved_u = u.detach().clone()
    buffer = io.BytesIO()  # as a checkpoint holds it
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    train(u, optimizer, 5)

    resumed = torch.nn.Parameter(saved_u)
    again = CayleyAdam([resumed], lr=0.05)
    again.load_state_dict(saved)
    assert again.state[resumed]["step"] == 7
    train(resumed, again, 5)
    assert torch.equal(resumed, u)
    assert torch.equal(again.state[resumed]["momentum"], optimizer.state[u]["momentum"])
    assert torch.equal(again.state[resumed]["second_moment"],
                       optimizer.state[u]["second_moment"])


def algorithm_2(x, grads, lr, s, beta1=0.9, beta2=0.99, eps=1e-8, q=0.5):
    """Algorithm 2 in numpy, line by line (M_1 = 0, v_1 = 1)."""
    m, v = np.zeros_like(x), 1.0
    for k, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * np.sum(g * g)
        v_hat = v / (1 - beta2 ** k)
        r = (1 - beta1 ** k) * np.sqrt(v_hat + eps)
        w_hat = m @ x.T - 0.5 * x @ (x.T @ m @ x.T)
        w = (w_hat - w_hat.T) / r
        m = r * w @ x
        alpha = min(lr, 2 * q / (np.abs(w).sum(0).max() + eps))
        y = x - alpha * m
        for _ in range(s):
            y = x - alpha / 2 * w @ (x + y)
        x = y
    return x, m, v, w, alpha


def test_steps_follow_algorithm_2():
    rng = np.random.default_rng(2)
    x0 = start().detach().numpy()
    grads = [rng.standard_normal(x0.shape) for _ in range(3)]
    u = torch.nn.Parameter(torch.tensor(x0))
    optimizer = CayleyAdam([u], lr=0.3)
    for g in grads:
        u.grad = torch.tensor(g)
        optimizer.step()
    x, m, v, _, _ = algorithm_2(x0, grads, lr=0.3, s=2)
    assert np.allclose(u.detach().numpy(), x, rtol=0, atol=1e-12)
    assert np.allclose(optimizer.state[u]["momentum"].numpy(), m, rtol=0, atol=1e-12)
    assert optimizer.state[u]["second_moment"].item() == pytest.approx(v, rel=1e-12)


def test_many_iterations_reach_the_closed_form_cayley_transform():
    # the fixed point of Y = X - alpha/2 W (X + Y) is (I + alpha/2 W)^-1 (I - alpha/2 W) X
    rng = np.random.default_rng(3)
    x0 = start().detach().numpy()
    g = rng.standard_normal(x0.shape)
    u = torch.nn.Parameter(torch.tensor(x0))
    optimizer = CayleyAdam([u], lr=0.3, iterations=60)
    u.grad = torch.tensor(g)
    optimizer.step()
    _, _, _, w, alpha = algorithm_2(x0, [g], lr=0.3, s=1)
    eye = np.eye(len(w))
    cayley = np.linalg.solve(eye + alpha / 2 * w, (eye - alpha / 2 * w) @ x0)
    assert np.allclose(u.detach().numpy(), cayley, rtol=0, atol=1e-12)
    assert np.abs(cayley.T @ cayley - np.eye(3)).max() < 1e-12


def test_paper_defaults():
    u = start()
    group = CayleyAdam([u]).param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (0.4, (0.9, 0.99), 1e-8)
    assert (group["q"], group["iterations"], group["initial_v"]) == (0.5, 2, 1.0)


@pytest.mark.parametrize("shape", [(3, 10), (10,), (2, 3, 4)])
def test_only_tall_matrices_accepted(shape):
    with pytest.raises(ValueError, match="n >= p"):
        CayleyAdam([torch.nn.Parameter(torch.zeros(shape))])
