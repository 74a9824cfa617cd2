"""Residual of the 2-D incompressible Navier-Stokes equations in vorticity form for a predicted trajectory:

    R = w_t + u . grad w - nu Laplacian w - f,   u = (psi_y, -psi_x),   -Laplacian psi = w,

on the unit torus (the equations of ``datasets.pdes.navier_stokes``), measured in the ``H^{-1}`` norm as the
Spectral-Refiner's a posteriori error estimator (Cao et al., ICLR 2025).

Discretisation:

* space: Fourier pseudo-spectral, with the data solver's own operators
  (:class:`datasets.pdes.navier_stokes_spectral.SpectralGrid`): velocity and gradients by spectral
  differentiation, the product ``u . grad w`` formed in physical space and dealiased by the 2/3 rule
  (``|k_x|, |k_y| < n / 3``); ``nu Laplacian w`` and ``f`` exactly in Fourier space (the forcing of the data,
  :func:`datasets.pdes.navier_stokes_spectral.forcing`).
* time: finite differences on the uniform time grid of the trajectory (2nd-order central in the interior,
  2nd-order one-sided at both ends, ``torch.gradient(edge_order=2)``; or 4th-order with ``time_order=4``).
  A spectral time derivative is not used on purpose: a predicted window ``t_1..t_T`` is not periodic in time,
  so differentiating its Fourier series would add Gibbs oscillations at both ends of the window that are
  O(1) however fine the grid; finite differences are local, exact for polynomials of degree ``time_order``,
  and their ``O(dt^p)`` error is made small by asking the SFNO for a finer output time grid (it predicts any
  number of steps), which is what the refinement task does (``time_refinement``).

Precision: the time derivative and the residual are computed in float32 (float64 for float64 trajectories) with
autocast disabled, whatever the caller's autocast state (Lightning ``precision="bf16-mixed"``): a finite
difference of nearly equal snapshots and the cancelling terms of ``R`` would keep a few significant bits in bf16.

``H^{-1}`` norm: ``||R||^2 = sum_k (alpha + 4 pi^2 |k|^2)^{-1} |R_k|^2`` (Parseval,
:func:`operators.losses.sobolev_norm_squared`); per sample the Bochner mean over time
``sqrt(mean_t ||R(t)||^2_{H^{-1}})``.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from datasets.pdes.navier_stokes_spectral import SpectralGrid, forcing_function
from operators.layers.precision import autocast_disabled
from operators.losses import sobolev_norm_squared


def time_derivative(w: torch.Tensor, dt: float, order: int = 2, dim: int = 1) -> torch.Tensor:
    """Finite-difference ``d/dt`` along ``dim`` of a uniformly sampled trajectory (spacing ``dt``), same shape as
    ``w`` (e.g. ``(B, T, n, n)``), computed in float32 (float64 for float64 ``w``) with autocast disabled.

    ``order=2``: central inside, one-sided 2nd order at the ends (needs >= 3 steps; 2 steps fall back to the
    first-order difference). ``order=4``: 5-point central inside, 4th-order one-sided stencils for the first
    and last two points (needs >= 5 steps).
    """
    w = w.to(torch.float64 if w.dtype == torch.float64 else torch.float32)
    with autocast_disabled(w):
        return _time_derivative(w, dt, order, dim)


def _time_derivative(w: torch.Tensor, dt: float, order: int, dim: int) -> torch.Tensor:
    n = w.shape[dim]
    if n < 2:
        raise ValueError(f"a time derivative needs >= 2 time steps; got {n}")
    if order == 2 or (order == 4 and n < 5):
        if n == 2:
            d = (w.narrow(dim, 1, 1) - w.narrow(dim, 0, 1)) / dt
            return torch.cat([d, d], dim=dim)
        return torch.gradient(w, spacing=dt, dim=dim, edge_order=2)[0]
    if order != 4:
        raise ValueError(f"time_order={order} is not allowed; use 2 or 4")
    wt = w.movedim(dim, 0)
    out = torch.empty_like(wt)
    out[2:-2] = (-wt[4:] + 8 * wt[3:-1] - 8 * wt[1:-3] + wt[:-4]) / (12 * dt)
    c = torch.tensor([-25.0, 48.0, -36.0, 16.0, -3.0], dtype=wt.dtype, device=wt.device) / (12 * dt)
    c1 = torch.tensor([-3.0, -10.0, 18.0, -6.0, 1.0], dtype=wt.dtype, device=wt.device) / (12 * dt)
    first5 = wt[:5].movedim(0, -1)
    last5 = wt[-5:].flip(0).movedim(0, -1)
    out[0] = first5 @ c
    out[1] = first5 @ c1
    out[-1] = -(last5 @ c)
    out[-2] = -(last5 @ c1)
    return out.movedim(0, dim)


class NavierStokesResidual(nn.Module):
    """Navier-Stokes vorticity residual of trajectories ``(B, T, n, n)`` sampled every ``dt``.

    Args:
        nu: viscosity.
        forcing: ``None`` (no forcing), a ``(n, n)`` tensor, or a callable ``n -> (n, n)`` tensor giving the
            forcing on an ``n x n`` grid (so any resolution works; see :meth:`from_datamodule`).
        dt: time between consecutive snapshots.
        dealias: 2/3-rule dealiasing of the advection term.
        time_order: 2 or 4, see :func:`time_derivative`.
        alpha: ``alpha`` of the ``H^{-1}`` weights ``(alpha + 4 pi^2 |k|^2)^{-1}``.
    """

    def __init__(self, nu: float, forcing: torch.Tensor | Callable[[int], torch.Tensor] | None = None,
                 dt: float = 1.0, dealias: bool = True, time_order: int = 2, alpha: float = 1.0) -> None:
        super().__init__()
        if nu <= 0 or dt <= 0:
            raise ValueError(f"NavierStokesResidual: nu={nu} and dt={dt} must be positive")
        self.nu = float(nu)
        self.dt = float(dt)
        self.dealias = bool(dealias)
        self.time_order = int(time_order)
        self.alpha = float(alpha)
        self._forcing = forcing
        self._forcing_cache: dict[tuple, torch.Tensor] = {}
        self._grid_cache: dict[tuple, SpectralGrid] = {}

    def extra_repr(self) -> str:
        return f"nu={self.nu}, dt={self.dt}, dealias={self.dealias}, time_order={self.time_order}"

    @classmethod
    def from_datamodule(cls, datamodule: Any, **kwargs: Any) -> NavierStokesResidual:
        """Viscosity, forcing and snapshot spacing of a ``GridDataModule`` of ``navier_stokes`` data."""
        problem = datamodule.problem
        if getattr(problem, "name", None) != "navier_stokes":
            raise ValueError(f"the Navier-Stokes residual needs navier_stokes data; got {problem.name!r}")
        steps = datamodule.target_steps or []
        stride = steps[1] - steps[0] if len(steps) > 1 else 1
        if any(b - a != stride for a, b in itertools.pairwise(steps)):
            raise ValueError(f"the Navier-Stokes residual needs equally spaced target steps; got {steps}")
        return cls(nu=float(problem.nu), forcing=forcing_function(problem.forcing_amplitude),
                   dt=float(problem.record_every) * stride, **kwargs)

    def set_forcing(self, forcing: torch.Tensor | Callable[[int], torch.Tensor] | None) -> None:
        """Replace the forcing (as in the constructor), e.g. by
        :func:`~datasets.pdes.navier_stokes_spectral.forcing_function` of another amplitude."""
        self._forcing = forcing
        self._forcing_cache.clear()

    def grid_on(self, n: int, device, dtype) -> SpectralGrid:
        """The spectral operators of the data solver on an ``n x n`` grid (cached per grid, device and dtype)."""
        key = (n, str(device), dtype)
        if key not in self._grid_cache:
            self._grid_cache[key] = SpectralGrid(n, device, dtype)
        return self._grid_cache[key]

    def forcing_on(self, n: int, device, dtype) -> torch.Tensor | None:
        if self._forcing is None:
            return None
        key = (n, str(device), dtype)
        if key not in self._forcing_cache:
            f = self._forcing(n) if callable(self._forcing) else self._forcing
            if tuple(f.shape) != (n, n):
                raise ValueError(f"forcing of shape {tuple(f.shape)} does not fit an {n}x{n} grid")
            self._forcing_cache[key] = f.to(device=device, dtype=dtype)
        return self._forcing_cache[key]

    def forward(self, w: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """The residual ``R`` ``(B, T, n, n)`` of the vorticity trajectory ``w`` ``(B, T, n, n)``, in float32
        (float64 for float64 ``w``) with autocast disabled."""
        if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
            raise ValueError(f"expected a vorticity trajectory (B, T, n, n); got shape {tuple(w.shape)}")
        dt = self.dt if dt is None else float(dt)
        real = torch.float64 if w.dtype == torch.float64 else torch.float32
        w = w.to(real)
        with autocast_disabled(w):
            return self._residual(w, dt)

    def _residual(self, w: torch.Tensor, dt: float) -> torch.Tensor:
        n, real = w.shape[-1], w.dtype
        grid = self.grid_on(n, w.device, real)
        w_hat = torch.fft.rfft2(w)
        rest = grid.physical(grid.advection_hat(w_hat, self.dealias) + self.nu * grid.k2 * w_hat)
        r = time_derivative(w, dt, self.time_order, dim=1) + rest
        f = self.forcing_on(n, w.device, real)
        return r if f is None else r - f

    def h_minus_1(self, w: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """Per-sample ``sqrt(mean_t ||R(t)||^2_{H^{-1}})`` ``(B,)`` of trajectories ``(B, T, n, n)``, in float32
        (float64 for float64 ``w``) with autocast disabled."""
        r = self(w, dt)
        with autocast_disabled(r):
            return (sobolev_norm_squared(r, -1.0, self.alpha, n_dim=2) / r.shape[1]).sqrt()


def residual_metrics_for(datamodule: Any, step_channels: int = 1) -> dict[str, Callable[[torch.Tensor, dict], torch.Tensor]]:
    """Extra evaluation metrics for time-dependent Navier-Stokes vorticity data, else ``{}``: the ``H^{-1}``
    residual of the predicted trajectory (``ns_residual_h-1``) and, for reference, of the true one
    (``ns_residual_h-1_truth``: the floor set by the time discretisation of the stored snapshots).
    Each metric maps ``(pred, batch)`` to per-sample values ``(B,)``."""
    problem = getattr(datamodule, "problem", None)
    if getattr(problem, "name", None) != "navier_stokes" or step_channels != 1:
        return {}
    steps = getattr(datamodule, "target_steps", None)
    if not steps or len(steps) < 2 or list(getattr(datamodule, "targets", ["w"])) != ["w"]:
        return {}
    try:
        residual = NavierStokesResidual.from_datamodule(datamodule)
    except ValueError:
        return {}
    return {
        "ns_residual_h-1": lambda pred, batch: residual.h_minus_1(pred),
        "ns_residual_h-1_truth": lambda pred, batch: residual.h_minus_1(batch["y"]),
    }
