"""The MP-PDE wave equation on Chebyshev nodes: spectral differentiation, exact standing waves and d'Alembert
solutions with reflections for every boundary pair, energy conservation, exactness of the modal time
integration (against RK4 on the same semi-discrete system), the sampling convention, sample independence,
re-solving from stored parameters, the discretization, the data config and parameter validation."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from datasets.discretization import PointSet
from datasets.pdes.chebyshev import (
    boundary_prolongation,
    chebyshev_grid,
    clenshaw_curtis_weights,
    gauss_lobatto_points,
    robin_coefficients,
    second_derivative_operator,
)
from datasets.pdes.wave import Wave, gaussian_pulse, solve_wave, wave_energy, wave_modes
from datasets.seeding import sample_generator, sample_generators

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
PAIRS = [(0, 0), (1, 1), (0, 1), (1, 0)]  # (left, right): 0 Dirichlet, 1 Neumann
SIGN = {0: -1.0, 1: 1.0}  # reflection sign of each condition


# ---------------------------------------------------------------------------------------------- Chebyshev
def test_gauss_lobatto_points_are_the_official_grid() -> None:
    n = 100
    x = gauss_lobatto_points(n, -8.0, 8.0)
    # MP-PDE cheb_grid: cos(pi j / (N - 1)) reversed, mapped from [-1, 1] to [-8, 8]
    official = 16.0 * (np.cos(np.arange(n) * np.pi / (n - 1))[::-1] + 1.0) / 2.0 - 8.0
    np.testing.assert_allclose(x.numpy(), official, rtol=0, atol=1e-14)
    assert float(x[0]) == -8.0 and float(x[-1]) == 8.0 and bool((x[1:] > x[:-1]).all())
    assert torch.equal(x, -x.flip(0))  # exactly symmetric


def test_differentiation_converges_spectrally() -> None:
    errors, errors2 = {}, {}
    for n in (8, 12, 16, 20, 24, 30):
        x, d = chebyshev_grid(n)
        f = torch.exp(x) * torch.sin(5 * x)
        df = torch.exp(x) * (torch.sin(5 * x) + 5 * torch.cos(5 * x))
        d2f = torch.exp(x) * (10 * torch.cos(5 * x) - 24 * torch.sin(5 * x))
        errors[n] = float((d @ f - df).abs().max())
        errors2[n] = float((d @ d @ f - d2f).abs().max())
    assert errors[8] > 1e-2  # under-resolved: a genuine convergence study
    for a, b in zip((8, 12, 16, 20), (12, 16, 20, 24)):
        assert errors[b] < 2e-2 * errors[a], errors  # exponential: >= 50x per 4 points
    assert errors[30] < 1e-12 and errors2[30] < 1e-10, (errors, errors2)
    # on [-8, 8] the matrix carries the 2 / L factor itself
    x, d = chebyshev_grid(30, -8.0, 8.0)
    assert float((d @ torch.sin(x / 2 + 0.3) - 0.5 * torch.cos(x / 2 + 0.3)).abs().max()) < 1e-12
    assert float((d @ torch.ones(30, dtype=torch.float64)).abs().max()) < 1e-13  # negative-sum diagonal


def test_clenshaw_curtis_is_exact_for_polynomials() -> None:
    for n in (9, 10):
        x = gauss_lobatto_points(n, -8.0, 8.0)
        w = clenshaw_curtis_weights(n, -8.0, 8.0)
        for k in range(n):
            exact = (8.0 ** (k + 1) - (-8.0) ** (k + 1)) / (k + 1)
            assert abs(float(w @ x**k) - exact) <= 1e-12 * max(1.0, 8.0**k)


def test_boundary_prolongation_satisfies_the_conditions() -> None:
    n = 20
    _, d = chebyshev_grid(n, -8.0, 8.0)
    interior = torch.randn(3, n - 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Dirichlet / Neumann / Robin (alpha, beta) per sample, outward-normal form
    left = (torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 2.0]))
    right = (torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, 1.0]))
    p = boundary_prolongation(d, left, right)
    assert p.shape == (3, n, n - 2)
    u = (p @ interior[..., None])[..., 0]
    ux = u @ d.T
    torch.testing.assert_close(u[:, 1:-1], interior, rtol=0, atol=0)
    res_l = left[0] * u[:, 0] - left[1] * ux[:, 0]
    res_r = right[0] * u[:, -1] + right[1] * ux[:, -1]
    assert float(res_l.abs().max()) < 1e-11 and float(res_r.abs().max()) < 1e-11
    assert float(u[0, 0]) == 0.0 and float(u[0, -1]) == 0.0  # Dirichlet exactly
    with pytest.raises(ValueError, match="alpha = beta = 0"):
        boundary_prolongation(d, (0.0, 0.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="boundary codes"):
        robin_coefficients(torch.tensor([0, 2]))


def test_operator_spectrum_is_real_and_non_positive() -> None:
    # the smallest |lambda| is the first mode of each pair: (pi / 16)^2, (pi / 32)^2, or 0 (Neumann constant)
    expected = {(0, 0): (math.pi / 16) ** 2, (1, 1): 0.0, (0, 1): (math.pi / 32) ** 2, (1, 0): (math.pi / 32) ** 2}
    for pair, low in expected.items():
        modes = wave_modes(100, *pair)
        assert bool((modes.omega >= 0).all()) and bool((modes.omega[1:] >= modes.omega[:-1]).all())
        assert abs(float(modes.omega[0]) ** 2 - low) < 1e-10
    _, d = chebyshev_grid(100, -8.0, 8.0)
    a, _ = second_derivative_operator(d, (1.0, 0.0), (1.0, 0.0))
    lam = torch.linalg.eigvals(a[0])
    assert float(lam.imag.abs().max()) == 0.0 and float(lam.real.max()) < 0
    with pytest.raises(ValueError, match="not oscillatory"):
        wave_modes(20, (-1.0, 1.0), 0)  # an anti-damping Robin side has a growing mode


# ---------------------------------------------------------------------------------------------- exact solutions
def _standing(pair: tuple[int, int], k: int, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Eigenmode phi(x) and wavenumber kappa of the pair: sin / cos (k pi (x + 8) / 16) for equal sides,
    sin / cos ((k + 1/2) pi (x + 8) / 16) for Dirichlet-Neumann / Neumann-Dirichlet."""
    kappa = (k if pair[0] == pair[1] else k + 0.5) * math.pi / 16
    phi = torch.sin(kappa * (x + 8)) if pair[0] == 0 else torch.cos(kappa * (x + 8))
    return phi, kappa


