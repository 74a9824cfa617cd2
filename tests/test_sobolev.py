"""Spectral Sobolev norms H^s (any real s) and the Bochner relative L2 loss."""
from __future__ import annotations

import math

import pytest
import torch

from operators.losses import (
    BochnerRelativeL2Loss,
    RelativeL2Loss,
    RelativeSobolevLoss,
    SobolevLoss,
    sobolev_norm_squared,
)


def _mode(n: int, k: tuple[int, int], phase: float = 0.3) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64) / n
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    return torch.cos(2 * math.pi * (k[0] * gx + k[1] * gy) + phase)


@pytest.mark.parametrize("k", [(1, 0), (2, 3), (5, -4), (0, 7)])
@pytest.mark.parametrize("s", [-1.0, -0.5, 0.0, 0.7, 2.0])
@pytest.mark.parametrize("n", [16, 33])
def test_single_fourier_mode_closed_form(k, s, n) -> None:
    # ||cos(2 pi k.x + phi)||^2_{H^s} = (alpha + 4 pi^2 |k|^2)^s / 2 on the unit torus
    u = _mode(n, k)[None, None]
    for alpha in (1.0, 0.5):
        exact = (alpha + 4 * math.pi**2 * (k[0] ** 2 + k[1] ** 2)) ** s / 2
        got = float(sobolev_norm_squared(u, s, alpha))
        assert got == pytest.approx(exact, rel=1e-10)


def test_h_minus_1_loss_of_a_mode_and_mean_handling() -> None:
    u = _mode(32, (3, 1))[None, None]
    loss = SobolevLoss(s=-1.0)
    expected = math.sqrt(1.0 / (1 + 4 * math.pi**2 * 10) / 2)
    assert float(loss(u, torch.zeros_like(u))) == pytest.approx(expected, rel=1e-10)
    const = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    assert float(sobolev_norm_squared(const, -1.0, alpha=0.0)) == 0.0  # seminorm drops the mean
    assert float(sobolev_norm_squared(const, -1.0, alpha=1.0)) == pytest.approx(1.0)


def test_bochner_relative_l2_equals_relative_l2_and_sums_over_time() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(3, 6, 16, 16), torch.randn(3, 6, 16, 16)
    assert torch.allclose(BochnerRelativeL2Loss()(a, b), RelativeL2Loss()(a, b), rtol=1e-5)
    per = SobolevLoss(s=1.0, reduction="none")(a, b) ** 2
    by_step = sum(SobolevLoss(s=1.0, reduction="none")(a[:, t:t + 1], b[:, t:t + 1]) ** 2 for t in range(6))
    assert torch.allclose(per, by_step, rtol=1e-5)


def test_relative_time_average_and_gradients() -> None:
    torch.manual_seed(1)
    y = torch.randn(2, 4, 16, 16)
    pred = (y + 0.1 * torch.randn_like(y)).requires_grad_(True)
    per_step = RelativeSobolevLoss(s=-1.0, time_average=True, step_channels=1, reduction="none")(pred, y)
    manual = torch.stack([RelativeSobolevLoss(s=-1.0, reduction="none")(pred[:, t:t + 1], y[:, t:t + 1])
                          for t in range(4)], dim=1).mean(1)
    assert torch.allclose(per_step, manual, rtol=1e-5)
    RelativeSobolevLoss(s=-1.0)(pred, y).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SobolevLoss(alpha=-1.0)
    with pytest.raises(ValueError):
        SobolevLoss(time_average=True)
    with pytest.raises(ValueError):
        SobolevLoss()(torch.zeros(2, 3), torch.zeros(2, 3))
