"""Tests for operators.layers.SpectralConv and the small layers around it."""

import itertools
import math

import pytest
import torch

from operators.layers import ChannelLinear, ChannelMLP, DomainPadding, GridEmbedding, SpectralConv


@pytest.mark.parametrize(
    "modes,spatial",
    [((4,), (16,)), ((4,), (33,)), ((3, 5), (12, 10)), ((3, 5), (17, 23)), ((2, 3, 2), (8, 6, 5))],
)
def test_shape_preserved(modes, spatial):
    layer = SpectralConv(3, 5, modes)
    x = torch.randn(2, 3, *spatial)
    assert layer(x).shape == (2, 5, *spatial)


def test_weight_shape_and_init_scale():
    layer = SpectralConv(4, 6, (3, 5))
    assert layer.weight.shape == (4, 6, 6, 5, 2)  # both corners along dim 0, real/imag
    assert layer.weight.min() >= 0 and layer.weight.max() < 1 / 24
    shared = SpectralConv(4, 6, (3, 5), share_corner_weights=True)
    assert shared.weight.shape == (4, 6, 3, 5, 2)
    assert SpectralConv(2, 2, (2, 2, 2)).weight.shape == (2, 2, 4, 4, 2, 2)


def _reference_2d(x, w, m1, m2):
    """Paper-style 2D spectral conv with an explicit loop over both corners."""
    w = torch.view_as_complex(w)
    x_ft = torch.fft.rfft2(x)
    out = torch.zeros(x.shape[0], w.shape[1], x.shape[-2], x.shape[-1] // 2 + 1, dtype=torch.cfloat)
    out[:, :, :m1, :m2] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, :m1, :m2], w[:, :, :m1])
    out[:, :, -m1:, :m2] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, -m1:, :m2], w[:, :, m1:])
    return torch.fft.irfft2(out, s=x.shape[-2:])


def test_matches_reference_2d():
    torch.manual_seed(0)
    layer = SpectralConv(3, 4, (5, 6))
    x = torch.randn(2, 3, 16, 18)
    torch.testing.assert_close(layer(x), _reference_2d(x, layer.weight.detach(), 5, 6), rtol=1e-4, atol=1e-5)


def test_single_fourier_mode_is_scaled_exactly():
    """A pure mode k inside the kept band goes through as Re(w_k * e^{2 pi i k x})."""
    n, k = 32, 3
    layer = SpectralConv(1, 1, (8,))
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0, k] = torch.tensor([2.0, 0.0])
    xs = torch.arange(n) / n
    x = torch.cos(2 * math.pi * k * xs).view(1, 1, n)
    torch.testing.assert_close(layer(x), 2 * x, rtol=1e-5, atol=1e-5)
    # a mode above the cut-off is removed
    x_high = torch.cos(2 * math.pi * 10 * xs).view(1, 1, n)
    assert layer(x_high).abs().max() < 1e-5


def test_resolution_invariant_on_band_limited_input():
    torch.manual_seed(0)
    layer = SpectralConv(2, 3, (4, 4))
    g = lambda n: torch.arange(n) / n  # noqa: E731
    def field(n):
        x, y = torch.meshgrid(g(n), g(n), indexing="ij")
        return torch.stack([torch.sin(2 * math.pi * (x + 2 * y)), torch.cos(2 * math.pi * 3 * x)]).unsqueeze(0)
    coarse, fine = layer(field(16)), layer(field(64))
    torch.testing.assert_close(fine[..., ::4, ::4], coarse, rtol=1e-4, atol=1e-5)


def test_too_small_grid_raises_clear_error():
    layer = SpectralConv(1, 1, (16, 16))
    with pytest.raises(ValueError, match=r"modes=\(16, 16\) need a grid of at least 32x30; got resolution \(20, 20\)"):
        layer(torch.randn(1, 1, 20, 20))
    layer(torch.randn(1, 1, 32, 30))  # the minimum works


