"""The MP-PDE wave equation (Brandstetter, Worrall & Welling, ICLR 2022: WE1 Dirichlet, WE2 Neumann, WE3 mixed).

    u_tt = c^2 u_xx,   x in [-8, 8],   t in [0, T],                                               (1)
    u(x, 0) = f(x) = A exp(-((x - s) / w)^2),   u_t(x, 0) = c f'(x)   (a left-moving pulse f(x + c t)),   (2)
    WE1: u(-8) = u(8) = 0;  WE2: u_x(-8) = u_x(8) = 0;  WE3: each side Dirichlet or Neumann, per sample.

Official data (github.com/brandstetter-johannes/MP-Neural-PDE-Solvers, ``generate/generate_data.py`` and
``equations/PDEs.py``, commit 85fe50f) and the conventions taken from it:

* ``T = 100``, ``nt = 250`` snapshots ``t_k = k T / 249``; Chebyshev-Gauss-Lobatto grids of ``nx`` = 200, 100,
  50, 40 and 20 points, each solved separately (training reads ``nx = 100`` by default as the network's grid;
  the 200-point solve, block-averaged, gives its training targets). Default ``resolution = 100``.
* pulse: ``s ~ U(-4, 4)``, ``A = w = 1`` (``exp(-(x - s)^2)``), ``u_t(0) = -2 c (x - s) f = c f'``; the
  amplitude and width ranges here default to that single value.
* ``c = 2`` for every sample of WE1-3 (``--wave_speed``, one value per data set, stored per sample as ``c``);
  ``c_range`` defaults to ``[2, 2]``.
* WE3 ("mixed"): ``bc_left ~ randint(0, 2)`` (0 Dirichlet, 1 Neumann), but the official code assigns
  ``bc_left`` twice and never ``bc_right``, so the right boundary of every WE3 sample is **Dirichlet**.
  ``mixed_sides: left`` (default) reproduces that data; ``both`` draws the right side too (the evident intent,
  and what a later fork changed the code to). No Robin conditions occur in the official data
  (:mod:`datasets.pdes.chebyshev` supports them).
* The official trajectories are stored **reversed in time** (``solve_ivp(...).y.T[::-1]``): snapshot ``k`` is
  the solution at ``T - t_k``, so the first stored snapshot is the state after ``T = 100`` and the last is the
  initial pulse (moving right in the stored time). ``time_reversed: true`` (default) stores the same; since (1)
  is time-reversible this is the forward solution from ``(u(T), -u_t(T))``. ``false`` stores ``u(t_k)``.
* Official integrator: Radau IIA (``solve_ivp(method='Radau', rtol=atol=1e-3)``), dissipative at that
  tolerance: on this discretization it is off by 2-3% of the pulse amplitude by ``t = 100`` (measured). Its
  boundary values are replaced only inside the right-hand side, the stored boundary nodes evolve freely (they
  satisfy the conditions only approximately). Here both are exact, see below: the data follow the official
  sampling and layout, not its integration error.

Spatial discretization: Chebyshev collocation on the Gauss-Lobatto nodes mapped to ``[-8, 8]`` (stored as
``x``, increasing, both boundaries included), the boundary conditions imposed by eliminating the two boundary
values (:mod:`datasets.pdes.chebyshev`): the unknowns are the ``n - 2`` interior values and
``u_int'' = c^2 A u_int`` with ``A = (D^2 P)[1:-1]``; the initial boundary values are replaced by the
condition-consistent ones (a change below 1.2e-7 for ``|s| <= 4``, ``w = 1``).

Time integration: exact, by diagonalizing the semi-discrete operator once per boundary pair and ``n``:
``A = V diag(-omega^2) V^-1`` (real, ``omega >= 0``; ``cond(V) < 5`` up to ``n = 200``), so in modal
coordinates ``a = V^-1 u_int``, ``b = V^-1 u_t,int``:

    a(t) = cos(c omega t) a(0) + sin(c omega t) / (c omega) b(0)     (t for omega = 0, the Neumann constant), (3)

and ``u(t) = P V a(t)`` at every snapshot directly (no error accumulates over the 249 intervals). Chosen over
RK4 because the Chebyshev spectrum reaches ``|lambda| ~ 0.05 n^4 (2 / L)^2`` (7e4 at ``n = 100``), which
would force ``dt ~ 5e-3`` (2e4 RK4 steps for ``T = 100``) and still leave a dissipative/dispersive time error;
(3) costs two small matrix products per sample, is batched over samples with any mix of ``c`` and boundary
conditions, and is exact up to round-off for the semi-discrete system (only the spatial error remains,
spectrally small: below 1e-10 against d'Alembert with reflections over ``T = 100`` at ``n = 100``).

Stored fields per sample: ``u`` ``(n_snapshots, resolution)`` and the parameter fields ``c``, ``center``,
``amplitude``, ``width``, ``bc_left``, ``bc_right`` (shape ``()``, boundary codes 0 Dirichlet / 1 Neumann), which
with the coordinates ``x`` ``(resolution,)`` and ``t`` ``(n_snapshots,)`` re-solve any sample
(:meth:`Wave.solve`). The drawn parameters are rounded to float32 before solving, so the stored (float32) values
are exactly the ones the data were solved with. Draw order per sample (one CPU generator, six float64 uniforms
``r``): ``center, c, amplitude, width`` = ``lo + (hi - lo) r_0..3``, ``bc_left = floor(2 r_4)``,
``bc_right = floor(2 r_5)`` (used only as ``boundary`` asks), so WE1, WE2 and WE3 share the pulses of a seed.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from datasets.pdes.base import PDEProblem, check_choice, check_int, check_positive
from datasets.pdes.chebyshev import (
    BOUNDARY_CODES,
    DIRICHLET,
    NEUMANN,
    chebyshev_grid,
    clenshaw_curtis_weights,
    gauss_lobatto_points,
    robin_coefficients,
    second_derivative_operator,
)

XMIN, XMAX = -8.0, 8.0
BOUNDARIES = ("dirichlet", "neumann", "mixed")
MIXED_SIDES = ("left", "both")
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------------------------------- solver
@dataclass(frozen=True)
class WaveModes:
    """The eigen-decomposition of one semi-discrete operator (``c = 1``), float64 on CPU.

    ``omega`` ``(M,)`` (``M = n - 2``, increasing, ``>= 0``): the modal frequencies; ``to_modes`` ``(M, n)``:
    nodal values -> modal coefficients (``V^-1`` on the interior values, zero columns at the boundary nodes);
    ``from_modes`` ``(M, n)``: modal coefficients -> nodal values, ``u = a @ from_modes`` (``(P V)^T``)."""

    omega: torch.Tensor
    to_modes: torch.Tensor
    from_modes: torch.Tensor


def _coefficients(bc: Any) -> tuple[float, float]:
    if isinstance(bc, (tuple, list)):
        return float(bc[0]), float(bc[1])
    a, b = robin_coefficients(torch.tensor([int(bc)]))
    return float(a[0]), float(b[0])


@functools.lru_cache(maxsize=64)
def wave_modes(n: int, bc_left: Any = DIRICHLET, bc_right: Any = DIRICHLET, lo: float = XMIN,
               hi: float = XMAX) -> WaveModes:
    """Modes of ``d^2/dx^2`` on ``n`` Chebyshev points of ``[lo, hi]`` with the boundary conditions eliminated.

    ``bc_left`` / ``bc_right``: a code (0 Dirichlet, 1 Neumann) or an outward-normal Robin pair
    ``(alpha, beta)`` (:mod:`datasets.pdes.chebyshev`). Cached per arguments.

    Raises:
        ValueError: the operator has eigenvalues off the non-positive real axis (a Robin pair of the wrong
            sign gives growing modes).
    """
    _, d = chebyshev_grid(n, lo, hi)
    a, p = second_derivative_operator(d, _coefficients(bc_left), _coefficients(bc_right))
    a, p = a[0], p[0]
    lam, vec = torch.linalg.eig(a)
    scale = float(lam.abs().max())
    if float(lam.imag.abs().max()) > 1e-9 * scale or float(lam.real.max()) > 1e-9 * scale:
        raise ValueError(f"boundary conditions {bc_left!r}, {bc_right!r} give modes that are not oscillatory "
                         "(an eigenvalue of u_xx off the non-positive real axis); use alpha, beta >= 0")
    order = torch.argsort(-lam.real)
    lam, vec = lam.real[order].clamp(max=0.0), vec.real[:, order]  # real spectrum: real eigenvectors
    inv = torch.linalg.inv(vec)
    to_modes = torch.zeros(n - 2, n, dtype=torch.float64)
    to_modes[:, 1:-1] = inv
    return WaveModes(omega=torch.sqrt(-lam), to_modes=to_modes, from_modes=(p @ vec).T.contiguous())


def solve_wave(
    u0: torch.Tensor,
    v0: torch.Tensor,
    c: torch.Tensor | float,
    bc_left: torch.Tensor | int,
    bc_right: torch.Tensor | int,
    times: Sequence[float] | torch.Tensor,
    lo: float = XMIN,
    hi: float = XMAX,
    return_velocity: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Solve (1) exactly in time on the Chebyshev nodes of ``[lo, hi]``, eq. (3).

    Args:
        u0, v0: ``(B, n)`` initial ``u`` and ``u_t`` at the increasing Gauss-Lobatto nodes; their dtype (float64
            or float32) is the working precision (the modes are computed in float64); any device. Boundary
            values are replaced by the condition-consistent ones.
        c: wave speeds, scalar or ``(B,)``, ``> 0``.
        bc_left, bc_right: boundary codes (0 Dirichlet, 1 Neumann), scalars or ``(B,)``.
        times: ``(T,)`` output times (any real values, in any order: each is evaluated directly).
        return_velocity: also return ``u_t``.

    Returns:
        ``u`` ``(B, T, n)`` (and ``u_t`` ``(B, T, n)``), dtype of ``u0``, on its device.
    """
    if u0.ndim != 2 or v0.shape != u0.shape:
        raise ValueError(f"u0 and v0 must both have shape (batch, n), got {tuple(u0.shape)} and {tuple(v0.shape)}")
    batch, n = u0.shape
    dtype, device = u0.dtype, u0.device
    c = torch.as_tensor(c, dtype=torch.float64).reshape(-1).expand(batch) if batch else torch.zeros(0)
    if batch and not bool((c > 0).all() and torch.isfinite(c).all()):
        raise ValueError(f"c={c.tolist()} is not allowed; use finite wave speeds > 0")
    left = torch.as_tensor(bc_left).reshape(-1).to(torch.int64).expand(batch).cpu()
    right = torch.as_tensor(bc_right).reshape(-1).to(torch.int64).expand(batch).cpu()
    robin_coefficients(torch.cat([left, right]))  # validates the codes
    t = torch.as_tensor(times, dtype=dtype).reshape(-1).to(device)
    u = torch.empty(batch, t.numel(), n, dtype=dtype, device=device)
    ut = torch.empty_like(u) if return_velocity else None
    pairs = torch.stack([left, right], dim=1)
    for pair in torch.unique(pairs, dim=0).tolist() if batch else []:
        idx = torch.nonzero((pairs == torch.tensor(pair)).all(dim=1)).reshape(-1).to(device)
        modes = wave_modes(n, int(pair[0]), int(pair[1]), float(lo), float(hi))
        to_m = modes.to_modes.to(device=device, dtype=dtype)
        from_m = modes.from_modes.to(device=device, dtype=dtype)
        a = u0[idx] @ to_m.T  # (b, M)
        b = v0[idx] @ to_m.T
        om = c.to(device=device, dtype=dtype)[idx, None] * modes.omega.to(device=device, dtype=dtype)  # c omega
        phase = om[:, None, :] * t[None, :, None]  # (b, T, M)
        cos, sin = torch.cos(phase), torch.sin(phase)
        # sin(c omega t) / (c omega) -> t at omega = 0 (the constant Neumann mode)
        safe = torch.where(om > 0, om, torch.ones_like(om))[:, None, :]
        sinc = torch.where(om[:, None, :] > 0, sin / safe, t[None, :, None].expand_as(sin))
        u[idx] = (cos * a[:, None, :] + sinc * b[:, None, :]) @ from_m  # eq. (3), then u = P V a
        if ut is not None:
            ut[idx] = (-om[:, None, :] * sin * a[:, None, :] + cos * b[:, None, :]) @ from_m
    return (u, ut) if ut is not None else u


