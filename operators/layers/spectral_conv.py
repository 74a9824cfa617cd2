"""Fourier-space convolution layer (the "R" operator of Li et al., ICLR 2021)."""

from __future__ import annotations

import itertools
import math
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


FFT_NORMS = ("backward", "forward", "ortho")
TRANSFORMS = ("auto", "dft", "fft")
_DFT_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _dft_scales(n: int, norm: str) -> tuple[float, float]:
    """(forward, inverse) scale of a length-``n`` transform under ``torch.fft``'s ``norm``."""
    if norm == "forward":
        return 1.0 / n, 1.0
    if norm == "ortho":
        return n**-0.5, n**-0.5
    return 1.0, 1.0 / n


def _build_dft_matrices(n: int, m: int, last: bool, norm: str, dtype: torch.dtype,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real matrices of the truncated forward and inverse DFT along one dim of size ``n``.

    ``last`` (half-spectrum dim, modes ``0..m-1``, ``p`` = real/imag part)::

        forward (n, 2m):  [j, (p, k)]   x (..., n) @ F  = rfft(x)[..., :m] as (..., [re | im])
        inverse (2m, n):  [(p, k), j]   like irfft(., n): modes 0 and n/2 count once, their imag parts drop out

    other dims (modes ``0..m-1`` and ``-m..-1``, ``K = 2m``; complex multiplication written as a real
    2x2 block, ``q`` = real/imag part of the result)::

        forward (2K, 2n): [(q, k), (j, p)]      inverse (2n, 2K): [(j, q), (p, k)]
    """
    j = torch.arange(n, device=device)
    k = torch.arange(m, device=device) if last else torch.cat([torch.arange(m, device=device),
                                                              torch.arange(n - m, n, device=device)])
    # reduce k*j mod n in integers so the angle is exact up to one rounding
    ang = ((k[:, None] * j[None, :]) % n).to(dtype) * (2 * math.pi / n)  # (K, n)
    cos, sin = torch.cos(ang), torch.sin(ang)
    s_fwd, s_inv = _dft_scales(n, norm)
    if last:
        forward = (torch.cat([cos, -sin]).t() * s_fwd).contiguous()  # e^{-i ang}
        weight = torch.full((m, 1), 2.0, dtype=dtype, device=device)  # Hermitian pairs +k, -k
        weight[0] = 1.0
        if n % 2 == 0 and m == n // 2 + 1:
            weight[-1] = 1.0  # the Nyquist mode has no pair
        inverse = torch.cat([weight * cos, -weight * sin]) * s_inv
        return forward, inverse
    # forward: Y = F X with F = cos - i sin; rows (q, k), columns (j, p)
    fr, fi = cos * s_fwd, -sin * s_fwd
    forward = torch.stack([torch.stack([fr, -fi], -1), torch.stack([fi, fr], -1)]).reshape(2 * m * 2, 2 * n)
    # inverse: Z = G Y with G = (cos + i sin)^T; rows (j, q), columns (p, k)
    gr, gi = cos.t() * s_inv, sin.t() * s_inv  # (n, K)
    inverse = torch.stack([torch.stack([gr, -gi], 1), torch.stack([gi, gr], 1)], 1).reshape(2 * n, 2 * 2 * m)
    return forward, inverse


def _dft_matrices(n: int, m: int, last: bool, norm: str, dtype: torch.dtype,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_build_dft_matrices`, cached in eager mode (built in the graph under ``torch.compile``)."""
    if torch.compiler.is_compiling():
        return _build_dft_matrices(n, m, last, norm, dtype, device)
    key = (n, m, last, norm, dtype, device)
    mats = _DFT_CACHE.get(key)
    if mats is None:
        if len(_DFT_CACHE) >= 256:
            _DFT_CACHE.clear()
        # plain tensors even under inference_mode, so that a later training step may save them for backward
        with torch.inference_mode(False), torch.no_grad():
            mats = _build_dft_matrices(n, m, last, norm, dtype, device)
        _DFT_CACHE[key] = mats
    return mats


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

    Only the kept modes are ever computed (the result equals the full ``rfftn`` / zeroed spectrum /
    ``irfftn`` of the definition). ``transform`` selects how: ``"dft"`` multiplies by real DFT matrices
    of the kept modes (GEMMs, no complex tensors: fastest on CPU for few modes, and fully code-generated
    by ``torch.compile``), ``"fft"`` runs pruned FFTs (``rfft`` of the last dim, then ``fft`` of each
    other dim on the kept columns only); ``"auto"`` takes ``"dft"`` on CPU when the kept modes per dim
    are at most ``6 log2 n`` and ``"fft"`` otherwise and on GPUs (the GEMMs would follow the TF32 matmul
    precision, cuFFT stays float32). The channel mixing of all kept modes is one real batched GEMM.

    The transforms are always computed in float32 (inputs in bf16/fp16, e.g. under
    ``torch.autocast``, are cast up: cuFFT half precision needs power-of-two sizes)
    and the result is cast back to the input dtype, unless ``full_precision=True`` (the output layer of a
    network, see :mod:`operators.layers.precision`): then it keeps the promoted dtype of input and weights
    (float32 for bf16 activations of a float32 model). Float64 input is computed in float64.

    Args:
        in_channels: channels of the input ``C_in``.
        out_channels: channels of the output ``C_out``.
        modes: modes kept per dim (an int needs ``n_dim``); ``len(modes)`` sets ``d``.
        n_dim: number of spatial dims when ``modes`` is an int.
        share_corner_weights: share one weight block across the frequency corners.
        bias: add a learned per-channel bias (the paper has none; the skip has one).
        fft_norm: ``norm`` of ``torch.fft.rfftn``: ``"backward"`` (paper), ``"forward"`` or ``"ortho"``.
        full_precision: return the computation's full-precision dtype instead of the input dtype.
        transform: ``"auto"``, ``"dft"`` or ``"fft"`` (see above; the attribute may be changed later).

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
        transform: str = "auto",
    ) -> None:
        super().__init__()
        if fft_norm not in FFT_NORMS:
            raise ValueError(f"SpectralConv: fft_norm={fft_norm!r} is not allowed; use one of {', '.join(FFT_NORMS)}")
        if transform not in TRANSFORMS:
            raise ValueError(
                f"SpectralConv: transform={transform!r} is not allowed; use one of {', '.join(TRANSFORMS)}"
            )
        self.transform = transform
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
        with autocast_disabled(x):
            xf = x.to(torch.float64 if out_dtype == torch.float64 else torch.float32)
            weight = self.weight.to(xf.dtype)
            if self.share_corner_weights:  # the one block serves every corner: repeat it along the non-last dims
                weight = weight.repeat(1, 1, *([2] * (self.n_dim - 1)), 1, 1)
            if self._use_dft(spatial, x.device):
                y = self._forward_dft(xf, weight, spatial)
            else:
                y = self._forward_fft(xf, weight, spatial)
            if self.bias is not None:
                y = y + self.bias.to(y.dtype)
        return y.to(out_dtype)

    def _use_dft(self, spatial: Sequence[int], device: torch.device) -> bool:
        """Whether the truncated transforms run as DFT-matrix GEMMs (else as pruned FFTs), see ``transform``."""
        if self.transform != "auto":
            return self.transform == "dft"
        if device.type != "cpu":
            return False  # cuFFT is exact in float32, the GEMMs would follow the (TF32) matmul precision
        # a GEMM costs ~ n * kept per output vector, an FFT ~ n log n but at a far lower flop rate (measured
        # break-even on CPU: kept ~ 6 log2 n)
        kept = [2 * m for m in self.modes[:-1]] + [self.modes[-1]]
        return all(k <= 6 * math.log2(max(n, 2)) for k, n in zip(kept, spatial))

    def _mix(self, x_ft: torch.Tensor, weight: torch.Tensor, component_last: bool) -> torch.Tensor:
        """Complex channel mixing of every kept mode in one real batched GEMM.

        ``x_ft``: real ``(B, C_in, 2, *K)`` (or ``(B, C_in, *K, 2)`` with ``component_last``; 2 = real/imag),
        ``weight``: ``(C_in, C_out, *K, 2)`` -> real ``(B, C_out, 2, *K)`` (or ``(B, C_out, *K, 2)``).
        """
        b, c_in = x_ft.shape[:2]
        k_shape = weight.shape[2:-1]
        k = math.prod(k_shape)
        if component_last:
            xv = x_ft.reshape(b, c_in, k, 2).transpose(2, 3)
        else:
            xv = x_ft.reshape(b, c_in, 2, k)
        xm = xv.permute(3, 2, 0, 1).reshape(k, 2 * b, c_in)  # rows (p, b): p = real/imag part of x
        # (K, C_in, (c, C_out)): c = real/imag part of w, so one GEMM gives all four products x_p w_c
        wm = weight.reshape(c_in, self.out_channels, k, 2).permute(2, 0, 3, 1).reshape(k, c_in, 2 * self.out_channels)
        x_re, x_im = torch.bmm(xm, wm).view(k, 2, b, 2, self.out_channels).unbind(1)
        (rr, ri), (ir, ii) = x_re.unbind(2), x_im.unbind(2)  # unbind: its backward stacks, no zero-filled grads
        # (xr + i xi)(wr + i wi) = (xr wr - xi wi) + i (xr wi + xi wr)
        out = torch.stack([rr - ii, ri + ir])  # (2, K, B, C_out)
        if component_last:
            return out.permute(2, 3, 1, 0).reshape(b, self.out_channels, *k_shape, 2)
        return out.permute(2, 3, 0, 1).reshape(b, self.out_channels, 2, *k_shape)

    def _forward_dft(self, x: torch.Tensor, weight: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """Truncated transforms as GEMMs with real DFT matrices of the kept modes only (no complex tensors).

        Layout: a transformed dim ``j`` (size ``n``) becomes ``(p, k)`` (real/imag part, kept mode), written
        just before the dims transformed earlier, so every step is one matmul over adjacent axes.
        """
        d, b = self.n_dim, x.shape[0]
        mats = [_dft_matrices(n, m, i == d - 1, self.fft_norm, x.dtype, x.device)
                for i, (n, m) in enumerate(zip(spatial, self.modes))]
        kept = [2 * m for m in self.modes[:-1]] + [self.modes[-1]]
        lead = b * x.shape[1]
        # forward: last dim (real -> (p, k)), then dims d-2 .. 0 (contract (n, p), emit (q, k))
        h = x.reshape(-1, spatial[-1]) @ mats[-1][0]
        for i in range(d - 2, -1, -1):
            h = torch.matmul(mats[i][0], h.reshape(lead * math.prod(spatial[:i]), 2 * spatial[i], -1))
        h = self._mix(h.reshape(b, self.in_channels, 2, *kept), weight, component_last=False)
        # inverse: dims 0 .. d-2 (contract (p, k), emit (n, q)), then the last dim ((p, k) -> real)
        lead = b * self.out_channels
        for i in range(d - 1):
            h = torch.matmul(mats[i][1], h.reshape(lead * math.prod(spatial[:i]), 2 * kept[i], -1))
        y = h.reshape(-1, 2 * kept[-1]) @ mats[-1][1]
        return y.reshape(b, self.out_channels, *spatial)

    def _forward_fft(self, x: torch.Tensor, weight: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """Pruned FFTs: ``rfft`` of the last dim, then ``fft`` of each other dim on the kept columns only;
        the inverse fills the dropped rows with zeros one dim at a time. Slicing and padding act on
        ``view_as_real`` data (inductor generates no code for complex tensors)."""
        d = self.n_dim
        h = torch.view_as_real(torch.fft.rfft(x, dim=-1, norm=self.fft_norm))[..., : self.modes[-1], :]
        for i in range(d - 2, -1, -1):  # h: (B, C, ..., 2) real
            n, m = spatial[i], self.modes[i]
            h = torch.view_as_real(torch.fft.fft(torch.view_as_complex(h.contiguous()), dim=2 + i, norm=self.fft_norm))
            h = torch.cat([h.narrow(2 + i, 0, m), h.narrow(2 + i, n - m, m)], dim=2 + i)
        h = self._mix(h, weight, component_last=True)
        for i in range(d - 1):
            n, m = spatial[i], self.modes[i]
            gap = list(h.shape)
            gap[2 + i] = n - 2 * m
            h = torch.cat([h.narrow(2 + i, 0, m), h.new_zeros(gap), h.narrow(2 + i, m, m)], dim=2 + i)
            h = torch.view_as_real(torch.fft.ifft(torch.view_as_complex(h), dim=2 + i, norm=self.fft_norm))
        return torch.fft.irfft(torch.view_as_complex(h.contiguous()), n=spatial[-1], dim=-1, norm=self.fft_norm)
