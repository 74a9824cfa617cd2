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
    0 for the mean mode), ``ikx`` / ``iky`` (spectral ``d/dx`` / ``d/dy``) and ``dealias`` (the 2/3-rule mask);
    on first use ``velocity_gradient_table`` (the 4 multipliers giving ``u, v, w_x, w_y`` in one batched
    ``irfft2``) and ``k2_float64``.
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
        self.dtype = dtype
        self.complex_dtype = self.ikx.dtype

    @functools.cached_property
    def k2_float64(self) -> torch.Tensor:
        """``k2`` ``(n, n // 2 + 1)`` in float64 (whatever ``dtype``), for tables that combine it with other
        constants before the one rounding to ``dtype`` (the time-stepping coefficients)."""
        kx, ky = self.kx.to(torch.float64), self.ky.to(torch.float64)  # integers: exact in float32 too
        return 4 * math.pi**2 * (kx**2 + ky**2)

    @functools.cached_property
    def velocity_gradient_table(self) -> torch.Tensor:
        """The spectral multipliers ``(4, n, n // 2 + 1)`` (complex ``dtype``, computed in float64) that take the
        vorticity spectrum to those of ``(u, v, w_x, w_y)``: ``(i k_y / K, -i k_x / K, i k_x, i k_y)`` with
        ``K = 4 pi^2 |k|^2`` (``1 / K = 0`` at ``k = 0``), ``2 pi`` folded into ``k``. One ``irfft2`` of
        ``w_hat[..., None, :, :] * table`` gives all four fields at once."""
        kx, ky = self.kx.to(torch.float64), self.ky.to(torch.float64)
        k2 = self.k2_float64
        inv_k2 = torch.where(k2 > 0, 1.0 / k2.clamp_min(1e-30), torch.zeros_like(k2))
        ikx, iky = 2j * math.pi * kx, 2j * math.pi * ky
        return torch.stack([iky * inv_k2, -ikx * inv_k2, ikx, iky]).to(self.complex_dtype)

    def physical(self, field_hat: torch.Tensor) -> torch.Tensor:
        """The ``n x n`` field of the spectrum ``field_hat`` (``irfft2``)."""
        return torch.fft.irfft2(field_hat, s=(self.n, self.n))

    def streamfunction_hat(self, w_hat: torch.Tensor) -> torch.Tensor:
        """The spectrum of ``psi`` solving ``-Laplacian psi = w`` (zero mean)."""
        return w_hat * self.inv_k2

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity ``(u, v) = (psi_y, -psi_x)`` in physical space ``(..., n, n)`` from the vorticity spectrum
        ``w_hat`` ``(..., n, n // 2 + 1)`` (one batched ``irfft2``)."""
        uv = self.physical(w_hat.unsqueeze(-3) * self.velocity_gradient_table[:2])
        return uv[..., 0, :, :], uv[..., 1, :, :]

    def gradient(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_x, w_y)`` in physical space ``(..., n, n)`` from the spectrum of ``w`` (one batched ``irfft2``)."""
        grad = self.physical(w_hat.unsqueeze(-3) * self.velocity_gradient_table[2:])
        return grad[..., 0, :, :], grad[..., 1, :, :]

    def advection_hat(self, w_hat: torch.Tensor, dealias: bool = True) -> torch.Tensor:
        """The spectrum ``(..., n, n // 2 + 1)`` of ``u . grad w`` (the product formed in physical space) of the
        vorticity spectrum ``w_hat`` ``(..., n, n // 2 + 1)``, 2/3-rule dealiased unless ``dealias`` is false.

        ``u, v, w_x, w_y`` come from one ``irfft2`` of the stacked spectra (4 inverse transforms in one call) and
        the product goes back with one ``rfft2``. Out of place (differentiable); the data solver uses the
        buffer-reusing :class:`AdvectionWorkspace` for the same arithmetic."""
        fields = self.physical(w_hat.unsqueeze(-3) * self.velocity_gradient_table)  # (..., 4, n, n)
        u, v, wx, wy = fields.unbind(-3)
        adv_hat = torch.fft.rfft2(torch.addcmul(u * wx, v, wy))
        return adv_hat * self.dealias if dealias else adv_hat


class AdvectionWorkspace:
    """Allocation-free :meth:`SpectralGrid.advection_hat` (undealiased) for a fixed batch: the stacked spectra
    ``(4, B, n, n // 2 + 1)``, the physical fields ``(4, B, n, n)`` (``u, v, w_x, w_y``) and the product
    ``(B, n, n)`` are allocated once and reused by every call (a time loop calls it twice per step). Not
    differentiable (``out=`` ops).

    Per call: 1 complex multiply pass (the 4 multiplier tables), the ``irfft2`` of the 4 fields, 2 real passes
    (``u w_x [+ offset]``, ``+= v w_y``), 1 ``rfft2``. On CUDA the 4 inverse transforms are one ``irfft2`` call (one cuFFT
    plan, one launch per FFT pass); on CPU they are split into calls of at most :attr:`CPU_FFT_BYTES` of input
    (whole fields), since a CPU FFT whose data leave the core's cache runs several times slower (measured on a
    1-MiB-L2 core: 32 float64 64^2 fields in one call 2.5x slower than 4 calls of 8).
    """

    #: largest input of one CPU ``irfft2`` call (bytes) before the 4 fields are transformed in separate calls
    CPU_FFT_BYTES = 576 * 2**10

    def __init__(self, grid: SpectralGrid, batch: int, device: torch.device | str | None = None) -> None:
        n, m = grid.n, grid.n // 2 + 1
        device = torch.device(grid.kx.device if device is None else device)
        self.grid = grid
        self.table = grid.velocity_gradient_table.unsqueeze(1)  # (4, 1, n, m)
        self.spectra = torch.empty(4, batch, n, m, dtype=grid.complex_dtype, device=device)
        self.fields = torch.empty(4, batch, n, n, dtype=grid.dtype, device=device)
        self.product = torch.empty(batch, n, n, dtype=grid.dtype, device=device)
        per_field = self.spectra[0].numel() * self.spectra.element_size()
        group = 4 if device.type == "cuda" else max(1, min(4, self.CPU_FFT_BYTES // per_field))
        #: the fields of each ``irfft2`` call (contiguous slices of the stack)
        self.groups = [slice(i, min(i + group, 4)) for i in range(0, 4, group)]

    def advection_hat(self, w_hat: torch.Tensor, out: torch.Tensor, offset: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """Write the (undealiased) spectrum of ``u . grad w`` (plus ``offset``, a physical field ``(n, n)`` or
        ``(B, n, n)`` added in the same pass, e.g. minus a forcing) of ``w_hat`` ``(B, n, n // 2 + 1)`` into
        ``out`` (same shape and dtype) and return it."""
        n = self.grid.n
        for g in self.groups:
            torch.mul(w_hat, self.table[g], out=self.spectra[g])
            torch.fft.irfft2(self.spectra[g], s=(n, n), out=self.fields[g])
        u, v, wx, wy = self.fields
        if offset is None:
            torch.mul(u, wx, out=self.product)
        else:
            torch.addcmul(offset, u, wx, out=self.product)
        self.product.addcmul_(v, wy)
        return torch.fft.rfft2(self.product, out=out)


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


__all__ = ["AdvectionWorkspace", "SpectralGrid", "forcing", "forcing_function"]
