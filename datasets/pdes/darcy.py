"""2-D Darcy flow on the unit square (the FNO paper's setting).

    -div(a(x) grad u(x)) = f   in (0, 1)^2,   u = 0 on the boundary,
    a = a_high where g >= 0 else a_low,   g ~ N(0, (-Laplacian + tau^2 I)^(-alpha)) with Neumann (cosine-series)
    eigenfunctions and the constant mode removed (FNO: alpha = 2, tau = 3, a_high = 12, a_low = 3, f = 1).

GRF convention = the FNO reference generator (MATLAB ``GRF(alpha, tau, s)``: ``coef = tau^(alpha - 1) (pi^2 |k|^2 +
tau^2)^(-alpha/2)``, ``0 <= k_i <= s - 1``, ``L = s coef xi``, ``L(1, 1) = 0``, ``U = idct2(L)``): cosine (Neumann)
eigenvalues ``pi^2 |k|^2`` on [0, 1], the same number of modes as grid points, and the mean mode removed, so
``P(a = a_high) = 1/2`` at every point. The amplitude (``tau^(alpha - 1)``) does not matter after thresholding and
is 1 here. One difference is kept on purpose: MATLAB evaluates ``U`` at the cell centres ``(j + 1/2) / s`` and
``solve_gwf`` spline-interpolates the thresholded coefficient to the nodes, so the reference solver sees a
smeared (not two-valued) coefficient; we evaluate the same cosine series directly at the nodes and threshold
there, so the stored ``a`` is exactly what the solver used.

Discretisation: the five-point finite-difference (equivalently, cell-centred finite-volume) scheme on the
``n x n`` node grid ``x_i = i / (n - 1)`` including the boundary,

    [F_{i+1/2,j} - F_{i-1/2,j} + F_{i,j+1/2} - F_{i,j-1/2}] / h = -f_ij,   F_{i+1/2,j} = a_{i+1/2,j} (u_{i+1,j} - u_ij) / h,

with the face coefficient ``a_{i+1/2,j}`` the **arithmetic** mean of the two node values by default -- what
the FNO reference generator (``solve_gwf.m``) does -- or their **harmonic** mean (``face_average="harmonic"``,
the flux-continuous choice for piecewise-constant media). Both are second-order for smooth ``a``.

Solvers:

``direct``  SciPy sparse LU (``splu``) of the assembled matrix, one sample at a time on CPU.
``cg``      matrix-free Jacobi-preconditioned conjugate gradients in torch, batched over samples, on any device
            (stopping at relative residual ``cg_tol`` per sample).
``auto``    ``cg`` on CUDA, ``direct`` on CPU.

Stored fields ``a`` and ``u``: (store_resolution, store_resolution), subsampled from the solver grid by striding,
and loaded at (resolution, resolution), every ``(store_resolution - 1) / (resolution - 1)``-th stored node
(both boundaries kept), which requires ``(store_resolution - 1) % (resolution - 1) == 0`` (421 -> 211, 141, 106,
85, ...).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from datasets.grf import GaussianRandomField
from datasets.pdes.base import (
    PDEProblem,
    check_choice,
    check_grids,
    check_int,
    check_positive,
)

SOLVERS = ("auto", "direct", "cg")
FACE_AVERAGES = ("arithmetic", "harmonic")


def face_coefficients(a: torch.Tensor, face_average: str = "arithmetic") -> tuple[torch.Tensor, torch.Tensor]:
    """Face coefficients of node values ``a`` (B, n, n): x-faces (B, n-1, n) and y-faces (B, n, n-1)."""
    check_choice("face_average", face_average, FACE_AVERAGES)
    pairs = ((a[:, 1:, :], a[:, :-1, :]), (a[:, :, 1:], a[:, :, :-1]))
    if face_average == "arithmetic":
        return tuple(0.5 * (p + q) for p, q in pairs)  # type: ignore[return-value]
    return tuple(2.0 * p * q / (p + q) for p, q in pairs)  # type: ignore[return-value]


def _rhs(f: float | torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Right-hand side on the interior nodes, (B, n-2, n-2)."""
    b, n = a.shape[0], a.shape[-1]
    if isinstance(f, (int, float)):
        return torch.full((b, n - 2, n - 2), float(f), dtype=a.dtype, device=a.device)
    f = f.to(device=a.device, dtype=a.dtype)
    if f.shape[-2:] != (n, n):
        raise ValueError(f"f must be a number or have shape (..., {n}, {n}), got {tuple(f.shape)}")
    return f[..., 1:-1, 1:-1].expand(b, n - 2, n - 2).clone()