def test_standing_waves_are_exact_for_every_boundary_pair() -> None:
    n = 40
    x = gauss_lobatto_points(n, -8.0, 8.0)
    t = torch.linspace(0.0, 100.0, 101, dtype=torch.float64)
    for pair in PAIRS:
        for k in (1, 3, 6):
            phi, kappa = _standing(pair, k, x)
            c = torch.tensor([1.5, 2.0], dtype=torch.float64)
            u0 = torch.stack([phi, torch.zeros_like(phi)])
            v0 = torch.stack([torch.zeros_like(phi), phi])
            u = solve_wave(u0, v0, c, pair[0], pair[1], t)
            w = c[:, None] * kappa * t  # u = phi cos(c kappa t) and phi sin(c kappa t) / (c kappa)
            exact = torch.stack([phi * torch.cos(w[0])[:, None], phi * (torch.sin(w[1]) / (2.0 * kappa))[:, None]])
            err = float((u - exact).abs().max())
            assert err < 1e-10, (pair, k, err)


def _reflected_pulse(x: torch.Tensor, t: float, s: float, c: float, pair: tuple[int, int],
                     images: int = 10) -> torch.Tensor:
    """d'Alembert with reflections of the left-moving pulse f(x + c t), f = exp(-(x - s)^2), on [-8, 8]: the
    images of f under x -> -16 - x (sign sigma_L) and x -> 16 - x (sigma_R), i.e. translations by 32 (sign
    sigma_L sigma_R) and their mirrors, which move right."""
    sl, sr = SIGN[pair[0]], SIGN[pair[1]]

    def f(y: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((y - s) ** 2))

    u = torch.zeros_like(x)
    for m in range(-images, images + 1):
        u = u + (sl * sr) ** m * (f(x - 32 * m + c * t) + sl * f(-16 - x - 32 * m + c * t))
    return u


