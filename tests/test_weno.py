"""WENO5 fluxes and central stencils (datasets.pdes.weno): orders of accuracy, conservation, upwinding; the
batched Dormand-Prince 4(5) integrator (datasets.pdes.adaptive_runge_kutta): 5th order, error tracking the
tolerance, per-sample step control, the blow-up guard."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from datasets.pdes.adaptive_runge_kutta import dopri5_adaptive, dopri5_fixed
from datasets.pdes.weno import (
    FLUXES,
    burgers_flux,
    burgers_flux_derivative,
    periodic_shifts,
    second_derivative,
    third_derivative,
    weno5_left,
)

L = 16.0
K1, K2 = 2 * math.pi / L, 4 * math.pi / L


def smooth(x: torch.Tensor, shift: float) -> tuple[torch.Tensor, ...]:
    """u = shift + 0.7 sin(k1 x) + 0.4 cos(k2 x + 0.3) and its first three derivatives."""
    u = shift + 0.7 * torch.sin(K1 * x) + 0.4 * torch.cos(K2 * x + 0.3)
    ux = 0.7 * K1 * torch.cos(K1 * x) - 0.4 * K2 * torch.sin(K2 * x + 0.3)
    uxx = -0.7 * K1**2 * torch.sin(K1 * x) - 0.4 * K2**2 * torch.cos(K2 * x + 0.3)
    uxxx = -0.7 * K1**3 * torch.cos(K1 * x) + 0.4 * K2**3 * torch.sin(K2 * x + 0.3)
    return u, ux, uxx, uxxx


def _grid(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64) * (L / n)


def _orders(errors: list[float]) -> list[float]:
    return [math.log2(a / b) for a, b in itertools.pairwise(errors)]


@pytest.mark.parametrize("flux", FLUXES)
@pytest.mark.parametrize("shift", [0.0, 1.5])  # u changes sign (sonic points) / u > 0 everywhere (pure upwind)
def test_weno5_flux_derivative_is_fifth_order(flux: str, shift: float) -> None:
    alpha = 1.3
    l1, linf = [], []
    for n in (100, 200, 400):
        x = _grid(n)
        u, ux, _, _ = smooth(x, shift)
        err = burgers_flux_derivative(u[None], alpha, L / n, flux)[0] - alpha * u * ux
        l1.append(float(err.abs().mean()))
        linf.append(float(err.abs().max()))
    # discrete L1 norm: 5th order (the Jiang-Shu weights lose about one order in the max norm at the critical
    # points of f, Henrick et al. 2005: measured ~4)
    assert min(_orders(l1)) > 4.5, (flux, shift, _orders(l1), l1)
    assert min(_orders(linf)) > 3.5, (flux, shift, _orders(linf), linf)
    assert l1[-1] < 1e-7


def test_weno5_reconstruction_exact_for_smooth_quadratics_and_linear_weights() -> None:
    # on a smooth function the weights approach (1, 6, 3) / 10, whose combination is the 5th-order upwind value
    h = 1e-2
    xs = [(-2 + k) * h for k in range(5)]
    v = [torch.tensor([math.exp(x)], dtype=torch.float64) for x in xs]
    got = float(weno5_left(*v, eps=1e-6))
    assert abs(got - math.exp(h / 2) * (1 - h * h / 24)) < 1e-9  # h(x_{1/2}) for cell averages e^x: e^x (1 - h^2/24 + ...)
    # constants are reproduced exactly
    c = [torch.full((3,), 2.5, dtype=torch.float64)] * 5
    assert torch.equal(weno5_left(*c), torch.full((3,), 2.5, dtype=torch.float64))


def test_central_stencils_are_fourth_order_and_conservative() -> None:
    e2, e3 = [], []
    for n in (50, 100, 200):
        x = _grid(n)
        u, _, uxx, uxxx = smooth(x, 0.2)
        e2.append(float((second_derivative(u[None], L / n)[0] - uxx).abs().max()))
        e3.append(float((third_derivative(u[None], L / n)[0] - uxxx).abs().max()))
    assert min(_orders(e2)) > 3.9 and min(_orders(e3)) > 3.9, (_orders(e2), _orders(e3))
    u = torch.randn(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for op in (second_derivative, third_derivative):
        assert op(u, 0.25).sum(-1).abs().max() < 1e-11
    for flux in FLUXES:
        assert burgers_flux_derivative(u, 2.0, 0.25, flux).sum(-1).abs().max() < 1e-11


def test_periodic_shifts_and_upwinding() -> None:
    u = torch.arange(6.0)[None]
    s = periodic_shifts(u, range(-2, 4))
    assert s[-2].tolist() == [[4, 5, 0, 1, 2, 3]] and s[3].tolist() == [[3, 4, 5, 0, 1, 2]]
    # u > 0: the flux at i+1/2 depends only on u_{i-2..i+2} (upwind), u < 0: only on u_{i-1..i+3}
    base = 1 + 0.1 * torch.rand(1, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for sign, far in ((1.0, 3), (-1.0, -2)):
        v = sign * base
        w = v.clone()
        w[0, (10 + far) % 32] *= 1.05
        f1, f2 = burgers_flux(v, 1.0, "godunov"), burgers_flux(w, 1.0, "godunov")
        assert f1[0, 10] == f2[0, 10], sign
    # alpha = 0: no flux; a per-sample alpha is that row's alpha
    assert torch.equal(burgers_flux(base, 0.0), torch.zeros_like(base))
    two = torch.cat([base, -base])
    for flux in FLUXES:
        f = burgers_flux(two, torch.tensor([1.0, 3.0], dtype=torch.float64), flux)
        torch.testing.assert_close(f[0], burgers_flux(base, 1.0, flux)[0], rtol=1e-15, atol=0)
        torch.testing.assert_close(f[1], burgers_flux(-base, 3.0, flux)[0], rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------------------------- time integrator
def _linear_system():
    """Two independent damped oscillators y' = A_b y with exact solutions exp(A_b t) y0."""
    mats = torch.tensor([[[-0.1, 2.0], [-2.0, -0.1]], [[-1.0, 0.5], [0.0, -3.0]]], dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0], [0.5, 1.0]], dtype=torch.float64)

    def f(t, y, active):
        return torch.einsum("bij,bj->bi", mats[active], y)

    def exact(t: float) -> torch.Tensor:
        return torch.einsum("bij,bj->bi", torch.linalg.matrix_exp(mats * t), y0)

    return f, y0, exact


