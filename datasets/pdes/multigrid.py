"""Geometric multigrid with Galerkin coarse operators for batched 2-D node-grid operators (zero Dirichlet).

The unknowns are the ``m x m`` interior nodes of a node grid (``m = n - 2``); every array is ``(B, m, m)`` with
its own operator per sample. Coarsening keeps every other interior node, the odd interior indices ``1, 3, ...``
(= the even nodes ``2, 4, ...`` of the grid including the boundary), so ``m_c = m // 2``: ``421`` nodes (``m =
419``) -> 209 -> 104 -> 52 -> 26 -> 13. For odd ``m`` the coarse grid has twice the spacing; for even ``m`` the
last coarse node sits one fine spacing from the boundary -- the interpolation below still is a full-rank
prolongation, and the Galerkin coarse operator is SPD for any full-rank ``P``, so even ``n`` needs no special
case.

* Prolongation ``P``: bilinear (tensor product of 1-D linear interpolation, coarse values copied, the fine nodes
  in between averaged, zero boundary values outside); restriction ``R = P^T`` (full weighting times 4).
* Coarse operators ``A_c = R A P`` (Galerkin): robust for the jumping coefficients of the Darcy problem, where
  rediscretising averaged coefficients is not. ``R A P`` of a 5- or 9-point operator is a 9-point operator; its
  stencil is found by probing with 9 colours (coarse nodes equal mod 3 in both indices), 9 applications of the
  fine operator per level, batched over the samples.
* Smoother: damped Jacobi, ``sweeps`` before and after the coarse correction (the first from zero), so the
  V-cycle is a symmetric positive definite preconditioner for CG.
* Coarsest level (``m <= coarsest``): exact solve by the Cholesky-factored dense matrix (its explicit inverse).

Everything is torch tensor ops, so it runs on any device; the hierarchy may be kept in float32 (half the memory
traffic) while CG iterates in float64.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Operator = Callable[[torch.Tensor], torch.Tensor]


def _axis_slice(ndim: int, dim: int, sl: slice) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[dim] = sl
    return tuple(index)


def _pad_axis(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    pad = [0, 0, 0, 0]  # (last before, last after, second-to-last before, second-to-last after)
    pad[(0 if dim == -1 else 2)] = before
    pad[(1 if dim == -1 else 3)] = after
    return F.pad(x, pad)


def prolong_axis(c: torch.Tensor, m: int, dim: int) -> torch.Tensor:
    """1-D linear interpolation along ``dim`` (-1 or -2) from ``m // 2`` coarse to ``m`` fine interior nodes."""
    mc = c.shape[dim]
    if mc != m // 2:
        raise ValueError(f"coarse size {mc} does not match fine size m={m} (expected m // 2 = {m // 2})")
    shape = list(c.shape)
    shape[dim] = m
    out = c.new_empty(shape)
    nd = c.ndim
    out[_axis_slice(nd, dim, slice(1, None, 2))] = c  # odd fine indices are the coarse nodes
    padded = _pad_axis(c, dim, 1, 1)  # zero Dirichlet values outside
    n_even = (m + 1) // 2
    out[_axis_slice(nd, dim, slice(0, None, 2))] = 0.5 * (
        padded[_axis_slice(nd, dim, slice(0, n_even))] + padded[_axis_slice(nd, dim, slice(1, n_even + 1))])
    return out


def restrict_axis(f: torch.Tensor, dim: int) -> torch.Tensor:
    """The transpose of :func:`prolong_axis`: ``c_I = f_{2I+1} + (f_{2I} + f_{2I+2}) / 2``."""
    m = f.shape[dim]
    mc = m // 2
    nd = f.ndim
    even = f[_axis_slice(nd, dim, slice(0, None, 2))]
    if even.shape[dim] == mc:  # even m: no fine node after the last coarse one
        even = _pad_axis(even, dim, 0, 1)
    odd = f[_axis_slice(nd, dim, slice(1, None, 2))]
    return odd + 0.5 * (even[_axis_slice(nd, dim, slice(0, mc))] + even[_axis_slice(nd, dim, slice(1, mc + 1))])


