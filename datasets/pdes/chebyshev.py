"""Chebyshev collocation on Chebyshev-Gauss-Lobatto points: nodes, differentiation matrix, quadrature and the
elimination of two-point boundary conditions, batched in torch (float64 unless told otherwise).

Nodes. The ``n`` Gauss-Lobatto points of ``[lo, hi]`` in *increasing* order (the order pdeforge stores),
``x_j = (lo + hi) / 2 + (hi - lo) xi_j / 2`` with ``xi_j = -cos(pi j / (n - 1)) = sin(pi (2 j - n + 1) / (2 (n - 1)))``
(the sine form is exactly antisymmetric), ``j = 0 .. n - 1``; both boundaries are nodes.

Differentiation. ``D`` maps values at the nodes to the derivative of their interpolating polynomial at the
nodes: ``D_ij = (w_j / w_i) / (x_i - x_j)`` (``i != j``) with the barycentric weights ``w_j = (-1)^j delta_j``
(``delta = 1/2`` at both ends, 1 inside; Berrut & Trefethen 2004, eq. 5.2), and ``D_ii = -sum_{j != i} D_ij``
(the "negative sum trick": rows sum to zero, which reduces round-off). Built from the physical nodes, so no
``2 / (hi - lo)`` factor is needed. Derivatives of smooth functions converge spectrally (exponentially in ``n``).

Boundary conditions (Robin form on the *outward* normal, which contains Dirichlet and Neumann):

    alpha_L u(lo) - beta_L u_x(lo) = 0,    alpha_R u(hi) + beta_R u_x(hi) = 0,

with ``(alpha, beta) = (1, 0)`` Dirichlet, ``(0, 1)`` Neumann; ``alpha, beta >= 0`` keeps the wave energy
non-negative (a Robin boundary stores ``c^2 alpha / (2 beta) u^2``). They are imposed by *boundary-row
elimination* (Trefethen, Spectral Methods in MATLAB, ch. 13): the two boundary values are the unique ones whose
interpolant satisfies the two conditions given the ``n - 2`` interior values, a ``2 x 2`` linear solve per sample,
so ``u = P u_int`` with the prolongation ``P`` ``(n, n - 2)`` (:func:`boundary_prolongation`). The collocated
second derivative on the interior unknowns is ``A = (D^2 P)[1:-1]`` ``(n - 2, n - 2)``
(:func:`second_derivative_operator`); for these conditions its eigenvalues are real and ``<= 0`` (Gottlieb &
Lustman 1983 for Dirichlet; checked numerically for the others by the solvers that diagonalize it).
"""
from __future__ import annotations

import math

import torch

#: boundary-condition codes as stored in the data (the MP-PDE convention of ``bc_left`` / ``bc_right``)
DIRICHLET = 0
NEUMANN = 1
BOUNDARY_CODES = {"dirichlet": DIRICHLET, "neumann": NEUMANN}