def gaussian_pulse(x: torch.Tensor, center: torch.Tensor, amplitude: torch.Tensor, width: torch.Tensor,
                   c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial data (2): ``f = A exp(-((x - s) / w)^2)`` and ``u_t = c f' = -2 c (x - s) / w^2 f``.

    ``x`` ``(n,)``; the parameters ``(B,)``; returns two ``(B, n)`` tensors (dtype and device of ``x``)."""
    s, amp, w, cc = (torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1)
                     for v in (center, amplitude, width, c))
    z = (x[None, :] - s) / w
    f = amp * torch.exp(-z * z)
    return f, -2.0 * cc * z / w * f


def solve_pulses(c: Any, center: Any, amplitude: Any, width: Any, bc_left: Any, bc_right: Any,
                 times: Sequence[float] | torch.Tensor, n: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu", lo: float = XMIN, hi: float = XMAX) -> torch.Tensor:
    """Solve the pulses (2) with per-sample parameters ``(B,)`` (tensors, arrays or lists; boundary codes 0/1)
    on ``n`` Chebyshev points at ``times`` ``(T,)``: ``u`` ``(B, T, n)`` (``dtype``, on ``device``)."""
    c, center, amplitude, width, bc_left, bc_right = (_host(v) for v in (c, center, amplitude, width, bc_left,
                                                                         bc_right))
    x = gauss_lobatto_points(n, lo, hi, dtype, device)
    u0, v0 = gaussian_pulse(x, center, amplitude, width, c)
    left, right = bc_left.round().to(torch.int64), bc_right.round().to(torch.int64)
    return solve_wave(u0, v0, c, left, right, times, lo, hi)


def _host(value: Any) -> torch.Tensor:
    """A tensor (any device), array, list or number as a float64 CPU tensor ``(B,)``."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).reshape(-1)
    return torch.as_tensor(np.asarray(value, dtype=np.float64)).reshape(-1)


def wave_energy(u: torch.Tensor, ut: torch.Tensor, c: torch.Tensor | float, lo: float = XMIN,
                hi: float = XMAX) -> torch.Tensor:
    """``E = 1/2 int (u_t^2 + c^2 u_x^2) dx`` of nodal ``u``, ``u_t`` ``(B, T, n)`` (``u_x`` spectral, the integral
    Clenshaw-Curtis): ``(B, T)``. Conserved by (1) under Dirichlet and Neumann conditions."""
    n = u.shape[-1]
    _, d = chebyshev_grid(n, lo, hi, u.dtype, u.device)
    w = clenshaw_curtis_weights(n, lo, hi, u.dtype, u.device)
    cc = torch.as_tensor(c, dtype=u.dtype, device=u.device).reshape(-1, 1, 1)
    ux = u @ d.T
    return 0.5 * ((ut * ut + cc * cc * ux * ux) * w).sum(-1)


# ---------------------------------------------------------------------------------------------- problem
def _check_range(name: str, value: Any, low: float | None = None, high: float | None = None,
                 positive: bool = False) -> list[float]:
    """A ``[lo, hi]`` range of finite numbers (a number is the range ``[v, v]``)."""
    allowed = "use [lo, hi] with finite lo <= hi"
    if positive:
        allowed += ", lo > 0"
    if low is not None:
        allowed += f", within [{low}, {high}]"
    items = list(value) if isinstance(value, (list, tuple)) else [value, value]
    ok = len(items) == 2 and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                 and math.isfinite(float(v)) for v in items)
    if ok:
        lo_, hi_ = float(items[0]), float(items[1])
        ok = lo_ <= hi_ and (not positive or lo_ > 0) and (low is None or (lo_ >= low and hi_ <= high))
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; {allowed}")
    return [float(items[0]), float(items[1])]


