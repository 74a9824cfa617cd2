"""Darcy flow: second-order convergence to a manufactured solution, agreement of the batched CG, the multigrid-
preconditioned CG and the sparse direct solver (serial and threaded), the multigrid property (iterations
independent of n), the multigrid transfer operators and Galerkin stencils, the solver memory estimate, the
assembled matrix vs the matrix-free operator, and the data generator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datasets.pdes import make_problem
from datasets.pdes.darcy import (
    AUTO_CPU_SOLVER,
    Darcy,
    DarcyOperator,
    assemble_matrix,
    resolve_solver,
    solve_bytes_per_sample,
    solve_cg,
    solve_darcy,
    solve_direct,
    solve_mgcg,
)
from datasets.pdes.multigrid import dense_matrix, probe_stencil, prolong, restrict
from datasets.seeding import sample_generators

PI = math.pi


def manufactured(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u = sin(pi x) sin(2 pi y) (zero on the boundary), a = 2 + sin(2 pi x + 1) cos(pi y) (smooth, >= 1),
    f = -div(a grad u) computed by hand."""
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    u = torch.sin(PI * X) * torch.sin(2 * PI * Y)
    u_x = PI * torch.cos(PI * X) * torch.sin(2 * PI * Y)
    u_y = 2 * PI * torch.sin(PI * X) * torch.cos(2 * PI * Y)
    a = 2 + torch.sin(2 * PI * X + 1) * torch.cos(PI * Y)
    a_x = 2 * PI * torch.cos(2 * PI * X + 1) * torch.cos(PI * Y)
    a_y = -PI * torch.sin(2 * PI * X + 1) * torch.sin(PI * Y)
    f = -(a_x * u_x + a_y * u_y) + 5 * PI**2 * a * u  # Laplacian u = -5 pi^2 u
    return a[None], f, u


@pytest.mark.parametrize("face_average", ["arithmetic", "harmonic"])
@pytest.mark.parametrize("solver", ["direct", "cg", "mgcg"])
def test_manufactured_solution_converges_second_order(solver: str, face_average: str) -> None:
    sizes = [17, 33, 65, 129]
    errors = []
    for n in sizes:
        a, f, u = manufactured(n)
        errors.append(float((solve_darcy(a, f, solver, face_average)[0] - u).abs().max()))
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    assert all(1.8 <= p <= 2.3 for p in orders), f"orders {orders}, errors {errors}"
    assert errors[-1] < 5e-4


def _random_coefficients(n: int, b: int) -> torch.Tensor:
    p = Darcy(solver_resolution=n, resolution=n)
    return p.coefficient(p.grf().sample(sample_generators(0, "train", range(b))))


@pytest.mark.parametrize("face_average", ["arithmetic", "harmonic"])
def test_cg_and_direct_agree(face_average: str) -> None:
    a = _random_coefficients(41, 3)
    assert set(a.unique().tolist()) == {3.0, 12.0}
    direct = solve_darcy(a, 1.0, "direct", face_average)
    cg = solve_darcy(a, 1.0, "cg", face_average, cg_tol=1e-12)
    assert direct.shape == cg.shape == (3, 41, 41)
    assert float((direct - cg).abs().max() / direct.abs().max()) < 1e-9
    # zero Dirichlet boundary, positive interior (maximum principle for f = 1 > 0)
    for u in (direct, cg):
        assert u[:, 0].abs().max() == 0 and u[:, -1].abs().max() == 0
        assert u[:, :, 0].abs().max() == 0 and u[:, :, -1].abs().max() == 0
        assert (u[:, 1:-1, 1:-1] > 0).all()


