"""Gaussian random fields with covariance ``sigma^2 (-Laplacian + tau^2 I)^(-alpha)``.

A field is sampled by its Karhunen-Loeve expansion ``u = sum_k sqrt(lambda_k) xi_k phi_k`` with iid standard
normal ``xi_k``, truncated to the modes the grid resolves, where ``phi_k`` are the L2-orthonormal
eigenfunctions of ``-Laplacian`` on the domain and ``lambda_k = sigma^2 (mu_k + tau^2)^(-alpha)`` with ``mu_k``
the Laplacian eigenvalues:

``periodic``   unit torus ``[0, 1)^d``, grid ``x_j = j / n`` (endpoint excluded), ``phi_k = exp(2 pi i k.x)``,
               ``mu_k = 4 pi^2 |k|^2``, ``k`` in the FFT frequencies of the grid (Nyquist included).
``neumann``    unit cube ``[0, 1]^d`` with boundary, grid ``x_j = j / (n - 1)`` (both ends included), cosine
               series ``phi_k = prod_i c_{k_i} cos(pi k_i x_i)`` with ``c_0 = 1``, ``c_k = sqrt 2``,
               ``mu_k = pi^2 |k|^2``, ``0 <= k_i <= n - 1``.
``dirichlet``  same grid, sine series ``phi_k = prod_i sqrt 2 sin(pi k_i x_i)``, ``mu_k = pi^2 |k|^2``,
               ``1 <= k_i <= n - 2`` (the modes that do not vanish on every grid point).

With ``zero_mean=True`` the constant mode (``k = 0``; periodic and Neumann only) is dropped, as in the FNO
Darcy generator.

Randomness: each sample is built from its own white-noise array drawn by a CPU :class:`torch.Generator`
(``datasets.seeding``), so sample ``i`` is bit-identical whatever the batch it is generated in or the device
the transform runs on (up to floating-point rounding of the transform itself).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

BOUNDARIES = ("periodic", "neumann", "dirichlet")


class GaussianRandomField:
    """Sampler of a Gaussian random field on a uniform grid.

    Args:
        dim: spatial dimension, 1 or 2.
        size: grid points per dimension (periodic: ``n`` points on ``[0, 1)``; neumann/dirichlet: ``n`` points
            on ``[0, 1]`` including both boundary points).
        alpha: exponent of the covariance operator (``> dim / 2`` for a field with finite pointwise variance).
        tau: shift, ``tau^2`` is added to ``-Laplacian``.
        sigma: amplitude; the covariance is ``sigma^2 (-Laplacian + tau^2)^(-alpha)``.
        boundary: ``periodic`` (FFT), ``neumann`` (cosine series) or ``dirichlet`` (sine series).
        zero_mean: drop the constant mode (not meaningful for ``dirichlet``, which has none).
        device: where the spectral transform runs; noise is always drawn on CPU.
        dtype: floating dtype of the transform and of the returned samples.
    """

    def __init__(
        self,
        dim: int,
        size: int,
        alpha: float,
        tau: float,
        sigma: float = 1.0,
        boundary: str = "periodic",
        zero_mean: bool = False,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if dim not in (1, 2):
            raise ValueError(f"dim={dim!r} is not allowed; use 1 or 2")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} is not allowed; use one of {', '.join(BOUNDARIES)}")
        min_size = 3 if boundary == "dirichlet" else 2
        if not isinstance(size, int) or isinstance(size, bool) or size < min_size:
            raise ValueError(f"size={size!r} is not allowed; use an integer >= {min_size} for boundary={boundary!r}")
        if not alpha > 0:
            raise ValueError(f"alpha={alpha!r} is not allowed; use a positive number")
        if not tau >= 0:
            raise ValueError(f"tau={tau!r} is not allowed; use a number >= 0")
        if not sigma > 0:
            raise ValueError(f"sigma={sigma!r} is not allowed; use a positive number")
        if tau == 0 and not zero_mean and boundary != "dirichlet":
            raise ValueError("tau=0 is only allowed with zero_mean=True or boundary='dirichlet' (the constant "
                             "mode would have infinite variance)")
        self.dim = dim
        self.size = size
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.sigma = float(sigma)
        self.boundary = boundary
        self.zero_mean = bool(zero_mean)
        self.device = torch.device(device)
        self.dtype = dtype
        self.shape = (size,) * dim
        self._sqrt_eig = self.eigenvalues().sqrt().to(self.device)
        if boundary != "periodic":
            self._basis = self.basis().to(self.device)

    # ------------------------------------------------------------------------------------------ spectrum
    def wavenumbers(self) -> torch.Tensor:
        """Integer wavenumbers ``k`` along one axis, in the layout of :meth:`eigenvalues`."""
        n = self.size
        if self.boundary == "periodic":
            return torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
        if self.boundary == "neumann":
            return torch.arange(n, dtype=torch.float64)
        return torch.arange(1, n - 1, dtype=torch.float64)

    def laplacian_eigenvalues(self) -> torch.Tensor:
        """``mu_k`` of ``-Laplacian`` for every mode, shape of the coefficient array (``rfft`` half-spectrum for
        periodic fields: the last axis holds ``k >= 0`` only)."""
        n = self.size
        if self.boundary == "periodic":
            axes = [torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)] * (self.dim - 1)
            axes.append(torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64))
            factor = 4 * math.pi**2
        else:
            axes = [self.wavenumbers()] * self.dim
            factor = math.pi**2
        grids = torch.meshgrid(*axes, indexing="ij")
        return factor * sum(g**2 for g in grids)

    def eigenvalues(self) -> torch.Tensor:
        """Covariance eigenvalues ``lambda_k = sigma^2 (mu_k + tau^2)^(-alpha)`` (0 for a dropped mean mode)."""
        mu = self.laplacian_eigenvalues()
        shifted = mu + self.tau**2
        lam = torch.where(shifted > 0, self.sigma**2 * shifted.clamp_min(1e-300) ** (-self.alpha), 0.0)
        if self.zero_mean and self.boundary != "dirichlet":
            lam.view(-1)[0] = 0.0
        return lam

    def basis(self) -> torch.Tensor:
        """For neumann/dirichlet: the (n_points, n_modes) matrix of orthonormal 1-D eigenfunctions on the grid."""
        n = self.size
        x = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        k = self.wavenumbers()
        if self.boundary == "neumann":
            b = math.sqrt(2.0) * torch.cos(math.pi * x[:, None] * k[None, :])
            b[:, 0] = 1.0
        elif self.boundary == "dirichlet":
            b = math.sqrt(2.0) * torch.sin(math.pi * x[:, None] * k[None, :])
        else:
            raise ValueError("basis() is only defined for neumann/dirichlet fields")
        return b

    def noise_shape(self) -> tuple[int, ...]:
        """Shape of the white noise one sample consumes."""
        if self.boundary == "periodic":
            return self.shape
        return (len(self.wavenumbers()),) * self.dim

    # ------------------------------------------------------------------------------------------ sampling
    def draw_noise(self, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Standard normal noise, one CPU generator per sample -> (B, *noise_shape) float64 on CPU."""
        shape = self.noise_shape()
        return torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in generators])

    def transform(self, noise: torch.Tensor) -> torch.Tensor:
        """Map white noise (B, *noise_shape) to field samples (B, *shape) on ``self.device``."""
        xi = noise.to(device=self.device, dtype=torch.float64)
        if self.boundary == "periodic":
            # rfft of real white noise has E|W_k|^2 = N; dividing by sqrt(N) gives unit-variance coefficients
            # with the Hermitian symmetry of a real field, i.e. the KL coefficients of the orthonormal basis.
            n_total = float(self.size**self.dim)
            dims = tuple(range(-self.dim, 0))
            coef = torch.fft.rfftn(xi, dim=dims) * (self._sqrt_eig / math.sqrt(n_total))
            u = torch.fft.irfftn(coef, s=self.shape, dim=dims) * n_total
        else:
            coef = xi * self._sqrt_eig
            b = self._basis
            if self.dim == 1:
                u = coef @ b.T
            else:
                u = b @ coef @ b.T
        return u.to(self.dtype)

    def sample(self, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """One sample per generator: (B, *shape) on ``self.device``."""
        return self.transform(self.draw_noise(generators))

    def grid(self) -> torch.Tensor:
        """1-D grid coordinates of the field's points."""
        if self.boundary == "periodic":
            return torch.arange(self.size, dtype=torch.float64) / self.size
        return torch.linspace(0.0, 1.0, self.size, dtype=torch.float64)
