"""The 2-D incompressible Navier-Stokes equations in vorticity form on the unit torus, defined once:

    w_t + u . grad w = nu Laplacian w + f,   w = -Laplacian psi,   u = (psi_y, -psi_x),
    f(x, y) = A (sin 2 pi (x + y) + cos 2 pi (x + y))   (FNO: A = 0.1),

and their Fourier pseudo-spectral operators on an ``n x n`` grid (``x_i = i / n``, arrays indexed ``[i_x, i_y]``,
real FFT along ``y``): wavenumbers, ``-Laplacian`` and its inverse (the streamfunction), velocity and gradient
from the vorticity spectrum, and the advection term ``u . grad w`` formed in physical space and dealiased by the
2/3 rule (``|k_x|, |k_y| < n / 3``).

Used by the data solver (:mod:`datasets.pdes.navier_stokes`) and by everything that must agree with it exactly:
the residual of predicted trajectories (:mod:`operators.physics.navier_stokes_residual`) and the Spectral-Refiner
task (:mod:`operators.tasks.spectral_refiner`).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch


class SpectralGrid:
    """Wavenumbers and operators of the real 2-D FFT on an ``n x n`` periodic grid.

    Every table is computed in float64 and then cast to ``dtype`` (float32 tables are the correctly rounded
    float64 ones): ``kx`` ``(n, 1)``-broadcast wavenumbers along ``x`` and ``ky`` along ``y`` (both
    ``(n, n // 2 + 1)``), ``k2 = 4 pi^2 |k|^2`` (the eigenvalues of ``-Laplacian``), ``inv_k2`` (its inverse,
    0 for the mean mode), ``ikx`` / ``iky`` (spectral ``d/dx`` / ``d/dy``) and ``dealias`` (the 2/3-rule mask).
    """

    def __init__(self, n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.n = n
        kx = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)
        ky = torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)
        kx, ky = torch.meshgrid(kx, ky, indexing="ij")
        self.kx = kx.to(dtype)
        self.ky = ky.to(dtype)
        self.k2 = (4 * math.pi**2 * (kx**2 + ky**2)).to(dtype)  # eigenvalues of -Laplacian
        inv = torch.where(self.k2 > 0, 1.0 / self.k2.clamp_min(1e-30), torch.zeros_like(self.k2))
        self.inv_k2 = inv
        self.dealias = ((kx.abs() < n / 3.0) & (ky.abs() < n / 3.0)).to(dtype)
        self.ikx = 2j * math.pi * self.kx
        self.iky = 2j * math.pi * self.ky

    def physical(self, field_hat: torch.Tensor) -> torch.Tensor:
        """The ``n x n`` field of the spectrum ``field_hat`` (``irfft2``)."""
        return torch.fft.irfft2(field_hat, s=(self.n, self.n))

    def streamfunction_hat(self, w_hat: torch.Tensor) -> torch.Tensor:
        """The spectrum of ``psi`` solving ``-Laplacian psi = w`` (zero mean)."""
        return w_hat * self.inv_k2

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity ``(u, v) = (psi_y, -psi_x)`` in physical space from the vorticity spectrum."""
        psi_hat = self.streamfunction_hat(w_hat)
        return self.physical(self.iky * psi_hat), self.physical(-self.ikx * psi_hat)

    def gradient(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_x, w_y)`` in physical space from the spectrum of ``w``."""
        return self.physical(self.ikx * w_hat), self.physical(self.iky * w_hat)

    def advection_hat(self, w_hat: torch.Tensor, dealias: bool = True) -> torch.Tensor:
        """The spectrum of ``u . grad w`` (the product formed in physical space), 2/3-rule dealiased unless
        ``dealias`` is false."""
        u, v = self.velocity(w_hat)
        wx, wy = self.gradient(w_hat)
        adv_hat = torch.fft.rfft2(u * wx + v * wy)
        return adv_hat * self.dealias if dealias else adv_hat


def forcing(n: int, amplitude: float = 0.1, dtype: torch.dtype = torch.float64,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """The FNO forcing ``A (sin 2 pi (x + y) + cos 2 pi (x + y))`` on the ``n x n`` grid."""
    x = torch.arange(n, dtype=torch.float64, device=device) / n
    s = 2 * math.pi * (x[:, None] + x[None, :])
    return (amplitude * (torch.sin(s) + torch.cos(s))).to(dtype)


def forcing_function(amplitude: float) -> Callable[[int], torch.Tensor] | None:
    """``n -> forcing(n, amplitude)`` (float64, on CPU; picklable), or ``None`` for ``amplitude == 0``."""
    amplitude = float(amplitude)
    return None if amplitude == 0 else functools.partial(forcing, amplitude=amplitude)


__all__ = ["SpectralGrid", "forcing", "forcing_function"]
