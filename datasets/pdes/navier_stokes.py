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

Cost (:class:`HeunCrankNicolson`, :func:`step_traffic`): per step 10 FFTs (2 evaluations of ``N``, each the
4 inverse transforms of ``u, v, w_x, w_y`` in one batched ``irfft2`` and 1 forward) and 10 elementwise passes,
every constant folded into tables computed once per step size, no allocation and no host sync per step; on CUDA
the step is replayed as a CUDA graph. Precision (``precision``): float32 stepping stays within 3.4e-6 relative
L2 of float64 up to t = 5 (64^2, FNO setting; tested) because the near-1 factor ``E I`` is applied as
``w + (E I - 1) w``; ``auto`` is float32 on CUDA and float64 on CPU, resolved on construction so the data's hash
names the dtype used.

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

import logging
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
from datasets.pdes.navier_stokes_spectral import (
    AdvectionWorkspace,
    SpectralGrid,
    forcing,
)
from datasets.pdes.time_stepping import check_output_times, march_to_snapshots

log = logging.getLogger(__name__)
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
    stride: int = 1,
    cuda_graph: bool = True,
) -> torch.Tensor:
    """Integrate the vorticity equation from ``w0`` (B, n, n) and return (B, len(times), n / stride, n / stride).

    Args:
        w0: initial vorticity on ``x_i = i / n`` (its dtype, float64 or float32, is the working precision).
        nu: viscosity > 0.
        times: non-negative increasing output times (the first may be 0).
        dt: largest step; each interval is split into equal steps ``<= dt``.
        f: forcing (n, n) or (B, n, n), or ``None`` for no forcing.
        max_cfl: the CFL limit checked on ``w0`` and on every output snapshot (``None``: no check), see
            :func:`cfl_number`.
        stride: return every ``stride``-th grid point of each snapshot (a divisor of ``n``); the solve is the
            same, only the recorded trajectory is smaller.
        cuda_graph: on a CUDA device, replay the time step as a CUDA graph (same kernels, same results; no
            per-step kernel launches from Python). Ignored on CPU.

    Raises:
        CFLError: ``dt max(|u| + |v|) / dx > max_cfl`` for some sample at ``t = 0`` or at an output time (a
            ``ValueError`` naming ``dt``, the CFL number and the largest allowed ``dt``).
        RuntimeError: the solution became non-finite.
    """
    if w0.ndim != 3 or w0.shape[-1] != w0.shape[-2]:
        raise ValueError(f"w0 must have shape (batch, n, n), got {tuple(w0.shape)}")
    n = w0.shape[-1]
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1 or n % stride:
        raise ValueError(f"stride={stride!r} is not allowed for an {n}x{n} grid; use a positive divisor of {n}")
    times = check_output_times(times)
    real_dtype = w0.dtype if w0.dtype in (torch.float32, torch.float64) else torch.float64
    w0 = w0.to(real_dtype)
    if w0.device.type == "cpu":  # solve CPU batches in cache-sized groups (samples are independent)
        group = cpu_group_size(n, real_dtype)
        if w0.shape[0] > group:
            if f is not None and f.ndim == 3:
                parts = [(w0[i:i + group], f[i:i + group]) for i in range(0, w0.shape[0], group)]
            else:
                parts = [(w0[i:i + group], f) for i in range(0, w0.shape[0], group)]
            return torch.cat([solve_navier_stokes(w, nu, times, dt, fi, max_cfl, stride, cuda_graph)
                              for w, fi in parts])
    grid = SpectralGrid(n, w0.device, real_dtype)
    stepper = HeunCrankNicolson(grid, nu, w0.shape[0], f, cuda_graph=cuda_graph)

    def check_cfl(w_hat: torch.Tensor, t: float) -> None:
        speed = float(max_speed(grid, w_hat).max())  # one host sync per snapshot
        cfl = dt * speed * n
        if cfl > max_cfl:
            raise CFLError(f"Navier-Stokes: dt={dt:g} is too large: CFL number dt max(|u| + |v|) / dx = {cfl:.3g} > "
                           f"{max_cfl:g} at t={t:g} (max |u| + |v| = {speed:.3g}, dx = 1/{n}); the largest stable "
                           f"dt is {max_cfl / (speed * n):.3g}, use dt <= that")

    def to_physical(w_hat: torch.Tensor) -> torch.Tensor:
        w = torch.fft.irfft2(w_hat, s=(n, n))
        # a non-finite coefficient makes every grid point non-finite, so the strided field still shows it
        return w if stride == 1 else w[..., ::stride, ::stride].contiguous()

    return march_to_snapshots(torch.fft.rfft2(w0), times, dt, stepper.advance, to_physical, "Navier-Stokes",
                              check=None if max_cfl is None else check_cfl)


