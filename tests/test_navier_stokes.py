"""2-D Navier-Stokes (vorticity form): exact Taylor-Green decay, second-order time convergence of the
Crank-Nicolson/Heun scheme, the energy and enstrophy budgets, and the data generator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datasets.grf import GaussianRandomField
from datasets.pdes import make_problem
from datasets.pdes.navier_stokes import NavierStokes, SpectralGrid, forcing, solve_navier_stokes
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
    with pytest.raises(RuntimeError, match="dt=0.5"):
        solve_navier_stokes(w0, 1e-4, [0.0, 20.0], 0.5)


def test_default_is_fno_setting() -> None:
    p = NavierStokes()
    assert (p.nu, p.resolution, p.solver_resolution, p.t_final, p.record_every) == (1e-3, 64, 256, 50.0, 1.0)
    assert p.n_snapshots == 51 and p.stride == 4
    assert (p.alpha, p.tau) == (2.5, 7.0) and math.isclose(p.sigma**2, 7**1.5)


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(resolution=48), "resolution=48 is not allowed with solver_resolution=256"),
        (dict(resolution=-1), "resolution=-1"),
        (dict(t_final=2.5), "t_final=2.5"),
        (dict(nu=0), "nu=0"),
        (dict(dt=2.0), "dt=2.0"),
        (dict(precision="float16"), "precision='float16'"),
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
