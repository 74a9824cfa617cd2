"""Space-time building blocks of the spatiotemporal FNO (SFNO, Cao et al., "Spectral-Refiner", ICLR 2025).

Fields are ``(B, C, S_x, S_y, T)``: time is the *last* axis, so :class:`~operators.layers.SpectralConv`'s
half-spectrum axis is time (both signs of the spatial frequencies, non-negative temporal ones).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from operators.layers.precision import autocast_disabled
from operators.layers.spectral_conv import SpectralConv


class SpaceTimePositionalEncoding(nn.Module):
    """Append space-time positional features to a ``(B, C, *S, T)`` field.

    Channels added: the periodic spatial coordinates ``j / n`` of each spatial dim, then ``n_time_features``
    temporal features ``exp(beta * tau) * sin|cos(pi * (k + 1) * tau)`` (sine for even ``k``, cosine for
    odd), ``tau_j = (j + 1) * time_step`` for the ``j``-th snapshot. The exponential envelope reflects the
    a priori exponential-in-time energy estimate of Navier-Stokes (as the paper's encoding); the features
    depend only on the snapshot index, so any number of input snapshots is accepted.

    Shapes: ``(B, C, *S, T) -> (B, C + n_spatial + n_time_features, *S, T)``.
    """

    def __init__(self, n_spatial: int = 2, n_time_features: int = 8, time_step: float = 0.01,
                 beta: float = 0.01) -> None:
        super().__init__()
        self.n_spatial = int(n_spatial)
        self.n_time_features = int(n_time_features)
        self.time_step = float(time_step)
        self.beta = float(beta)

    @property
    def n_features(self) -> int:
        return self.n_spatial + self.n_time_features

    def extra_repr(self) -> str:
        return (f"n_spatial={self.n_spatial}, n_time_features={self.n_time_features}, "
                f"time_step={self.time_step}, beta={self.beta}")

    def features(self, spatial: Sequence[int], n_t: int, device=None, dtype=None) -> torch.Tensor:
        """The ``(n_features, *S, T)`` encoding of a grid ``spatial`` with ``n_t`` snapshots."""
        axes = [torch.arange(n, device=device, dtype=torch.float64) / n for n in spatial]
        tau = (torch.arange(n_t, device=device, dtype=torch.float64) + 1) * self.time_step
        axes.append(tau)
        grids = torch.meshgrid(*axes, indexing="ij")
        feats = list(grids[:-1])
        t = grids[-1]
        for k in range(self.n_time_features):
            basis = torch.sin if k % 2 == 0 else torch.cos
            feats.append(torch.exp(self.beta * t) * basis(math.pi * (k + 1) * t))
        return torch.stack(feats, dim=0).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial, n_t = tuple(x.shape[2:-1]), x.shape[-1]
        if len(spatial) != self.n_spatial:
            raise ValueError(f"SpaceTimePositionalEncoding expects {self.n_spatial} spatial dims + time; "
                             f"got shape {tuple(x.shape)}")
        pe = self.features(spatial, n_t, device=x.device, dtype=x.dtype)
        return torch.cat([x, pe.unsqueeze(0).expand(x.shape[0], *pe.shape)], dim=1)


class ChannelLayerNorm(nn.GroupNorm):
    """Layer norm of a channel-first field over ``(C, *S)`` per sample (``GroupNorm`` with one group), with a
    per-channel affine map: replaces the FNO's global (dataset) Gaussian normaliser, so the model needs no
    statistics of the training set and takes inputs of any length and resolution."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_groups=1, num_channels=num_channels, eps=eps, affine=True)


class ResamplingSpectralConv(SpectralConv):
    """Space-time spectral convolution whose output has its own number of time steps.

    The input ``(B, C_in, *S, T_in)`` is transformed by ``rfftn`` over space and time, the kept modes are
    mixed by the learned complex weights (layout and corners as :class:`SpectralConv`; time is the
    half-spectrum axis), and the result is transformed back on ``(*S, T_out)``: the temporal spectrum is
    zero-padded (``T_out > T_in``) or cut (``T_out < T_in``), i.e. the same time window is resampled with
    ``T_out`` points (band-limited interpolation). FFTs use ``norm="forward"`` so the amplitude does not
    depend on ``T_in``, ``T_out`` or the spatial resolution. The temporal modes used are
    ``min(modes_t, T_in // 2 + 1, T_out // 2 + 1)`` (any number of output steps works).

    With ``time_padding=True`` the time axis is first zero-padded in front to twice its length and the output
    window is twice ``T_out`` long, of which the last ``T_out`` steps are returned: the wrap-around of the
    periodic temporal Fourier series happens in the discarded half, so the returned steps can carry a trend
    (a trajectory is not periodic in time). The padded window is the same physical time interval whatever
    ``T_out``, so ``T_out = r * T`` samples the same trajectory ``r`` times more finely. Temporal modes are
    then bounded by ``T_in + 1`` and ``T_out + 1``.

    Shapes: ``(B, C_in, *S, T_in) -> (B, C_out, *S, T_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int], out_steps: int | None = None,
                 bias: bool = False, init: str = "uniform", time_padding: bool = False,
                 full_precision: bool = False) -> None:
        super().__init__(in_channels, out_channels, modes, bias=bias, fft_norm="forward",
                         full_precision=full_precision)
        self.time_padding = bool(time_padding)
        if self.share_corner_weights:  # pragma: no cover - never set here
            raise ValueError("ResamplingSpectralConv does not share corner weights")
        self.out_steps = None if out_steps is None else int(out_steps)
        if init == "zeros":
            with torch.no_grad():
                self.weight.zero_()
        elif init != "uniform":
            raise ValueError(f"ResamplingSpectralConv: init={init!r} is not allowed; use uniform or zeros")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", out_steps={self.out_steps}, time_padding={self.time_padding}"

    def forward(self, x: torch.Tensor, out_steps: int | None = None) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != self.n_dim + 2:
            raise ValueError(f"ResamplingSpectralConv expects (B, C, *S, T) with {self.n_dim - 1} spatial dims; "
                             f"got shape {tuple(x.shape)}")
        t_out = out_steps if out_steps is not None else (self.out_steps or x.shape[-1])
        t_out = int(t_out)
        if t_out < 1:
            raise ValueError(f"out_steps={t_out} is not allowed; use >= 1")
        spatial = tuple(x.shape[2:-1])
        need = self.min_resolution()[:-1]
        if any(s < n for s, n in zip(spatial, need)):
            raise ValueError(f"SpectralConv modes={self.modes} need a grid of at least {'x'.join(map(str, need))}; "
                             f"got resolution {spatial}")
        t_keep = t_out
        if self.time_padding:
            x = torch.nn.functional.pad(x, (x.shape[-1], 0))
            t_out = 2 * t_out
        n_in = x.shape[-1]
        m_t = min(self.modes[-1], n_in // 2 + 1, t_out // 2 + 1)
        out_dtype = self.output_dtype(x)
        dims = tuple(range(-self.n_dim, 0))
        with autocast_disabled(x):
            xf = x.to(torch.float64 if out_dtype == torch.float64 else torch.float32)
            x_ft = torch.fft.rfftn(xf, dim=dims, norm="forward")
            weight = torch.view_as_complex(self.weight.float() if xf.dtype == torch.float32 else self.weight.double())
            out_ft = x_ft.new_zeros(x.shape[0], self.out_channels, *spatial, t_out // 2 + 1)
            for spec, wt in self._corners(spatial + (n_in,)):
                spec = spec[:-1] + (slice(0, m_t),)
                wt = wt[:-1] + (slice(0, m_t),)
                idx = (slice(None), slice(None)) + spec
                out_ft[idx] = torch.einsum("bi...,io...->bo...", x_ft[idx], weight[(slice(None), slice(None)) + wt])
            y = torch.fft.irfftn(out_ft, s=spatial + (t_out,), dim=dims, norm="forward")
            if self.bias is not None:
                y = y + self.bias.to(y.dtype)
        if self.time_padding:
            y = y[..., -t_keep:]
        return y.to(out_dtype)

    def max_time_modes(self, t_in: int) -> int:
        """Number of temporal modes of an input with ``t_in`` steps (all of them: no truncation)."""
        return (2 * t_in if self.time_padding else t_in) // 2 + 1

    def enlarged(self, modes: Sequence[int]) -> ResamplingSpectralConv:
        """A copy with more modes (per dim ``>=`` the current ones): the trained weights are copied into the
        matching low frequencies (positive and negative spatial ones), the new high frequencies start at zero,
        so the copy computes exactly the same map until it is trained."""
        modes = tuple(int(m) for m in modes)
        if len(modes) != self.n_dim or any(m < o for m, o in zip(modes, self.modes)):
            raise ValueError(f"enlarged: modes={modes} must be >= the current modes {self.modes} in every dim")
        new = ResamplingSpectralConv(self.in_channels, self.out_channels, modes, out_steps=self.out_steps,
                                     bias=self.bias is not None, init="zeros", time_padding=self.time_padding,
                                     full_precision=self.full_precision)
        new = new.to(device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            src_dims = []
            for old_m, new_m in zip(self.modes[:-1], modes[:-1]):
                # stored order: [0, m) positive frequencies 0..m-1, [m, 2m) negative frequencies -m..-1
                src_dims.append(((slice(0, old_m), slice(0, old_m)),
                                 (slice(old_m, 2 * old_m), slice(2 * new_m - old_m, 2 * new_m))))
            for combo in itertools.product(*src_dims):
                src = tuple(c[0] for c in combo) + (slice(0, self.modes[-1]),)
                dst = tuple(c[1] for c in combo) + (slice(0, self.modes[-1]),)
                new.weight[(slice(None), slice(None)) + dst] = self.weight[(slice(None), slice(None)) + src]
            if self.bias is not None:
                new.bias.copy_(self.bias)
        return new
