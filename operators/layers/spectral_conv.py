"""Fourier-space convolution layer (the "R" operator of Li et al., ICLR 2021)."""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import nn

from operators.layers.precision import autocast_disabled, full_precision_dtype


def _as_modes(modes: int | Sequence[int], n_dim: int | None) -> tuple[int, ...]:
    if isinstance(modes, int):
        if n_dim is None:
            raise ValueError("SpectralConv: give `n_dim` when `modes` is a single int")
        modes = (modes,) * n_dim
    modes = tuple(int(m) for m in modes)
    if n_dim is not None and len(modes) != n_dim:
        raise ValueError(f"SpectralConv: len(modes)={len(modes)} but n_dim={n_dim}")
    if not 1 <= len(modes) <= 3:
        raise ValueError(f"SpectralConv supports 1, 2 or 3 dims; got modes={modes}")
    if any(m < 1 for m in modes):
        raise ValueError(f"SpectralConv: modes must be >= 1; got {modes}")
    return modes


class SpectralConv(nn.Module):
    """n-D spectral convolution ``K v = IFFT(R · FFT(v))`` with truncated modes.

    The input is transformed with ``rfftn`` over its last ``d = len(modes)`` dims. Along
    every dim but the last, the ``modes[i]`` lowest positive *and* the ``modes[i]`` lowest
    negative frequencies are kept; along the last (half-spectrum) dim the ``modes[-1]``
    lowest non-negative frequencies are kept. Each kept mode is mixed across channels by
    a learned complex ``(in_channels, out_channels)`` matrix; all other modes are zeroed.
    The output is transformed back to the *input* grid size, so the layer is
    resolution-invariant (the same weights apply at any resolution that is large
    enough for the modes).

    Weights are stored as one real tensor of shape
    ``(in, out, 2*m_0, ..., 2*m_{d-2}, m_{d-1}, 2)`` (last axis = real/imag), i.e. a
    separate weight block for each of the ``2**(d-1)`` frequency corners, as in the
    paper. With ``share_corner_weights=True`` one ``(in, out, m_0, ..., m_{d-1}, 2)``
    block is shared by all corners. ``parameters()`` therefore counts complex weights
    twice, matching the paper's parameter counts. Initialisation follows the paper:
    real and imaginary parts ``~ U[0, 1/(in*out))``.

    FFTs are always computed in float32 (inputs in bf16/fp16, e.g. under
    ``torch.autocast``, are cast up: cuFFT half precision needs power-of-two sizes)
    and the result is cast back to the input dtype, unless ``full_precision=True`` (the output layer of a
    network, see :mod:`operators.layers.precision`): then it keeps the promoted dtype of input and weights
    (float32 for bf16 activations of a float32 model).

    Args:
        in_channels: channels of the input ``C_in``.
        out_channels: channels of the output ``C_out``.
        modes: modes kept per dim (an int needs ``n_dim``); ``len(modes)`` sets ``d``.
        n_dim: number of spatial dims when ``modes`` is an int.
        share_corner_weights: share one weight block across the frequency corners.
        bias: add a learned per-channel bias (the paper has none; the skip has one).
        fft_norm: ``norm`` of ``torch.fft.rfftn`` (``"backward"`` as in the paper).
        full_precision: return the computation's full-precision dtype instead of the input dtype.

    Shapes:
        input ``(B, C_in, *S)`` with ``len(S) == d`` -> output ``(B, C_out, *S)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        n_dim: int | None = None,
        share_corner_weights: bool = False,
        bias: bool = False,
        fft_norm: str = "backward",
        full_precision: bool = False,
    ) -> None:
        super().__init__()
        self.full_precision = bool(full_precision)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.modes = _as_modes(modes, n_dim)
        self.n_dim = len(self.modes)
        self.share_corner_weights = bool(share_corner_weights)
        self.fft_norm = fft_norm
        if self.share_corner_weights:
            block = self.modes
        else:
            block = tuple(2 * m for m in self.modes[:-1]) + (self.modes[-1],)
        scale = 1.0 / (self.in_channels * self.out_channels)
        self.weight = nn.Parameter(scale * torch.rand(self.in_channels, self.out_channels, *block, 2))
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.out_channels, *([1] * self.n_dim)))
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, modes={self.modes}, "
            f"share_corner_weights={self.share_corner_weights}, fft_norm={self.fft_norm!r}"
            + (", full_precision=True" if self.full_precision else "")
        )

    def output_dtype(self, x: torch.Tensor) -> torch.dtype:
        """dtype of the output for input ``x``: ``x.dtype``, or with ``full_precision`` the promoted dtype of
        ``x`` and the weights."""
        return full_precision_dtype(x, self.weight) if self.full_precision else x.dtype

    def min_resolution(self) -> tuple[int, ...]:
        """Smallest grid ``S`` this layer accepts (``2*m`` per dim, ``2*m-2`` on the last)."""
        return tuple(2 * m for m in self.modes[:-1]) + (max(2 * self.modes[-1] - 2, 1),)

    def check_resolution(self, spatial: Sequence[int]) -> None:
        """Raise a one-line ``ValueError`` if ``spatial`` is too small for the modes."""
        spatial = tuple(int(s) for s in spatial)
        need = self.min_resolution()
        if len(spatial) != self.n_dim or any(s < n for s, n in zip(spatial, need)):
            raise ValueError(
                f"SpectralConv modes={self.modes} need a grid of at least "
                f"{'x'.join(map(str, need))}; got resolution {spatial}"
            )

    def _corners(self, spatial: Sequence[int]):
        """Yield (spectrum slices, weight slices) for each kept frequency corner."""
        per_dim = []
        for i, (m, n) in enumerate(zip(self.modes[:-1], spatial[:-1])):
            spec = (slice(0, m), slice(n - m, n))
            wt = (slice(None), slice(None)) if self.share_corner_weights else (slice(0, m), slice(m, 2 * m))
            per_dim.append(list(zip(spec, wt)))
        last = (slice(0, self.modes[-1]), slice(None))
        for combo in itertools.product(*per_dim):
            spec = tuple(c[0] for c in combo) + (last[0],)
            wt = tuple(c[1] for c in combo) + (last[1],)
            yield spec, wt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S) -> (B, C_out, *S)``."""
        if x.dim() != self.n_dim + 2:
            raise ValueError(
                f"SpectralConv expects a (B, C, *S) tensor with {self.n_dim} spatial dims; got shape {tuple(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        self.check_resolution(spatial)
        out_dtype = self.output_dtype(x)
        dims = tuple(range(-self.n_dim, 0))
        with autocast_disabled(x):
            xf = x.to(torch.float64 if out_dtype == torch.float64 else torch.float32)
            x_ft = torch.fft.rfftn(xf, dim=dims, norm=self.fft_norm)
            weight = torch.view_as_complex(self.weight.float() if xf.dtype == torch.float32 else self.weight.double())
            out_ft = x_ft.new_zeros(x.shape[0], self.out_channels, *x_ft.shape[2:])
            for spec, wt in self._corners(spatial):
                idx = (slice(None), slice(None)) + spec
                out_ft[idx] = torch.einsum("bi...,io...->bo...", x_ft[idx], weight[(slice(None), slice(None)) + wt])
            y = torch.fft.irfftn(out_ft, s=spatial, dim=dims, norm=self.fft_norm)
            if self.bias is not None:
                y = y + self.bias.to(y.dtype)
        return y.to(out_dtype)