def test_pulses_match_dalembert_with_reflections() -> None:
    """Every pair, two speeds, pulses crossing the domain ~6-12 times by t = 100 (the official T)."""
    n = 100
    x = gauss_lobatto_points(n, -8.0, 8.0)
    t = torch.linspace(0.0, 100.0, 126, dtype=torch.float64)
    cases = [(pair, s, c) for pair in PAIRS for s, c in ((-1.3, 2.0), (2.2, 1.2))]
    s = torch.tensor([case[1] for case in cases], dtype=torch.float64)
    c = torch.tensor([case[2] for case in cases], dtype=torch.float64)
    u0, v0 = gaussian_pulse(x, s, 1.0, 1.0, c)
    left = torch.tensor([case[0][0] for case in cases])
    right = torch.tensor([case[0][1] for case in cases])
    u = solve_wave(u0, v0, c, left, right, t)  # one batch, mixed pairs and speeds
    xb = torch.tensor([-8.0, 8.0], dtype=torch.float64, requires_grad=True)
    for i, (pair, si, ci) in enumerate(cases):
        exact = torch.stack([_reflected_pulse(x, float(tk), si, ci, pair) for tk in t])
        err = float((u[i] - exact).abs().max())
        assert err < 1e-9, (pair, si, ci, err)
        # the reference itself satisfies the boundary conditions (guards the image signs)
        for tk in (3.7, 55.5):
            ub = _reflected_pulse(xb, tk, si, ci, pair)
            grad = torch.autograd.grad(ub.sum(), xb)[0]
            check = [ub[0] if pair[0] == 0 else grad[0], ub[1] if pair[1] == 0 else grad[1]]
            assert max(abs(float(v.detach())) for v in check) < 1e-12
    assert float(u.abs().max()) > 0.9  # the pulse is there


def test_energy_is_conserved() -> None:
    """E = 1/2 int u_t^2 + c^2 u_x^2 = c^2 int f'^2 = c^2 sqrt(pi / 2) for the pulse (2), constant to 1e-10."""
    x = gauss_lobatto_points(100, -8.0, 8.0)
    t = torch.linspace(0.0, 100.0, 250, dtype=torch.float64)
    for pair in PAIRS:
        s = torch.tensor([-1.3, 0.4, 2.2], dtype=torch.float64)
        c = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
        u0, v0 = gaussian_pulse(x, s, 1.0, 1.0, c)
        u, ut = solve_wave(u0, v0, c, pair[0], pair[1], t, return_velocity=True)
        energy = wave_energy(u, ut, c)
        expected = c[:, None] ** 2 * math.sqrt(math.pi / 2)
        rel = float(((energy - expected) / expected).abs().max())
        assert rel < 1e-10, (pair, rel)
        spread = float(((energy.amax(1) - energy.amin(1)) / energy[:, 0]).max())
        assert spread < 1e-11, (pair, spread)


def test_time_integration_is_exact_against_rk4() -> None:
    """RK4 on the same semi-discrete system u_int'' = c^2 A u_int converges at fourth order *to the modal
    solution* (its errors fall 16x per halving down to ~1e-11): the modal propagator has no time error."""
    n, c, t_end = 24, 2.0, 4.0
    x, d = chebyshev_grid(n, -8.0, 8.0)
    u0, v0 = gaussian_pulse(x, 0.5, 1.0, 2.0, c)
    for pair in [(0, 0), (1, 0)]:
        left, right = (robin_coefficients(torch.tensor([side])) for side in pair)
        a, _ = second_derivative_operator(d, left, right)
        a = c * c * a[0]
        modal = solve_wave(u0, v0, c, pair[0], pair[1], [t_end])[0, 0, 1:-1]
        errors = []
        for steps in (250, 500, 1000, 2000):
            h = t_end / steps
            y = torch.cat([u0[0, 1:-1], v0[0, 1:-1]])
            m = n - 2

            def rhs(z: torch.Tensor, a: torch.Tensor = a, m: int = m) -> torch.Tensor:
                return torch.cat([z[m:], a @ z[:m]])  # (u, u_t)' = (u_t, c^2 A u)

            for _ in range(steps):
                k1 = rhs(y)
                k2 = rhs(y + h / 2 * k1)
                k3 = rhs(y + h / 2 * k2)
                k4 = rhs(y + h * k3)
                y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            errors.append(float((y[:m] - modal).abs().max()))
        orders = [math.log2(e0 / e1) for e0, e1 in itertools.pairwise(errors)]
        assert min(orders) > 3.7, (pair, orders, errors)
        assert errors[-1] < 3e-10, (pair, errors)


