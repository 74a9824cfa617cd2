"""Gaussian random fields: the empirical spectrum of many samples matches the covariance eigenvalues.

The spectral coefficients are recovered in the tests with explicitly written transforms (FFT, discrete cosine
and sine sums), independent of the sampler's own basis, and compared mode by mode with
``sigma^2 (mu_k + tau^2)^(-alpha)`` within a few standard errors of the estimate -- a wrong exponent, shift,
amplitude or Laplacian scaling fails by a wide margin.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datasets.grf import GaussianRandomField
from datasets.seeding import sample_generator, sample_generators, sample_seed




def _samples(grf: GaussianRandomField, m: int, split: str = "train") -> torch.Tensor:
    return grf.sample(sample_generators(0, split, range(m)))


def _check_spectrum(power: torch.Tensor, expected: torch.Tensor, n_dof: torch.Tensor, m: int) -> None:
    """``power``: empirical mean of |coefficient|^2 per mode; ``n_dof``: real degrees of freedom per mode
    (1 for a real coefficient, 2 for a complex one); the relative standard error is ``sqrt(2 / (n_dof m))``."""
    keep = expected > 0
    ratio = power[keep] / expected[keep]
    se = torch.sqrt(2.0 / (n_dof[keep] * m))
    z = (ratio - 1) / se
    assert z.abs().max() < 6.0, f"worst mode off by {z.abs().max():.1f} standard errors (ratio {ratio[z.abs().argmax()]:.3f})"
    # pooled over all modes the estimate is much sharper
    pooled_se = torch.sqrt((se**2).sum()) / keep.sum()
    assert abs(ratio.mean() - 1) < 6 * pooled_se + 1e-12


def test_periodic_1d_spectrum_and_mean() -> None:
    n, m = 64, 3000
    alpha, tau, sigma = 2.0, 5.0, 25.0
    grf = GaussianRandomField(1, n, alpha, tau, sigma)
    u = _samples(grf, m)
    assert u.shape == (m, n) and u.dtype == torch.float64
    coef = torch.fft.rfft(u, dim=-1) / n  # u = sum_k c_k exp(2 pi i k x)
    power = (coef.abs() ** 2).mean(0)
    k = torch.arange(n // 2 + 1, dtype=torch.float64)
    expected = sigma**2 * (4 * math.pi**2 * k**2 + tau**2) ** (-alpha)
    n_dof = torch.full_like(k, 2.0)
    n_dof[0] = n_dof[-1] = 1.0  # mean and Nyquist modes are real
    _check_spectrum(power, expected, n_dof, m)
    # the same data must reject a neighbouring exponent or amplitude
    for wrong in (sigma**2 * (4 * math.pi**2 * k**2 + tau**2) ** (-alpha - 0.1), 1.2 * expected):
        with pytest.raises(AssertionError):
            _check_spectrum(power, wrong, n_dof, m)
    # mean ~ 0 everywhere: pointwise sample mean within 5 standard errors
    mean, std = u.mean(0), u.std(0)
    assert (mean.abs() < 5 * std / math.sqrt(m)).all()
    # pointwise variance = sum of the eigenvalues (stationary field)
    total = expected[0] + 2 * expected[1:-1].sum() + expected[-1]
    assert abs(u.var() / total - 1) < 0.1


def test_periodic_2d_spectrum() -> None:
    n, m = 32, 800
    alpha, tau, sigma = 2.5, 7.0, 7.0**0.75
    grf = GaussianRandomField(2, n, alpha, tau, sigma)
    u = _samples(grf, m)
    assert u.shape == (m, n, n)
    coef = torch.fft.fft2(u) / n**2
    power = (coef.abs() ** 2).mean(0)
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    expected = sigma**2 * (4 * math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
    # in the full FFT each complex coefficient appears twice (k and -k); count the real ones
    real = ((kx == 0) | (kx == -n // 2)) & ((ky == 0) | (ky == -n // 2))
    n_dof = torch.where(real, 1.0, 2.0).to(torch.float64)
    _check_spectrum(power.flatten(), expected.flatten(), n_dof.flatten(), m)
    with pytest.raises(AssertionError):  # the Laplacian eigenvalues of the unit torus are 4 pi^2 |k|^2, not pi^2
        _check_spectrum(power.flatten(), (sigma**2 * (math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)).flatten(),
                        n_dof.flatten(), m)


def _cosine_coefficients(u: torch.Tensor) -> torch.Tensor:
    """Coefficients of u on 1, sqrt2 cos(pi k x), k = 0..n-2, by the trapezoidal (DCT-I) projection (last axis)."""
    n = u.shape[-1]
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    w = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
    w[0] = w[-1] = 0.5 / (n - 1)
    k = torch.arange(n - 1, dtype=torch.float64)
    phi = math.sqrt(2) * torch.cos(math.pi * k[:, None] * x[None, :])
    phi[0] = 1.0
    return (u * w) @ phi.T


def _sine_coefficients(u: torch.Tensor) -> torch.Tensor:
    """Coefficients of u on sqrt2 sin(pi k x), k = 1..n-2 (DST-I projection, last axis)."""
    n = u.shape[-1]
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    k = torch.arange(1, n - 1, dtype=torch.float64)
    phi = math.sqrt(2) * torch.sin(math.pi * k[:, None] * x[None, :])
    return u @ phi.T / (n - 1)


@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
def test_bounded_1d_spectrum(boundary: str) -> None:
    n, m = 33, 3000
    alpha, tau, sigma = 2.0, 3.0, 2.0
    grf = GaussianRandomField(1, n, alpha, tau, sigma, boundary=boundary)
    u = _samples(grf, m)
    if boundary == "neumann":
        coef, k = _cosine_coefficients(u), torch.arange(n - 1, dtype=torch.float64)
    else:
        coef, k = _sine_coefficients(u), torch.arange(1, n - 1, dtype=torch.float64)
        assert u[:, 0].abs().max() < 1e-12 and u[:, -1].abs().max() < 1e-12  # Dirichlet: zero on the boundary
    expected = sigma**2 * (math.pi**2 * k**2 + tau**2) ** (-alpha)
    power = (coef**2).mean(0)
    _check_spectrum(power, expected, torch.ones_like(k), m)
    with pytest.raises(AssertionError):
        _check_spectrum(power, sigma**2 * (math.pi**2 * k**2 + tau**2) ** (-alpha - 0.15), torch.ones_like(k), m)


def test_neumann_2d_zero_mean_spectrum() -> None:
    """The FNO Darcy field: cosine series in 2-D, constant mode removed."""
    n, m = 17, 1500
    alpha, tau = 2.0, 3.0
    grf = GaussianRandomField(2, n, alpha, tau, 1.0, boundary="neumann", zero_mean=True)
    u = _samples(grf, m)
    coef = _cosine_coefficients(_cosine_coefficients(u).transpose(-1, -2)).transpose(-1, -2)
    k = torch.arange(n - 1, dtype=torch.float64)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    expected = (math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
    expected[0, 0] = 0.0
    power = (coef**2).mean(0)
    assert power[0, 0] < 1e-20  # zero mean exactly, sample by sample
    _check_spectrum(power.flatten(), expected.flatten(), torch.ones(expected.numel(), dtype=torch.float64), m)


def test_samples_depend_only_on_seed_split_index() -> None:
    grf = GaussianRandomField(2, 16, 2.0, 3.0)
    # the noise is bit-identical whatever the batch; the batched transform agrees to round-off
    assert torch.equal(grf.draw_noise(sample_generators(7, "train", [3, 4, 5]))[1],
                       grf.draw_noise([sample_generator(7, "train", 4)])[0])
    batch = grf.sample(sample_generators(7, "train", [3, 4, 5]))
    single = grf.sample([sample_generator(7, "train", 4)])
    torch.testing.assert_close(batch[1], single[0], rtol=0, atol=1e-13)
    assert not torch.allclose(grf.sample([sample_generator(7, "val", 4)])[0], single[0])
    assert not torch.allclose(grf.sample([sample_generator(8, "train", 4)])[0], single[0])
    assert sample_seed(7, "train", 4) == sample_seed(7, "train", 4) != sample_seed(7, "test", 4)
    assert sample_seed(np.int64(7), "train", np.int64(4)) == sample_seed(7, "train", 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(dim=3, size=8, alpha=2, tau=3), "dim=3"),
        (dict(dim=1, size=0, alpha=2, tau=3), "size=0"),
        (dict(dim=1, size=8, alpha=-1, tau=3), "alpha=-1"),
        (dict(dim=1, size=8, alpha=2, tau=3, boundary="robin"), "boundary='robin'"),
        (dict(dim=1, size=8, alpha=2, tau=3, sigma=0), "sigma=0"),
    ],
)
def test_invalid_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GaussianRandomField(**kwargs)


def test_seeding_validation() -> None:
    with pytest.raises(ValueError, match="split='dev'"):
        sample_seed(0, "dev", 0)
    with pytest.raises(ValueError, match="index=-1"):
        sample_seed(0, "train", -1)
    with pytest.raises(ValueError, match="seed=-3"):
        sample_seed(-3, "train", 0)