def test_dopri5_fixed_step_is_fifth_order() -> None:
    f, y0, exact = _linear_system()
    errors = [float((dopri5_fixed(f, y0, 0.0, 2.0, n) - exact(2.0)).abs().max()) for n in (10, 20, 40)]
    orders = _orders(errors)
    assert min(orders) > 4.7 and max(orders) < 5.5, (orders, errors)


def test_dopri5_adaptive_error_tracks_tolerance() -> None:
    f, y0, exact = _linear_system()
    times = [0.0, 0.5, 1.0, 2.0, 3.0]
    errors, steps = [], []
    for tol in (1e-4, 1e-6, 1e-8, 1e-10):
        stats: dict = {}
        y = dopri5_adaptive(f, y0, times, atol=tol, rtol=tol, stats=stats)
        assert y.shape == (2, 5, 2)
        err = max(float((y[:, k] - exact(t)).abs().max()) for k, t in enumerate(times))
        errors.append(err)
        steps.append(int(stats["accepted"].sum()))
        assert err < 20 * tol, (tol, err)
        torch.testing.assert_close(y[:, 0], y0, rtol=0, atol=0)
    # 100x smaller tolerance -> ~100^(4/5)..100x smaller error, more steps
    for a, b in itertools.pairwise(errors):
        assert 10 < a / b < 1000, errors
    assert steps == sorted(steps) and steps[-1] > 4 * steps[0]


def test_dopri5_per_sample_control_is_independent_of_the_batch() -> None:
    # an oscillator and a stiff decay (steps at the stability limit, frequent rejections)
    mats = torch.tensor([[[-0.1, 2.0], [-2.0, -0.1]], [[-80.0, 1.0], [0.0, -0.5]]], dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0], [0.5, 1.0]], dtype=torch.float64)

    def f(t, y, active):
        return torch.einsum("bij,bj->bi", mats[active], y) + torch.sin(t)[:, None]

    times = [0.0, 0.7, 1.3, 4.0]
    stats: dict = {}
    both = dopri5_adaptive(f, y0, times, atol=1e-6, rtol=1e-6, stats=stats)
    assert int(stats["accepted"][1]) > int(stats["accepted"][0]) and int(stats["rejected"][1]) >= 3, stats
    for b in range(2):
        def fb(t, y, active, b=b):
            return f(t, y, active + b)
        alone = dopri5_adaptive(fb, y0[b:b + 1], times, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(alone[0], both[b], rtol=0, atol=1e-14)


def test_dopri5_lands_on_output_times_and_repeats() -> None:
    f, y0, exact = _linear_system()
    times = [0.0, 0.0, 0.25, 0.25, 1.0]
    y = dopri5_adaptive(f, y0, times, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(y[:, 1], y0, rtol=0, atol=0)
    torch.testing.assert_close(y[:, 3], y[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(y[:, 4], exact(1.0), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="times="):
        dopri5_adaptive(f, y0, [0.0, 1.0, 0.5])


def test_dopri5_blow_up_raises_one_line() -> None:
    # y' = y^2, y(0) = 1 blows up at t = 1
    def f(t, y, active):
        return y * y

    with pytest.raises(RuntimeError, match="blowing up") as info:
        dopri5_adaptive(f, torch.ones(2, 1, dtype=torch.float64), [0.0, 2.0], name="test")
    assert "\n" not in str(info.value)