def test_propagation_composes() -> None:
    """Restarting from (u, u_t) at t1 gives the direct solution at t1 + t2 (the semigroup property), and
    negative times run backwards."""
    x = gauss_lobatto_points(100, -8.0, 8.0)
    u0, v0 = gaussian_pulse(x, torch.tensor([0.3, -2.0], dtype=torch.float64), 1.0, 1.0, 2.0)
    for pair in PAIRS:
        u1, ut1 = solve_wave(u0, v0, 2.0, pair[0], pair[1], [37.3], return_velocity=True)
        u2 = solve_wave(u1[:, 0], ut1[:, 0], 2.0, pair[0], pair[1], [62.7])
        direct = solve_wave(u0, v0, 2.0, pair[0], pair[1], [100.0])
        assert float((u2 - direct).abs().max()) < 1e-11
        back = solve_wave(u1[:, 0], ut1[:, 0], 2.0, pair[0], pair[1], [-37.3])[:, 0]
        assert float((back[:, 1:-1] - u0[:, 1:-1]).abs().max()) < 1e-11


# ---------------------------------------------------------------------------------------------- the problem
def test_sampling_convention() -> None:
    m = 4000
    p = Wave(boundary="mixed", mixed_sides="both", c_range=[1.0, 3.0], center_range=[-4.0, 4.0],
             amplitude_range=[0.5, 1.5], width_range=[0.8, 1.2])
    draws = p.sample_parameters(sample_generators(0, "train", range(m)))
    for name, (lo, hi) in (("c", p.c_range), ("center", p.center_range), ("amplitude", p.amplitude_range),
                           ("width", p.width_range)):
        v = draws[name]
        assert v.shape == (m,) and float(v.min()) >= lo and float(v.max()) <= hi
        mean_se = (hi - lo) / math.sqrt(12 * m)
        assert abs(float(v.mean()) - (lo + hi) / 2) < 4 * mean_se, name
        var = (hi - lo) ** 2 / 12
        var_se = math.sqrt((1 / 80 - 1 / 144) * (hi - lo) ** 4 / m)
        assert abs(float(v.var()) - var) < 4 * var_se, name
        torch.testing.assert_close(v, v.to(torch.float32).to(torch.float64), rtol=0, atol=0)  # stored exactly
    for side in ("bc_left", "bc_right"):
        b = draws[side]
        assert set(b.unique().tolist()) == {0.0, 1.0}
        assert abs(float(b.mean()) - 0.5) < 4 * 0.5 / math.sqrt(m)
    corr = float(torch.corrcoef(torch.stack([draws["bc_left"], draws["bc_right"], draws["center"]]))[0, 1:].abs().max())
    assert corr < 4 / math.sqrt(m)
    # the draw order: six float64 uniforms of the sample's generator (center, c, amplitude, width, left, right)
    r = torch.rand(6, generator=sample_generator(0, "train", 7), dtype=torch.float64)
    assert float(draws["center"][7]) == float((-4 + 8 * r[0]).to(torch.float32))
    assert float(draws["c"][7]) == float((1 + 2 * r[1]).to(torch.float32))
    assert float(draws["bc_left"][7]) == float(r[4] >= 0.5) and float(draws["bc_right"][7]) == float(r[5] >= 0.5)
    # the official conventions: c = 2, A = w = 1; WE3 draws the left side only (its right side is Dirichlet);
    # WE1 / WE2 fix both; all three share the pulses of a seed
    we1, we2, we3 = (Wave(boundary=b).sample_parameters(sample_generators(0, "train", range(500)))
                     for b in ("dirichlet", "neumann", "mixed"))
    assert bool((we1["c"] == 2.0).all() and (we1["amplitude"] == 1.0).all() and (we1["width"] == 1.0).all())
    assert float(we1["center"].min()) >= -4 and float(we1["center"].max()) <= 4
    assert bool((we1["bc_left"] == 0).all() and (we1["bc_right"] == 0).all())
    assert bool((we2["bc_left"] == 1).all() and (we2["bc_right"] == 1).all())
    assert bool((we3["bc_right"] == 0).all()) and 0.4 < float(we3["bc_left"].mean()) < 0.6
    torch.testing.assert_close(we1["center"], we3["center"], rtol=0, atol=0)


