"""Viscous Burgers' equation on the periodic unit interval (the FNO paper's setting).

    u_t + (u^2 / 2)_x = nu u_xx,   x in [0, 1) periodic,   u(x, 0) = u0(x),
    u0 ~ N(0, sigma^2 (-Laplacian + tau^2 I)^(-alpha)) without its mean mode
         (FNO: 625 (-Laplacian + 25 I)^(-2), nu = 0.1).

Initial condition = the FNO reference generator (MATLAB ``GRF1(N, m, gamma, tau, sigma, 'periodic')`` with
``m = 0``): ``u0 = sum_{k >= 1} sqrt(2) sigma ((2 pi k)^2 + tau^2)^(-alpha/2) (xi_k cos 2 pi k x + eta_k sin
2 pi k x)``, i.e. the covariance above on the orthonormal Fourier basis with the ``k = 0`` mode removed, so every
sample has spatial mean exactly 0 (and Burgers conserves it) and the pointwise variance is
``sum_{k >= 1} 2 sigma^2 ((2 pi k)^2 + tau^2)^(-alpha)`` (0.353 for the FNO values). On the ``N``-point grid the
modes are ``1 <= k <= N / 2``, the Nyquist mode with its cosine part only (the sine vanishes on the grid).

Solver: Fourier pseudo-spectral in space (real FFT, 2/3-rule dealiasing of the quadratic term) and ETDRK4 in
time (Cox & Matthews 2002), the phi-function coefficients computed by contour integrals on a circle of radius
1 around each ``h L`` (Kassam & Trefethen 2005) in float64. The time stepping runs in ``precision``: float64 by
default, or float32 (coefficients cast from float64; ``exp(hL) v`` applied as ``v + expm1(hL) v`` so that the
rounding of ``exp(hL) ~ 1`` does not bias every step alike). float32 data differ from float64 data by 1.0e-6
relative L2 at ``t = 1`` (FNO setting at 1024 points, measured), far below the operators' errors; it is 2.0x
faster on CPU (8192 points, batch 16, 2026-12-02: 21.5 vs 42.4 samples/s with 1 thread, 37.5 vs 68.0 with
2). The linear (diffusion) part is integrated exactly, so the step is limited by accuracy of the advection
only. The step is ``dt`` or slightly smaller, so that every snapshot time is hit exactly.

Stored field ``u``: (n_snapshots, store_resolution), snapshots at ``t_k = k t_final / (n_snapshots - 1)``
(``t = 0`` and ``t = t_final`` included), the solver grid subsampled by striding; loaded at ``resolution``
(``x_j = j / resolution``), every ``store_resolution / resolution``-th stored point.
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
from datasets.pdes.time_stepping import check_output_times, march_to_snapshots

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_COMPLEX = {torch.float64: torch.complex128, torch.float32: torch.complex64}


def wavenumbers(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Non-negative integer wavenumbers of the real FFT of ``n`` points."""
    return torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)