def test_half_precision_input_computes_fft_in_float32():
    layer = SpectralConv(2, 2, (3, 3))
    x = torch.randn(1, 2, 12, 10)  # not a power of two
    y = layer(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), layer(x), rtol=5e-2, atol=5e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.float32


def test_gradients_reach_weights():
    layer = SpectralConv(2, 2, (3,), bias=True)
    layer(torch.randn(4, 2, 16)).pow(2).sum().backward()
    assert layer.weight.grad.abs().sum() > 0 and layer.bias.grad.abs().sum() > 0


def _reference_nd(x, weight, modes, share_corner_weights=False, bias=None, fft_norm="backward"):
    """Straightforward n-D spectral conv: full rfftn, zero spectrum, one einsum per frequency corner, irfftn."""
    d = len(modes)
    dims = tuple(range(-d, 0))
    spatial = x.shape[2:]
    w = torch.view_as_complex(weight.contiguous())
    x_ft = torch.fft.rfftn(x, dim=dims, norm=fft_norm)
    out = torch.zeros(x.shape[0], w.shape[1], *x_ft.shape[2:], dtype=x_ft.dtype)
    for corner in itertools.product((0, 1), repeat=d - 1):  # 0 = positive, 1 = negative frequencies per dim
        spec, wt = [], []
        for c, m, n in zip(corner, modes[:-1], spatial[:-1]):
            spec.append(slice(0, m) if c == 0 else slice(n - m, n))
            wt.append(slice(0, m) if c == 0 or share_corner_weights else slice(m, 2 * m))
        spec.append(slice(0, modes[-1]))
        wt.append(slice(0, modes[-1]))
        idx = (slice(None), slice(None), *spec)
        out[idx] = torch.einsum("bi...,io...->bo...", x_ft[idx], w[(slice(None), slice(None), *wt)])
    y = torch.fft.irfftn(out, s=spatial, dim=dims, norm=fft_norm)
    return y if bias is None else y + bias


# (modes, spatial): 1/2/3-D, even and odd sizes, the minimal grid (2m per dim, 2m-2 on the last)
_CASES = [
    ((5,), (16,)), ((5,), (17,)), ((5,), (8,)),
    ((3, 4), (10, 12)), ((3, 4), (11, 9)), ((3, 4), (6, 6)),
    ((2, 3, 2), (6, 7, 5)), ((2, 2, 3), (4, 4, 4)),
]