class DarcyOperator:
    """Matrix-free five-point operator ``A u = -div(a grad u) `` on interior nodes (zero Dirichlet boundary)."""

    def __init__(self, a: torch.Tensor, face_average: str = "arithmetic") -> None:
        self.n = a.shape[-1]
        self.h2 = (1.0 / (self.n - 1)) ** 2
        self.ax, self.ay = face_coefficients(a, face_average)
        ax, ay = self.ax[:, :, 1:-1], self.ay[:, 1:-1, :]
        self.diag = (ax[:, 1:, :] + ax[:, :-1, :] + ay[:, :, 1:] + ay[:, :, :-1]) / self.h2

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        full = torch.nn.functional.pad(u, (1, 1, 1, 1))
        fx = self.ax * (full[:, 1:, :] - full[:, :-1, :])
        fy = self.ay * (full[:, :, 1:] - full[:, :, :-1])
        div = (fx[:, 1:, 1:-1] - fx[:, :-1, 1:-1]) + (fy[:, 1:-1, 1:] - fy[:, 1:-1, :-1])
        return -div / self.h2


def assemble_matrix(a: np.ndarray, face_average: str = "arithmetic") -> sp.csc_matrix:
    """The sparse (n-2)^2 x (n-2)^2 matrix of one sample ``a`` (n, n); unknown ``(i, j)`` is row ``i m + j``."""
    at = torch.as_tensor(np.asarray(a, dtype=np.float64))[None]
    ax, ay = (c[0].numpy() for c in face_coefficients(at, face_average))
    n = a.shape[-1]
    m = n - 2
    h2 = (1.0 / (n - 1)) ** 2
    east = ax[1:, 1:-1]  # face (i+1/2, j) of interior node (i, j): (m, m)
    west = ax[:-1, 1:-1]
    north = ay[1:-1, 1:]
    south = ay[1:-1, :-1]
    diag = (east + west + north + south).ravel() / h2
    off_i = -east[:-1, :].ravel() / h2  # coupling (i, j) -- (i+1, j), offset m
    off_j = -north[:, :-1].copy()  # coupling (i, j) -- (i, j+1), offset 1, none across rows
    off_j = np.concatenate([off_j, np.zeros((m, 1))], axis=1).ravel()[:-1] / h2
    mat = sp.diags([diag, off_i, off_i, off_j, off_j], [0, m, -m, 1, -1], shape=(m * m, m * m), format="csc")
    return mat


def solve_direct(a: torch.Tensor, f: float | torch.Tensor = 1.0, face_average: str = "arithmetic") -> torch.Tensor:
    """Sparse-LU solve of every sample of ``a`` (B, n, n); returns ``u`` (B, n, n) float64 on ``a``'s device."""
    a64 = a.detach().to("cpu", torch.float64)
    rhs = _rhs(f, a64).numpy()
    n = a.shape[-1]
    out = np.zeros((a.shape[0], n, n))
    for k in range(a.shape[0]):
        lu = spla.splu(assemble_matrix(a64[k].numpy(), face_average))
        out[k, 1:-1, 1:-1] = lu.solve(rhs[k].ravel()).reshape(n - 2, n - 2)
    return torch.from_numpy(out).to(a.device)