def test_assembled_matrix_matches_matrix_free_operator() -> None:
    a = _random_coefficients(12, 1)
    for face_average in ("arithmetic", "harmonic"):
        mat = assemble_matrix(a[0].numpy(), face_average)
        assert abs(mat - mat.T).max() < 1e-12  # symmetric
        v = torch.randn(1, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        applied = DarcyOperator(a, face_average)(v)
        np.testing.assert_allclose(mat @ v[0].numpy().ravel(), applied[0].numpy().ravel(), rtol=1e-12, atol=1e-9)


def test_cg_reports_non_convergence() -> None:
    a, f, _ = manufactured(33)
    with pytest.raises(RuntimeError, match="Darcy CG did not converge in 3 iterations"):
        solve_cg(a, f, max_iter=3)
    with pytest.raises(RuntimeError, match="Darcy MG-CG did not converge in 2 iterations"):
        solve_mgcg(a, f, max_iter=2, check_every=5)


@pytest.mark.parametrize("n", [65, 85, 129])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_mgcg_matches_direct(n: int, precision: str) -> None:
    a = _random_coefficients(n, 3)
    direct = solve_darcy(a, 1.0, "direct")
    info: dict = {}
    mg = solve_mgcg(a, 1.0, precision=precision, info=info)  # default cg_tol = 1e-10
    assert mg.dtype == torch.float64 and mg.shape == (3, n, n)
    assert float((mg - direct).abs().max() / direct.abs().max()) < 1e-8
    assert int(info["iterations"].max()) <= 20 and info["levels"] >= 3
    harmonic = solve_darcy(a, 1.0, "mgcg", "harmonic", mg_precision=precision)
    reference = solve_darcy(a, 1.0, "direct", "harmonic")
    assert float((harmonic - reference).abs().max() / reference.abs().max()) < 1e-8


def test_mgcg_iterations_do_not_grow_with_n() -> None:
    """The multigrid property: MG-CG needs about as many iterations at n = 257 as at 65 (Jacobi-CG's grow ~n)."""
    iterations = {}
    for n in (65, 129, 257):
        info: dict = {}
        solve_mgcg(_random_coefficients(n, 2), 1.0, info=info)
        iterations[n] = int(info["iterations"].max())
    jacobi: dict = {}
    solve_cg(_random_coefficients(65, 2), 1.0, info=jacobi)
    assert iterations[257] <= 2 * iterations[65], iterations
    assert 10 * iterations[65] < int(jacobi["iterations"].min()), (iterations, jacobi)


@pytest.mark.parametrize("n", [18, 34, 66, 130])  # even n: the last coarse node is one fine spacing off the boundary
def test_mgcg_handles_even_grids(n: int) -> None:
    a = _random_coefficients(n, 2)
    info: dict = {}
    mg = solve_mgcg(a, 1.0, info=info)
    direct = solve_darcy(a, 1.0, "direct")
    assert float((mg - direct).abs().max() / direct.abs().max()) < 1e-8
    assert int(info["iterations"].max()) <= 20


@pytest.mark.parametrize("n", [3, 4, 9])  # grids with no coarse level: the dense coarsest solve alone
def test_solvers_on_tiny_grids(n: int) -> None:
    a = _random_coefficients(n, 2)
    direct = solve_darcy(a, 1.0, "direct")
    for solver in ("cg", "mgcg"):
        u = solve_darcy(a, 1.0, solver)
        assert float((u - direct).abs().max() / direct.abs().max()) < 1e-8, solver


def test_convergence_check_interval_does_not_change_the_result() -> None:
    """Converged samples are frozen, so checking every 7 iterations gives the bits of checking every one."""
    a = torch.cat([_random_coefficients(33, 2), _random_coefficients(65, 2)[:, ::2, ::2]])
    for solve in (solve_cg, solve_mgcg):
        every, seventh = {}, {}
        u1 = solve(a, 1.0, check_every=1, info=every)
        u7 = solve(a, 1.0, check_every=7, info=seventh)
        torch.testing.assert_close(u1, u7, rtol=0, atol=0)
        assert torch.equal(every["iterations"], seventh["iterations"])


@pytest.mark.parametrize("m", [7, 8, 13, 14])
def test_restriction_is_the_transpose_of_prolongation(m: int) -> None:
    gen = torch.Generator().manual_seed(m)
    c = torch.randn(2, m // 2, m // 2, dtype=torch.float64, generator=gen)
    f = torch.randn(2, m, m, dtype=torch.float64, generator=gen)
    assert abs(float((prolong(c, m) * f).sum() - (c * restrict(f)).sum())) < 1e-12
    # bilinear interpolation reproduces a linear function that vanishes on the boundary (odd m: nested grids)
    if m % 2:
        h, hc = 1.0 / (m + 1), 2.0 / (m + 1)
        xc = torch.arange(1, m // 2 + 1, dtype=torch.float64) * hc
        x = torch.arange(1, m + 1, dtype=torch.float64) * h
        x0 = hc * ((m + 1) // 4)  # a coarse node near 1/2
        tent = lambda t: torch.minimum(t / x0, (1 - t) / (1 - x0))  # linear but for a kink at x0
        fine = prolong((tent(xc)[:, None] * tent(xc)[None, :])[None], m)[0]
        torch.testing.assert_close(fine, tent(x)[:, None] * tent(x)[None, :], rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", [13, 14])
def test_galerkin_stencil_is_r_a_p(n: int) -> None:
    """The probed 9-point stencil of R A P equals the explicit product of the matrices (odd and even grids)."""
    a = _random_coefficients(n, 2)
    op = DarcyOperator(a)
    m = n - 2
    mc = m // 2
    eye_c = torch.eye(mc * mc, dtype=torch.float64).reshape(-1, mc, mc)
    p_mat = prolong(eye_c, m).reshape(mc * mc, m * m).T  # (m^2, mc^2)
    for k in range(2):
        a_mat = torch.from_numpy(assemble_matrix(a[k].numpy()).toarray())
        expected = p_mat.T @ a_mat @ p_mat
        coarse = probe_stencil(lambda e: restrict(op(prolong(e, m))), 2, mc, torch.float64, torch.device("cpu"))
        torch.testing.assert_close(dense_matrix(coarse)[k], expected, rtol=1e-12, atol=1e-9)
        fine = probe_stencil(op, 2, m, torch.float64, torch.device("cpu"))  # the 5-point operator itself
        torch.testing.assert_close(dense_matrix(fine)[k], a_mat, rtol=1e-12, atol=1e-9)
    v = torch.randn(2, mc, mc, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(coarse(v), coarse.residual(torch.zeros_like(v), v).neg(), rtol=0, atol=1e-12)


def test_threaded_direct_solve_equals_the_serial_one() -> None:
    a = _random_coefficients(49, 5)
    serial = solve_direct(a, 1.0, workers=1)
    torch.testing.assert_close(solve_direct(a, 1.0, workers=2), serial, rtol=0, atol=0)
    torch.testing.assert_close(solve_direct(a, 1.0, workers=8), serial, rtol=0, atol=0)  # more workers than samples
    cg = solve_darcy(a, 1.0, "cg", cg_tol=1e-12)
    assert float((cg - serial).abs().max() / serial.abs().max()) < 1e-9
    with pytest.raises(ValueError, match="direct_workers=0"):
        solve_direct(a, 1.0, workers=0)


def _peak_bytes(fn) -> int:
    """Peak bytes of the tensors allocated while ``fn()`` runs on CPU (torch profiler allocation events)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("solver,precision", [("cg", "float32"), ("mgcg", "float32"), ("mgcg", "float64")])
def test_memory_estimate_matches_the_measured_peak(solver: str, precision: str) -> None:
    """solve_bytes_per_sample errs on the large side, by less than 3x: the peak of 4 samples minus that of 2."""
    n = 97
    a = _random_coefficients(n, 4)
    peaks = {b: _peak_bytes(lambda b=b: solve_darcy(a[:b], 1.0, solver, cg_tol=1e-6, mg_precision=precision))
             for b in (2, 4)}
    measured = (peaks[4] - peaks[2]) / 2
    estimate = solve_bytes_per_sample(n, solver, precision)
    assert measured > 0 and 1.0 <= estimate / measured <= 3.0, (estimate, measured)
    assert Darcy(solver_resolution=n, resolution=n, solver=solver, mg_precision=precision).solve_bytes_per_sample(
        torch.device("cpu")) == estimate


def test_direct_memory_estimate_covers_the_lu_factors() -> None:
    from datasets.pdes.darcy import _lu

    for n in (65, 129):
        a = _random_coefficients(n, 1)[0].numpy()
        lu = _lu(assemble_matrix(a))
        factors = 12 * (lu.L.nnz + lu.U.nnz)  # float64 values + int32 row indices
        estimate = solve_bytes_per_sample(n, "direct")
        assert factors <= estimate <= 3 * factors, (n, factors, estimate)
    # every solver's estimate grows like n^2 (direct: n^2 log n)
    for solver in ("cg", "mgcg"):
        ratio = solve_bytes_per_sample(421, solver) / solve_bytes_per_sample(211, solver)
        assert 3.8 < ratio < 4.2, (solver, ratio)


def test_auto_solver_and_solver_knobs_outside_the_hash() -> None:
    assert resolve_solver("auto", "cuda") == "mgcg" and resolve_solver("auto", "cpu") == AUTO_CPU_SOLVER
    assert resolve_solver("cg", "cuda") == "cg"
    base = Darcy().storage_config()
    # the keys of the stored data's identity are those from before the solver knobs existed (hash unchanged)
    assert set(base) == {"pde", "store_resolution", "solver_resolution", "alpha", "tau", "a_high", "a_low",
                         "forcing", "solver", "face_average", "cg_tol"}
    knobs = Darcy(direct_workers=2, cg_check_every=3, mg_precision="float64")
    assert knobs.storage_config() == base and knobs.config() != Darcy().config()


def test_problem_generates_fno_style_pairs() -> None:
    p = make_problem("darcy", solver_resolution=49, resolution=13)
    assert p.stride == 4 and p.field_shapes() == {"a": (13, 13), "u": (13, 13)}
    np.testing.assert_allclose(p.coordinates()["x"], np.linspace(0, 1, 13))
    out = p.generate(seed=1, split="val", indices=[0, 1, 2])
    a, u = out["a"], out["u"]
    assert a.shape == u.shape == (3, 13, 13) and a.dtype == u.dtype == np.float32
    assert set(np.unique(a).tolist()) <= {3.0, 12.0}
    assert np.abs(u[:, 0]).max() == 0 and np.abs(u[:, :, -1]).max() == 0
    assert (u[:, 1:-1, 1:-1] > 0).all() and u.max() < 0.05
    alone = p.generate(seed=1, split="val", indices=[1])
    np.testing.assert_allclose(alone["u"][0], u[1], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(alone["a"][0], a[1])
    cg = make_problem("darcy", solver_resolution=49, resolution=13, solver="cg").generate(1, "val", [0, 1, 2])
    np.testing.assert_allclose(cg["u"], u, rtol=1e-5, atol=1e-8)


def _fraction_variance(n: int, alpha: float, tau: float, factor: float = PI**2, keep_mean: bool = False) -> float:
    """Closed-form variance of the fraction of nodes with g >= 0 for the cosine-series GRF on n x n nodes, from
    its covariance C(x, y) = sum_k lambda_k phi_k(x) phi_k(y) (phi_k = c_k1 c_k2 cos(pi k1 x1) cos(pi k2 x2),
    lambda_k = (factor |k|^2 + tau^2)^(-alpha)) and Sheppard's formula
    P(g_x >= 0, g_y >= 0) = 1/4 + arcsin(rho_xy) / (2 pi)."""
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    phi = math.sqrt(2) * torch.cos(PI * k[:, None] * x[None, :])
    phi[0] = 1.0
    lam = (factor * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha)
    if not keep_mean:
        lam[0, 0] = 0.0
    cov = torch.einsum("ab,ai,bj,ak,bl->ijkl", lam, phi, phi, phi, phi).reshape(n * n, n * n)
    d = cov.diagonal().sqrt()
    rho = (cov / d[:, None] / d[None, :]).clamp(-1.0, 1.0)
    return float(torch.asin(rho).sum()) / (2 * PI) / n**4


@pytest.mark.parametrize("tau", [3.0, 5.0])  # darcy (FNO) and darcy_rough (MgNO)
def test_coefficient_follows_the_reference_grf(tau: float) -> None:
    """MATLAB GRF(alpha, tau, s): cosine (Neumann) eigenvalues pi^2 |k|^2 and the mean mode removed. Thresholded
    at 0, each node is a_high with probability 1/2 and the fraction of a_high nodes has the spread the covariance
    implies; keeping the mean mode or using the torus eigenvalues 4 pi^2 |k|^2 fails."""
    n, m = 17, 4000
    p = Darcy(solver_resolution=n, resolution=n, tau=tau)
    g = p.grf().sample(sample_generators(0, "train", range(m)))
    w = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
    w[0] = w[-1] = 0.5 / (n - 1)
    mean_coefficient = torch.einsum("bij,i,j->b", g, w, w)  # trapezoidal projection on the constant
    assert mean_coefficient.abs().max() < 1e-14 and g.abs().max() > 0.1
    frac = (p.coefficient(g) == p.a_high).to(torch.float64).mean((-2, -1))
    expected = _fraction_variance(n, p.alpha, tau)
    assert abs(float(frac.mean()) - 0.5) < 5 * math.sqrt(expected / m)
    var, se = float(frac.var()), expected * math.sqrt(2.0 / (m - 1))
    assert abs(var - expected) < 5 * se, (var, expected, se)
    for wrong in (_fraction_variance(n, p.alpha, tau, keep_mean=True), _fraction_variance(n, p.alpha, tau, 4 * PI**2)):
        assert abs(var - wrong) > 7 * se, (var, wrong, se)


def test_default_is_fno_setting_and_allowed_subsamplings() -> None:
    p = Darcy()
    assert (p.resolution, p.solver_resolution, p.a_high, p.a_low, p.alpha, p.tau) == (85, 421, 12.0, 3.0, 2.0, 3.0)
    assert p.face_average == "arithmetic" and p.stride == 5
    assert p.store_resolution == 421 and p.read_stride == 5 and "resolution" not in p.storage_config()
    for res, stride in ((421, 1), (211, 2), (141, 3), (106, 4), (85, 5)):
        assert Darcy(resolution=res).stride == stride
    stored = Darcy(store_resolution=211, resolution=106)
    assert (stored.stride, stored.read_stride) == (4, 2)


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(resolution=100), r"resolution=100 is not allowed with solver_resolution=421.*\[2, 3, 4, 5, 6, 7, 8"),
        (dict(resolution=64, solver_resolution=128), "resolution=64"),
        (dict(resolution=500), "resolution=500 is not allowed; use at most solver_resolution=421"),
        (dict(store_resolution=200), r"store_resolution=200 is not allowed with solver_resolution=421.*\[2, 3, 4"),
        (dict(store_resolution=211, resolution=85), r"resolution=85 is not allowed with store_resolution=211.*\[2, 3"),
        (dict(resolution=0), "resolution=0"),
        (dict(solver_resolution=-5), "solver_resolution=-5"),
        (dict(solver="gmres"), "solver='gmres'"),
        (dict(face_average="geometric"), "face_average='geometric'"),
        (dict(a_low=0), "a_low=0"),
        (dict(direct_workers=0), "direct_workers=0"),
        (dict(direct_workers=1.5), "direct_workers=1.5"),
        (dict(cg_check_every=0), "cg_check_every=0"),
        (dict(mg_precision="float16"), "mg_precision='float16'"),
        (dict(permeability=2), "unknown darcy parameter"),
    ],
)
def test_invalid_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        Darcy(**params)
    assert "\n" not in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cg_on_cuda_matches_cpu_direct() -> None:
    a = _random_coefficients(65, 4)
    direct = solve_darcy(a, 1.0, "direct")
    auto = solve_darcy(a.cuda(), 1.0, "auto")  # auto = mgcg (float32 V-cycle) on CUDA
    assert auto.is_cuda and auto.dtype == torch.float64
    assert float((auto.cpu() - direct).abs().max() / direct.abs().max()) < 1e-8
    for solve, kwargs in ((solve_mgcg, {"precision": "float64"}), (solve_mgcg, {"precision": "float32"}),
                          (solve_cg, {})):
        info: dict = {}
        u = solve(a.cuda(), 1.0, info=info, **kwargs)
        assert u.is_cuda and info["iterations"].is_cuda
        assert float((u.cpu() - direct).abs().max() / direct.abs().max()) < 1e-8, (solve, kwargs)
    mg_info: dict = {}
    solve_mgcg(a.cuda(), 1.0, info=mg_info)
    cpu_info: dict = {}
    solve_mgcg(a, 1.0, info=cpu_info)
    assert (mg_info["iterations"].cpu() - cpu_info["iterations"]).abs().max() <= 1  # same method on both devices
