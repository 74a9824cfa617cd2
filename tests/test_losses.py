"""Tests for operators.losses against hand-computed values."""

import math

import pytest
import torch

from operators.losses import MSELoss, RelativeH1Loss, RelativeL2Loss, finite_difference_gradient


def test_relative_l2_hand_computed():
    y = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]]])  # (B=2, C=1, S=2); ||y|| = 5, 1
    pred = torch.tensor([[[3.0, 1.0]], [[0.0, 0.0]]])  # errors: 3/5, 1/1
    per = RelativeL2Loss(reduction="none")(pred, y)
    torch.testing.assert_close(per, torch.tensor([0.6, 1.0]))
    torch.testing.assert_close(RelativeL2Loss()(pred, y), torch.tensor(0.8))
    torch.testing.assert_close(RelativeL2Loss(reduction="sum")(pred, y), torch.tensor(1.6))


def test_relative_l2_norm_over_channels_and_space():
    y = torch.ones(1, 2, 3, 3)  # ||y|| = sqrt(18)
    pred = y.clone()
    pred[0, 1, 0, 0] = 4.0  # error norm 3
    torch.testing.assert_close(RelativeL2Loss()(pred, y), torch.tensor(3 / math.sqrt(18)))


def test_mse_matches_torch_and_per_sample():
    torch.manual_seed(0)
    pred, y = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    torch.testing.assert_close(MSELoss()(pred, y), torch.nn.functional.mse_loss(pred, y))
    per = MSELoss(reduction="none")(torch.tensor([[[1.0, 3.0]], [[0.0, 0.0]]]), torch.zeros(2, 1, 2))
    torch.testing.assert_close(per, torch.tensor([5.0, 0.0]))


def test_relative_h1_hand_computed_1d():
    n = 11
    x = torch.linspace(0, 1, n).view(1, 1, n)  # grid with both ends, h = 1/(n-1)
    sx2 = float((x**2).sum())
    # pred = 1.5x: error e = x/2, de/dx = 1/2 exactly -> sqrt((sx2 + n)/4) / sqrt(sx2 + n) = 1/2
    torch.testing.assert_close(RelativeH1Loss()(1.5 * x, x), torch.tensor(0.5))
    # pred = x + 1: error e = 1, de/dx = 0; target gradient 1 at n points
    expected = math.sqrt(n) / math.sqrt(sx2 + n)
    torch.testing.assert_close(RelativeH1Loss()(x + 1, x), torch.tensor(expected))


def test_relative_h1_2d_and_reduction_none():
    n = 6
    gx, gy = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
    y = (gx + 2 * gy).view(1, 1, n, n)  # gradients (1, 2) exactly
    pred = y + 1.0  # constant error
    num = n * n
    den = float((y**2).sum()) + n * n * (1 + 4)
    per = RelativeH1Loss(reduction="none")(torch.cat([pred, y]), torch.cat([y, y]))
    torch.testing.assert_close(per, torch.tensor([math.sqrt(num / den), 0.0]))


def test_periodic_gradient_of_sine():
    n = 256
    x = torch.arange(n) / n
    u = torch.sin(2 * math.pi * x).view(1, 1, n)
    (du,) = finite_difference_gradient(u, periodic=True)
    torch.testing.assert_close(du, 2 * math.pi * torch.cos(2 * math.pi * x).view(1, 1, n), rtol=1e-3, atol=1e-3)


def test_losses_are_differentiable_and_validate():
    pred = torch.randn(2, 1, 8, 8, requires_grad=True)
    y = torch.randn(2, 1, 8, 8)
    for loss in (RelativeL2Loss(), RelativeH1Loss(), RelativeH1Loss(periodic=True), MSELoss()):
        out = loss(pred, y)
        assert out.dim() == 0
        out.backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        RelativeL2Loss()(pred, y[:, :, :4])
    with pytest.raises(ValueError):
        MSELoss(reduction="bogus")
