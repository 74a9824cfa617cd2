"""Fourier Neural Operator (Li et al., "Fourier Neural Operator for Parametric Partial
Differential Equations", ICLR 2021) for 1-, 2- and 3-D fields.

Architecture (``d = len(modes)``)::

    a(x) --[append grid x in [0,1]^d]--> lifting P (pointwise) --> pad
         --> n_layers x [ v <- act( SpectralConv(v) + W v ) ]   (no act after the last)
         --> unpad --> projection Q (pointwise 2-layer MLP) --> u(x)

Paper configurations (parameter counts as :meth:`FNO.count_parameters`, complex weights
counted twice, like the paper code):

=================  ==========================================================  =========
problem            call                                                        params
=================  ==========================================================  =========
Burgers (1D)       ``FNO(1, 1, modes=(16,), width=64)``                         549,569
Darcy (2D)         ``FNO(1, 1, modes=(12, 12), width=32, padding=9)``           2,368,001
Navier-Stokes 2D   ``FNO(10, 1, modes=(12, 12), width=20)``                     926,357
Navier-Stokes 3D   :class:`operators.space_time_fno.SpaceTimeFNO`               6,558,377
=================  ==========================================================  =========
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from operators.layers import ChannelLinear, ChannelMLP, DomainPadding, GridEmbedding, SpectralConv, get_activation


class FourierLayer(nn.Module):
    """One Fourier layer ``v -> act(K v + W v)``: spectral conv plus a pointwise linear skip.

    Shapes:
        ``(B, width, *S) -> (B, width, *S)``.
    """

    def __init__(
        self,
        width: int,
        modes: Sequence[int],
        activation: str | nn.Module | None = "gelu",
        share_corner_weights: bool = False,
        fft_norm: str = "backward",
    ) -> None:
        super().__init__()
        self.spectral = SpectralConv(width, width, modes, share_corner_weights=share_corner_weights, fft_norm=fft_norm)
        self.skip = ChannelLinear(width, width)
        self.activation = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.spectral(x) + self.skip(x))


class FNO(nn.Module):
    """Fourier Neural Operator on a uniform 1-, 2- or 3-D grid.

    Args:
        in_channels: input channels ``C_in`` (without the grid channels).
        out_channels: output channels ``C_out``.
        modes: Fourier modes kept per spatial dim; ``len(modes)`` is the dimension ``d``
            (see :class:`~operators.layers.SpectralConv`).
        width: channels of the Fourier layers.
        n_layers: number of Fourier layers.
        lifting_channels: ``None`` lifts with one pointwise linear layer (paper);
            an int uses a 2-layer pointwise MLP with that hidden width.
        projection_channels: hidden width of the 2-layer projection MLP (paper: 128).
        padding: domain padding (per dim or a scalar): points (int) or fraction of the
            resolution (float in (0, 1)); ``0`` for periodic problems. See
            :class:`~operators.layers.DomainPadding`.
        padding_mode: ``"one-sided"`` (paper) or ``"symmetric"``.
        use_grid: append the grid coordinates in ``[0, 1]^d`` to the input channels.
        grid_endpoint: grid convention (per dim or a scalar), see
            :class:`~operators.layers.GridEmbedding`: ``False`` = ``j/n`` (periodic),
            ``True`` = ``linspace(0, 1, n)`` (closed domain, paper code).
        activation: activation name or module (``"gelu"`` in the paper).
        share_corner_weights: share the spectral weights across frequency corners.
        fft_norm: FFT normalisation of the spectral convolutions.

    Shapes:
        ``(B, C_in, *S) -> (B, C_out, *S)`` with ``len(S) == d``; any resolution at least
        :meth:`min_resolution` (after padding) is accepted. The output has the input's dtype also under
        ``torch.autocast`` (the last projection layer runs in full precision, see
        :mod:`operators.layers.precision`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: Sequence[int],
        width: int = 32,
        n_layers: int = 4,
        lifting_channels: int | None = None,
        projection_channels: int = 128,
        padding: float | int | Sequence[float | int] = 0,
        padding_mode: str = "one-sided",
        use_grid: bool = True,
        grid_endpoint: bool | Sequence[bool] = False,
        activation: str | nn.Module | None = "gelu",
        share_corner_weights: bool = False,
        fft_norm: str = "backward",
    ) -> None:
        super().__init__()
        if isinstance(modes, int):
            raise TypeError("FNO: `modes` must be a sequence with one entry per spatial dim, e.g. (16,) for 1D")
        self.modes = tuple(int(m) for m in modes)
        self.n_dim = len(self.modes)
        if not 1 <= self.n_dim <= 3:
            raise ValueError(f"FNO supports 1, 2 or 3 spatial dims; got modes={self.modes}")
        if n_layers < 1:
            raise ValueError(f"FNO needs n_layers >= 1; got {n_layers}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.width = int(width)
        self.n_layers = int(n_layers)

        self.grid = GridEmbedding(self.n_dim, endpoint=grid_endpoint) if use_grid else None
        lift_in = self.in_channels + (self.n_dim if use_grid else 0)
        if lifting_channels is None:
            self.lifting: nn.Module = ChannelLinear(lift_in, self.width)
        else:
            self.lifting = ChannelMLP(lift_in, self.width, hidden_channels=lifting_channels, activation=activation)
        self.padding = DomainPadding(padding, self.n_dim, mode=padding_mode)
        self.layers = nn.ModuleList(
            FourierLayer(
                self.width,
                self.modes,
                activation=activation if i < self.n_layers - 1 else None,
                share_corner_weights=share_corner_weights,
                fft_norm=fft_norm,
            )
            for i in range(self.n_layers)
        )
        # the last projection layer runs in full precision: float32 output for float32 input under autocast
        self.projection = ChannelMLP(
            self.width, self.out_channels, hidden_channels=projection_channels, n_layers=2, activation=activation,
            full_precision_output=True,
        )

    def count_parameters(self) -> int:
        """Number of trainable real parameters (complex spectral weights count twice)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check_input(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.dim() != self.n_dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FNO expects input (B, {self.in_channels}, *S) with {self.n_dim} spatial dims; "
                f"got shape {tuple(x.shape)}"
            )
        spatial = tuple(x.shape[2:])
        padded = tuple(n + a * (2 if self.padding.mode == "symmetric" else 1)
                       for n, a in zip(spatial, self.padding.amounts(spatial)))
        need = self.layers[0].spectral.min_resolution()
        if any(p < n for p, n in zip(padded, need)):
            pad_note = f" (padded to {padded})" if padded != spatial else ""
            raise ValueError(
                f"FNO modes={self.modes} need a grid of at least {'x'.join(map(str, need))}; "
                f"got resolution {spatial}{pad_note}"
            )
        return spatial

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        """Grid embedding + lifting: ``(B, C_in, *S) -> (B, width, *S)``."""
        if self.grid is not None:
            x = self.grid(x)
        return self.lifting(x)

    def fourier_layers(self, v: torch.Tensor) -> torch.Tensor:
        """Pad, apply the Fourier layers, unpad: ``(B, width, *S) -> (B, width, *S)``."""
        spatial = tuple(v.shape[2:])
        v = self.padding.pad(v)
        for layer in self.layers:
            v = layer(v)
        return self.padding.unpad(v, spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S) -> (B, C_out, *S)``."""
        self._check_input(x)
        return self.projection(self.fourier_layers(self.lift(x)))
