"""Tests for operators.fno.FNO and operators.space_time_fno.SpaceTimeFNO."""

import math

import pytest
import torch

from operators.fno import FNO
from operators.space_time_fno import SpaceTimeFNO


def _band_limited(n: int, d: int) -> torch.Tensor:
    """A smooth periodic field (max frequency 3) sampled on the grid j/n, shape (1, 1, n^d)."""
    axes = torch.meshgrid(*([torch.arange(n) / n] * d), indexing="ij")
    u = sum(torch.sin(2 * math.pi * (i + 1) * x + 0.3 * i) for i, x in enumerate(axes))
    u = u + 0.5 * torch.cos(2 * math.pi * 3 * axes[0])
    return u[None, None].float()


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        (dict(in_channels=1, out_channels=1, modes=(16,), width=64), 549_569),  # Burgers
        (dict(in_channels=1, out_channels=1, modes=(12, 12), width=32, padding=9), 2_368_001),  # Darcy
        (dict(in_channels=10, out_channels=1, modes=(12, 12), width=20), 926_357),  # NS 2D
    ],
)
def test_paper_parameter_counts(kwargs, expected):
    assert FNO(**kwargs).count_parameters() == expected


def test_space_time_fno_paper_parameter_count():
    # paper's 6,558,537 includes 4 BatchNorm3d(20) layers (160 params) its later code dropped
    assert SpaceTimeFNO(1, t_in=10, n_steps_out=10).count_parameters() == 6_558_377


@pytest.mark.parametrize("d,res", [(1, 64), (1, 128), (1, 256), (2, 64), (2, 128), (2, 256), (3, 16)])
def test_output_shape(d, res):
    model = FNO(2, 3, modes=(4,) * d, width=8, n_layers=2)
    x = torch.randn(2, 2, *([res] * d))
    with torch.no_grad():
        assert model(x).shape == (2, 3, *([res] * d))


@pytest.mark.parametrize("padding", [9, 0.1, (0, 5)])
def test_padding_keeps_shape(padding):
    model = FNO(1, 1, modes=(6, 6), width=8, n_layers=2, padding=padding, lifting_channels=16)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 29, 31)).shape == (1, 1, 29, 31)


@pytest.mark.parametrize("d", [1, 2])
def test_resolution_invariance(d):
    """No training needed: a band-limited input sampled at 64/128/256 gives outputs that
    agree on the shared grid points (pointwise layers agree exactly there; only the
    aliasing of the activations' high frequencies differs)."""
    torch.manual_seed(0)
    model = FNO(1, 1, modes=(8,) * d, width=16, padding=0, use_grid=True)
    with torch.no_grad():
        out = {n: model(_band_limited(n, d)) for n in (64, 128, 256)}
    a = out[64]
    scale = (a - a.mean()).norm()
    for n, step in ((128, 2), (256, 4)):
        sub = out[n][(...,) + (slice(None, None, step),) * d]
        assert (sub - a).norm() / scale < 1e-2, n
    # sanity: a genuinely different input is far away on the same scale
    with torch.no_grad():
        other = model(_band_limited(64, d).flip(-1))
    assert (other - a).norm() / scale > 0.1