def dealias_mask(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """2/3 rule: keep ``|k| < n / 3``."""
    return (wavenumbers(n, device) < n / 3.0).to(torch.float64)


def etdrk4_coefficients(lin: torch.Tensor, h: float, n_contour: int = 32) -> dict[str, torch.Tensor]:
    """ETDRK4 coefficients for a diagonal linear operator ``lin`` (real, any shape) and step ``h``.

    Returns ``E = exp(hL)``, ``E2 = exp(hL/2)``, ``Em1 = E - 1``, ``E2m1 = E2 - 1``, ``Q = h phi_1(hL/2)/2``-type weight and ``f1, f2, f3``, each
    computed as the mean over ``n_contour`` points ``hL + exp(i pi (j - 1/2) / M)`` (Kassam-Trefethen), which
    avoids the cancellation of the closed-form expressions for small ``|hL|``.
    """
    hl = (h * lin).to(torch.float64)
    j = torch.arange(1, n_contour + 1, dtype=torch.float64, device=lin.device)
    roots = torch.exp(1j * math.pi * (j - 0.5) / n_contour)
    lr = hl.to(torch.complex128).unsqueeze(-1) + roots
    elr = torch.exp(lr)
    q = h * ((torch.exp(lr / 2) - 1) / lr).mean(-1).real
    f1 = h * ((-4 - lr + elr * (4 - 3 * lr + lr**2)) / lr**3).mean(-1).real
    f2 = h * ((2 + lr + elr * (lr - 2)) / lr**3).mean(-1).real
    f3 = h * ((-4 - 3 * lr - lr**2 + elr * (4 - lr)) / lr**3).mean(-1).real
    # E - 1 and E2 - 1 as well: the step applies E v as v + (E - 1) v, so that the rounding of E ~ 1 (low modes,
    # small h) to a float32 does not bias every step the same way (a drift of ~1e-5 over 500 steps otherwise)
    return {"E": torch.exp(hl), "E2": torch.exp(hl / 2), "Em1": torch.expm1(hl), "E2m1": torch.expm1(hl / 2),
            "Q": q, "f1": f1, "f2": f2, "f3": f3}


def solve_burgers(
    u0: torch.Tensor,
    nu: float,
    times: torch.Tensor | list[float],
    dt: float,
    n_contour: int = 32,
) -> torch.Tensor:
    """Solve viscous Burgers from ``u0`` (B, N) on the periodic unit interval.

    Args:
        u0: initial values on ``x_j = j / N``; any device. Its dtype, float64 or float32, is the working
            precision (any other dtype runs in float64). The ETDRK4 coefficients are always computed in float64
            (the contour integrals) and then cast.
        nu: viscosity > 0.
        times: increasing output times starting at ``t >= 0`` (the first may be 0).
        dt: largest time step; each interval between output times is split into equal steps ``<= dt``.

    Returns:
        (B, len(times), N) solution at the output times, in the working precision, on ``u0``'s device.
    """
    if u0.ndim != 2:
        raise ValueError(f"u0 must have shape (batch, n), got {tuple(u0.shape)}")
    real = u0.dtype if u0.dtype in _COMPLEX else torch.float64
    device = u0.device
    n = u0.shape[-1]
    times = check_output_times(times)
    k = wavenumbers(n, device)
    lin = -nu * (2 * math.pi * k) ** 2  # float64, for the coefficients
    mask64 = dealias_mask(n, device)
    mask = mask64.to(real)
    g = (-0.5j * 2 * math.pi * k * mask64).to(_COMPLEX[real])  # (u^2/2)_x with the 2/3 rule applied to the product

    def nonlinear(v: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft(v * mask, n=n)
        return g * torch.fft.rfft(u * u)

    cache: dict[float, dict[str, torch.Tensor]] = {}

    def advance(v: torch.Tensor, h: float, steps: int) -> torch.Tensor:
        c = cache.get(h)
        if c is None:
            c = cache[h] = {key: val.to(real) for key, val in etdrk4_coefficients(lin, h, n_contour).items()}
        for _ in range(steps):
            v = etdrk4_step(v, nonlinear, c)
        return v

    return march_to_snapshots(torch.fft.rfft(u0.to(real)), times, dt, advance,
                              lambda v: torch.fft.irfft(v, n=n), "Burgers")


def solve_bytes_per_sample(n: int, n_snapshots: int, precision: str = "float64") -> int:
    """Estimated peak memory (bytes) per sample of :func:`solve_burgers` on ``n`` points: the snapshots twice
    (the list and its stacked copy), ``u0``, three real work arrays of the nonlinear term and about ten
    half-spectra (the ETDRK4 stages ``v, N(v), a, N(a), b, N(b), c, N(c)`` and two temporaries), in the working
    precision (checked against the measured peak in ``tests/test_burgers.py``)."""
    real = torch.finfo(_DTYPES[precision]).bits // 8
    return int(real * n * (2 * n_snapshots + 4) + 2 * real * (n // 2 + 1) * 10)


def etdrk4_step(v: torch.Tensor, nonlinear, c: dict[str, torch.Tensor]) -> torch.Tensor:
    """One ETDRK4 step of ``v' = L v + N(v)`` in Fourier space."""
    em1, e2m1, q = c["Em1"], c["E2m1"], c["Q"]
    nv = nonlinear(v)
    e2v = torch.addcmul(v, e2m1, v)  # E2 v
    a = torch.addcmul(e2v, q, nv)
    na = nonlinear(a)
    b = torch.addcmul(e2v, q, na)
    nb = nonlinear(b)
    cc = torch.addcmul(a, e2m1, a) + q * (2 * nb - nv)
    nc = nonlinear(cc)
    return torch.addcmul(v, em1, v) + nv * c["f1"] + 2 * (na + nb) * c["f2"] + nc * c["f3"]


class Burgers(PDEProblem):
    """Burgers' equation data: ``u`` (n_snapshots, resolution) per sample.

    Parameters (``defaults``): ``nu`` viscosity; ``t_final``; ``n_snapshots`` stored times (>= 2, incl. 0 and
    ``t_final``); ``resolution`` loaded points (a divisor of ``store_resolution``; not part of the stored data's
    hash); ``store_resolution`` stored points (a divisor of ``solver_resolution``; ``None`` = the solver grid);
    ``solver_resolution`` solver points; ``dt`` largest ETDRK4 step; zero-mean
    initial-condition GRF ``alpha``, ``tau``, ``sigma`` (covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)``,
    FNO: 625 (-Laplacian + 25)^(-2)); ``precision`` of the solver (``float64`` or ``float32``; in the stored
    data's hash only when ``float32``).

    The default ``dt = 5e-3`` gives a relative L2 error of about 1e-7 at ``t = 1`` against a ``dt = 1e-4``
    reference in the FNO setting (measured), i.e. at the level of the float32 storage.
    """

    name = "burgers"
    grid_kind = "periodic"
    space_axes = 1
    space_coords = {"x": 1}
    defaults = {
        "nu": 0.1,
        "t_final": 1.0,
        "n_snapshots": 11,
        "resolution": 1024,
        "store_resolution": None,
        "solver_resolution": 8192,
        "dt": 5e-3,
        "alpha": 2.0,
        "tau": 5.0,
        "sigma": 25.0,
        "precision": "float64",
    }

    def validate(self) -> None:
        p = self.params
        p["nu"] = check_positive("nu", p["nu"])
        p["t_final"] = check_positive("t_final", p["t_final"])
        p["n_snapshots"] = check_int("n_snapshots", p["n_snapshots"], 2)
        p["resolution"] = check_int("resolution", p["resolution"], 2)
        p["solver_resolution"] = check_int("solver_resolution", p["solver_resolution"], 4)
        p["dt"] = check_positive("dt", p["dt"])
        p["alpha"] = check_positive("alpha", p["alpha"])
        p["tau"] = check_positive("tau", p["tau"])
        p["sigma"] = check_positive("sigma", p["sigma"])
        check_choice("precision", p["precision"], _DTYPES)
        if p["solver_resolution"] % 2:
            raise ValueError(f"solver_resolution={p['solver_resolution']} is not allowed; use an even number")
        self.stride = check_grids(self, 2)

    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_final, self.n_snapshots)

    def storage_config(self) -> dict:
        """The stored data's identity; ``precision`` only when it is not the default ``float64``, so that the
        stores made before the parameter existed keep their hash (float32 data differ from them by ~1e-7)."""
        cfg = super().storage_config()
        if cfg.get("precision") == "float64":
            cfg.pop("precision")
        return cfg

    def solve_bytes_per_sample(self, device: torch.device | str) -> int:
        """Peak solver memory per sample (see :func:`solve_bytes_per_sample`); the same on every device."""
        return solve_bytes_per_sample(self.solver_resolution, self.n_snapshots, self.precision)

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"u": (self.n_snapshots, self.resolution)}

    def coordinates(self) -> dict[str, np.ndarray]:
        return {"t": self.times(), "x": np.arange(self.resolution, dtype=np.float64) / self.resolution}

    def grf(self, device: torch.device | str = "cpu") -> GaussianRandomField:
        """The initial-condition field on the solver grid, zero mean as in the reference ``GRF1`` (``m = 0``)."""
        return GaussianRandomField(1, self.solver_resolution, self.alpha, self.tau, self.sigma,
                                   boundary="periodic", zero_mean=True, device=device)

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        u0 = self.grf(device).sample(generators).to(_DTYPES[self.precision])
        u = solve_burgers(u0, self.nu, self.times().tolist(), self.dt)
        return {"u": u[..., :: self.stride]}
