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
