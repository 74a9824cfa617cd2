"""The MP-PDE "combined equation" (Brandstetter, Worrall & Welling, ICLR 2022): Burgers, KdV and heat in one.

    u_t + d_x (alpha u^2 / 2 - beta u_x + gamma u_xx) = delta(t, x),   x in [0, L) periodic, L = 16,
    delta(t, x) = sum_{j=1..J} A_j sin(omega_j t + 2 pi l_j x / L + phi_j),   u(0, x) = delta(0, x),

with ``J = 5`` waves per sample, ``A_j ~ U[-0.5, 0.5)``, ``omega_j ~ U[-0.4, 0.4)``, ``phi_j ~ U[0, 2 pi)`` and
``l_j`` uniform on a set of integers (default ``{1, 2}``, what the official code draws: ``randint(1, 3)`` excludes
3; the paper says ``{1, 2, 3}``: set ``wavenumbers: [1, 2, 3]``).

Flux convention: the official data (and this module) use the flux ``alpha u^2 / 2``, i.e. ``u_t + alpha u u_x``;
the paper writes ``(alpha u^2)_x``, so *its* alpha is half of the code's. The experiments (``t_final``, ranges of
the per-sample coefficients, code's convention):

``E1``  Burgers without diffusion   alpha = 1,           beta = 0,              gamma = 0,          T = 4
``E2``  Burgers, varying diffusion  alpha = 1,           beta ~ U[0, 0.2],      gamma = 0,          T = 4
``E3``  mixed                       alpha ~ U[0, 6],     beta ~ U[0.1, 0.4],    gamma ~ U[0, 1],    T = 2

Each coefficient is a range ``[lo, hi]`` (``lo == hi``: fixed; a plain number means ``[v, v]``), drawn once per
sample (the official code draws one value per generation *batch*; here every sample has its own, from its own
generator, so sample ``i`` depends only on ``(seed, split, i)``).

Numerics (:func:`solve_combined_equation`): conservative finite differences on ``x_i = i L / nx``
(:mod:`datasets.pdes.weno`): WENO5 for the advective flux (Godunov-type upwinding or Lax-Friedrichs splitting),
4th-order central stencils in flux form for ``-beta u_x`` and ``gamma u_xx``, so ``sum_i u_i`` is conserved to
round-off without forcing (the forcing has zero mean on the grid); in time, Dormand-Prince 4(5) with per-sample
step-size control, ``atol = rtol = 1e-5`` as the official solver, in float64 (:mod:`datasets.pdes.adaptive_runge_kutta`).

Grids: the reference solution is solved at ``solver_resolution = 200`` points and stored at ``store_resolution``
(default the solver grid), ``n_snapshots = 250`` snapshots ``t_k = k T / (n_snapshots - 1)``. A coarser loaded
``resolution`` (100, 50, 40 in the paper) is made as in the official pipeline: the periodic 5-point mean
``(u_{i-2} + ... + u_{i+2}) / 5`` of the stored grid, then every ``stride``-th point (``stride = store /
resolution``), so coarse point ``m`` is the mean centred on stored point ``m stride`` and sits at ``x_m = m L /
resolution``; at ``resolution == store_resolution`` nothing is filtered. (A ``store_resolution`` below the solver
grid is made from the solver grid by the same filter.) The official grid ``linspace(0, L, nx)`` repeats
``x = 0`` at ``x = L``; here the grid is the clean periodic one. The "WENO5 baseline" of the paper, a direct solve
at the coarse grid, is :func:`solve_combined_equation` at ``nx = resolution`` from the stored parameters.

Stored per sample: ``u`` (n_snapshots, resolution) and the parameter fields ``alpha``, ``beta``, ``gamma`` (shape
``()``) and ``forcing_amplitude``, ``forcing_omega``, ``forcing_phase``, ``forcing_wavenumber`` (shape ``(J,)``),
enough to solve the sample again from the file alone; the drawn parameters are rounded to float32 before solving,
so the stored (float32) values are exactly the ones used. Coordinates: ``x`` (resolution,), ``t`` (n_snapshots,).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from datasets.pdes.adaptive_runge_kutta import dopri5_adaptive
from datasets.pdes.base import (
    PDEProblem,
    check_choice,
    check_grids,
    check_int,
    check_positive,
)
from datasets.pdes.weno import (
    FLUXES,
    WENO_EPS,
    burgers_flux,
    curvature_flux,
    flux_difference,
    gradient_flux,
)

PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
PARAMETER_FIELDS = ("alpha", "beta", "gamma", "forcing_amplitude", "forcing_omega", "forcing_phase",
                    "forcing_wavenumber")
#: the experiments of the paper (code convention for alpha); ``CombinedEquation(**PRESETS["E3"])``
PRESETS: dict[str, dict[str, Any]] = {
    "E1": {"alpha": [1.0, 1.0], "beta": [0.0, 0.0], "gamma": [0.0, 0.0], "t_final": 4.0},
    "E2": {"alpha": [1.0, 1.0], "beta": [0.0, 0.2], "gamma": [0.0, 0.0], "t_final": 4.0},
    "E3": {"alpha": [0.0, 6.0], "beta": [0.1, 0.4], "gamma": [0.0, 1.0], "t_final": 2.0},
}


# ---------------------------------------------------------------------------------------------- the equation
def forcing(t: torch.Tensor, x: torch.Tensor, amplitude: torch.Tensor, omega: torch.Tensor, phase: torch.Tensor,
            wavenumber: torch.Tensor, length: float) -> torch.Tensor:
    """``delta(t, x) = sum_j A_j sin(omega_j t + 2 pi l_j x / L + phi_j)``: (B, N) for ``t`` (B,), ``x`` (N,)
    and per-sample ``amplitude, omega, phase, wavenumber`` (B, J)."""
    arg = (omega * t[:, None] + phase)[..., None] + (2 * math.pi / length) * wavenumber[..., None] * x
    return (amplitude[..., None] * torch.sin(arg)).sum(-2)


class _Forcing:
    """``delta(t, x_i)`` for rows ``active`` of a batch, by the angle-addition formula on precomputed
    ``sin / cos (2 pi l_j x_i / L)`` (B, J, N): only ``J`` sines and cosines per sample and evaluation."""

    def __init__(self, x: torch.Tensor, amplitude: torch.Tensor, omega: torch.Tensor, phase: torch.Tensor,
                 wavenumber: torch.Tensor, length: float) -> None:
        kx = (2 * math.pi / length) * wavenumber[..., None] * x  # (B, J, N)
        self.sin_kx, self.cos_kx = torch.sin(kx), torch.cos(kx)
        self.amplitude, self.omega, self.phase = amplitude, omega, phase

    def __call__(self, t: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        theta = self.omega[active] * t[:, None] + self.phase[active]  # (A, J)
        a = self.amplitude[active]
        # sin(theta + kx) = sin(theta) cos(kx) + cos(theta) sin(kx)
        return ((a * torch.sin(theta))[..., None] * self.cos_kx[active]
                + (a * torch.cos(theta))[..., None] * self.sin_kx[active]).sum(-2)


def spatial_operator(u: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor, dx: float,
                     flux: str = "godunov", weno_eps: float = WENO_EPS) -> torch.Tensor:
    """``-d_x (alpha u^2 / 2 - beta u_x + gamma u_xx)`` in conservative form: (B, N) for ``u`` (B, N) and
    per-sample ``alpha, beta, gamma`` (B,), from one interface flux ``F_{i+1/2}`` (so it sums to zero)."""
    total = burgers_flux(u, alpha, flux, weno_eps)
    total = total - beta[:, None] * gradient_flux(u, dx) + gamma[:, None] * curvature_flux(u, dx)
    return -flux_difference(total, dx)


def grid(nx: int, length: float = 16.0, dtype: torch.dtype = torch.float64,
         device: torch.device | str = "cpu") -> torch.Tensor:
    """The periodic grid ``x_i = i L / nx`` (nx,)."""
    return torch.arange(nx, dtype=dtype, device=device) * (length / nx)


def solve_combined_equation(
    params: Mapping[str, torch.Tensor | np.ndarray],
    nx: int,
    t_final: float,
    n_snapshots: int,
    length: float = 16.0,
    flux: str = "godunov",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    precision: str = "float64",
    weno_eps: float = WENO_EPS,
    device: torch.device | str | None = None,
    u0: torch.Tensor | None = None,
    stats: dict | None = None,
) -> torch.Tensor:
    """Solve the combined equation for a batch of per-sample parameters on ``nx`` points.

    Args:
        params: ``alpha``, ``beta``, ``gamma`` (B,) and ``forcing_amplitude``, ``forcing_omega``,
            ``forcing_phase``, ``forcing_wavenumber`` (B, J) -- the stored parameter fields (tensors or arrays).
        nx: grid points of ``x_i = i L / nx`` (the solver grid, or a coarse grid for the direct "WENO5 baseline").
        t_final, n_snapshots: outputs at ``t_k = k t_final / (n_snapshots - 1)``.
        length: the period ``L``.
        flux: ``"godunov"`` or ``"laxfriedrichs"`` (:mod:`datasets.pdes.weno`).
        atol, rtol: Dormand-Prince tolerances (per-sample step control).
        precision: ``"float64"`` or ``"float32"``.
        device: where to solve (default: that of ``params["alpha"]`` if a tensor, else cpu).
        u0: (B, nx) initial values (default ``delta(0, x)``, the MP-PDE initial condition).
        stats: if given, filled with the step counts (see :func:`dopri5_adaptive`).

    Returns:
        (B, n_snapshots, nx) ``u`` at the snapshot times, in ``precision``, on ``device``.
    """
    dtype = PRECISIONS[check_choice("precision", precision, tuple(PRECISIONS))]
    check_choice("flux", flux, FLUXES)
    if device is None:
        a = params["alpha"]
        device = a.device if isinstance(a, torch.Tensor) else torch.device("cpu")
    p = {k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).to(device, dtype)
         for k, v in params.items() if k in PARAMETER_FIELDS}
    missing = sorted(set(PARAMETER_FIELDS) - set(p))
    if missing:
        raise ValueError(f"params lacks {', '.join(missing)}; give all of {', '.join(PARAMETER_FIELDS)}")
    alpha, beta, gamma = (p[k].reshape(-1) for k in ("alpha", "beta", "gamma"))
    x = grid(nx, length, dtype, device)
    dx = length / nx
    force = _Forcing(x, p["forcing_amplitude"], p["forcing_omega"], p["forcing_phase"], p["forcing_wavenumber"],
                     length)
    if u0 is None:
        u0 = force(torch.zeros(alpha.shape[0], dtype=dtype, device=device),
                   torch.arange(alpha.shape[0], device=device))
    u0 = u0.to(device, dtype)

    def rhs(t: torch.Tensor, u: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return spatial_operator(u, alpha[active], beta[active], gamma[active], dx, flux, weno_eps) + force(t, active)

    times = np.linspace(0.0, float(t_final), int(n_snapshots)).tolist()
    return dopri5_adaptive(rhs, u0, times, atol=atol, rtol=rtol, name="combined equation", stats=stats)


def five_point_coarsen(u: np.ndarray | torch.Tensor, stride: int) -> np.ndarray | torch.Tensor:
    """The official coarsening: periodic 5-point mean along the last axis (pad 2 points periodically on each side),
    then every ``stride``-th point, ``(..., S) -> (..., S / stride)``; coarse point ``m`` is the mean of stored
    points ``m stride - 2, ..., m stride + 2``. ``stride == 1`` returns ``u`` unchanged."""
    if stride == 1:
        return u
    lib = torch if isinstance(u, torch.Tensor) else np
    n = u.shape[-1]
    idx = np.arange(0, n, stride)
    if lib is torch:
        idx = torch.as_tensor(idx, device=u.device)
    total = sum(lib.roll(u, -s, -1)[..., idx] for s in range(-2, 3))
    return total / 5


# ---------------------------------------------------------------------------------------------- the problem
def _check_range(name: str, value: Any, minimum: float | None = None) -> list[float]:
    """A ``[lo, hi]`` range of finite numbers with ``lo <= hi`` (a number ``v`` means ``[v, v]``)."""
    allowed = "use a number or a range [lo, hi] of finite numbers with lo <= hi" + (
        f" and lo >= {minimum:g}" if minimum is not None else "")
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = [value, value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__iter__"):
        raise ValueError(f"{name}={value!r} is not allowed; {allowed}")
    items = list(value)
    ok = len(items) == 2 and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                 and math.isfinite(float(v)) for v in items)
    if not ok or float(items[0]) > float(items[1]) or (minimum is not None and float(items[0]) < minimum):
        raise ValueError(f"{name}={_show(items)} is not allowed; {allowed}")
    return [float(items[0]), float(items[1])]


def _show(items: Any) -> str:
    try:
        return repr([v.item() if hasattr(v, "item") else v for v in items])
    except TypeError:
        return repr(items)


def _uniform(g: torch.Generator, lo: float, hi: float, shape: tuple[int, ...]) -> torch.Tensor:
    """U[lo, hi) (float64) from ``g``; ``lo == hi``: the constant (no draw)."""
    if lo == hi:
        return torch.full(shape, lo, dtype=torch.float64)
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)


class CombinedEquation(PDEProblem):
    """MP-PDE combined-equation data: ``u`` (n_snapshots, resolution) and the per-sample parameter fields.

    Parameters (``defaults``, E1): ``alpha``, ``beta``, ``gamma`` coefficient ranges ``[lo, hi]`` (code
    convention: flux ``alpha u^2 / 2``; ``alpha, beta >= 0``); ``n_waves`` forcing waves ``J``; ``amplitude``,
    ``omega`` their ranges; ``wavenumbers`` the integer set ``l_j`` is drawn from; ``length`` the period ``L``;
    ``t_final``; ``n_snapshots``; ``resolution`` loaded points (filtered + subsampled from the stored grid; not in
    the data hash); ``store_resolution`` (``None`` = solver grid); ``solver_resolution``; ``flux``
    (``godunov``/``laxfriedrichs``); ``atol``, ``rtol`` Dormand-Prince tolerances; ``precision`` of the solve;
    ``weno_eps`` the WENO weights' epsilon. See :data:`PRESETS` for E1/E2/E3.
    """

    name = "combined_equation"
    grid_kind = "periodic"
    space_axes = 1
    space_coords: ClassVar[dict[str, int]] = {"x": 1}
    parameter_fields = PARAMETER_FIELDS
    default_inputs: ClassVar[list[str]] = ["u"]
    default_targets: ClassVar[list[str]] = ["u"]
    periodic = True
    spatial_dims = 1
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": [1.0, 1.0],
        "beta": [0.0, 0.0],
        "gamma": [0.0, 0.0],
        "n_waves": 5,
        "amplitude": [-0.5, 0.5],
        "omega": [-0.4, 0.4],
        "wavenumbers": [1, 2],
        "length": 16.0,
        "t_final": 4.0,
        "n_snapshots": 250,
        "resolution": 100,
        "store_resolution": None,
        "solver_resolution": 200,
        "flux": "godunov",
        "atol": 1e-5,
        "rtol": 1e-5,
        "precision": "float64",
        "weno_eps": WENO_EPS,
    }

    def validate(self) -> None:
        p = self.params
        p["alpha"] = _check_range("alpha", p["alpha"], minimum=0.0)
        p["beta"] = _check_range("beta", p["beta"], minimum=0.0)
        p["gamma"] = _check_range("gamma", p["gamma"])
        p["amplitude"] = _check_range("amplitude", p["amplitude"])
        p["omega"] = _check_range("omega", p["omega"])
        p["n_waves"] = check_int("n_waves", p["n_waves"], 1)
        p["length"] = check_positive("length", p["length"])
        p["t_final"] = check_positive("t_final", p["t_final"])
        p["n_snapshots"] = check_int("n_snapshots", p["n_snapshots"], 2)
        p["resolution"] = check_int("resolution", p["resolution"], 5)
        p["solver_resolution"] = check_int("solver_resolution", p["solver_resolution"], 8)
        p["flux"] = check_choice("flux", p["flux"], FLUXES)
        p["atol"] = check_positive("atol", p["atol"])
        p["rtol"] = check_positive("rtol", p["rtol"])
        p["precision"] = check_choice("precision", p["precision"], tuple(PRECISIONS))
        p["weno_eps"] = check_positive("weno_eps", p["weno_eps"])
        waves = p["wavenumbers"]
        nyquist = p["solver_resolution"] // 2
        items = list(waves) if not isinstance(waves, (str, bytes)) and hasattr(waves, "__iter__") else None
        if (not items or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v < nyquist
                             for v in items)):
            raise ValueError(f"wavenumbers={_show(items) if items is not None else repr(waves)} is not allowed; "
                             f"use a non-empty list of integers in [1, {nyquist - 1}] (below solver_resolution / 2)")
        p["wavenumbers"] = [int(v) for v in items]
        self.stride = check_grids(self, 5)
        self._store_stride = p["solver_resolution"] // p["store_resolution"]

    # ------------------------------------------------------------------------------------------ layout
    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_final, self.n_snapshots)

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        j = self.n_waves
        return {"u": (self.n_snapshots, self.resolution), "alpha": (), "beta": (), "gamma": (),
                "forcing_amplitude": (j,), "forcing_omega": (j,), "forcing_phase": (j,), "forcing_wavenumber": (j,)}

    def coordinates(self) -> dict[str, np.ndarray]:
        return {"t": self.times(), "x": np.arange(self.resolution, dtype=np.float64) * (self.length / self.resolution)}

    def read_selection(self) -> dict[str, tuple[slice, ...]]:
        """Read ``u`` whole when it is coarsened (the 5-point filter needs every stored point), see :meth:`restrict`."""
        if self.read_stride == 1:
            return super().read_selection()
        return {name: () for name in self.field_shapes()}

    def restrict(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stored ``u`` (N, n_snapshots, store_resolution) -> (N, n_snapshots, resolution): periodic 5-point mean,
        then every ``read_stride``-th point (:func:`five_point_coarsen`); the parameter fields unchanged."""
        out = dict(arrays)
        if self.read_stride != 1 and "u" in out:
            out["u"] = np.ascontiguousarray(five_point_coarsen(np.asarray(out["u"]), self.read_stride),
                                            dtype=np.asarray(out["u"]).dtype)
        return out

    # ------------------------------------------------------------------------------------------ generation
    def sample_parameters(self, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        """Per-sample parameters, one sample per generator (CPU, float64 rounded to float32 values): ``alpha``,
        ``beta``, ``gamma`` (B,), ``forcing_*`` (B, J). Draw order per sample: A, omega, phi, l (each (J,)), then
        alpha, beta, gamma (a fixed coefficient draws nothing)."""
        j, waves = self.n_waves, torch.tensor(self.wavenumbers, dtype=torch.float64)
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in PARAMETER_FIELDS}
        for g in generators:
            rows["forcing_amplitude"].append(_uniform(g, *self.amplitude, (j,)))
            rows["forcing_omega"].append(_uniform(g, *self.omega, (j,)))
            rows["forcing_phase"].append(2 * math.pi * torch.rand((j,), generator=g, dtype=torch.float64))
            rows["forcing_wavenumber"].append(waves[torch.randint(len(waves), (j,), generator=g)])
            for name in ("alpha", "beta", "gamma"):
                rows[name].append(_uniform(g, *self.params[name], ()))
        # the stored values are float32: solve with exactly those
        return {k: torch.stack(v).to(torch.float32).to(torch.float64) for k, v in rows.items()}

    def solve(self, params: Mapping[str, torch.Tensor], nx: int | None = None, device: torch.device | None = None,
              stats: dict | None = None) -> torch.Tensor:
        """:func:`solve_combined_equation` with this problem's settings at ``nx`` points (default the solver
        grid): (B, n_snapshots, nx)."""
        return solve_combined_equation(params, nx or self.solver_resolution, self.t_final, self.n_snapshots,
                                       length=self.length, flux=self.flux, atol=self.atol, rtol=self.rtol,
                                       precision=self.precision, weno_eps=self.weno_eps,
                                       device=device or self.device, stats=stats)

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        params = self.sample_parameters(generators)
        u = self.solve(params, device=device)
        # solver grid -> stored grid -> loaded grid, each by the 5-point filter (what loading the store gives)
        out = {"u": five_point_coarsen(five_point_coarsen(u, self._store_stride), self.read_stride)}
        out.update(params)
        return out