def prolong(c: torch.Tensor, m: int) -> torch.Tensor:
    """Bilinear prolongation (B, m // 2, m // 2) -> (B, m, m)."""
    return prolong_axis(prolong_axis(c, m, -2), m, -1)


def restrict(f: torch.Tensor) -> torch.Tensor:
    """``P^T``: (B, m, m) -> (B, m // 2, m // 2)."""
    return restrict_axis(restrict_axis(f, -2), -1)


class Stencil9:
    """A batched 9-point operator on (B, m, m) interior values, zero outside.

    ``weights`` (B, 3, 3, m, m): ``weights[:, 1 + di, 1 + dj, i, j]`` multiplies ``u[i + di, j + dj]`` in row
    ``(i, j)`` (0 where that neighbour is outside the grid).
    """

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights
        self.m = weights.shape[-1]
        self.diag = weights[:, 1, 1]

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """``A u`` for ``u`` (B, m, m)."""
        return self._couple(self.diag * u, u, 1.0)

    def residual(self, b: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``b - A u`` (B, m, m) without forming ``A u``."""
        return self._couple(torch.addcmul(b, self.diag, u, value=-1.0), u, -1.0)

    def _couple(self, y: torch.Tensor, u: torch.Tensor, sign: float) -> torch.Tensor:
        """``y += sign * (off-diagonal part of A) u`` in place (neighbours outside the grid skipped)."""
        for di in (-1, 0, 1):
            rows_y, rows_u = _shifted(di)
            for dj in (-1, 0, 1):
                if di or dj:
                    cols_y, cols_u = _shifted(dj)
                    w = self.weights[:, 1 + di, 1 + dj, rows_y, cols_y]
                    y[:, rows_y, cols_y].addcmul_(w, u[:, rows_u, cols_u], value=sign)
        return y


def _shifted(d: int) -> tuple[slice, slice]:
    """Index ranges (rows of the result, rows of the neighbour) for the neighbour offset ``d`` in -1, 0, 1."""
    if d == 0:
        return slice(None), slice(None)
    return (slice(None, -1), slice(1, None)) if d > 0 else (slice(1, None), slice(None, -1))


def probe_stencil(apply: Operator, batch: int, m: int, dtype: torch.dtype, device: torch.device) -> Stencil9:
    """The 9-point stencil of a batched operator ``apply`` on (B, m, m) known to couple only nodes at most one
    apart in each index: apply it to the 9 sums of unit vectors of the nodes equal mod 3 (each 3 x 3 neighbourhood
    holds one node of each colour, so row ``(i, j)`` of colour ``c``'s result is the one weight of the
    neighbour of colour ``c``)."""
    idx = torch.arange(m, device=device)
    weights = torch.zeros(batch, 3, 3, m, m, dtype=dtype, device=device)
    for ci in range(3):
        for cj in range(3):
            probe = ((idx[:, None] % 3 == ci) & (idx[None, :] % 3 == cj)).to(dtype).expand(batch, m, m)
            out = apply(probe)
            for di in range(3):
                for dj in range(3):
                    # rows whose neighbour (i + di - 1, j + dj - 1) has colour (ci, cj): i = ci - di + 1 mod 3
                    i0, j0 = (ci - di + 1) % 3, (cj - dj + 1) % 3
                    weights[:, di, dj, i0::3, j0::3] = out[:, i0::3, j0::3]
    # no neighbour outside the grid (the probe had no colour there, so these are already 0; made exact)
    weights[:, 0, :, 0] = 0
    weights[:, 2, :, -1] = 0
    weights[:, :, 0, :, 0] = 0
    weights[:, :, 2, :, -1] = 0
    return Stencil9(weights)


def dense_matrix(stencil: Stencil9) -> torch.Tensor:
    """The (B, m^2, m^2) matrix of a :class:`Stencil9` (unknown ``(i, j)`` is row ``i m + j``)."""
    w = stencil.weights
    b, m = w.shape[0], stencil.m
    mat = w.new_zeros(b, m, m, m + 2, m + 2)  # columns on the grid padded by one node
    i = torch.arange(m, device=w.device)
    for di in range(3):
        for dj in range(3):
            mat[:, i[:, None], i[None, :], i[:, None] + di, i[None, :] + dj] = w[:, di, dj]
    return mat[..., 1:-1, 1:-1].reshape(b, m * m, m * m)


class MultigridPreconditioner:
    """A symmetric V-cycle ``r (B, m, m) -> M^-1 r`` for the batched SPD operator ``op`` on (B, m, m).

    Args:
        op: the fine operator: ``op(u)`` = ``A u`` and ``op.residual(b, u)`` = ``b - A u`` on (B, m, m), its
            diagonal ``op.diag`` (B, m, m); in the dtype the V-cycle runs in.
        m: interior nodes per side.
        omega: Jacobi damping (0.8: a good smoother for 5- and 9-point stencils).
        sweeps: Jacobi sweeps before and after each coarse correction.
        coarsest: interior size at (or below) which the level is solved exactly.
    """

    def __init__(self, op, m: int, omega: float = 0.8, sweeps: int = 1, coarsest: int = 15) -> None:
        if not 0.0 < omega <= 1.0:  # lambda_max(D^-1 A) < 2 for these stencils: omega <= 1 smooths
            raise ValueError(f"omega={omega!r} is not allowed; use 0 < omega <= 1")
        if sweeps < 1 or coarsest < 1:
            raise ValueError(f"sweeps={sweeps!r}, coarsest={coarsest!r} are not allowed; use integers >= 1")
        diag = op.diag
        batch, dtype, device = diag.shape[0], diag.dtype, diag.device
        self.dtype = dtype
        self.sweeps = sweeps
        self.ops = [op]
        self.sizes = [m]
        self.inv_diags = [omega / diag]
        while self.sizes[-1] > coarsest:
            fine, mf = self.ops[-1], self.sizes[-1]
            galerkin = lambda e, fine=fine, mf=mf: restrict(fine(prolong(e, mf)))  # e -> R A P e
            coarse = probe_stencil(galerkin, batch, mf // 2, dtype, device)
            self.ops.append(coarse)
            self.sizes.append(mf // 2)
            self.inv_diags.append(omega / coarse.diag)
        last = self.ops[-1]
        if not isinstance(last, Stencil9):  # a grid too small to coarsen: its own stencil
            last = probe_stencil(last, batch, m, dtype, device)
        # explicit inverse of the small SPD coarsest matrix: one batched matmul per V-cycle
        self.coarse_inverse = torch.cholesky_inverse(torch.linalg.cholesky(dense_matrix(last)))

    @property
    def levels(self) -> int:
        return len(self.ops)

    def _cycle(self, b: torch.Tensor, level: int) -> torch.Tensor:
        if level == self.levels - 1:
            m = self.sizes[level]
            return (self.coarse_inverse @ b.reshape(b.shape[0], m * m, 1)).view_as(b)
        op, inv_d = self.ops[level], self.inv_diags[level]
        x = inv_d * b  # first pre-smoothing sweep from x = 0
        for _ in range(self.sweeps - 1):
            x.addcmul_(inv_d, op.residual(b, x))
        x += prolong(self._cycle(restrict(op.residual(b, x)), level + 1), self.sizes[level])
        for _ in range(self.sweeps):  # as many post- as pre-sweeps: a symmetric V-cycle
            x.addcmul_(inv_d, op.residual(b, x))
        return x

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return self._cycle(r.to(self.dtype), 0)
