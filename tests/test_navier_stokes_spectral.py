"""The Navier-Stokes spectral operators defined once (datasets/pdes/navier_stokes_spectral.py) against closed forms,
and shared by the solver and the residual of predicted trajectories."""
from __future__ import annotations

import math

import torch

from datasets.pdes.navier_stokes_spectral import SpectralGrid, forcing


def test_velocity_gradient_and_advection_of_a_fourier_mode() -> None:
    n = 32
    grid = SpectralGrid(n)
    x = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    # w = sin(2 pi x) cos(4 pi y): psi = w / (4 pi^2 (1 + 4)), u = psi_y, v = -psi_x
    w = torch.sin(2 * math.pi * X) * torch.cos(4 * math.pi * Y)
    w_hat = torch.fft.rfft2(w)
    psi = w / (4 * math.pi**2 * 5)
    u_exact = -4 * math.pi * torch.sin(2 * math.pi * X) * torch.sin(4 * math.pi * Y) / (4 * math.pi**2 * 5)
    v_exact = -2 * math.pi * torch.cos(2 * math.pi * X) * torch.cos(4 * math.pi * Y) / (4 * math.pi**2 * 5)
    u, v = grid.velocity(w_hat)
    assert torch.allclose(grid.physical(grid.streamfunction_hat(w_hat)), psi, atol=1e-14)
    assert torch.allclose(u, u_exact, atol=1e-13) and torch.allclose(v, v_exact, atol=1e-13)
    wx, wy = grid.gradient(w_hat)
    assert torch.allclose(wx, 2 * math.pi * torch.cos(2 * math.pi * X) * torch.cos(4 * math.pi * Y), atol=1e-12)
    assert torch.allclose(wy, -4 * math.pi * torch.sin(2 * math.pi * X) * torch.sin(4 * math.pi * Y), atol=1e-12)
    # a single mode advects itself to nothing: u . grad w = J(psi, w) = 0 when psi is proportional to w
    assert grid.physical(grid.advection_hat(w_hat)).abs().max() < 1e-12
    assert float(grid.inv_k2[0, 0]) == 0.0  # the mean mode of psi is zero


def test_solver_and_residual_use_the_same_definitions() -> None:
    from datasets.pdes import navier_stokes
    from operators.physics import navier_stokes_residual

    assert navier_stokes.SpectralGrid is SpectralGrid is navier_stokes_residual.SpectralGrid
    f = forcing(16, amplitude=0.1)
    s = 2 * math.pi * (torch.arange(16.0, dtype=torch.float64)[:, None] + torch.arange(16.0)[None, :]) / 16
    assert torch.allclose(f, 0.1 * (torch.sin(s) + torch.cos(s)))
