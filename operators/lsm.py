"""Latent Spectral Model (Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent Spectral Models",
ICML 2023), following the paper's / official code's 2-D architecture (thuml/Latent-Spectral-Models,
``models/LSM_2D.py``), for 1-, 2- or 3-D grids.

Architecture (``n_scales = 5``, channels ``w, 2w, 4w, 8w, 8w``)::

    a(x) --[append grid x in [0,1]^d]--> lifting (pointwise linear) --> zero-pad (end of each dim) to a
         multiple of 2^(n_scales-1) * patch_size
         --> U-Net encoder: DoubleConv -> 4 x [max-pool 2, DoubleConv]            (features x_1 .. x_5)
         --> every x_i through a NeuralSpectralBlock (patches -> latent tokens -> trigonometric basis update
             -> back to the patch points), same patch size at every scale
         --> U-Net decoder: 4 x [upsample 2, concat skip, DoubleConv] --> pointwise linear
         --> crop --> projection (pointwise 2-layer MLP, hidden 128, GELU) --> u(x)

DoubleConv = ``[conv3 -> BatchNorm -> ReLU] x 2`` (official code). The padding makes every scale divisible by
the patch size: the paper's Darcy grid (85) with patch 6 is padded to 96 = 16 * 6 (the official script pads 11
points), Navier-Stokes 64 with patch 4 needs none.

Paper configurations (parameter counts as :meth:`LSM.count_parameters`; identical to the official model's,
whose parameters ours map one-to-one):

=================  =========================================================  ==========
problem            call                                                       params
=================  =========================================================  ==========
Darcy (85 -> 96)   ``LSM(1, 1, width=64, patch_size=(6, 6))``                 19,187,457
Navier-Stokes 2D   ``LSM(10, 1, width=64, patch_size=(4, 4))``                19,188,033
=================  =========================================================  ==========
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from operators.layers import ChannelLinear, ChannelMLP, DomainPadding, GridEmbedding
from operators.layers.neural_spectral_block import NeuralSpectralBlock
from operators.layers.unet_blocks import DoubleConv, Down, Up


class LSM(nn.Module):
    """Latent Spectral Model: a U-Net whose skip connections go through neural spectral blocks.

    Args:
        in_channels: input channels ``C_in`` (without the grid channels).
        out_channels: output channels ``C_out``.
        width: channels ``w`` of the finest scale (paper: 64; scale ``i`` has ``w * 2^i``, the coarsest the same
            as the one above it, i.e. ``w, 2w, 4w, 8w, 8w`` for 5 scales).
        patch_size: patch extent per spatial dim, the same at every scale; its length is the dimension ``d``
            (paper: 6 x 6 for Darcy, 4 x 4 for Navier-Stokes).
        num_basis: trigonometric basis functions ``K`` of the latent spectral update (paper: 12).
        num_tokens: latent tokens per patch (paper: 4).
        num_heads: attention heads of the latent projections (paper: 8; must divide ``width``).
        n_scales: number of U-Net scales (paper: 5).
        projection_channels: hidden width of the output MLP (paper: 128).
        use_grid: append the grid coordinates to the input.
        grid_endpoint: grid convention, see :class:`~operators.layers.GridEmbedding` (the official code uses
            ``linspace(0, 1, n)``, i.e. ``True``).
        norm: normalisation in the conv blocks: ``"batch"`` (paper), ``"instance"``, ``"group"`` or ``"none"``.
        activation: activation of the conv blocks (paper: ``"relu"``).
        projection_activation: activation of the output MLP (paper: ``"gelu"``).

    Shapes:
        ``(B, C_in, *S) -> (B, C_out, *S)`` with ``len(S) == d``, any resolution: the lifted field is zero-padded
        at the end of each dim to the next multiple of :meth:`grid_multiple` and cropped back before the output
        MLP. The output has the input's dtype also under ``torch.autocast`` (the last projection layer runs in
        full precision, see :mod:`operators.layers.precision`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 64,
        patch_size: Sequence[int] = (4, 4),
        num_basis: int = 12,
        num_tokens: int = 4,
        num_heads: int = 8,
        n_scales: int = 5,
        projection_channels: int = 128,
        use_grid: bool = True,
        grid_endpoint: bool | Sequence[bool] = True,
        norm: str | None = "batch",
        activation: str | nn.Module | None = "relu",
        projection_activation: str | nn.Module | None = "gelu",
    ) -> None:
        super().__init__()
        if isinstance(patch_size, int):
            raise TypeError("LSM: `patch_size` must be a sequence with one entry per spatial dim, e.g. (4, 4) for 2D")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.n_dim = len(self.patch_size)
        if not 1 <= self.n_dim <= 3:
            raise ValueError(f"LSM supports 1, 2 or 3 spatial dims; got patch_size={self.patch_size}")
        if n_scales < 2:
            raise ValueError(f"LSM needs n_scales >= 2; got {n_scales}")
        if width % num_heads:
            raise ValueError(f"LSM: width={width} must be a multiple of num_heads={num_heads}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.width = int(width)
        self.n_scales = int(n_scales)

        # channels per scale: w, 2w, ..., w 2^(n-2), and the coarsest as the one above it
        channels = [self.width * 2**i for i in range(self.n_scales - 1)]
        channels.append(channels[-1])
        self.scale_channels = tuple(channels)

        self.grid = GridEmbedding(self.n_dim, endpoint=grid_endpoint) if use_grid else None
        self.lifting = ChannelLinear(self.in_channels + (self.n_dim if use_grid else 0), self.width)
        conv_kw = {"n_dim": self.n_dim, "norm": norm, "activation": activation}
        self.encoder = nn.ModuleList([DoubleConv(self.width, channels[0], **conv_kw)])
        self.encoder.extend(Down(channels[i - 1], channels[i], **conv_kw) for i in range(1, self.n_scales))
        self.spectral_blocks = nn.ModuleList(
            NeuralSpectralBlock(c, self.patch_size, num_basis=num_basis, num_tokens=num_tokens, num_heads=num_heads)
            for c in channels
        )
        # decoder, coarse to fine: at scale i the upsampled features (as many channels as the skip) are
        # concatenated with the skip; the output has the channels of scale i - 1 (w at the finest)
        self.decoder = nn.ModuleList(
            Up(2 * channels[i], channels[i - 1] if i > 0 else self.width, **conv_kw)
            for i in reversed(range(self.n_scales - 1))
        )
        self.out_conv = ChannelLinear(self.width, self.width)
        # the last projection layer runs in full precision: float32 output for float32 input under autocast
        self.projection = ChannelMLP(self.width, self.out_channels, hidden_channels=projection_channels, n_layers=2,
                                     activation=projection_activation, full_precision_output=True)

    def count_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def grid_multiple(self) -> tuple[int, ...]:
        """Per dim, the padded grid must be a multiple of this: ``2^(n_scales - 1) * patch_size``."""
        return tuple(2 ** (self.n_scales - 1) * p for p in self.patch_size)

    def padded_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The grid the U-Net runs on for input grid ``spatial``."""
        return tuple(math.ceil(n / m) * m for n, m in zip(spatial, self.grid_multiple()))

    def _padding(self, spatial: Sequence[int]) -> DomainPadding:
        amounts = tuple(p - n for p, n in zip(self.padded_shape(spatial), spatial))
        return DomainPadding(amounts, self.n_dim, mode="one-sided")

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != self.n_dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"LSM expects input (B, {self.in_channels}, *S) with {self.n_dim} spatial dims; "
                f"got shape {tuple(x.shape)}"
            )

    def backbone(self, v: torch.Tensor) -> torch.Tensor:
        """U-Net with spectral skips on a padded grid: ``(B, w, *S_pad) -> (B, w, *S_pad)``."""
        features = []
        for down in self.encoder:
            v = down(v)
            features.append(v)
        features = [block(f) for block, f in zip(self.spectral_blocks, features)]
        v = features[-1]
        for up, skip in zip(self.decoder, reversed(features[:-1])):
            v = up(v, skip)
        return self.out_conv(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S) -> (B, C_out, *S)``."""
        self._check_input(x)
        spatial = tuple(x.shape[2:])
        if self.grid is not None:
            x = self.grid(x)
        padding = self._padding(spatial)
        v = padding.pad(self.lifting(x))
        v = padding.unpad(self.backbone(v), spatial)
        return self.projection(v)
