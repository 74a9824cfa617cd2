"""2-D incompressible Navier-Stokes in vorticity form on the unit torus (the FNO paper's setting).

    w_t + u . grad w = nu Laplacian w + f,   div u = 0,   w = curl u = -Laplacian psi,   u = (psi_y, -psi_x),
    f(x, y) = A (sin 2 pi (x + y) + cos 2 pi (x + y))   (FNO: A = 0.1),
    w0 ~ zero-mean Gaussian random field, covariance c (-Laplacian + tau^2 I)^(-alpha) without its mean mode (a
         periodic velocity field has a zero-mean vorticity); FNO: alpha = 2.5, tau = 7, nu = 1e-3 (and 1e-4, 1e-5).

Initial-condition convention (``grf_convention``). The FNO paper states ``w0 ~ N(0, 7^1.5 (-Laplacian + 49)^-2.5)``,
but its numbers (and those of LSM and SFNO on the same data) come from the FNO reference generator (``ns_2d.py``
with ``random_fields.GaussianRF``), which samples a field about 6 times larger:

``reference``  (default) the FNO code. ``sigma = tau^(alpha - d/2)`` (= 7^1.5) is the *amplitude* of the spectral
               coefficients, ``sqrt_eig_k = N^d sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2)``, ``sqrt_eig_0 = 0``,
               ``w0 = Re ifft(sqrt_eig * (xi1 + i xi2))`` with independent standard normals at every ``k`` of
               the ``N x N`` FFT grid. On the grid this is exactly (in distribution) the stationary Gaussian
               field with covariance ``sum_k 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha) cos 2 pi k.(x - y)``, i.e.
               ``c = 2 sigma^2``, and we sample it as such: pointwise variance
               ``sum_{k != 0} 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha)`` (std 0.26 for the FNO values).
``literal``    the paper's formula read literally: ``c = sigma^2`` with ``sigma^2 = tau^(alpha - d/2)``
               (= 7^1.5), std 0.043, ``sqrt(2 * 7^1.5) = 6.1`` times smaller.

``sigma: None`` takes the FNO value of the convention (both ``tau^(alpha - 1)``-based as above); a number is used
as ``sigma`` in the convention's formula.

The equations, the forcing and the spectral operators (:class:`SpectralGrid`, :func:`forcing`) are defined once,
in :mod:`datasets.pdes.navier_stokes_spectral`, shared with the residual of predicted trajectories
(:mod:`operators.physics.navier_stokes_residual`); both names are importable from here too.

Solver: Fourier pseudo-spectral on an ``n x n`` grid (``x_i = i / n``, arrays indexed ``[i_x, i_y]``), the
advection term formed in physical space and dealiased by the 2/3 rule (``|k_x|, |k_y| < n / 3``); in time,
Crank-Nicolson for the diffusion and Heun's method (explicit trapezoidal RK2) for advection and forcing:

    w*      = [(1 - dt nu K / 2) w^n + dt N(w^n)] / (1 + dt nu K / 2)
    w^{n+1} = [(1 - dt nu K / 2) w^n + dt (N(w^n) + N(w*)) / 2] / (1 + dt nu K / 2),   K = 4 pi^2 |k|^2,

which is second order in time (the FNO reference generator uses the same CN diffusion with a first-order
explicit advection step and ``dt = 1e-4``). Everything runs batched on any torch device in float64 (or float32
on request). The solver step is ``dt`` or slightly smaller so that every recording time is hit exactly.

Time-step guarantee (CFL). The explicit advection step is stable only for a CFL number
``C = dt max_x(|u| + |v|) / dx`` (``dx = 1 / n``) below about 0.6: with reference-convention data at nu = 1e-5 the
solver blew up within one time unit of ``C`` reaching 0.64-0.8 at both 64^2 and 256^2, and ran to the end at
0.42. :func:`solve_navier_stokes` therefore checks ``C <= MAX_CFL = 0.5`` on the initial field and on every
recorded snapshot (the check before each interval covers the velocity at its start; one reduction and one host
sync per snapshot, none per time step) and raises :class:`CFLError` naming ``dt``, ``C`` and the largest ``dt``
the limit allows. It does not adapt ``dt``; the solution is also checked to be finite at every snapshot.
Measured for the FNO settings (reference w0, forcing 0.1): ``max(|u| + |v|)`` grows from 0.08-0.13 at ``t = 0``
to 0.59-0.66 at ``t = 20`` (nu = 1e-5; 256^2 and 64^2) and saturates at 0.36 (nu = 1e-3, ``t <= 50``, 64^2), so
``dt = 1e-3`` gives ``C <= 0.17`` at 256^2 (0.04 at 64^2); its time-stepping error at ``t = 20`` (nu = 1e-5, 64^2)
is 1.1e-4 relative L2 against ``dt = 2.5e-4``.

Stored field ``w``: (n_snapshots, store_resolution, store_resolution) at ``t = 0, record_every, ..., t_final``,
subsampled from the solver grid by striding, and loaded at ``resolution`` (every
``store_resolution / resolution``-th stored point).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from datasets.grf import GaussianRandomField
from datasets.pdes.base import (
    PDEProblem,
    check_choice,
    check_grids,
    check_int,
    check_positive,
)
from datasets.pdes.navier_stokes_spectral import SpectralGrid, forcing
from datasets.pdes.time_stepping import check_output_times, march_to_snapshots

_DTYPES = {"float64": (torch.float64, torch.complex128), "float32": (torch.float32, torch.complex64)}
GRF_CONVENTIONS = ("reference", "literal")
#: largest CFL number ``dt max(|u| + |v|) / dx`` the solver accepts (explicit advection blows up near 0.6)
MAX_CFL = 0.5


class CFLError(ValueError):
    """The time step violates the CFL limit of the explicit advection step."""


def solve_navier_stokes(
    w0: torch.Tensor,
    nu: float,
    times: list[float] | torch.Tensor,
    dt: float,
    f: torch.Tensor | None = None,
    max_cfl: float | None = MAX_CFL,
) -> torch.Tensor:
    """Integrate the vorticity equation from ``w0`` (B, n, n) and return (B, len(times), n, n).

    Args:
        w0: initial vorticity on ``x_i = i / n`` (its dtype, float64 or float32, is the working precision).
        nu: viscosity > 0.
        times: non-negative increasing output times (the first may be 0).
        dt: largest step; each interval is split into equal steps ``<= dt``.
        f: forcing (n, n) or (B, n, n), or ``None`` for no forcing.
        max_cfl: the CFL limit checked on ``w0`` and on every output snapshot (``None``: no check), see
            :func:`cfl_number`.

    Raises:
        CFLError: ``dt max(|u| + |v|) / dx > max_cfl`` for some sample at ``t = 0`` or at an output time (a
            ``ValueError`` naming ``dt``, the CFL number and the largest allowed ``dt``).
        RuntimeError: the solution became non-finite.
    """
    if w0.ndim != 3 or w0.shape[-1] != w0.shape[-2]:
        raise ValueError(f"w0 must have shape (batch, n, n), got {tuple(w0.shape)}")
    times = check_output_times(times)
    real_dtype = w0.dtype if w0.dtype in (torch.float32, torch.float64) else torch.float64
    w0 = w0.to(real_dtype)
    n = w0.shape[-1]
    grid = SpectralGrid(n, w0.device, real_dtype)
    f_hat = None if f is None else torch.fft.rfft2(f.to(device=w0.device, dtype=real_dtype))

    def nonlinear(w_hat: torch.Tensor) -> torch.Tensor:
        adv = grid.advection_hat(w_hat)
        return -adv if f_hat is None else f_hat - adv

    def advance(w_hat: torch.Tensor, h: float, steps: int) -> torch.Tensor:
        # Crank-Nicolson for nu Lap w, Heun (explicit RK2) for advection + forcing
        explicit = 1.0 - 0.5 * h * nu * grid.k2
        implicit = 1.0 / (1.0 + 0.5 * h * nu * grid.k2)
        for _ in range(steps):
            n0 = nonlinear(w_hat)
            base = explicit * w_hat
            w_star = (base + h * n0) * implicit
            w_hat = (base + 0.5 * h * (n0 + nonlinear(w_star))) * implicit
        return w_hat

    def check_cfl(w_hat: torch.Tensor, t: float) -> None:
        speed = float(max_speed(grid, w_hat).max())  # one host sync per snapshot
        cfl = dt * speed * n
        if cfl > max_cfl:
            raise CFLError(f"Navier-Stokes: dt={dt:g} is too large: CFL number dt max(|u| + |v|) / dx = {cfl:.3g} > "
                           f"{max_cfl:g} at t={t:g} (max |u| + |v| = {speed:.3g}, dx = 1/{n}); the largest stable "
                           f"dt is {max_cfl / (speed * n):.3g}, use dt <= that")

    return march_to_snapshots(torch.fft.rfft2(w0), times, dt, advance,
                              lambda w_hat: torch.fft.irfft2(w_hat, s=(n, n)), "Navier-Stokes",
                              check=None if max_cfl is None else check_cfl)


def max_speed(grid: SpectralGrid, w_hat: torch.Tensor) -> torch.Tensor:
    """``max_x (|u| + |v|)`` per sample (B,) of the vorticity spectrum ``w_hat`` (B, n, n // 2 + 1)."""
    u, v = grid.velocity(w_hat)
    return (u.abs() + v.abs()).flatten(-2).amax(-1)


def cfl_number(w: torch.Tensor, dt: float) -> torch.Tensor:
    """The advective CFL number ``dt max_x(|u| + |v|) / dx`` (``dx = 1 / n``) of vorticity fields ``w`` (B, n, n),
    per sample (B,)."""
    n = w.shape[-1]
    grid = SpectralGrid(n, w.device, w.dtype)
    return dt * n * max_speed(grid, torch.fft.rfft2(w))


class NavierStokes(PDEProblem):
    """2-D Navier-Stokes vorticity data: ``w`` (n_snapshots, resolution, resolution) per sample.

    Parameters (``defaults``): ``nu`` viscosity; ``t_final``; ``record_every`` (``t_final`` must be a whole
    multiple); ``resolution`` loaded grid (a divisor of ``store_resolution``; not part of the stored data's hash);
    ``store_resolution`` stored grid (a divisor of ``solver_resolution``; ``None`` = the solver grid);
    ``solver_resolution`` solver grid; ``dt`` largest step (checked against the CFL limit, see the module
    docstring); ``forcing_amplitude`` (FNO: 0.1; 0 for decaying turbulence); initial-condition GRF ``alpha``,
    ``tau``, ``grf_convention`` (``reference``: the FNO code, covariance ``2 sigma^2 (-Laplacian + tau^2)^(-alpha)``;
    ``literal``: the FNO paper's formula, ``sigma^2 (-Laplacian + tau^2)^(-alpha)``) and ``sigma`` (``None``: the
    FNO value of the convention, ``tau^(alpha - 1)`` as amplitude (reference) or as ``sigma^2`` (literal));
    ``precision`` (``float64`` or ``float32``).

    The default ``dt = 1e-3`` keeps the CFL number of the FNO flows at 256^2 at or below 0.17 (limit 0.5); the
    scheme is second order, so this is more accurate than the FNO generator's first-order ``dt = 1e-4``.
    """

    name = "navier_stokes"
    grid_kind = "periodic"
    space_axes = 2
    space_coords = {"x": 1, "y": 1, "f": 2}
    defaults = {
        "nu": 1e-3,
        "t_final": 50.0,
        "record_every": 1.0,
        "resolution": 64,
        "store_resolution": None,
        "solver_resolution": 256,
        "dt": 1e-3,
        "forcing_amplitude": 0.1,
        "alpha": 2.5,
        "tau": 7.0,
        "grf_convention": "reference",
        "sigma": None,
        "precision": "float64",
    }

    def validate(self) -> None:
        p = self.params
        p["nu"] = check_positive("nu", p["nu"])
        p["t_final"] = check_positive("t_final", p["t_final"])
        p["record_every"] = check_positive("record_every", p["record_every"])
        p["resolution"] = check_int("resolution", p["resolution"], 2)
        p["solver_resolution"] = check_int("solver_resolution", p["solver_resolution"], 4)
        p["dt"] = check_positive("dt", p["dt"])
        p["forcing_amplitude"] = check_positive("forcing_amplitude", p["forcing_amplitude"], allow_zero=True)
        p["alpha"] = check_positive("alpha", p["alpha"])
        p["tau"] = check_positive("tau", p["tau"])
        check_choice("grf_convention", p["grf_convention"], GRF_CONVENTIONS)
        if p["sigma"] is None:  # the FNO value: tau^(alpha - d/2) as amplitude (reference) or variance (literal)
            fno = p["tau"] ** (p["alpha"] - 1.0)
            p["sigma"] = fno if p["grf_convention"] == "reference" else math.sqrt(fno)
        p["sigma"] = check_positive("sigma", p["sigma"])
        check_choice("precision", p["precision"], _DTYPES)
        ratio = p["t_final"] / p["record_every"]
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
            raise ValueError(f"t_final={p['t_final']} is not allowed with record_every={p['record_every']}; "
                             "use a whole multiple of record_every")
        if p["dt"] > p["record_every"]:
            raise ValueError(f"dt={p['dt']} is not allowed; use dt <= record_every={p['record_every']}")
        if p["solver_resolution"] % 2:
            raise ValueError(f"solver_resolution={p['solver_resolution']} is not allowed; use an even number")
        self.stride = check_grids(self, 2)
        self.n_snapshots = int(round(ratio)) + 1

    def covariance_scale(self) -> float:
        """``c`` of the initial-condition covariance ``c (-Laplacian + tau^2)^(-alpha)``: ``2 sigma^2``
        (reference) or ``sigma^2`` (literal)."""
        return (2.0 if self.grf_convention == "reference" else 1.0) * self.sigma**2

    def times(self) -> np.ndarray:
        return np.arange(self.n_snapshots, dtype=np.float64) * self.record_every

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"w": (self.n_snapshots, self.resolution, self.resolution)}

    def coordinates(self) -> dict[str, np.ndarray]:
        x = np.arange(self.resolution, dtype=np.float64) / self.resolution
        f = forcing(self.solver_resolution, self.forcing_amplitude)[:: self.stride, :: self.stride]
        return {"t": self.times(), "x": x, "y": x.copy(), "f": f.numpy()}

    def grf(self, device: torch.device | str = "cpu") -> GaussianRandomField:
        """The initial-vorticity field on the solver grid, covariance ``covariance_scale() (-Lap + tau^2)^-alpha``
        without the mean mode (the vorticity of a periodic velocity field has zero mean)."""
        return GaussianRandomField(2, self.solver_resolution, self.alpha, self.tau,
                                   math.sqrt(self.covariance_scale()), boundary="periodic", zero_mean=True,
                                   device=device)

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        real_dtype = _DTYPES[self.precision][0]
        w0 = self.grf(device).sample(generators).to(real_dtype)
        f = None
        if self.forcing_amplitude > 0:
            f = forcing(self.solver_resolution, self.forcing_amplitude, real_dtype, device)
        w = solve_navier_stokes(w0, self.nu, self.times().tolist(), self.dt, f)
        return {"w": w[..., :: self.stride, :: self.stride]}
