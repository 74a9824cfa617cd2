"""U-Net building blocks (Ronneberger et al., 2015) for channel-first 1-, 2- and 3-D fields: double
conv3x3-norm-activation blocks, max-pool down, (bi/tri)linear up with skip concatenation."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from operators.layers.channel_mlp import get_activation

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_UPSAMPLE_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _check_dim(n_dim: int) -> int:
    if n_dim not in _CONV:
        raise ValueError(f"U-Net blocks support 1, 2 or 3 spatial dims; got {n_dim}")
    return int(n_dim)


def make_norm(norm: str | None, channels: int, n_dim: int) -> nn.Module:
    """Normalisation layer by name: ``"batch"``, ``"instance"`` (affine), ``"group"`` (``min(32, C)`` groups
    dividing ``C``, the GroupNorm paper's default) or ``None`` / ``"none"``."""
    if norm is None or norm == "none":
        return nn.Identity()
    if norm == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[n_dim](channels)
    if norm == "instance":
        return {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[n_dim](channels, affine=True)
    if norm == "group":
        groups = next(g for g in range(min(32, channels), 0, -1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {norm!r}; choose from 'batch', 'instance', 'group', 'none'")


class DoubleConv(nn.Module):
    """``[conv3 (no bias when normalised) -> norm -> activation] x 2``; ``mid_channels`` defaults to ``out``.

    Shapes:
        ``(B, C_in, *S) -> (B, C_out, *S)``.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None, n_dim: int = 2,
                 norm: str | None = "batch", activation: str | nn.Module | None = "relu") -> None:
        super().__init__()
        n_dim = _check_dim(n_dim)
        mid = out_channels if mid_channels is None else int(mid_channels)
        conv = _CONV[n_dim]
        bias = norm in (None, "none")
        self.block = nn.Sequential(
            conv(in_channels, mid, kernel_size=3, padding=1, bias=bias),
            make_norm(norm, mid, n_dim),
            get_activation(activation),
            conv(mid, out_channels, kernel_size=3, padding=1, bias=bias),
            make_norm(norm, out_channels, n_dim),
            get_activation(activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Down(nn.Module):
    """Max-pool by 2, then :class:`DoubleConv`: ``(B, C_in, *S) -> (B, C_out, *floor(S / 2))``."""

    def __init__(self, in_channels: int, out_channels: int, n_dim: int = 2, norm: str | None = "batch",
                 activation: str | nn.Module | None = "relu") -> None:
        super().__init__()
        n_dim = _check_dim(n_dim)
        self.pool = _POOL[n_dim](2)
        self.conv = DoubleConv(in_channels, out_channels, n_dim=n_dim, norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """Upsample ``x`` by 2 (multi-linear, ``align_corners=True``), zero-pad it to the skip's size if needed,
    concatenate ``[skip, x]`` and apply :class:`DoubleConv` with ``in_channels // 2`` hidden channels.

    Args:
        in_channels: channels of the concatenation (skip + upsampled).

    Shapes:
        ``x (B, C_x, *S'), skip (B, C_skip, *S) -> (B, C_out, *S)`` with ``C_x + C_skip = in_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_dim: int = 2, norm: str | None = "batch",
                 activation: str | nn.Module | None = "relu") -> None:
        super().__init__()
        self.n_dim = _check_dim(n_dim)
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2, n_dim=n_dim, norm=norm,
                               activation=activation)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode=_UPSAMPLE_MODE[self.n_dim], align_corners=True)
        pads: list[int] = []
        for have, want in zip(reversed(x.shape[2:]), reversed(skip.shape[2:])):  # F.pad: last dim first
            diff = want - have
            pads += [diff // 2, diff - diff // 2]
        if any(pads):
            x = F.pad(x, pads)
        return self.conv(torch.cat([skip, x], dim=1))