def gauss_lobatto_points(n: int, lo: float = -1.0, hi: float = 1.0, dtype: torch.dtype = torch.float64,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """The ``n >= 2`` Chebyshev-Gauss-Lobatto points of ``[lo, hi]``, increasing: ``(n,)``."""
    if n < 2:
        raise ValueError(f"n={n} is not allowed; use at least 2 Chebyshev points")
    j = torch.arange(n, dtype=torch.float64, device=device)
    xi = torch.sin(math.pi * (2 * j - (n - 1)) / (2 * (n - 1)))  # = -cos(pi j / (n - 1)), exactly odd
    x = (float(lo) + float(hi)) / 2.0 + (float(hi) - float(lo)) / 2.0 * xi  # exactly symmetric about the centre
    x[0], x[-1] = float(lo), float(hi)
    return x.to(dtype)


def barycentric_weights(n: int, dtype: torch.dtype = torch.float64,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Barycentric interpolation weights of the Gauss-Lobatto points (up to a common factor): ``(n,)``."""
    w = (-1.0) ** torch.arange(n, dtype=dtype, device=device)
    w[0] *= 0.5
    w[-1] *= 0.5
    return w


def differentiation_matrix(x: torch.Tensor) -> torch.Tensor:
    """First-derivative collocation matrix on the Gauss-Lobatto nodes ``x`` ``(n,)`` (either order, any
    interval): ``(n, n)``, ``(D @ f)_i = p'(x_i)`` for the interpolant ``p`` of ``f``."""
    n = x.shape[-1]
    w = barycentric_weights(n, x.dtype, x.device)
    dx = x[:, None] - x[None, :]
    off = ~torch.eye(n, dtype=torch.bool, device=x.device)
    d = torch.where(off, (w[None, :] / w[:, None]) / torch.where(off, dx, torch.ones_like(dx)), torch.zeros_like(dx))
    return d - torch.diag(d.sum(dim=1))  # negative sum trick: D @ 1 = 0 up to round-off


def chebyshev_grid(n: int, lo: float = -1.0, hi: float = 1.0, dtype: torch.dtype = torch.float64,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``(n,)`` and differentiation matrix ``(n, n)`` of ``[lo, hi]`` (computed in float64, cast)."""
    x = gauss_lobatto_points(n, lo, hi, torch.float64, device)
    return x.to(dtype), differentiation_matrix(x).to(dtype)


def clenshaw_curtis_weights(n: int, lo: float = -1.0, hi: float = 1.0, dtype: torch.dtype = torch.float64,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """Clenshaw-Curtis quadrature weights on the ``n`` Gauss-Lobatto points of ``[lo, hi]``: ``(n,)``,
    ``sum_j w_j f(x_j) = int f dx`` exactly for polynomials of degree ``< n`` (Trefethen's ``clencurt``)."""
    if n < 2:
        raise ValueError(f"n={n} is not allowed; use at least 2 Chebyshev points")
    m = n - 1
    theta = math.pi * torch.arange(n, dtype=torch.float64) / m
    w = torch.zeros(n, dtype=torch.float64)
    v = torch.ones(n - 2, dtype=torch.float64)
    inner = theta[1:-1]
    if m % 2 == 0:
        w[0] = w[-1] = 1.0 / (m * m - 1)
        for k in range(1, m // 2):
            v -= 2.0 * torch.cos(2 * k * inner) / (4 * k * k - 1)
        v -= torch.cos(m * inner) / (m * m - 1)
    else:
        w[0] = w[-1] = 1.0 / (m * m)
        for k in range(1, (m - 1) // 2 + 1):
            v -= 2.0 * torch.cos(2 * k * inner) / (4 * k * k - 1)
    w[1:-1] = 2.0 * v / m
    return (w * (float(hi) - float(lo)) / 2.0).to(dtype=dtype, device=device)


def robin_coefficients(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boundary codes ``(B,)`` (0 Dirichlet, 1 Neumann) -> ``(alpha, beta)`` ``(B,)`` float64 each."""
    codes = torch.as_tensor(codes)
    if codes.numel() and not bool(((codes == DIRICHLET) | (codes == NEUMANN)).all()):
        raise ValueError(f"boundary codes {sorted(set(codes.tolist()))} are not allowed; use 0 (Dirichlet) "
                         "or 1 (Neumann)")
    neumann = (codes == NEUMANN).to(torch.float64)
    return 1.0 - neumann, neumann


def boundary_prolongation(d: torch.Tensor, left: tuple, right: tuple) -> torch.Tensor:
    """Interior values -> all nodal values satisfying the boundary conditions.

    Args:
        d: differentiation matrix ``(n, n)`` on increasing nodes (node 0 at ``lo``, node ``n - 1`` at ``hi``).
        left / right: ``(alpha, beta)`` of each side in the outward-normal Robin form of the module docstring,
            scalars or ``(B,)`` tensors.

    Returns:
        ``P`` ``(B, n, n - 2)`` (``B = 1`` for scalar coefficients) with ``u = P @ u_int``: rows ``1 .. n - 2``
        are the identity, rows 0 and ``n - 1`` solve the two conditions.

    Raises:
        ValueError: a side with ``alpha = beta = 0``, or a singular ``2 x 2`` system.
    """
    n = d.shape[-1]
    vals = [torch.as_tensor(v, dtype=torch.float64, device=d.device).reshape(-1) for v in (*left, *right)]
    batch = max(v.numel() for v in vals)
    if any(v.numel() not in (1, batch) for v in vals):
        raise ValueError(f"boundary coefficients of sizes {[v.numel() for v in vals]} are not allowed; use "
                         "scalars or tensors of one common batch size")
    a_l, b_l, a_r, b_r = (v.expand(batch) for v in vals)
    if bool(((a_l == 0) & (b_l == 0)).any() or ((a_r == 0) & (b_r == 0)).any()):
        raise ValueError("a boundary condition with alpha = beta = 0 is not allowed; use (1, 0) Dirichlet, "
                         "(0, 1) Neumann or a Robin pair")
    d64 = d.to(torch.float64)
    # row L: alpha_L u_0 - beta_L (D u)_0 = 0 ; row R: alpha_R u_{n-1} + beta_R (D u)_{n-1} = 0
    # split D u = D[:, 0] u_0 + D[:, -1] u_{n-1} + D[:, 1:-1] u_int and solve for (u_0, u_{n-1})
    m = torch.stack([
        torch.stack([a_l - b_l * d64[0, 0], -b_l * d64[0, -1]], dim=-1),
        torch.stack([b_r * d64[-1, 0], a_r + b_r * d64[-1, -1]], dim=-1),
    ], dim=-2)  # (B, 2, 2)
    rhs = torch.stack([b_l[:, None] * d64[0, 1:-1], -b_r[:, None] * d64[-1, 1:-1]], dim=-2)  # (B, 2, n-2)
    det = torch.linalg.det(m)
    if bool((det.abs() < 1e-12 * m.abs().amax(dim=(-2, -1)) ** 2).any()):
        raise ValueError("these boundary conditions make the boundary values undetermined; use other "
                         "(alpha, beta)")
    bvals = torch.linalg.solve(m, rhs)  # (B, 2, n-2)
    eye = torch.eye(n - 2, dtype=torch.float64, device=d.device).expand(batch, n - 2, n - 2)
    return torch.cat([bvals[:, :1], eye, bvals[:, 1:]], dim=1).to(d.dtype)


def second_derivative_operator(d: torch.Tensor, left: tuple, right: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The collocated ``d^2/dx^2`` with the boundary conditions eliminated.

    Returns ``(A, P)``: ``A`` ``(B, n - 2, n - 2)`` acting on interior values, ``u_xx(interior) = A @ u_int``
    for every ``u = P @ u_int`` satisfying the conditions, and the prolongation ``P`` ``(B, n, n - 2)``."""
    p = boundary_prolongation(d, left, right)
    d2 = d @ d
    return (d2 @ p)[:, 1:-1, :], p


__all__ = [
    "BOUNDARY_CODES", "DIRICHLET", "NEUMANN", "barycentric_weights", "boundary_prolongation", "chebyshev_grid",
    "clenshaw_curtis_weights", "differentiation_matrix", "gauss_lobatto_points", "robin_coefficients",
    "second_derivative_operator",
]