def solve_cg(
    a: torch.Tensor,
    f: float | torch.Tensor = 1.0,
    face_average: str = "arithmetic",
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> torch.Tensor:
    """Batched Jacobi-preconditioned CG on ``a``'s device (float64); returns ``u`` (B, n, n).

    Each sample stops at ``||r|| <= tol ||b||``; raises ``RuntimeError`` if any sample has not converged after
    ``max_iter`` iterations (default ``20 n``).
    """
    a64 = a.detach().to(torch.float64)
    n = a.shape[-1]
    op = DarcyOperator(a64, face_average)
    b = _rhs(f, a64)
    max_iter = 20 * n if max_iter is None else max_iter
    inv_d = 1.0 / op.diag
    x = torch.zeros_like(b)
    r = b.clone()
    z = inv_d * r
    p = z.clone()
    rz = (r * z).sum((-2, -1))
    b_norm = b.flatten(1).norm(dim=1).clamp_min(1e-300)
    active = torch.ones(b.shape[0], dtype=torch.bool, device=b.device)
    for _ in range(max_iter):
        res = r.flatten(1).norm(dim=1)
        active = res > tol * b_norm
        if not bool(active.any()):
            break
        ap = op(p)
        pap = (p * ap).sum((-2, -1))
        alpha = torch.where(active, rz / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rz))
        x = x + alpha[:, None, None] * p
        r = r - alpha[:, None, None] * ap
        z = inv_d * r
        rz_new = (r * z).sum((-2, -1))
        beta = torch.where(active, rz_new / torch.where(active, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        p = z + beta[:, None, None] * p
        rz = rz_new
    else:
        res = r.flatten(1).norm(dim=1)
        if bool((res > tol * b_norm).any()):
            worst = float((res / b_norm).max())
            raise RuntimeError(f"Darcy CG did not converge in {max_iter} iterations (relative residual {worst:.2e} "
                               f"> cg_tol={tol}); raise max_iter or use solver='direct'")
    return torch.nn.functional.pad(x, (1, 1, 1, 1))


def solve_darcy(
    a: torch.Tensor,
    f: float | torch.Tensor = 1.0,
    solver: str = "auto",
    face_average: str = "arithmetic",
    cg_tol: float = 1e-10,
) -> torch.Tensor:
    """Solve ``-div(a grad u) = f``, ``u = 0`` on the boundary, for each sample of ``a`` (B, n, n)."""
    check_choice("solver", solver, SOLVERS)
    if a.ndim != 3 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 3:
        raise ValueError(f"a must have shape (batch, n, n) with n >= 3, got {tuple(a.shape)}")
    if solver == "auto":
        solver = "cg" if a.device.type == "cuda" else "direct"
    if solver == "direct":
        return solve_direct(a, f, face_average)
    return solve_cg(a, f, face_average, tol=cg_tol)


class Darcy(PDEProblem):
    """Darcy-flow data: coefficient ``a`` and solution ``u``, each (resolution, resolution) per sample.

    Parameters (``defaults``): ``resolution`` loaded grid, ``store_resolution`` stored grid (``None`` = the solver
    grid) and ``solver_resolution`` solver grid, all counting the boundary nodes (``resolution`` is not part of
    the stored data's hash); ``alpha``, ``tau`` of the Neumann GRF that is thresholded at 0 into ``a_high`` /
    ``a_low``; ``forcing`` (constant ``f``); ``solver`` (``auto``, ``direct``, ``cg``); ``face_average``
    (``arithmetic`` as in FNO, or ``harmonic``); ``cg_tol`` relative residual of the CG solver.
    """

    name = "darcy"
    grid_kind = "nodes"
    space_axes = 2
    space_coords = {"x": 1, "y": 1}
    defaults = {
        "resolution": 85,
        "store_resolution": None,
        "solver_resolution": 421,
        "alpha": 2.0,
        "tau": 3.0,
        "a_high": 12.0,
        "a_low": 3.0,
        "forcing": 1.0,
        "solver": "auto",
        "face_average": "arithmetic",
        "cg_tol": 1e-10,
    }

    def validate(self) -> None:
        p = self.params
        p["resolution"] = check_int("resolution", p["resolution"], 3)
        p["solver_resolution"] = check_int("solver_resolution", p["solver_resolution"], 3)
        p["alpha"] = check_positive("alpha", p["alpha"])
        p["tau"] = check_positive("tau", p["tau"])
        p["a_high"] = check_positive("a_high", p["a_high"])
        p["a_low"] = check_positive("a_low", p["a_low"])
        forcing = p["forcing"]
        if isinstance(forcing, bool) or not isinstance(forcing, (int, float)) or not np.isfinite(forcing):
            raise ValueError(f"forcing={forcing!r} is not allowed; use a finite number")
        p["forcing"] = float(forcing)
        check_choice("solver", p["solver"], SOLVERS)
        check_choice("face_average", p["face_average"], FACE_AVERAGES)
        p["cg_tol"] = check_positive("cg_tol", p["cg_tol"])
        self.stride = check_grids(self, 3)

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        s = self.resolution
        return {"a": (s, s), "u": (s, s)}

    def coordinates(self) -> dict[str, np.ndarray]:
        x = np.linspace(0.0, 1.0, self.resolution)
        return {"x": x, "y": x.copy()}

    def grf(self, device: torch.device | str = "cpu") -> GaussianRandomField:
        """The field thresholded into ``a``, on the solver nodes: Neumann cosine series, mean mode removed."""
        return GaussianRandomField(2, self.solver_resolution, self.alpha, self.tau, 1.0, boundary="neumann",
                                   zero_mean=True, device=device)

    def coefficient(self, g: torch.Tensor) -> torch.Tensor:
        """Threshold a GRF sample into the two-valued permeability."""
        return torch.where(g >= 0, torch.full_like(g, self.a_high), torch.full_like(g, self.a_low))

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        a = self.coefficient(self.grf(device).sample(generators))
        u = solve_darcy(a, self.forcing, self.solver, self.face_average, self.cg_tol)
        s = self.stride
        return {"a": a[:, ::s, ::s], "u": u[:, ::s, ::s]}