#: bytes of step work arrays per CPU solve group: a CPU step is FFT- and cache-bound, so larger batches only
#: run slower (measured, 1 thread: 64^2 float64 0.14 ms/step/sample at batch 8, 0.21 at 64; 128^2 0.60 at batch 1,
#: 0.78 at 8)
CPU_GROUP_BYTES = 4 * 2**20


def cpu_group_size(n: int, dtype: torch.dtype) -> int:
    """Samples :func:`solve_navier_stokes` steps together on CPU: as many as keep the step's work arrays
    (``9 c`` complex + ``5 r`` real per sample, :class:`HeunCrankNicolson`) within ``CPU_GROUP_BYTES``."""
    real = torch.tensor([], dtype=dtype).element_size()
    per_sample = real * (2 * 9 * n * (n // 2 + 1) + 5 * n * n)
    return max(1, CPU_GROUP_BYTES // per_sample)


class HeunCrankNicolson:
    """The time step of :func:`solve_navier_stokes` for a batch of ``B`` spectra ``(B, n, n // 2 + 1)``, with
    every constant folded into per-step-size tables and every work array allocated once.

    With ``N(w) = f_hat - D A(w)`` (``A`` the advection spectrum, ``D`` the 2/3 mask), ``E = 1 - h nu K / 2`` and
    ``I = 1 / (1 + h nu K / 2)`` the step of the module docstring is

        base    = (E I) w + h I f_hat
        w*      = base - (h I D) G(w)
        w^{n+1} = base - (h I D / 2) (G(w) + G(w*)),

    with ``G = A``, or in float64, for a forcing inside the 2/3 band (``D f_hat = f_hat``, as the FNO forcing),
    ``G(w) = A(w) - f_hat`` and no forcing term in ``base``: ``f`` is subtracted from ``u . grad w`` in the
    physical product pass at no extra cost (``G`` is the spectrum of ``u w_x + v w_y - f``). Per step: 2
    advection evaluations (:class:`AdvectionWorkspace`: 5 FFTs each, 4 of them in one batched ``irfft2`` on CUDA)
    and 4 complex passes (``base``, ``w*``, ``G(w) + G(w*)``, the state, written in place), 5 in float32, where
    ``base = w + ((E I - 1) w + h I f_hat)`` (see :meth:`tables`). The tables ``E I`` (or ``E I - 1``),
    ``h I D``, ``h I D / 2`` and ``h I f_hat`` are computed in float64 once per step size ``h`` and then rounded
    to the working dtype. On CUDA (``cuda_graph``) the step is
    captured once per ``h`` as a CUDA graph and replayed, so the host launches one graph per step and never
    waits on the device.
    """

    #: eager steps before a CUDA graph is captured (cuFFT plans and allocator warm-up, as CUDA graphs require)
    GRAPH_WARMUP_STEPS = 2

    def __init__(self, grid: SpectralGrid, nu: float, batch: int, f: torch.Tensor | None = None,
                 cuda_graph: bool = True) -> None:
        device = grid.kx.device
        n, m = grid.n, grid.n // 2 + 1
        self.grid, self.nu = grid, float(nu)
        self.work = AdvectionWorkspace(grid, batch)
        self.f_hat = self.minus_f = None
        if f is not None:
            f = f.to(device=device, dtype=torch.float64)
            f_hat = torch.fft.rfft2(f)
            outside = (f_hat * (1.0 - grid.dealias.to(torch.float64))).abs().max()
            # folded into the product pass (see the class docstring) in float64 only: in float32 the rounding of
            # f to float32 would be a spurious forcing of every mode, the same every step (measured, 64^2, 4 samples:
            # 7.7e-5 relative L2 from float64 at t = 10 instead of 2.8e-6), while the table h I f_hat is exact
            band_limited = float(outside) <= 1e-13 * max(float(f_hat.abs().max()), 1e-300)  # once per solve
            if band_limited and grid.dtype == torch.float64:
                self.minus_f = -f
            else:
                self.f_hat = f_hat
        cplx = grid.complex_dtype
        self.w, self.base, self.w_star, self.adv0, self.adv1 = (
            torch.empty(batch, n, m, dtype=cplx, device=device) for _ in range(5))
        self.cuda_graph = bool(cuda_graph) and device.type == "cuda"
        #: below float64 the decay table holds ``E I - 1`` (see :meth:`tables`)
        self.decay_minus_one = grid.dtype != torch.float64
        self._tables: dict[float, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]] = {}
        self._graphs: dict[float, torch.cuda.CUDAGraph] = {}

    def tables(self, h: float) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """``(E I or E I - 1, h I f_hat or None, h I D, h I D / 2)`` for step size ``h`` (cached)."""
        if h not in self._tables:
            half = 0.5 * h * self.nu * self.grid.k2_float64
            implicit = 1.0 / (1.0 + half)
            # E I - 1 = -2 half I: in float32 E I itself would be rounded near 1 (its error, up to 3e-8, is the size
            # of h nu K of the large scales and the same every step), so its distance from 1 is stored instead
            decay = -2.0 * half * implicit if self.decay_minus_one else (1.0 - half) * implicit
            decay = decay.to(self.grid.dtype)
            force = None if self.f_hat is None else (h * implicit * self.f_hat).to(self.grid.complex_dtype)
            advect = h * implicit * self.grid.dealias.to(torch.float64)
            self._tables[h] = (decay, force, advect.to(self.grid.dtype), (0.5 * advect).to(self.grid.dtype))
        return self._tables[h]

    def step(self, h: float) -> None:
        """One Crank-Nicolson/Heun step of size ``h`` of the state ``self.w``, in place."""
        decay, force, advect, half_advect = self.tables(h)
        g0 = self.work.advection_hat(self.w, self.adv0, self.minus_f)
        if force is None:
            torch.mul(self.w, decay, out=self.base)
        else:
            torch.addcmul(force, decay, self.w, out=self.base)
        if self.decay_minus_one:  # base = w + ((E I - 1) w + h I f_hat): the small increments are added once
            self.base.add_(self.w)
        torch.addcmul(self.base, advect, g0, value=-1, out=self.w_star)
        g1 = self.work.advection_hat(self.w_star, self.adv1, self.minus_f).add_(g0)
        torch.addcmul(self.base, half_advect, g1, value=-1, out=self.w)

    def advance(self, w_hat: torch.Tensor, h: float, steps: int) -> torch.Tensor:
        """``steps`` steps of size ``h`` from ``w_hat`` (B, n, n // 2 + 1); returns the state (a tensor this object
        owns and overwrites on the next call)."""
        if w_hat is not self.w:
            self.w.copy_(w_hat)
        done = 0
        if self.cuda_graph and h not in self._graphs and steps > self.GRAPH_WARMUP_STEPS:
            done = self._capture(h)
        graph = self._graphs.get(h) if self.cuda_graph else None
        for _ in range(steps - done):
            if graph is None:
                self.step(h)
            else:
                graph.replay()
        return self.w

    def _capture(self, h: float) -> int:  # pragma: no cover - needs CUDA
        """Take the warm-up steps eagerly on a side stream, then record one step as a CUDA graph (recording runs
        nothing). Returns the steps taken. On a capture error the stepping stays eager (logged once)."""
        device = self.w.device
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(self.GRAPH_WARMUP_STEPS):
                self.step(h)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.tables(h)  # the tables exist before recording (no allocation of constants inside the graph)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step(h)
        except RuntimeError as exc:
            log.warning("Navier-Stokes: CUDA graph capture failed (%s); stepping without graphs", exc)
            self.cuda_graph = False
        else:
            self._graphs[h] = graph
        return self.GRAPH_WARMUP_STEPS


def step_traffic(n: int, dtype: torch.dtype = torch.float64, batch: int = 1,
                 forcing_in_band: bool = True) -> dict[str, float]:
    """Memory traffic of one :class:`HeunCrankNicolson` step per sample on an ``n x n`` grid at real ``dtype``:
    the lower bound in which every operation reads each input and writes each output once (the batch's shared
    tables counted once per batch of ``batch``). ``c = n (n / 2 + 1)`` complex and ``r = n^2`` real values,
    ``C`` / ``R`` their bytes:

    - FFTs: 2 evaluations x (4 inverse: read 4 C, write 4 R; 1 forward: read R, write C) = 10 transforms,
      ``10 C + 10 R``;
    - elementwise, per evaluation: the 4 multiplier tables (read C, write 4 C), ``u w_x [- f]`` (read 2 R, write
      R) and ``+= v w_y`` (read 3 R, write R); per step: ``base`` (read C, write C), ``w*`` (read 2 C, write C),
      ``G0 + G1`` (read 2 C, write C) and the state (read 2 C, write C): 10 passes, ``21 C + 14 R``; below
      float64 one more pass, ``base += w`` (``3 C``);
    - tables: the 4 multipliers (``4 C``) per evaluation, 3 real coefficient tables per step, and the forcing:
      ``R`` per evaluation when folded into the product pass (float64, ``forcing_in_band``), else ``C`` per step.

    Returns ``ffts``, ``fft_bytes``, ``passes``, ``elementwise_bytes``, ``table_bytes`` (already divided by
    ``batch``) and ``bytes`` (their sum), all per sample and step, and ``C``, ``R``.
    """
    real = torch.tensor([], dtype=dtype).element_size()
    c, r = n * (n // 2 + 1), n * n
    C, R = 2 * real * c, real * r
    fft_bytes = 10 * C + 10 * R
    passes, elementwise = 10, 21 * C + 14 * R
    if dtype != torch.float64:
        passes, elementwise = passes + 1, elementwise + 3 * C
    forcing = 2 * R if forcing_in_band and dtype == torch.float64 else C
    tables = (2 * 4 * C + 3 * real * c + forcing) / batch
    return {"ffts": 10, "fft_bytes": float(fft_bytes), "passes": passes, "elementwise_bytes": float(elementwise),
            "table_bytes": float(tables), "bytes": float(fft_bytes + elementwise + tables), "C": float(C),
            "R": float(R)}


def solver_steps(times: list[float], dt: float) -> int:
    """Time steps :func:`solve_navier_stokes` takes through the output ``times`` with largest step ``dt``."""
    total, t = 0, 0.0
    for t_next in check_output_times(times):
        if t_next > t:
            total += max(1, math.ceil((t_next - t) / dt - 1e-9))
        t = t_next
    return total


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
    ``precision`` (``float64``, ``float32``, or ``auto``: float32 on a CUDA device, float64 otherwise, replaced
    by the resolved value on construction).

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
        check_choice("precision", p["precision"], (*_DTYPES, "auto"))
        if p["precision"] == "auto":  # resolved here, so the data's hash (and the file's attrs) name the dtype used
            p["precision"] = "float32" if self.device.type == "cuda" else "float64"
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

    def working_dtype(self) -> torch.dtype:
        """The solver's real dtype (``precision``)."""
        return _DTYPES[self.precision][0]

    def solve_bytes_per_sample(self, device: torch.device) -> int:
        """Peak bytes one sample adds to :meth:`generate_batch` on ``device`` at the working dtype (an upper
        estimate), on the solver grid of ``c = n (n / 2 + 1)`` complex and ``r = n^2`` real values:

        - 9 c + 5 r work arrays of :class:`HeunCrankNicolson` (state, base, w*, two advection spectra, the 4
          stacked spectra; the 4 physical fields and their product);
        - 4 c the inverse FFT of the stack works in (a complex-to-real FFT overwrites or copies its input), and
          7 c + 15 r for FFT work areas, ``w0`` and its noise, the CFL check's temporaries and allocator slack
          (sized from the peak RSS of 33-sample CPU solves at 128^2 and 256^2, float32 and float64: 0.7-1.0 of
          this estimate);
        - on CUDA another 4 c + 4 r: the captured graph's private pool for the FFT temporaries;
        - the trajectory at the stored grid in the working dtype and its float32 copy.
        """
        real = torch.tensor([], dtype=self.working_dtype()).element_size()
        n = self.solver_resolution
        c, r = n * (n // 2 + 1), n * n
        complex_values, real_values = 20 * c, 20 * r
        if torch.device(device).type == "cuda":
            complex_values, real_values = complex_values + 4 * c, real_values + 4 * r
        stored = self.n_snapshots * (n // self.stride) ** 2
        return int(real * (2 * complex_values + real_values + stored) + 4 * stored)

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        real_dtype = self.working_dtype()
        w0 = self.grf(device).sample(generators).to(real_dtype)
        f = None
        if self.forcing_amplitude > 0:  # float64: the solver folds it into its float64 step tables
            f = forcing(self.solver_resolution, self.forcing_amplitude, torch.float64, device)
        w = solve_navier_stokes(w0, self.nu, self.times().tolist(), self.dt, f, stride=self.stride)
        return {"w": w}