def test_generated_samples_layout_independence_and_resolve() -> None:
    p = Wave(boundary="mixed", mixed_sides="both", resolution=40, n_snapshots=21, t_final=20.0,
             c_range=[1.0, 3.0])
    shapes = p.field_shapes()
    assert shapes["u"] == (21, 40) and all(shapes[k] == () for k in Wave.parameter_fields)
    coords = p.coordinates()
    np.testing.assert_allclose(coords["t"], np.linspace(0, 20, 21))
    np.testing.assert_array_equal(coords["x"], gauss_lobatto_points(40, -8.0, 8.0).numpy())
    out = p.generate(seed=1, split="train", indices=range(6))
    u = out["u"]
    assert u.shape == (6, 21, 40) and u.dtype == np.float32 and np.isfinite(u).all()
    assert len({(float(a), float(b)) for a, b in zip(out["bc_left"], out["bc_right"])}) > 1  # a mixed batch
    # sample i depends only on (seed, split, i)
    alone = p.generate(seed=1, split="train", indices=[4])
    np.testing.assert_allclose(alone["u"][0], u[4], rtol=0, atol=1e-6)
    assert all(float(alone[k][0]) == float(out[k][4]) for k in Wave.parameter_fields)
    assert not np.allclose(p.generate(seed=1, split="val", indices=[4])["u"][0], u[4])
    # re-solving from the stored (float32) parameters reproduces the stored u
    again = p.solve({k: out[k] for k in Wave.parameter_fields}).numpy()
    np.testing.assert_allclose(again, u, rtol=0, atol=1e-6)
    # stored time runs backwards from the pulse (official): the last snapshot is the pulse
    x = torch.as_tensor(coords["x"])
    f, _ = gaussian_pulse(x, out["center"], out["amplitude"], out["width"], out["c"])
    np.testing.assert_allclose(u[:, -1, 1:-1], f[:, 1:-1].numpy(), rtol=0, atol=1e-6)
    forward = Wave(**{**p.params, "time_reversed": False}).generate(seed=1, split="train", indices=range(6))["u"]
    np.testing.assert_allclose(forward[:, 0, 1:-1], f[:, 1:-1].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(forward[:, ::-1], u, rtol=0, atol=1e-6)
    # boundary conditions hold in the stored data (Dirichlet values exactly 0)
    dirichlet_left = out["bc_left"] == 0
    assert np.abs(u[dirichlet_left, :, 0]).max() == 0.0
    # float32 working precision agrees with float64 to the storage level
    single = Wave(**{**p.params, "precision": "float32"}).generate(seed=1, split="train", indices=range(6))["u"]
    assert np.abs(single - u).max() < 1e-4


def test_discretization_is_the_chebyshev_point_set() -> None:
    p = Wave()
    assert (Wave.default_inputs, Wave.default_targets, Wave.spatial_dims, Wave.periodic) == (["u"], ["u"], 1, False)
    assert p.grid_kind is None and p.read_stride == 1 and p.storage_problem() is p
    assert "resolution" in p.storage_config()
    disc = p.discretization(p.coordinates())
    assert isinstance(disc, PointSet) and disc.spatial_dims == 1 and not disc.periodic
    assert disc.lengths == (16.0,) and disc.origin == (-8.0,)
    np.testing.assert_array_equal(disc.points()[:, 0], gauss_lobatto_points(100, -8.0, 8.0).numpy())
    assert disc.points().shape == (100, 1)


def test_default_is_the_official_setting() -> None:
    p = Wave()
    assert (p.boundary, p.t_final, p.n_snapshots, p.resolution) == ("dirichlet", 100.0, 250, 100)
    assert (p.c_range, p.center_range, p.amplitude_range, p.width_range) == ([2.0, 2.0], [-4.0, 4.0],
                                                                             [1.0, 1.0], [1.0, 1.0])
    assert p.time_reversed and p.mixed_sides == "left"


def test_data_config() -> None:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "wave.yaml"), resolve=False)
    burgers = OmegaConf.to_container(OmegaConf.load(CONF / "burgers.yaml"), resolve=False)
    from datasets.generation import problem_params

    missing = (set(burgers) - set(problem_params(burgers))) - set(cfg)
    assert not missing, sorted(missing)  # the data-module keys of burgers.yaml, all present
    assert cfg["_target_"] == "datasets.datamodule.GridDataModule" and cfg["pde"] == "wave"
    assert (cfg["n_train"], cfg["n_val"], cfg["n_test"], cfg["batch_size"]) == (2048, 128, 128, 16)
    assert (cfg["input_steps"], cfg["target_steps"], cfg["in_channels"], cfg["out_channels"],
            cfg["n_target_steps"]) == ("25:50", "50:250", 25, 1, 200)
    assert cfg["spatial_dims"] == 1 and cfg["periodic"] is False and cfg["inputs"] == cfg["targets"] == ["u"]
    p = Wave(**problem_params(cfg))
    assert p.params == Wave().params  # the yaml is WE1 with the official values
    for override in ({"boundary": "neumann"}, {"boundary": "mixed"}):
        Wave(**{**problem_params(cfg), **override})