class Wave(PDEProblem):
    """Wave-equation data on Chebyshev nodes: ``u`` ``(n_snapshots, resolution)`` plus the per-sample parameters.

    Parameters (``defaults``): ``boundary`` (``dirichlet`` WE1, ``neumann`` WE2, ``mixed`` WE3); ``mixed_sides``
    (``left``: only the left side is drawn, the right is Dirichlet, as the official WE3 data; ``both``);
    ``c_range``, ``center_range`` (within ``[-8, 8]``), ``amplitude_range``, ``width_range`` (``> 0``): uniform
    ranges ``[lo, hi]`` of the pulse (2); ``t_final``; ``n_snapshots`` (``>= 2``, at ``k t_final /
    (n_snapshots - 1)``); ``resolution`` Chebyshev points (``>= 4``); ``time_reversed`` (store snapshot ``k`` at
    ``t_final - t_k``, as the official data); ``precision`` of the modal evaluation (``float64``, ``float32``).
    """

    name: ClassVar[str] = "wave"
    grid_kind: ClassVar[str | None] = None
    space_axes: ClassVar[int] = 1
    space_coords: ClassVar[dict[str, int]] = {"x": 1}
    parameter_fields: ClassVar[tuple[str, ...]] = ("c", "center", "amplitude", "width", "bc_left", "bc_right")
    default_inputs: ClassVar[list[str]] = ["u"]
    default_targets: ClassVar[list[str]] = ["u"]
    spatial_dims: ClassVar[int] = 1
    periodic: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {
        "boundary": "dirichlet",
        "mixed_sides": "left",
        "c_range": [2.0, 2.0],
        "center_range": [-4.0, 4.0],
        "amplitude_range": [1.0, 1.0],
        "width_range": [1.0, 1.0],
        "t_final": 100.0,
        "n_snapshots": 250,
        "resolution": 100,
        "time_reversed": True,
        "precision": "float64",
    }

    def validate(self) -> None:
        p = self.params
        check_choice("boundary", p["boundary"], BOUNDARIES)
        check_choice("mixed_sides", p["mixed_sides"], MIXED_SIDES)
        p["c_range"] = _check_range("c_range", p["c_range"], positive=True)
        p["center_range"] = _check_range("center_range", p["center_range"], XMIN, XMAX)
        p["amplitude_range"] = _check_range("amplitude_range", p["amplitude_range"])
        p["width_range"] = _check_range("width_range", p["width_range"], positive=True)
        p["t_final"] = check_positive("t_final", p["t_final"])
        p["n_snapshots"] = check_int("n_snapshots", p["n_snapshots"], 2)
        p["resolution"] = check_int("resolution", p["resolution"], 4)
        if not isinstance(p["time_reversed"], bool):
            raise ValueError(f"time_reversed={p['time_reversed']!r} is not allowed; use true or false")  # noqa: TRY004
        check_choice("precision", p["precision"], _DTYPES)

    # ------------------------------------------------------------------ layout
    def times(self) -> np.ndarray:
        """Stored snapshot times ``(n_snapshots,)``: ``t_k = k t_final / (n_snapshots - 1)``."""
        return np.linspace(0.0, self.t_final, self.n_snapshots)

    def solve_times(self) -> np.ndarray:
        """The times since the pulse (2) of the stored snapshots: ``t_final - t_k`` when ``time_reversed``."""
        t = self.times()
        return self.t_final - t if self.time_reversed else t

    def nodes(self) -> np.ndarray:
        """The Chebyshev-Gauss-Lobatto nodes of ``[-8, 8]``, increasing: ``(resolution,)`` float64."""
        return gauss_lobatto_points(self.resolution, XMIN, XMAX).numpy()

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"u": (self.n_snapshots, self.resolution), **{k: () for k in self.parameter_fields}}

    def coordinates(self) -> dict[str, np.ndarray]:
        return {"t": self.times(), "x": self.nodes()}

    def discretization(self, coords: dict[str, np.ndarray]):
        """The Chebyshev nodes as a fixed :class:`~datasets.discretization.PointSet` of ``[-8, 8]``."""
        from datasets.discretization import PointSet

        return PointSet.make(positions=np.asarray(coords["x"], dtype=np.float64), lengths=[XMAX - XMIN],
                             origin=[XMIN])

    # ------------------------------------------------------------------ sampling and solving
    def sample_parameters(self, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        """The per-sample parameters ``(B,)`` float64 (float32-representable), one generator per sample, in
        the draw order of the module docstring."""
        if not generators:
            return {k: torch.zeros(0, dtype=torch.float64) for k in self.parameter_fields}
        r = torch.stack([torch.rand(6, generator=g, dtype=torch.float64) for g in generators])  # (B, 6)

        def uniform(col: int, bounds: list[float]) -> torch.Tensor:
            return (bounds[0] + (bounds[1] - bounds[0]) * r[:, col]).to(torch.float32).to(torch.float64)

        coin = torch.floor(2.0 * r[:, 4:6]).clamp(max=1.0)  # 0 Dirichlet, 1 Neumann, each with probability 1/2
        zeros = torch.zeros(len(generators), dtype=torch.float64)
        if self.boundary == "dirichlet":
            left, right = zeros + DIRICHLET, zeros + DIRICHLET
        elif self.boundary == "neumann":
            left, right = zeros + NEUMANN, zeros + NEUMANN
        else:
            left = coin[:, 0]
            right = coin[:, 1] if self.mixed_sides == "both" else zeros + DIRICHLET
        return {"center": uniform(0, self.center_range), "c": uniform(1, self.c_range),
                "amplitude": uniform(2, self.amplitude_range), "width": uniform(3, self.width_range),
                "bc_left": left, "bc_right": right}

    def solve(self, params: Mapping[str, Any], device: torch.device | str | None = None) -> torch.Tensor:
        """Re-solve samples from their stored parameters (``params[name]`` ``(B,)`` for every name of
        ``parameter_fields``, tensors or arrays): ``u`` ``(B, n_snapshots, resolution)`` in ``precision``."""
        missing = [k for k in self.parameter_fields if k not in params]
        if missing:
            raise ValueError(f"params lack {', '.join(missing)}; give every one of {list(self.parameter_fields)}")
        vals = {k: _host(params[k]) for k in self.parameter_fields}
        return solve_pulses(vals["c"], vals["center"], vals["amplitude"], vals["width"], vals["bc_left"],
                            vals["bc_right"], self.solve_times().tolist(), self.resolution,
                            _DTYPES[self.precision], self.device if device is None else device)

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        params = self.sample_parameters(generators)
        return {"u": self.solve(params, device), **params}


__all__ = [
    "BOUNDARIES",
    "BOUNDARY_CODES",
    "MIXED_SIDES",
    "XMAX",
    "XMIN",
    "Wave",
    "WaveModes",
    "gaussian_pulse",
    "solve_pulses",
    "solve_wave",
    "wave_energy",
    "wave_modes",
]
