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

Solvers (all batched over samples; the iterative ones stop each sample at relative residual ``cg_tol`` and check
for "all converged" -- a host sync on a GPU -- at most every ``cg_check_every`` iterations, sooner where the
slowest sample is predicted to converge, :mod:`datasets.pdes.batched_cg`):

``direct``  SciPy sparse LU (SuperLU, symmetric minimum-degree ordering, no pivoting: the matrix is SPD;
            1.4x faster than SciPy's default COLAMD ordering, measured) of the assembled matrix on CPU,
            ``direct_workers`` samples at a time in a thread pool (SuperLU 5 is thread-safe and SciPy releases
            the GIL around it, scipy PR #5849: a Python thread keeps ~70% of its speed beside a factorisation).
            Each factor is made and used in one worker. A sample's result does not depend on the workers.
``cg``      matrix-free Jacobi-preconditioned CG in torch (float64), on any device; ~4.4 n iterations.
``mgcg``    CG (float64) preconditioned by one symmetric geometric-multigrid V-cycle per iteration
            (:mod:`datasets.pdes.multigrid`: Galerkin coarse operators ``R A P``, bilinear ``P``, damped
            Jacobi, 421 -> 211 -> 106 -> 54 -> 28 -> 15 nodes, dense coarsest solve), in torch on any device;
            the V-cycle in ``mg_precision`` (float32 by default: same iterations, 1.5-2x faster on CPU).
            12-14 iterations at ``cg_tol = 1e-10`` for n = 65 ... 421 (the multigrid property).
``auto``    ``mgcg`` on every device (on CPU measured 5-8x faster than ``direct`` with as many workers as
            threads, below).

Measured on the 2-core CPU (2026-12-02; FNO coefficients at 421^2, interleaved runs in a quiet spell of a
machine shared with other jobs, medians; ratios are the reliable part), seconds per sample:

    =====================  ==================  ==================
    solver                 1 thread, batch 4   2 threads, batch 8
    =====================  ==================  ==================
    direct, 1 worker       0.61                0.60
    direct, 2 workers      0.37                0.35
    cg (Jacobi)            2.07 (batch 4)      1.37 (batch 4)
    mgcg, float64 V-cycle  0.105               0.076
    mgcg, float32 V-cycle  0.071               0.044
    =====================  ==================  ==================

``cg`` took 1832-1902 iterations, ``mgcg`` 13-14 (the loop ran 20 with the fixed 10-iteration check used for
these timings; the predicted check now stops it after 15). Under load (other jobs on both cores) 2 torch threads
made ``mgcg`` up to 10x slower (oversubscription); prefer 1 thread per core there.

Stored fields ``a`` and ``u``: (store_resolution, store_resolution), subsampled from the solver grid by striding,
and loaded at (resolution, resolution), every ``(store_resolution - 1) / (resolution - 1)``-th stored node
(both boundaries kept), which requires ``(store_resolution - 1) % (resolution - 1) == 0`` (421 -> 211, 141, 106,
85, ...).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

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
from datasets.pdes.batched_cg import batched_pcg
from datasets.pdes.multigrid import MultigridPreconditioner

SOLVERS = ("auto", "direct", "cg", "mgcg")
MG_PRECISIONS = ("float64", "float32")
#: what ``solver: auto`` runs on CPU: MG-CG measured 5-8x faster than the threaded sparse LU at 421^2 (1 or 2
#: threads / workers, batch 4-8; the table in the module docstring)
AUTO_CPU_SOLVER = "mgcg"
#: parameters that change how fast the data are made, not the data: left out of the storage hash
SOLVER_KNOBS = ("direct_workers", "cg_check_every", "mg_precision")
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
    """Matrix-free five-point operator ``A u = -div(a grad u)`` on interior nodes (zero Dirichlet boundary).

    Applied to (B, m, m) interior values (``m = n - 2``) with ``a`` (B, n, n); ``diag`` (B, m, m) is its
    diagonal. The face coefficients are kept divided by ``h^2``: x-faces (B, m + 1, m), y-faces (B, m, m + 1).
    """

    def __init__(self, a: torch.Tensor, face_average: str = "arithmetic") -> None:
        self.n = a.shape[-1]
        self.h2 = (1.0 / (self.n - 1)) ** 2
        ax, ay = face_coefficients(a, face_average)
        self.ax = ax[:, :, 1:-1] / self.h2  # face (i - 1/2, j) of interior node (i, j) is row i
        self.ay = ay[:, 1:-1, :] / self.h2
        self.diag = self.ax[:, 1:] + self.ax[:, :-1] + self.ay[:, :, 1:] + self.ay[:, :, :-1]

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """``A u`` for ``u`` (B, m, m)."""
        return self._couple(self.diag * u, u, -1.0)

    def residual(self, b: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``b - A u`` (B, m, m) without forming ``A u``."""
        return self._couple(torch.addcmul(b, self.diag, u, value=-1.0), u, 1.0)

    def _couple(self, y: torch.Tensor, u: torch.Tensor, sign: float) -> torch.Tensor:
        """``y += sign * (off-diagonal part of -A) u`` in place; the boundary neighbours are 0 (no padding)."""
        ax, ay = self.ax[:, 1:-1], self.ay[:, :, 1:-1]  # faces between two interior nodes
        y[:, :-1].addcmul_(ax, u[:, 1:], value=sign)  # neighbour (i + 1, j)
        y[:, 1:].addcmul_(ax, u[:, :-1], value=sign)  # neighbour (i - 1, j)
        y[:, :, :-1].addcmul_(ay, u[:, :, 1:], value=sign)
        y[:, :, 1:].addcmul_(ay, u[:, :, :-1], value=sign)
        return y


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
    bands = [(d, k) for d, k in ((diag, 0), (off_i, m), (off_i, -m), (off_j, 1), (off_j, -1)) if d.size]
    return sp.diags([d for d, _ in bands], [k for _, k in bands], shape=(m * m, m * m), format="csc")


def _lu(matrix: sp.csc_matrix):
    """SuperLU of an SPD matrix: symmetric (minimum-degree of A^T + A) ordering, no pivoting needed."""
    return spla.splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})


def default_workers(batch: int) -> int:
    """Threads for :func:`solve_direct` when ``workers`` is ``None``: torch's thread count (so
    ``OMP_NUM_THREADS`` limits it too), at most the CPUs this process may run on and the batch size."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cpus, batch))


def solve_direct(
    a: torch.Tensor,
    f: float | torch.Tensor = 1.0,
    face_average: str = "arithmetic",
    workers: int | None = None,
) -> torch.Tensor:
    """Sparse-LU solve of every sample of ``a`` (B, n, n); returns ``u`` (B, n, n) float64 on ``a``'s device.

    ``workers`` samples are factorised at once in a thread pool (SuperLU releases the GIL while it factorises
    and solves); ``None``: :func:`default_workers`. Each sample's result does not depend on ``workers``.
    """
    a64 = a.detach().to("cpu", torch.float64)
    rhs = _rhs(f, a64).numpy()
    n, batch = a.shape[-1], a.shape[0]
    out = np.zeros((batch, n, n))
    workers = default_workers(batch) if workers is None else check_int("direct_workers", workers, 1)

    def one(k: int) -> None:
        lu = _lu(assemble_matrix(a64[k].numpy(), face_average))
        out[k, 1:-1, 1:-1] = lu.solve(rhs[k].ravel()).reshape(n - 2, n - 2)

    if workers == 1 or batch == 1:
        for k in range(batch):
            one(k)
    else:
        with ThreadPoolExecutor(min(workers, batch)) as pool:
            list(pool.map(one, range(batch)))  # list(): re-raises a worker's exception
    return torch.from_numpy(out).to(a.device)


def solve_cg(
    a: torch.Tensor,
    f: float | torch.Tensor = 1.0,
    face_average: str = "arithmetic",
    tol: float = 1e-10,
    max_iter: int | None = None,
    check_every: int = 10,
    info: dict | None = None,
) -> torch.Tensor:
    """Batched Jacobi-preconditioned CG on ``a``'s device (float64); returns ``u`` (B, n, n).

    Each sample stops at ``||r|| <= tol ||b||``; raises ``RuntimeError`` if any sample has not converged after
    ``max_iter`` iterations (default ``20 n``). Convergence is checked on the host at most every ``check_every``
    iterations. ``info``, if given, receives ``"iterations"`` (B,), the iterations of each sample.
    """
    a64 = a.detach().to(torch.float64)
    n = a.shape[-1]
    op = DarcyOperator(a64, face_average)
    inv_d = 1.0 / op.diag
    x, iterations = batched_pcg(op, _rhs(f, a64), lambda r: inv_d * r, tol, 20 * n if max_iter is None else max_iter,
                                check_every, name="Darcy CG", hint="; raise max_iter or use solver='direct'")
    if info is not None:
        info["iterations"] = iterations
    return torch.nn.functional.pad(x, (1, 1, 1, 1))


def solve_mgcg(
    a: torch.Tensor,
    f: float | torch.Tensor = 1.0,
    face_average: str = "arithmetic",
    tol: float = 1e-10,
    max_iter: int = 200,
    check_every: int = 10,
    precision: str = "float32",
    info: dict | None = None,
) -> torch.Tensor:
    """Batched multigrid-preconditioned CG on ``a``'s device; returns ``u`` (B, n, n) float64.

    CG iterates in float64 with one symmetric V-cycle (:class:`~datasets.pdes.multigrid.MultigridPreconditioner`,
    Galerkin coarse operators, damped Jacobi) per iteration, kept in ``precision`` (``float64`` or ``float32``).
    Stopping, ``check_every`` and ``info`` as in :func:`solve_cg`; ``info`` also gets ``"levels"``.
    """
    check_choice("mg_precision", precision, MG_PRECISIONS)
    a64 = a.detach().to(torch.float64)
    n = a.shape[-1]
    op = DarcyOperator(a64, face_average)
    fine = op if precision == "float64" else DarcyOperator(a64.to(torch.float32), face_average)
    mg = MultigridPreconditioner(fine, n - 2)
    x, iterations = batched_pcg(op, _rhs(f, a64), mg, tol, max_iter, check_every, name="Darcy MG-CG",
                                hint="; raise max_iter or use solver='direct'")
    if info is not None:
        info.update(iterations=iterations, levels=mg.levels)
    return torch.nn.functional.pad(x, (1, 1, 1, 1))


def solve_bytes_per_sample(n: int, solver: str, mg_precision: str = "float32",
                           direct_workers: int | None = None) -> int:
    """Estimated peak memory (bytes) per sample of :func:`solve_darcy` on an ``n x n`` grid, counting the arrays
    each solver keeps live, in units of ``N = (n - 2)^2`` interior values (checked against measured peaks in
    ``tests/test_darcy.py``):

    * every solver: ``a`` and ``u`` (B, n, n) float64, the right-hand side;
    * ``cg``: the operator (3 N: faces, diagonal), the CG vectors ``x, r, z, p, A p`` and two temporaries;
    * ``mgcg``: that, plus the V-cycle's copy of the operator and its hierarchy in ``mg_precision`` (9-point
      Galerkin stencils and inverse diagonals, ``10 N / 3`` over the coarse levels, the coarsest inverse) and its
      work arrays (about 3 per level, ``4 N`` in all);
    * ``direct``: the sparse matrix and its LU factors (``nnz(L + U) ~ 3.5 N log2 N`` with the minimum-degree
      ordering, measured at n = 65...421, values and row indices), counted per sample although only
      ``direct_workers`` exist at a time, as the estimate should err on the large side.
    """
    big = n * n
    N = (n - 2) ** 2
    base = 8 * (3 * big + N)
    if solver == "direct":
        return base + 12 * (4 * N * max(1.0, math.log2(N)) + 5 * N)
    cg = 8 * (3 * N + 7 * N)
    if solver == "cg":
        return base + cg
    coarsest = min(N, 15 * 15) ** 2
    mg = (4 if mg_precision == "float32" else 8) * (big + 3 * N + N + 10 * N / 3 + coarsest + 4 * N)
    return int(base + cg + mg)


def resolve_solver(solver: str, device: torch.device | str) -> str:
    """The solver ``auto`` means on ``device``: ``mgcg`` on CUDA, :data:`AUTO_CPU_SOLVER` on CPU."""
    check_choice("solver", solver, SOLVERS)
    if solver != "auto":
        return solver
    return "mgcg" if torch.device(device).type == "cuda" else AUTO_CPU_SOLVER


def solve_darcy(
    a: torch.Tensor,
    f: float | torch.Tensor = 1.0,
    solver: str = "auto",
    face_average: str = "arithmetic",
    cg_tol: float = 1e-10,
    direct_workers: int | None = None,
    check_every: int = 10,
    mg_precision: str = "float32",
) -> torch.Tensor:
    """Solve ``-div(a grad u) = f``, ``u = 0`` on the boundary, for each sample of ``a`` (B, n, n).

    Returns ``u`` (B, n, n) float64 on ``a``'s device. ``direct_workers`` (``direct``), ``check_every`` (``cg``,
    ``mgcg``) and ``mg_precision`` (``mgcg``) change the speed, not the result (beyond ``cg_tol``).
    """
    solver = resolve_solver(solver, a.device)
    if a.ndim != 3 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 3:
        raise ValueError(f"a must have shape (batch, n, n) with n >= 3, got {tuple(a.shape)}")
    if solver == "direct":
        return solve_direct(a, f, face_average, direct_workers)
    if solver == "mgcg":
        return solve_mgcg(a, f, face_average, tol=cg_tol, check_every=check_every, precision=mg_precision)
    return solve_cg(a, f, face_average, tol=cg_tol, check_every=check_every)


class Darcy(PDEProblem):
    """Darcy-flow data: coefficient ``a`` and solution ``u``, each (resolution, resolution) per sample.

    Parameters (``defaults``): ``resolution`` loaded grid, ``store_resolution`` stored grid (``None`` = the solver
    grid) and ``solver_resolution`` solver grid, all counting the boundary nodes (``resolution`` is not part of
    the stored data's hash); ``alpha``, ``tau`` of the Neumann GRF that is thresholded at 0 into ``a_high`` /
    ``a_low``; ``forcing`` (constant ``f``); ``solver`` (``auto``, ``direct``, ``cg``, ``mgcg``);
    ``face_average`` (``arithmetic`` as in FNO, or ``harmonic``); ``cg_tol`` relative residual of the CG solvers.
    Solver knobs that change the speed but not the data (beyond ``cg_tol``), and so are not part of the stored
    data's hash (:data:`SOLVER_KNOBS`): ``direct_workers`` (``None`` = :func:`default_workers`),
    ``cg_check_every`` (most iterations between convergence checks, each a host sync on a GPU), ``mg_precision`` of
    the multigrid V-cycle (``float32``: measured 1.5-2x faster on CPU than ``float64`` at the same iteration
    counts; CG itself is always float64).
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
        "direct_workers": None,
        "cg_check_every": 10,
        "mg_precision": "float32",
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
        if p["direct_workers"] is not None:
            p["direct_workers"] = check_int("direct_workers", p["direct_workers"], 1)
        p["cg_check_every"] = check_int("cg_check_every", p["cg_check_every"], 1)
        check_choice("mg_precision", p["mg_precision"], MG_PRECISIONS)
        self.stride = check_grids(self, 3)

    def storage_config(self) -> dict:
        """The stored data's identity: the base one without the :data:`SOLVER_KNOBS` (they do not change the
        data beyond ``cg_tol``, so stores made before they existed keep their hash)."""
        cfg = super().storage_config()
        for key in SOLVER_KNOBS:
            cfg.pop(key, None)
        return cfg

    def solve_bytes_per_sample(self, device: torch.device | str) -> int:
        """Peak solver memory per sample on ``device`` (see :func:`solve_bytes_per_sample`)."""
        return solve_bytes_per_sample(self.solver_resolution, resolve_solver(self.solver, device),
                                      self.mg_precision, self.direct_workers)

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
        u = solve_darcy(a, self.forcing, self.solver, self.face_average, self.cg_tol, self.direct_workers,
                        self.cg_check_every, self.mg_precision)
        s = self.stride
        return {"a": a[:, ::s, ::s], "u": u[:, ::s, ::s]}