def test_datamodule_serves_the_wave_data(tmp_path: Path) -> None:
    from datasets import pdes
    from datasets.datamodule import GridDataModule

    assert isinstance(pdes.make_problem("wave"), Wave)  # found by the automatic registry

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "wave.yaml"), resolve=False)
    cfg.update(n_train=4, n_val=2, n_test=2, data_dir=str(tmp_path), resolution=32, generation_device="cpu")
    cfg.pop("_target_")
    dm = GridDataModule(**cfg)
    data = dm.load("train")
    assert tuple(data["x"].shape) == (4, 25, 32) and tuple(data["y"].shape) == (4, 200, 32)
    assert isinstance(dm.discretization, PointSet) and dm.periodic is False and dm.spatial_dims == 1
    np.testing.assert_allclose(dm.discretization.points()[:, 0], gauss_lobatto_points(32, -8.0, 8.0).numpy())
    assert (dm.in_channels, dm.out_channels, dm.n_target_steps) == (25, 1, 200)
    # the served windows are the stored trajectories: steps 25..49 in, 50..249 out
    again = Wave(**{**Wave().params, "resolution": 32}).generate(0, "train", range(4))["u"]
    np.testing.assert_allclose(data["x"].numpy(), again[:, 25:50], rtol=0, atol=1e-6)
    np.testing.assert_allclose(data["y"].numpy(), again[:, 50:], rtol=0, atol=1e-6)


@pytest.mark.parametrize("override, name", [
    ({"boundary": "robin"}, "boundary"),
    ({"mixed_sides": "right"}, "mixed_sides"),
    ({"c_range": [0.0, 2.0]}, "c_range"),
    ({"c_range": [3.0, 2.0]}, "c_range"),
    ({"c_range": [1.0, 2.0, 3.0]}, "c_range"),
    ({"center_range": [-9.0, 0.0]}, "center_range"),
    ({"width_range": [0.0, 1.0]}, "width_range"),
    ({"amplitude_range": [1.0, float("nan")]}, "amplitude_range"),
    ({"amplitude_range": "big"}, "amplitude_range"),
    ({"t_final": 0.0}, "t_final"),
    ({"n_snapshots": 1}, "n_snapshots"),
    ({"resolution": 3}, "resolution"),
    ({"resolution": 10.5}, "resolution"),
    ({"time_reversed": "yes"}, "time_reversed"),
    ({"precision": "float16"}, "precision"),
    ({"speed": 2.0}, "speed"),
])
def test_bad_parameters_raise_one_line_errors(override: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        Wave(**override)
    assert "\n" not in str(info.value)


def test_bad_solver_arguments() -> None:
    x = gauss_lobatto_points(10, -8.0, 8.0)
    u0 = torch.zeros(2, 10, dtype=torch.float64)
    for kwargs, match in (({"c": -1.0}, "c="), ({"bc_left": 3}, "boundary codes")):
        args = {"c": 1.0, "bc_left": 0, "bc_right": 0, **kwargs}
        with pytest.raises(ValueError, match=match):
            solve_wave(u0, u0, args["c"], args["bc_left"], args["bc_right"], [1.0])
    with pytest.raises(ValueError, match="shape"):
        solve_wave(x, x, 1.0, 0, 0, [1.0])
    with pytest.raises(ValueError, match="params lack"):
        Wave(resolution=10).solve({"c": [2.0]})