@pytest.mark.parametrize("transform", ["dft", "fft"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("modes,spatial", _CASES)
def test_forward_and_gradients_match_reference(modes, spatial, dtype, tol, transform):
    torch.manual_seed(0)
    for share, bias in [(False, False), (True, True)]:
        layer = SpectralConv(3, 4, modes, share_corner_weights=share, bias=bias, transform=transform).to(dtype)
        if bias:
            with torch.no_grad():
                layer.bias.normal_()
        x = torch.randn(2, 3, *spatial, dtype=dtype, requires_grad=True)
        g = torch.randn(2, 4, *spatial, dtype=dtype)
        params = [x, layer.weight] + ([layer.bias] if bias else [])
        y = layer(x)
        grads = torch.autograd.grad(y, params, g)
        y_ref = _reference_nd(x, layer.weight, modes, share, layer.bias, layer.fft_norm)
        grads_ref = torch.autograd.grad(y_ref, params, g)
        assert y.dtype == dtype
        torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
        for a, b in zip(grads, grads_ref):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("fft_norm", ["forward", "ortho"])
@pytest.mark.parametrize("transform", ["dft", "fft"])
def test_fft_norms_match_reference(fft_norm, transform):
    torch.manual_seed(0)
    layer = SpectralConv(2, 3, (3, 4), fft_norm=fft_norm, transform=transform).double()
    x = torch.randn(2, 2, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(layer(x), _reference_nd(x, layer.weight, (3, 4), fft_norm=fft_norm),
                               rtol=1e-12, atol=1e-12)


def test_auto_transform_choice_and_bad_options():
    layer = SpectralConv(2, 2, (12, 12))
    cpu = torch.device("cpu")
    assert layer._use_dft((64, 64), cpu)  # 24 kept rows <= 6 log2(64)
    assert not layer._use_dft((64, 64), torch.device("cuda"))  # GPUs use cuFFT
    assert not SpectralConv(2, 2, (20, 20))._use_dft((64, 64), cpu)  # 40 of 64 rows kept: FFT
    layer.transform = "fft"
    assert not layer._use_dft((64, 64), cpu)
    with pytest.raises(ValueError, match=r"transform='fast' is not allowed; use one of auto, dft, fft"):
        SpectralConv(2, 2, (3,), transform="fast")
    with pytest.raises(ValueError, match=r"fft_norm='none' is not allowed; use one of backward, forward, ortho"):
        SpectralConv(2, 2, (3,), fft_norm="none")


def test_dft_matrices_cached_in_inference_mode_serve_training():
    layer = SpectralConv(2, 2, (3, 3), transform="dft")
    x = torch.randn(1, 2, 13, 11)  # a size no other test uses: the cache is filled here, in inference mode
    with torch.inference_mode():
        y_inf = layer(x)
    y = layer(x)
    y.sum().backward()  # would fail if the cached matrices were inference tensors
    torch.testing.assert_close(y.detach(), y_inf)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Torchinductor does not support code generation for complex operators")
@pytest.mark.parametrize(
    "modes,spatial,transform",
    [((5,), (16,), "dft"), ((3, 4), (11, 9), "dft"), ((2, 2, 3), (6, 5, 6), "dft"), ((3, 4), (11, 9), "fft")],
)
def test_compiled_matches_eager(modes, spatial, transform):
    """fullgraph=True: no graph break inside the layer; forward and gradients equal eager."""
    torch.manual_seed(0)
    torch._dynamo.reset()
    layer = SpectralConv(3, 4, modes, bias=True, transform=transform)
    x = torch.randn(2, 3, *spatial, requires_grad=True)
    g = torch.randn(2, 4, *spatial)
    params = [x, layer.weight, layer.bias]
    y = layer(x)
    grads = torch.autograd.grad(y, params, g)
    y_c = torch.compile(layer, fullgraph=True, dynamic=False)(x)
    grads_c = torch.autograd.grad(y_c, params, g)
    torch.testing.assert_close(y_c, y, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_c, grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_channel_linear_matches_nn_linear():
    lin = ChannelLinear(3, 4)
    x = torch.randn(2, 3, 5, 6)
    ref = torch.nn.functional.linear(x.movedim(1, -1), lin.weight, lin.bias).movedim(-1, 1)
    torch.testing.assert_close(lin(x), ref)
    assert sum(p.numel() for p in ChannelMLP(3, 4, hidden_channels=8).parameters()) == 3 * 8 + 8 + 8 * 4 + 4


def test_domain_padding_round_trip():
    x = torch.randn(2, 3, 85, 85)
    pad = DomainPadding(9, 2)
    y = pad.pad(x)
    assert y.shape == (2, 3, 94, 94) and torch.equal(y[..., :85, :85], x) and y[..., 85:, :].abs().sum() == 0
    assert torch.equal(pad.unpad(y, (85, 85)), x)
    sym = DomainPadding((0.0, 0.25), 2, mode="symmetric")
    y = sym.pad(torch.randn(1, 1, 8, 8))
    assert y.shape == (1, 1, 8, 12)
    assert DomainPadding(0.11, 1).amounts((85,)) == (9,)
    with pytest.raises(ValueError):
        DomainPadding(1.5, 1)


def test_grid_embedding():
    emb = GridEmbedding(2)
    out = emb(torch.zeros(2, 1, 4, 8))
    assert out.shape == (2, 3, 4, 8)
    torch.testing.assert_close(out[0, 1, :, 0], torch.arange(4) / 4)
    torch.testing.assert_close(out[0, 2, 0, :], torch.arange(8) / 8)
    closed = GridEmbedding(1, endpoint=True)(torch.zeros(1, 1, 5))
    torch.testing.assert_close(closed[0, 1], torch.linspace(0, 1, 5))
