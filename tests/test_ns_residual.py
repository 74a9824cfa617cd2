"""Navier-Stokes vorticity residual R = w_t + u.grad w - nu Lap w - f, measured in H^-1."""
from __future__ import annotations

import math

import pytest
import torch

from datasets.pdes.navier_stokes import forcing, solve_navier_stokes
from operators.physics import NavierStokesResidual
from operators.physics.navier_stokes_residual import time_derivative


def _grid(n: int):
    x = torch.arange(n, dtype=torch.float64) / n
    return torch.meshgrid(x, x, indexing="ij")


def _taylor_green(n: int, nu: float, times: list[float], k: int = 1) -> torch.Tensor:
    # psi = sin(2 pi k x) sin(2 pi k y) e^{-lambda t}: w = -Lap psi is proportional to psi, u.grad w = 0,
    # w_t = nu Lap w  =>  lambda = 8 pi^2 k^2 nu
    gx, gy = _grid(n)
    lam = 8 * math.pi**2 * k**2 * nu
    base = 8 * math.pi**2 * k**2 * torch.sin(2 * math.pi * k * gx) * torch.sin(2 * math.pi * k * gy)
    return torch.stack([base * math.exp(-lam * t) for t in times])[None]


@pytest.mark.parametrize("order,tol", [(2, 1e-3), (4, 1e-7)])
def test_taylor_green_residual_vanishes(order: int, tol: float) -> None:
    dt = 0.01
    w = _taylor_green(32, 1e-2, [i * dt for i in range(12)])
    residual = NavierStokesResidual(nu=1e-2, dt=dt, time_order=order)
    scale = float((time_derivative(w, dt, order)[0].pow(2).mean()).sqrt())
    r = residual.h_minus_1(w)
    assert float(r) < tol * scale
    # a perturbed trajectory (wrong decay rate, an extra mode) has an O(1) residual
    gx, gy = _grid(32)
    wrong = _taylor_green(32, 2e-2, [i * dt for i in range(12)])
    bumped = w + 0.5 * torch.cos(2 * math.pi * (gx + 2 * gy))
    assert float(residual.h_minus_1(wrong)) > 1e3 * float(r)
    assert float(residual.h_minus_1(bumped)) > 1e3 * float(r)


def test_forced_solver_trajectory_has_small_residual_advection_sign() -> None:
    n, dt, nu = 32, 0.01, 1e-3
    gx, gy = _grid(n)
    w0 = (torch.sin(2 * math.pi * gx) * torch.cos(4 * math.pi * gy) + 0.7 * torch.cos(2 * math.pi * (gx + 2 * gy))
          + 0.5 * torch.sin(2 * math.pi * (3 * gx - gy)))[None]
    w = solve_navier_stokes(w0, nu, [i * dt for i in range(11)], 1e-3, forcing(n, 0.1))
    residual = NavierStokesResidual(nu=nu, forcing=lambda m: forcing(m, 0.1), dt=dt, time_order=4)
    good = float(residual.h_minus_1(w))
    assert good < 1e-6
    assert float(residual.h_minus_1(w.flip(1))) > 1e3 * good  # time-reversed: advection has the wrong sign
    without_forcing = NavierStokesResidual(nu=nu, dt=dt, time_order=4)
    assert float(without_forcing.h_minus_1(w)) > 1e3 * good


def test_time_derivative_orders_and_shapes() -> None:
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    cubic = (t**3)[None, :, None, None].expand(2, 9, 4, 4)
    d4 = time_derivative(cubic, float(t[1] - t[0]), order=4)
    assert torch.allclose(d4, (3 * t**2)[None, :, None, None].expand_as(d4), atol=1e-10)
    quad = (t**2)[None, :, None, None]
    assert torch.allclose(time_derivative(quad, float(t[1]), 2), (2 * t)[None, :, None, None], atol=1e-10)
    with pytest.raises(ValueError):
        time_derivative(quad[:, :1], 0.1)
    with pytest.raises(ValueError):
        NavierStokesResidual(nu=1e-3)(torch.zeros(2, 3, 8, 6))


def test_residual_is_differentiable() -> None:
    w = _taylor_green(16, 1e-2, [0.0, 0.1, 0.2, 0.3]).float().requires_grad_(True)
    NavierStokesResidual(nu=1e-2, dt=0.1).h_minus_1(w + 0.1).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_residual_under_bf16_autocast_equals_float32() -> None:
    """The 4th-order time derivative's stencil products would run in bf16 under autocast."""
    order = 4
    torch.manual_seed(0)
    w = torch.randn(2, 8, 16, 16)
    residual = NavierStokesResidual(nu=1e-3, forcing=lambda m: forcing(m, 0.1).float(), dt=0.1, time_order=order)
    r, h, d = residual(w), residual.h_minus_1(w), time_derivative(w, 0.1, order)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r_mixed, h_mixed, d_mixed = residual(w), residual.h_minus_1(w), time_derivative(w, 0.1, order)
        r_bf16 = residual(w.bfloat16())  # a bf16 prediction: cast to float32 first
    assert r_mixed.dtype == h_mixed.dtype == d_mixed.dtype == r_bf16.dtype == torch.float32
    torch.testing.assert_close(r_mixed, r, rtol=1e-6, atol=1e-6 * float(r.abs().max()))
    torch.testing.assert_close(h_mixed, h, rtol=1e-6, atol=0)
    torch.testing.assert_close(d_mixed, d, rtol=1e-6, atol=1e-6 * float(d.abs().max()))
    torch.testing.assert_close(r_bf16, residual(w.bfloat16().float()), rtol=1e-6, atol=1e-6 * float(r.abs().max()))
