"""Darcy flow: second-order convergence to a manufactured solution, agreement of the batched CG and the sparse
direct solver, the assembled matrix vs the matrix-free operator, and the data generator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datasets.pdes import make_problem
from datasets.pdes.darcy import Darcy, DarcyOperator, assemble_matrix, solve_darcy
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
@pytest.mark.parametrize("solver", ["direct", "cg"])
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
    from datasets.pdes.darcy import solve_cg

    with pytest.raises(RuntimeError, match="did not converge"):
        solve_cg(a, f, max_iter=3)


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
    auto_cuda = solve_darcy(a.cuda(), 1.0, "auto")  # auto = cg on CUDA
    assert auto_cuda.is_cuda
    assert float((auto_cuda.cpu() - direct).abs().max() / direct.abs().max()) < 1e-8
