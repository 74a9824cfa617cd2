"""2-D Navier-Stokes (vorticity form): exact Taylor-Green decay, second-order time convergence of the
Crank-Nicolson/Heun scheme, the energy and enstrophy budgets, and the data generator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datasets.grf import GaussianRandomField
from datasets.pdes import make_problem
from datasets.pdes.navier_stokes import (
    MAX_CFL,
    CFLError,
    NavierStokes,
    SpectralGrid,
    cfl_number,
    forcing,
    solve_navier_stokes,
)
from datasets.seeding import sample_generators

TWO_PI = 2 * math.pi


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float64) / n
    return torch.meshgrid(x, x, indexing="ij")


def _random_w0(n: int, b: int, amplitude: float, band_limited: bool = False) -> torch.Tensor:
    grf = GaussianRandomField(2, n, 2.5, 7.0, amplitude * 7.0**0.75, zero_mean=True)
    w0 = grf.sample(sample_generators(0, "train", range(b)))
    if band_limited:  # only modes the 2/3 rule keeps, so the truncated nonlinearity conserves energy/enstrophy
        w0 = torch.fft.irfft2(torch.fft.rfft2(w0) * SpectralGrid(n).dealias, s=(n, n))
    return w0


def test_taylor_green_decays_exactly() -> None:
    """Any combination of modes with one |k| is a steady Euler flow (u . grad w = 0): it only decays."""
    n, nu, dt = 32, 0.01, 0.01
    X, Y = _grid(n)
    w0 = (torch.sin(TWO_PI * X) * torch.sin(TWO_PI * Y) + torch.cos(TWO_PI * (X + Y))
          + 0.5 * torch.sin(TWO_PI * (X - Y)))[None]
    times = [0.0, 0.5, 1.0]
    w = solve_navier_stokes(w0, nu, times, dt, f=None)
    assert w.shape == (1, 3, n, n) and w.dtype == torch.float64
    k2 = 2 * TWO_PI**2  # |k|^2 = 2 (2 pi)^2 for every mode above
    a = 0.5 * dt * nu * k2
    for i, t in enumerate(times):
        # the discrete solution is exactly the Crank-Nicolson decay: the nonlinear term vanishes to round-off
        cn = ((1 - a) / (1 + a)) ** round(t / dt)
        assert (w[0, i] - cn * w0[0]).abs().max() < 1e-12
        # ... which is a second-order approximation of the exact decay exp(-nu |k|^2 t)
        assert (w[0, i] - math.exp(-nu * k2 * t) * w0[0]).abs().max() < 1e-5


def test_time_step_convergence_is_second_order() -> None:
    n, nu, t_end = 32, 1e-3, 1.0
    w0 = _random_w0(n, 2, amplitude=6.0)  # |w| ~ 1, as in FNO data
    f = forcing(n)
    reference = solve_navier_stokes(w0, nu, [t_end], t_end / 640, f)[:, -1]
    steps = [20, 40, 80]
    errors = [float((solve_navier_stokes(w0, nu, [t_end], t_end / s, f)[:, -1] - reference).abs().max())
              for s in steps]
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    assert all(1.8 <= p <= 2.3 for p in orders), f"orders {orders}, errors {errors}"


def test_energy_and_enstrophy_budgets_close() -> None:
    """Unforced: dE/dt = -2 nu Z and dZ/dt = -nu P (E = |u|^2/2, Z = w^2/2, P = |grad w|^2, domain means)."""
    n, nu, h = 32, 1e-2, 0.01
    w0 = _random_w0(n, 2, amplitude=50.0, band_limited=True)
    times = [i * h for i in range(101)]
    w = solve_navier_stokes(w0, nu, times, 2e-3, f=None)
    assert w.dtype == torch.float64 and torch.isfinite(w).all()
    grid = SpectralGrid(n)
    w_hat = torch.fft.rfft2(w)
    u, v = grid.velocity(w_hat)
    wx = torch.fft.irfft2(grid.ikx * w_hat, s=(n, n))
    wy = torch.fft.irfft2(grid.iky * w_hat, s=(n, n))
    energy = 0.5 * (u**2 + v**2).mean((-2, -1))
    enstrophy = 0.5 * (w**2).mean((-2, -1))
    palinstrophy = (wx**2 + wy**2).mean((-2, -1))

    def simpson(y: torch.Tensor) -> torch.Tensor:
        return h / 3 * (y[..., 0] + y[..., -1] + 4 * y[..., 1:-1:2].sum(-1) + 2 * y[..., 2:-1:2].sum(-1))

    assert (u.abs().max() > 0.2)  # advection matters on this time scale
    d_energy = energy[:, -1] - energy[:, 0]
    d_enstrophy = enstrophy[:, -1] - enstrophy[:, 0]
    torch.testing.assert_close(d_energy, -2 * nu * simpson(enstrophy), rtol=1e-4, atol=0)
    torch.testing.assert_close(d_enstrophy, -nu * simpson(palinstrophy), rtol=1e-4, atol=0)
    assert (energy[:, 1:] < energy[:, :-1]).all() and (enstrophy[:, 1:] < enstrophy[:, :-1]).all()
    assert w.mean((-2, -1)).abs().max() < 1e-12  # zero mean vorticity is preserved


def test_problem_generates_fno_style_trajectories() -> None:
    p = make_problem("navier_stokes", solver_resolution=32, resolution=16, t_final=2.0, record_every=1.0,
                     dt=1e-2, nu=1e-3)
    assert p.n_snapshots == 3 and p.stride == 2 and p.field_shapes() == {"w": (3, 16, 16)}
    coords = p.coordinates()
    np.testing.assert_allclose(coords["t"], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(coords["x"], np.arange(16) / 16)
    X, Y = np.meshgrid(coords["x"], coords["y"], indexing="ij")
    np.testing.assert_allclose(coords["f"], 0.1 * (np.sin(TWO_PI * (X + Y)) + np.cos(TWO_PI * (X + Y))), atol=1e-14)
    out = p.generate(seed=2, split="train", indices=[0, 1])
    w = out["w"]
    assert w.shape == (2, 3, 16, 16) and w.dtype == np.float32 and np.isfinite(w).all()
    w0 = p.grf().sample(sample_generators(2, "train", [0, 1]))
    np.testing.assert_allclose(w[:, 0], w0[:, ::2, ::2].numpy(), rtol=1e-6, atol=1e-7)
    assert np.abs(w[:, -1] - w[:, 0]).max() > 1e-3  # it moved
    alone = p.generate(seed=2, split="train", indices=[1])["w"]
    np.testing.assert_allclose(alone[0], w[1], rtol=0, atol=1e-6)
    f32 = make_problem("navier_stokes", solver_resolution=32, resolution=16, t_final=2.0, dt=1e-2,
                       precision="float32").generate(seed=2, split="train", indices=[0, 1])["w"]
    np.testing.assert_allclose(f32, w, atol=1e-4)


def test_solver_refuses_to_return_garbage() -> None:
    w0 = _random_w0(16, 1, amplitude=2000.0)
    with pytest.raises(RuntimeError, match="dt=0.5"):  # without the CFL check: caught as non-finite
        solve_navier_stokes(w0, 1e-4, [0.0, 20.0], 0.5, max_cfl=None)


def _reference_w0(n: int, m: int) -> torch.Tensor:
    return NavierStokes(solver_resolution=n, resolution=n).grf().sample(sample_generators(0, "train", range(m)))


def test_too_large_dt_is_a_clear_cfl_error() -> None:
    n = 64
    w0 = _reference_w0(n, 4)
    cfl = cfl_number(w0, 0.1)
    assert float(cfl.max()) > MAX_CFL  # max(|u| + |v|) ~ 0.1 at t = 0
    with pytest.raises(CFLError) as info:
        solve_navier_stokes(w0, 1e-5, [0.0, 1.0], 0.1, forcing(n))
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg
    largest = MAX_CFL * 0.1 / float(cfl.max())
    for words in ("dt=0.1", f"CFL number dt max(|u| + |v|) / dx = {float(cfl.max()):.3g} > 0.5", "at t=0",
                  f"largest stable dt is {largest:.3g}"):
        assert words in msg, msg
    # the dt the error names passes the check at t = 0 (and this short run stays finite)
    w = solve_navier_stokes(w0, 1e-5, [0.0, 0.05], 0.95 * largest, forcing(n))
    assert torch.isfinite(w).all()


def test_cfl_is_checked_at_every_snapshot() -> None:
    """A strongly forced flow speeds up: the check at a later snapshot stops it (no per-step check)."""
    n = 32
    w0 = torch.zeros(1, n, n, dtype=torch.float64)
    with pytest.raises(CFLError, match=r"dt=0.05 .* at t=[2-9]"):
        solve_navier_stokes(w0, 1e-3, [float(t) for t in range(10)], 0.05, forcing(n, 1.0))


def test_paper_time_step_passes_the_cfl_check() -> None:
    """nu = 1e-5 (LSM), reference w0, forcing 0.1, dt = 1e-3 at 256^2. The CFL number scales with dt n and the
    velocity is large-scale, so the whole 20 time units are run at 32^2 with dt = 8e-3 (the same dt n); 256^2
    itself for the first 0.2."""
    w = solve_navier_stokes(_reference_w0(32, 4), 1e-5, [float(t) for t in range(21)], 8e-3, forcing(32))
    cfl = torch.stack([cfl_number(w[:, i], 8e-3) for i in range(w.shape[1])])
    assert torch.isfinite(w).all() and float(cfl.max()) < 0.25, float(cfl.max())
    assert float(cfl[-1].max()) > 2 * float(cfl[0].max())  # the forcing speeds the flow up
    w = solve_navier_stokes(_reference_w0(256, 1), 1e-5, [0.0, 0.2], 1e-3, forcing(256))
    assert torch.isfinite(w).all() and float(cfl_number(w[:, -1], 1e-3).max()) < 0.1


def _closed_form_variances(n: int, alpha: float = 2.5, tau: float = 7.0) -> dict[str, torch.Tensor]:
    """Per-mode variances lambda_k of the two conventions on the n x n FFT grid (mean mode 0): the pointwise
    variance is their sum, and the spatial mean of w^2 of one sample has variance 2 sum lambda_k^2."""
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    shape = (4 * math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
    shape[0, 0] = 0.0
    sigma = tau ** (alpha - 1)  # FNO GaussianRF: tau^(alpha - d/2)
    return {"reference": 2 * sigma**2 * shape, "literal": sigma * shape}


def _fno_reference_recipe(n: int, m: int, alpha: float = 2.5, tau: float = 7.0) -> torch.Tensor:
    """The FNO reference sampler as described (not our sampler): complex coefficients sqrt_eig * (xi1 + i xi2)
    at every k of the full FFT grid, sqrt_eig = n^2 sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2), mean mode 0,
    field = real part of the unnormalised inverse FFT."""
    sigma = tau ** (alpha - 1)
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    sqrt_eig = n**2 * math.sqrt(2.0) * sigma * (4 * math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    xi = torch.randn(m, n, n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return torch.fft.ifft2(sqrt_eig * torch.complex(xi[..., 0], xi[..., 1])).real


@pytest.mark.parametrize("convention", ["reference", "literal"])
def test_initial_vorticity_variance_follows_the_convention(convention: str) -> None:
    n, m = 32, 400
    p = NavierStokes(solver_resolution=n, resolution=n, grf_convention=convention)
    w0 = p.grf().sample(sample_generators(0, "train", range(m)))
    assert w0.mean((-2, -1)).abs().max() < 1e-13  # zero mean, sample by sample
    lam = _closed_form_variances(n)
    empirical = float((w0**2).mean())  # pooled over samples and grid points
    se = {c: math.sqrt(2 * float((v**2).sum()) / m) for c, v in lam.items()}
    expected = {c: float(v.sum()) for c, v in lam.items()}
    assert abs(empirical - expected[convention]) < 5 * se[convention], (empirical, expected)
    other = "literal" if convention == "reference" else "reference"
    assert abs(empirical - expected[other]) > 20 * se[convention]  # the test fails for the other convention
    assert math.isclose(math.sqrt(expected["reference"] / expected["literal"]), math.sqrt(2 * 7**1.5))
    if convention == "reference":  # the reference recipe itself has this variance (the convention's derivation)
        recipe = _fno_reference_recipe(n, m)
        assert abs(float((recipe**2).mean()) - expected["reference"]) < 5 * se["reference"]


def test_default_is_fno_setting() -> None:
    p = NavierStokes()
    assert (p.nu, p.resolution, p.solver_resolution, p.t_final, p.record_every) == (1e-3, 64, 256, 50.0, 1.0)
    assert p.n_snapshots == 51 and p.stride == 4 and p.store_resolution == 256 and p.read_stride == 4
    assert (p.alpha, p.tau, p.grf_convention) == (2.5, 7.0, "reference")
    assert math.isclose(p.sigma, 7**1.5) and math.isclose(p.covariance_scale(), 2 * 7**3)
    literal = NavierStokes(grf_convention="literal")
    assert math.isclose(literal.sigma**2, 7**1.5) and math.isclose(literal.covariance_scale(), 7**1.5)
    assert math.isclose(NavierStokes(sigma=2.0).covariance_scale(), 8.0)


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(resolution=48), "resolution=48 is not allowed with solver_resolution=256"),
        (dict(resolution=-1), "resolution=-1"),
        (dict(t_final=2.5), "t_final=2.5"),
        (dict(nu=0), "nu=0"),
        (dict(dt=2.0), "dt=2.0"),
        (dict(precision="float16"), "precision='float16'"),
        (dict(grf_convention="paper"), "grf_convention='paper' is not allowed; use one of 'reference', 'literal'"),
        (dict(sigma=-1.0), "sigma=-1.0"),
        (dict(store_resolution=100), "store_resolution=100 is not allowed with solver_resolution=256"),
        (dict(store_resolution=128, resolution=256), "resolution=256 is not allowed; use at most store_resolution"),
        (dict(store_resolution=128, resolution=48), "resolution=48 is not allowed with store_resolution=128"),
        (dict(visc=1e-3), "unknown navier_stokes parameter"),
    ],
)
def test_invalid_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        NavierStokes(**params)
    assert "\n" not in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    p = dict(solver_resolution=64, resolution=32, t_final=1.0, dt=1e-2)
    cpu = make_problem("navier_stokes", **p).generate(0, "test", [0, 1])["w"]
    gpu = make_problem("navier_stokes", device="cuda", **p).generate(0, "test", [0, 1])["w"]
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-5)


def test_time_stepping_lands_on_the_output_times() -> None:
    """The shared marcher splits each interval into equal steps <= dt and rejects bad time lists."""
    from datasets.pdes.time_stepping import check_output_times, march_to_snapshots

    taken: list[tuple[float, int]] = []

    def advance(state, h, steps):
        taken.append((h, steps))
        return state + h * steps  # d(state)/dt = 1: the state is the elapsed time

    out = march_to_snapshots(torch.zeros(1, 1, dtype=torch.float64), [0.0, 0.25, 1.0], 0.1, advance, lambda s: s, "toy")
    assert torch.allclose(out[0, :, 0], torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64))
    assert [s for _, s in taken] == [3, 8] and all(h <= 0.1 for h, _ in taken)
    with pytest.raises(ValueError, match="non-negative increasing"):
        check_output_times([1.0, 0.5])
    with pytest.raises(RuntimeError, match="toy solution became non-finite"):
        march_to_snapshots(torch.zeros(1, 1), [1.0], 0.5, lambda s, h, n: s / 0.0, lambda s: s, "toy")


# ---------------------------------------------------------------------------------------------- the fast step
def _reference_solve(w0: torch.Tensor, nu: float, t_end: float, dt: float, f: torch.Tensor | None) -> torch.Tensor:
    """The scheme of the module docstring written out plainly (the solver before its tables and buffers): own
    wavenumbers, 4 separate inverse FFTs, ``w* = (E w + h N(w)) I``, ``w' = (E w + h (N(w) + N(w*)) / 2) I``."""
    n = w0.shape[-1]
    kx = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)[:, None]
    ky = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64)[None, :]
    k2 = 4 * math.pi**2 * (kx**2 + ky**2)
    inv_k2 = torch.where(k2 > 0, 1 / k2.clamp_min(1e-30), 0.0)
    mask = ((kx.abs() < n / 3) & (ky.abs() < n / 3)).double()
    f_hat = 0.0 if f is None else torch.fft.rfft2(f)

    def nonlinear(w_hat):
        psi = w_hat * inv_k2
        u = torch.fft.irfft2(TWO_PI * 1j * ky * psi, s=(n, n))
        v = torch.fft.irfft2(-TWO_PI * 1j * kx * psi, s=(n, n))
        wx = torch.fft.irfft2(TWO_PI * 1j * kx * w_hat, s=(n, n))
        wy = torch.fft.irfft2(TWO_PI * 1j * ky * w_hat, s=(n, n))
        return f_hat - mask * torch.fft.rfft2(u * wx + v * wy)

    steps = max(1, math.ceil(t_end / dt - 1e-9))
    h = t_end / steps
    explicit, implicit = 1 - 0.5 * h * nu * k2, 1 / (1 + 0.5 * h * nu * k2)
    w_hat = torch.fft.rfft2(w0)
    for _ in range(steps):
        n0 = nonlinear(w_hat)
        w_star = (explicit * w_hat + h * n0) * implicit
        w_hat = (explicit * w_hat + 0.5 * h * (n0 + nonlinear(w_star))) * implicit
    return torch.fft.irfft2(w_hat, s=(n, n))


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Relative L2 difference per sample and snapshot (over the trailing two axes)."""
    return (a.double() - b.double()).flatten(-2).norm(dim=-1) / b.double().flatten(-2).norm(dim=-1)


@pytest.mark.parametrize("forced", ["fno", "broadband", "none"])
def test_fast_step_matches_the_plain_formula(forced: str) -> None:
    """Folded tables, one batched inverse FFT and in-place updates change nothing beyond rounding (float64); the
    FNO forcing (inside the 2/3 band) is folded into the product pass, a broadband one is added spectrally."""
    n, nu, dt, t_end = 32, 1e-3, 2e-3, 0.4  # 200 steps
    w0 = _reference_w0(n, 3)
    X, _ = _grid(n)
    f = {"fno": forcing(n), "broadband": forcing(n) + 0.05 * torch.cos(TWO_PI * 14 * X), "none": None}[forced]
    reference = _reference_solve(w0, nu, t_end, dt, f)
    w = solve_navier_stokes(w0, nu, [0.0, t_end], dt, f)[:, -1]
    assert float(_rel_l2(w, reference).max()) < 1e-13
    assert float(_rel_l2(w, w0).min()) > 1e-3  # it moved


def test_advection_workspace_matches_advection_hat() -> None:
    """The buffered advection (all four fields in one irfft2, or one field per call) equals the functional one,
    which equals the product of separately transformed fields."""
    from datasets.pdes.navier_stokes_spectral import AdvectionWorkspace

    n = 24
    grid = SpectralGrid(n)
    w_hat = torch.fft.rfft2(_reference_w0(n, 3))
    u = grid.physical(grid.iky * grid.inv_k2 * w_hat)
    v = grid.physical(-grid.ikx * grid.inv_k2 * w_hat)
    plain = torch.fft.rfft2(u * grid.physical(grid.ikx * w_hat) + v * grid.physical(grid.iky * w_hat))
    torch.testing.assert_close(grid.advection_hat(w_hat, dealias=False), plain, rtol=0, atol=1e-12)
    torch.testing.assert_close(grid.advection_hat(w_hat), plain * grid.dealias, rtol=0, atol=1e-12)
    for group in (1, 2, 4):
        work = AdvectionWorkspace(grid, 3)
        work.groups = [slice(i, min(i + group, 4)) for i in range(0, 4, group)]
        out = torch.empty_like(w_hat)
        assert work.advection_hat(w_hat, out) is out
        torch.testing.assert_close(out, plain, rtol=0, atol=1e-12)


def test_sample_alone_equals_sample_in_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Solves are per-sample independent (float64, to 1e-12), so chunk boundaries cannot change the data; nor
    can the CPU solve groups (here 2 + 1 samples instead of all 3 at once)."""
    from datasets.pdes import navier_stokes

    n = 64
    w0 = _reference_w0(n, 3)
    times = [0.0, 0.1, 0.2]
    batch = solve_navier_stokes(w0, 1e-3, times, 1e-3, forcing(n))
    for i in range(3):
        alone = solve_navier_stokes(w0[i:i + 1], 1e-3, times, 1e-3, forcing(n))
        assert float(_rel_l2(alone[0], batch[i]).max()) < 1e-12
    assert navier_stokes.cpu_group_size(n, torch.float64) >= 3
    monkeypatch.setattr(navier_stokes, "CPU_GROUP_BYTES", 2 * navier_stokes.CPU_GROUP_BYTES // 8)
    assert navier_stokes.cpu_group_size(n, torch.float64) == 2
    grouped = solve_navier_stokes(w0, 1e-3, times, 1e-3, forcing(n))
    assert grouped.shape == batch.shape and float(_rel_l2(grouped, batch).max()) < 1e-12


def test_strided_output_is_the_strided_solution() -> None:
    n = 32
    w0 = _reference_w0(n, 2)
    full = solve_navier_stokes(w0, 1e-3, [0.0, 0.05, 0.1], 1e-2, forcing(n))
    torch.testing.assert_close(solve_navier_stokes(w0, 1e-3, [0.0, 0.05, 0.1], 1e-2, forcing(n), stride=4),
                               full[..., ::4, ::4], rtol=0, atol=0)
    with pytest.raises(ValueError, match="stride=3 is not allowed for an 32x32 grid"):
        solve_navier_stokes(w0, 1e-3, [0.1], 1e-2, stride=3)


def test_float32_stepping_stays_within_what_the_stored_data_need() -> None:
    """The FNO setting (reference w0, nu = 1e-3, forcing 0.1, dt = 1e-3) at 64^2 to t = 5 (5000 steps): a
    float32 trajectory against the float64 one.

    Measured: relative L2 difference <= 3.4e-6 per snapshot up to t = 5 (8 samples; later single samples grow:
    2.3e-5 for one of 8 at t = 10, at most 4.3e-5 of 4 up to t = 50), against 2.6e-8 for rounding the float64
    data to the stored float32 once. That is the float32 rounding of every step accumulated over thousands of
    steps of a flow that amplifies perturbations only mildly: ~100 x the storage rounding, and 2-3 orders of
    magnitude below the errors of the models trained on these data (>= 1e-2 relative L2). The threshold 2e-5
    leaves a factor 6 for other platforms' FFTs, and fails for the
    former float32 step that multiplied by ``E`` and ``I`` rounded to float32 (1.3e-4 at t = 5, 3.8e-3 at
    t = 50: the rounding of ``1 - h nu K / 2`` is the same every step, a systematic error in the diffusion of the
    large scales), which the solver avoids by applying ``E I - 1`` instead of ``E I``.
    """
    n, times = 64, [float(t) for t in range(6)]
    w0 = _reference_w0(n, 3)
    f = forcing(n)
    w64 = solve_navier_stokes(w0, 1e-3, times, 1e-3, f)
    w32 = solve_navier_stokes(w0.float(), 1e-3, times, 1e-3, f)
    assert w32.dtype == torch.float32
    err = _rel_l2(w32, w64)
    storage = _rel_l2(w64.float(), w64)
    assert float(err.max()) < 2e-5, err.max(0).values
    assert float(storage.max()) < 1e-7 and float(err[:, 1:].min()) > float(storage.max())  # a real difference


def test_precision_auto_is_resolved_and_hashed() -> None:
    """``precision: auto`` is float64 on CPU (float32 on CUDA, below), resolved on construction: the config, and
    with it the data's hash and the file's attributes, name the dtype the data were computed in."""
    p = NavierStokes(precision="auto")
    assert p.precision == "float64" and p.config()["precision"] == "float64"
    assert p.storage_config() == NavierStokes(precision="float64").storage_config()


def test_memory_estimate_per_sample() -> None:
    cpu = torch.device("cpu")
    p64 = NavierStokes(solver_resolution=128, resolution=32, store_resolution=32)
    p32 = NavierStokes(solver_resolution=128, resolution=32, store_resolution=32, precision="float32")
    b64, b32 = p64.solve_bytes_per_sample(cpu), p32.solve_bytes_per_sample(cpu)
    c, r = 128 * 65, 128 * 128
    assert 9 * 2 * 8 * c + 5 * 8 * r < b64  # at least the step's own work arrays
    assert 0.5 < b32 / b64 < 0.6  # half, plus the float32 copy of the trajectory
    assert p64.storage_problem().solve_bytes_per_sample(cpu) == b64
    full = NavierStokes(solver_resolution=128, resolution=32).storage_problem()  # stores the 128^2 trajectory
    assert full.solve_bytes_per_sample(cpu) - b64 == 51 * (128**2 - 32**2) * (8 + 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_steps_equal_eager_steps_and_auto_is_float32() -> None:
    n = 64
    w0 = _reference_w0(n, 3).cuda()
    f = forcing(n).cuda()
    times = [0.0, 0.05, 0.1, 0.15]
    graph = solve_navier_stokes(w0, 1e-3, times, 1e-3, f, cuda_graph=True)
    eager = solve_navier_stokes(w0, 1e-3, times, 1e-3, f, cuda_graph=False)
    torch.testing.assert_close(graph, eager, rtol=0, atol=1e-13)
    reference = _reference_solve(w0.cpu(), 1e-3, 0.15, 1e-3, f.cpu())
    assert float(_rel_l2(graph[:, -1].cpu(), reference).max()) < 1e-12
    assert NavierStokes(device="cuda", precision="auto").precision == "float32"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_memory_estimate_is_an_upper_bound() -> None:
    """The allocator's peak per added sample stays below ``solve_bytes_per_sample`` (what chunk_size auto uses)."""
    device = torch.device("cuda")
    for precision in ("float64", "float32"):
        p = NavierStokes(device=device, solver_resolution=128, resolution=128, t_final=0.2, record_every=0.1,
                         precision=precision)
        peaks = {}
        for b in (1, 9):
            p.generate(0, "train", range(b))  # warm-up (plans, graph pools) at this batch
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
            p.generate(0, "train", range(b))
            torch.cuda.synchronize()
            peaks[b] = torch.cuda.max_memory_allocated() - start
        per_sample = (peaks[9] - peaks[1]) / 8
        assert 0 < per_sample <= p.solve_bytes_per_sample(device), (precision, per_sample)
