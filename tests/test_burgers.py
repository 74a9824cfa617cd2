"""Burgers' equation: exact Cole-Hopf solutions, ETDRK4's fourth-order time convergence, spectral convergence
in space, float32 vs float64 working precision, the memory estimate, and the data generator's shapes,
invariants, reproducibility and parameter validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datasets.pdes import make_problem
from datasets.pdes.burgers import Burgers, solve_burgers, solve_bytes_per_sample
from datasets.seeding import sample_generators

NU = 0.02
T = 0.5


def cole_hopf(x: torch.Tensor, t: float, nu: float = NU, eps: tuple[float, float] = (0.5, 0.3)) -> torch.Tensor:
    """u = -2 nu phi_x / phi with phi = 1 + e1 exp(-4 pi^2 nu t) cos 2 pi x + e2 exp(-16 pi^2 nu t) sin 4 pi x,
    a positive solution of the heat equation phi_t = nu phi_xx, so u solves u_t + u u_x = nu u_xx exactly."""
    d1, d2 = math.exp(-4 * math.pi**2 * nu * t), math.exp(-16 * math.pi**2 * nu * t)
    phi = 1 + eps[0] * d1 * torch.cos(2 * math.pi * x) + eps[1] * d2 * torch.sin(4 * math.pi * x)
    phi_x = -2 * math.pi * eps[0] * d1 * torch.sin(2 * math.pi * x) + 4 * math.pi * eps[1] * d2 * torch.cos(4 * math.pi * x)
    return -2 * nu * phi_x / phi


def _grid(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64) / n


def _error(n: int, dt: float, times: list[float] = [0.0, T]) -> float:
    x = _grid(n)
    u = solve_burgers(cole_hopf(x, 0.0)[None], NU, times, dt)
    return max(float((u[0, i] - cole_hopf(x, t)).abs().max()) for i, t in enumerate(times))


def test_matches_cole_hopf_exact_solution() -> None:
    x = _grid(256)
    times = [0.0, 0.1, 0.25, 0.5]
    u = solve_burgers(torch.stack([cole_hopf(x, 0.0), cole_hopf(x, 0.0, eps=(0.7, -0.2))]), NU, times, 1e-3)
    assert u.shape == (2, 4, 256)
    for i, t in enumerate(times):
        assert (u[0, i] - cole_hopf(x, t)).abs().max() < 1e-10
        assert (u[1, i] - cole_hopf(x, t, eps=(0.7, -0.2))).abs().max() < 1e-10
    assert cole_hopf(x, 0.0).abs().max() > 0.3  # a genuinely nonlinear test: u is not small


def test_time_step_convergence_is_fourth_order() -> None:
    # n = 128 resolves the solution to ~1e-13, so the error is the time-stepping error
    steps = [10, 20, 40, 80]
    errors = [_error(128, T / s) for s in steps]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert min(orders) > 3.5, f"ETDRK4 orders {orders} (errors {errors})"
    assert errors[-1] < 1e-9


def test_spatial_convergence_is_spectral() -> None:
    errors = {n: _error(n, 1e-3) for n in (16, 24, 32, 48, 64)}
    # exponential convergence: each refinement by 8-16 points gains orders of magnitude
    assert errors[24] < 0.1 * errors[16]
    assert errors[32] < 0.05 * errors[24]
    assert errors[48] < 1e-2 * errors[32]
    assert errors[64] < 1e-11


def test_problem_generates_fno_style_trajectories() -> None:
    p = make_problem("burgers", solver_resolution=256, resolution=64, n_snapshots=5, dt=1e-2)
    assert p.field_shapes() == {"u": (5, 64)}
    coords = p.coordinates()
    np.testing.assert_allclose(coords["t"], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(coords["x"], np.arange(64) / 64)
    out = p.generate(seed=3, split="train", indices=[0, 1, 2])
    u = out["u"]
    assert u.shape == (3, 5, 64) and u.dtype == np.float32 and np.isfinite(u).all()
    # snapshot 0 is the GRF initial condition, subsampled by striding
    u0 = p.grf().sample(sample_generators(3, "train", [0, 1, 2]))
    np.testing.assert_allclose(u[:, 0], u0[:, ::4].numpy(), rtol=1e-6, atol=1e-6)
    # zero-mean initial condition (as the reference GRF1 with m = 0), and Burgers conserves the mean of u (the
    # flux is periodic); viscosity dissipates the L2 norm
    full = solve_burgers(u0, 0.1, [0.0, 0.5, 1.0], 1e-2)
    assert full.mean(-1).abs().max() < 1e-12 and u0.abs().max() > 0.1
    energy = (full**2).mean(-1)
    assert (energy[:, 1:] < energy[:, :-1]).all()
    # sample i depends only on (seed, split, i)
    alone = p.generate(seed=3, split="train", indices=[2])["u"]
    np.testing.assert_allclose(alone[0], u[2], rtol=0, atol=1e-6)
    other = p.generate(seed=3, split="test", indices=[2])["u"]
    assert not np.allclose(other[0], u[2])


def test_initial_condition_is_the_zero_mean_reference_grf() -> None:
    """GRF1(N/2, m = 0, gamma, tau, sigma, 'periodic'): u0 = sum_{k >= 1} sqrt(2) sigma ((2 pi k)^2 + tau^2)^(-gamma/2)
    (xi_k cos 2 pi k x + eta_k sin 2 pi k x), so the mean is 0 and the pointwise variance is
    sum_k 2 sigma^2 ((2 pi k)^2 + tau^2)^(-gamma) (the sine of the Nyquist mode vanishes on the grid)."""
    n, m = 256, 2000
    p = Burgers(solver_resolution=n, resolution=n)
    u0 = p.grf().sample(sample_generators(0, "train", range(m)))
    assert u0.mean(-1).abs().max() < 1e-12  # every sample, not just on average
    sigma, tau, gamma = p.sigma, p.tau, p.alpha
    k = torch.arange(1, n // 2 + 1, dtype=torch.float64)
    lam = sigma**2 * ((2 * math.pi * k) ** 2 + tau**2) ** (-gamma)  # per cos / sin coefficient: 2 lam
    weight = torch.full_like(k, 2.0)
    weight[-1] = 1.0  # Nyquist: cosine only
    expected = float((weight * lam).sum())
    # spatial mean of u0^2 of one sample = sum of its squared coefficients: variance 2 sum_(all k) lam_k^2
    se = math.sqrt(float((2 * weight * lam**2).sum()) / m)
    empirical = float((u0**2).mean())
    assert abs(empirical - expected) < 5 * se, (empirical, expected, se)
    assert abs(expected - 0.3523) < 1e-3  # FNO values: sum_k 2 * 625 ((2 pi k)^2 + 25)^-2
    # the old convention (a random mean ~ N(0, sigma^2 tau^(-2 gamma)) = N(0, 1)) would fail by far
    assert abs(empirical - (expected + sigma**2 * tau ** (-2 * gamma))) > 50 * se
    u = solve_burgers(u0[:4], p.nu, [0.0, 0.5, 1.0], 1e-2)
    assert u.mean(-1).abs().max() < 1e-12  # the conserved mean stays zero


def test_float32_matches_float64() -> None:
    """The FNO setting at 1024 points: float32 data are within 1e-5 (relative L2, measured 1.0e-6 at t = 1) of
    float64 ones -- far below the 1e-3 errors of the operators trained on them -- and really ran in float32."""
    out = {prec: Burgers(solver_resolution=1024, resolution=256, precision=prec).generate_batch(
        sample_generators(0, "train", range(4)), torch.device("cpu"))["u"] for prec in ("float64", "float32")}
    assert out["float64"].dtype == torch.float64 and out["float32"].dtype == torch.float32
    ref = out["float64"]
    rel = (out["float32"].double() - ref).norm(dim=-1) / ref.norm(dim=-1)
    assert float(rel.max()) < 1e-5
    assert float(rel[:, -1].min()) > 1e-8  # a float64 run would agree to ~1e-15
    # the exact Cole-Hopf solution in float32 over 500 steps: 7e-8, round-off that does not drift (E v applied as
    # v + (E - 1) v; with E rounded to float32 the low modes drifted to an error of 1.8e-6)
    x = _grid(256)
    u = solve_burgers(cole_hopf(x, 0.0)[None].float(), NU, [0.0, T], 1e-3)
    assert u.dtype == torch.float32
    assert float((u[0, -1].double() - cole_hopf(x, T)).abs().max()) < 3e-7


def test_memory_estimate_matches_the_measured_peak() -> None:
    """solve_bytes_per_sample errs on the large side by less than 3x: the peak of 32 samples minus that of 16
    (batches large enough that the samples, not the fixed ETDRK4 tables, make the peak), per sample."""
    from torch.profiler import ProfilerActivity, profile

    for precision in ("float64", "float32"):
        p = Burgers(solver_resolution=1024, resolution=256, n_snapshots=11, dt=1e-2, precision=precision)
        peaks = {}
        for b in (16, 32):
            gens = sample_generators(0, "train", range(b))
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                p.generate_batch(gens, torch.device("cpu"))
            events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                            key=lambda e: e.start_ns())
            current = peaks[b] = 0
            for e in events:
                current += e.nbytes()
                peaks[b] = max(peaks[b], current)
        measured = (peaks[32] - peaks[16]) / 16
        estimate = p.solve_bytes_per_sample(torch.device("cpu"))
        assert estimate == solve_bytes_per_sample(1024, 11, precision)
        assert measured > 0 and 1.0 <= estimate / measured <= 3.0, (precision, estimate, measured)


def test_default_is_fno_setting() -> None:
    p = Burgers()
    assert (p.nu, p.resolution, p.solver_resolution, p.t_final) == (0.1, 1024, 8192, 1.0)
    assert (p.alpha, p.tau, p.sigma**2) == (2.0, 5.0, 625.0)
    assert p.stride == 8 and p.coordinates()["t"][[0, -1]].tolist() == [0.0, 1.0]
    assert p.store_resolution == 8192 and p.read_stride == 8 and "resolution" not in p.storage_config()
    assert p.config()["pde"] == "burgers"
    # precision: float64 by default and then not in the stored data's identity (hashes from before it existed)
    assert p.precision == "float64" and "precision" not in p.storage_config()
    assert Burgers(precision="float32").storage_config()["precision"] == "float32"


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(resolution=1000), "resolution=1000"),
        (dict(resolution=0), "resolution=0"),
        (dict(nu=-0.1), "nu=-0.1"),
        (dict(n_snapshots=1), "n_snapshots=1"),
        (dict(dt=0), "dt=0"),
        (dict(solver_resolution=8191, resolution=8191), "solver_resolution=8191"),
        (dict(store_resolution=3000), "store_resolution=3000 is not allowed with solver_resolution=8192"),
        (dict(store_resolution=512), "resolution=1024 is not allowed; use at most store_resolution=512"),
        (dict(store_resolution=16384), "store_resolution=16384 is not allowed; use at most solver_resolution"),
        (dict(viscosity=0.1), "unknown burgers parameter"),
        (dict(precision="float16"), "precision='float16'"),
    ],
)
def test_invalid_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        Burgers(**params)
    assert "\n" not in str(info.value)