def test_gradient_flow_all_parameters():
    torch.manual_seed(0)
    model = FNO(1, 1, modes=(6, 6), width=8, n_layers=3, padding=4, lifting_channels=16)
    x, y = torch.randn(2, 1, 24, 24), torch.randn(2, 1, 24, 24)
    torch.nn.functional.mse_loss(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_last_layer_has_no_activation():
    model = FNO(1, 1, modes=(4,), width=8, n_layers=3)
    assert isinstance(model.layers[-1].activation, torch.nn.Identity)
    assert isinstance(model.layers[0].activation, torch.nn.GELU)


def test_too_small_resolution_error():
    model = FNO(1, 1, modes=(16, 16), width=8, n_layers=1)
    with pytest.raises(ValueError, match=r"need a grid of at least 32x30; got resolution \(20, 20\)"):
        model(torch.randn(1, 1, 20, 20))
    with pytest.raises(ValueError, match="expects input"):
        model(torch.randn(1, 2, 32, 32))


def test_autocast_bf16_cpu():
    model = FNO(1, 1, modes=(4, 4), width=8, n_layers=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(torch.randn(2, 1, 20, 18))
    assert y.shape == (2, 1, 20, 18) and torch.isfinite(y).all()


def test_space_time_fno_shapes_and_steps():
    torch.manual_seed(0)
    model = SpaceTimeFNO(2, t_in=3, n_steps_out=5, modes=(4, 4, 4), width=8, n_layers=2, time_padding=6)
    x = torch.randn(2, 6, 16, 16)
    y = model(x)
    assert y.shape == (2, 2 * 5, 16, 16)
    assert model(x, n_steps_out=8).shape == (2, 2 * 8, 16, 16)
    y.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.fno.padding.padding == (0, 0, 6)
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(2, 5, 16, 16))


def test_space_time_fno_time_major_layout():
    """Output channel t*C + c is step t of physical channel c (per-step outputs differ
    only through the time coordinate)."""
    torch.manual_seed(0)
    model = SpaceTimeFNO(2, t_in=1, n_steps_out=4, modes=(2, 2, 2), width=4, n_layers=1, time_padding=2)
    torch.manual_seed(1)
    x = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        direct = model.fno(x.unsqueeze(-1).expand(1, 2, 8, 8, 4))  # (1, C, S, S, T)
        torch.testing.assert_close(model(x).view(1, 4, 2, 8, 8), direct.permute(0, 4, 1, 2, 3))


class _TwiceGELU(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.gelu(torch.nn.functional.gelu(x))


@pytest.mark.parametrize("d,padding", [(1, 0.0), (2, 0.1)])
def test_matches_neuraloperator_fno_with_copied_weights(d, padding):
    """Independent reference: neuraloperator's FNO configured like the paper (optional
    dependency). Its blocks without channel-MLP apply the activation twice, which we
    mimic; with the weights copied the two models then agree to float precision."""
    neuralop_models = pytest.importorskip("neuralop.models")
    torch.manual_seed(0)
    m, width = 5, 8
    ours = FNO(1, 1, modes=(m,) * d, width=width, n_layers=3, projection_channels=16,
               padding=padding, padding_mode="symmetric")
    theirs = neuralop_models.FNO(
        n_modes=(2 * m,) * (d - 1) + (2 * m - 2,), in_channels=1, out_channels=1, hidden_channels=width,
        n_layers=3, lifting_channel_ratio=0, projection_channel_ratio=16 / width, use_channel_mlp=False,
        fno_skip="linear", domain_padding=padding or None,
    )
    assert ours.count_parameters() == sum(p.numel() * (1 + p.is_complex()) for p in theirs.parameters())
    for layer in ours.layers[:-1]:
        layer.activation = _TwiceGELU()
    with torch.no_grad():
        theirs.lifting.fcs[0].weight.copy_(ours.lifting.weight.unsqueeze(-1))
        theirs.lifting.fcs[0].bias.copy_(ours.lifting.bias)
        for i, layer in enumerate(ours.layers):
            w = torch.view_as_complex(layer.spectral.weight)
            if d > 1:  # theirs stores frequencies -m..m-1 along dim 0, ours 0..m-1 then -m..-1
                w = torch.roll(w, m, dims=2)
            conv = theirs.fno_blocks.convs[i]
            (conv.weight.tensor if hasattr(conv.weight, "tensor") else conv.weight).copy_(w)
            conv.bias.copy_(layer.skip.bias.view(conv.bias.shape))  # bias placement is equivalent
            theirs.fno_blocks.fno_skips[i].conv.weight.copy_(layer.skip.weight.unsqueeze(-1))
        for j, k in ((0, 0), (1, 2)):
            theirs.projection.fcs[j].weight.copy_(ours.projection.layers[k].weight.unsqueeze(-1))
            theirs.projection.fcs[j].bias.copy_(ours.projection.layers[k].bias)
        x = torch.randn(2, 1, *([40] * d))
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
