"""MgNO: multigrid neural operator (He, Liu & Xu, "MgNO: Efficient Parameterization of Linear Operators via
Multigrid", ICLR 2024) for 2-D fields.

Architecture (no lifting or projection network: the input field enters the first layer directly)::

    u^0 = a(x)                                           (B, C_in, H, W)
    u^k = act( W^k(u^{k-1}) + B^k(u^{k-1}) ),  k = 1..n_layers
          W^k: one multi-channel V-cycle (operators.layers.multigrid.VCycle), C_{k-1} -> width
          B^k: 1x1 convolution with bias
    out = 1x1 convolution (with bias) of u^{n_layers} -> C_out

Paper Darcy configuration: ``MgNO(1, 1, width=24, n_layers=4, levels=6, smoothing=[1, 1, 1, 1, 1, 2])``
(one pre-smoothing step per level, two on the coarsest) with ``coarse_guess="restrict"``: 572,662 parameters
(paper: 0.57M). The textbook correction scheme ``coarse_guess="zero"`` has 468,982.

Grids: every size must be a multiple of ``2^(levels-1)`` (a one-line ValueError names the size and the allowed
sizes), unless ``pad_to_multiple=True``: then the input is padded in the boundary mode (zeros, circular or reflect)
symmetrically up to the next multiple and the output is cropped back (e.g. the FNO Darcy grid 85 -> 96 for 6 levels).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from operators.layers import ChannelLinear, get_activation
from operators.layers.multigrid import (
    VCycle,
    check_multigrid_size,
    check_padding_mode,
    pad_field,
)


class MgNOLayer(nn.Module):
    """``u -> act(W u + B u)``: a V-cycle ``W`` plus a 1x1 convolution with bias ``B``."""

    def __init__(self, in_channels: int, out_channels: int, levels: int, smoothing: Sequence | None,
                 padding_mode: str, coarse_guess: str, activation: str | nn.Module | None) -> None:
        super().__init__()
        self.vcycle = VCycle(in_channels, out_channels, levels, smoothing, padding_mode, coarse_guess)
        self.bias = ChannelLinear(in_channels, out_channels, bias=True)
        self.activation = get_activation(activation)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.activation(self.vcycle(u) + self.bias(u))


class MgNO(nn.Module):
    """Multigrid neural operator on a uniform 2-D grid.

    Args:
        in_channels: input channels ``C_in`` (the first V-cycle's right-hand side channels).
        out_channels: output channels ``C_out``.
        width: channels of every hidden layer (the V-cycle iterates).
        n_layers: number of MgNO layers.
        levels: multigrid levels per V-cycle.
        smoothing: per level ``[pre, post]`` smoothing steps (an int = pre only), fine to coarse; default one
            pre-smoothing step per level and two on the coarsest (the paper's Darcy setting).
        padding_mode: boundary condition of every convolution: ``"zeros"`` (Dirichlet), ``"circular"``
            (periodic), ``"reflect"`` (Neumann).
        coarse_guess: initial iterate on the coarse levels, ``"restrict"`` (paper code) or ``"zero"``; see
            :mod:`operators.layers.multigrid`.
        activation: activation after every layer (``"gelu"`` in the paper).
        pad_to_multiple: pad grids that are not multiples of ``2^(levels-1)`` and crop the output back, instead
            of raising.

    Shapes:
        ``(B, C_in, H, W) -> (B, C_out, H, W)``. Under ``torch.autocast`` the multigrid residuals and iterates
        and the output projection run in full precision (:mod:`operators.layers.precision`): float32 output for
        float32 input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 24,
        n_layers: int = 4,
        levels: int = 6,
        smoothing: Sequence | None = None,
        padding_mode: str = "zeros",
        coarse_guess: str = "restrict",
        activation: str | nn.Module | None = "gelu",
        pad_to_multiple: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"MgNO needs n_layers >= 1; got {n_layers!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"MgNO needs levels >= 1; got {levels!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.width = int(width)
        self.n_layers = n_layers
        self.levels = levels
        self.padding_mode = check_padding_mode(padding_mode)
        self.pad_to_multiple = bool(pad_to_multiple)
        if smoothing is None:
            smoothing = [1] * (levels - 1) + [2]
        smoothing = [list(s) if not isinstance(s, int) else s for s in smoothing]
        self.layers = nn.ModuleList(
            MgNOLayer(self.in_channels if k == 0 else self.width, self.width, levels, smoothing, padding_mode,
                      coarse_guess, activation)
            for k in range(n_layers)
        )
        # full precision: float32 output for float32 input under autocast
        self.projection = ChannelLinear(self.width, self.out_channels, bias=True, full_precision=True)

    @property
    def multiple(self) -> int:
        """Grid sizes the V-cycles accept are multiples of this (``2^(levels-1)``)."""
        return 2 ** (self.levels - 1)

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _padding(self, spatial: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``F.pad`` amounts (left, right, top, bottom) that make ``spatial`` a multiple of :attr:`multiple`."""
        extra = [(-n) % self.multiple for n in spatial]  # (H, W)
        h, w = extra
        return (w // 2, w - w // 2, h // 2, h - h // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MgNO expects input (B, {self.in_channels}, H, W); got shape {tuple(x.shape)}")
        spatial = tuple(x.shape[-2:])
        pad = (0, 0, 0, 0)
        if self.pad_to_multiple:
            pad = self._padding(spatial)
            if self.padding_mode == "reflect" and any(p >= n for p, n in zip((pad[2], pad[0]), spatial)):
                raise ValueError(f"MgNO cannot reflect-pad grid {'x'.join(map(str, spatial))} to a multiple of "
                                 f"{self.multiple}; use a larger grid or fewer levels")
            x = pad_field(x, pad, self.padding_mode)
        check_multigrid_size(tuple(x.shape[-2:]), self.levels, "MgNO")
        for layer in self.layers:
            x = layer(x)
        out = self.projection(x)
        if any(pad):
            out = out[..., pad[2]:pad[2] + spatial[0], pad[0]:pad[0] + spatial[1]]
        return out
