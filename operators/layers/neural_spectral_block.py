"""Neural spectral block of the Latent Spectral Model (Wu et al., "Solving High-Dimensional PDEs with Latent
Spectral Models", ICML 2023, Sec. 3).

A field is split into patches; in each patch the ``L`` grid points are projected onto a few learnable latent
tokens by attention (coordinate -> latent), the tokens are updated by a learned combination of trigonometric
basis operators (the latent spectral transition), and the tokens are projected back onto the grid points by
attention (latent -> coordinate) with a residual connection; the patches are then merged.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from operators.layers.channel_mlp import ChannelLinear


def patchify(x: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """Split ``(B, C, *S)`` into non-overlapping patches: ``(B * prod(S / P), C, prod(P))``.

    Patches are ordered row-major over the patch grid, with the batch outermost; every ``S_i`` must be a
    multiple of ``P_i``. :func:`unpatchify` is the inverse.
    """
    b, c, *spatial = x.shape
    n_dim = len(patch_size)
    if len(spatial) != n_dim:
        raise ValueError(f"patchify: patch_size {tuple(patch_size)} has {n_dim} dims, the field {len(spatial)}")
    if any(s % p for s, p in zip(spatial, patch_size)):
        raise ValueError(f"patchify: grid {tuple(spatial)} is not a multiple of the patch size {tuple(patch_size)}")
    counts = [s // p for s, p in zip(spatial, patch_size)]
    split = [b, c]
    for n, p in zip(counts, patch_size):
        split += [n, p]
    x = x.reshape(split)
    # (B, C, n_1, p_1, ..., n_d, p_d) -> (B, n_1, ..., n_d, C, p_1, ..., p_d)
    perm = [0] + [2 + 2 * i for i in range(n_dim)] + [1] + [3 + 2 * i for i in range(n_dim)]
    return x.permute(perm).reshape(b * math.prod(counts), c, math.prod(patch_size))


def unpatchify(x: torch.Tensor, patch_size: Sequence[int], spatial: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B * prod(S / P), C, prod(P)) -> (B, C, *S)``."""
    n_dim = len(patch_size)
    counts = [s // p for s, p in zip(spatial, patch_size)]
    c = x.shape[1]
    b = x.shape[0] // math.prod(counts)
    x = x.reshape(b, *counts, c, *patch_size)
    # (B, n_1, ..., n_d, C, p_1, ..., p_d) -> (B, C, n_1, p_1, ..., n_d, p_d)
    perm = [0, 1 + n_dim]
    for i in range(n_dim):
        perm += [1 + i, 2 + n_dim + i]
    return x.permute(perm).reshape(b, c, *spatial)


class LatentSpectralTransition(nn.Module):
    """Latent spectral update of the tokens, per channel ``c`` (LSM's "neural spectral block" solver step):

        T_c <- T_c + sum_{k=0}^{K-1} [ a_{c,k} sin(k pi T_c / K) + b_{c,k} cos(k pi T_c / K) ]

    i.e. the latent operator is approximated by ``K`` learned trigonometric basis operators (paper Sec. 3.2,
    "neural spectral block", basis ``{sin(k pi x), cos(k pi x)}`` with frequencies scaled by ``1/K``, as the
    official implementation thuml/Latent-Spectral-Models ``models/LSM_2D.py``, ``get_basis`` +
    ``compl_mul2d`` + the residual in ``NeuralSpectralBlock2d.forward``). ``k = 0`` contributes the constant
    ``b_{c,0}`` (``cos 0 = 1``; ``sin 0 = 0``, so ``a_{c,0}`` is unused but kept, as in the official code).

    Args:
        channels: ``C``.
        num_basis: ``K``.

    Parameters ``sin_weight`` (``a``) and ``cos_weight`` (``b``), each ``(C, K)``, initialised ``U[0, 1/C)``
    (official code).

    Shapes:
        ``(..., C) -> (..., C)`` (the channel dim last).
    """

    def __init__(self, channels: int, num_basis: int = 12) -> None:
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"LatentSpectralTransition needs num_basis >= 1; got {num_basis}")
        self.channels = int(channels)
        self.num_basis = int(num_basis)
        self.sin_weight = nn.Parameter(torch.rand(self.channels, self.num_basis) / self.channels)
        self.cos_weight = nn.Parameter(torch.rand(self.channels, self.num_basis) / self.channels)
        frequencies = torch.arange(self.num_basis, dtype=torch.float32) * math.pi / self.num_basis
        self.register_buffer("frequencies", frequencies, persistent=False)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_basis={self.num_basis}"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        phase = tokens.unsqueeze(-1) * self.frequencies.to(tokens.dtype)  # (..., C, K)
        update = (torch.sin(phase) * self.sin_weight).sum(-1) + (torch.cos(phase) * self.cos_weight).sum(-1)
        return tokens + update


class NeuralSpectralBlock(nn.Module):
    """Patch-wise latent spectral processing (LSM Sec. 3.1-3.2) of an n-D channel-first field.

    Per patch of ``L = prod(patch_size)`` points ``x`` (``(L, C)``), with ``H`` heads of ``C / H`` channels:

    1. coordinate -> latent: ``(k, v) = W_kv x`` (pointwise), learnable tokens ``T0`` (``(H, M, C/H)``),
       ``T = softmax(T0 k^T) v + T0`` per head;
    2. latent spectral transition (:class:`LatentSpectralTransition`) on ``T`` viewed as ``(M, C)``;
    3. latent -> coordinate: ``q = W_q x``, ``x <- softmax(q T^T) T + x`` per head.

    As the official code the attention logits are not scaled by ``1/sqrt(C/H)``; the tokens and the spectral
    weights are initialised ``U[0, 1/C)``.

    Args:
        channels: ``C`` (a multiple of ``num_heads``).
        patch_size: patch extent per spatial dim (its length is the dimension ``d``).
        num_basis: ``K`` trigonometric basis functions.
        num_tokens: ``M`` latent tokens per patch.
        num_heads: ``H`` attention heads.

    Shapes:
        ``(B, C, *S) -> (B, C, *S)`` with every ``S_i`` a multiple of ``patch_size[i]``.
    """

    def __init__(self, channels: int, patch_size: Sequence[int], num_basis: int = 12, num_tokens: int = 4,
                 num_heads: int = 8) -> None:
        super().__init__()
        if isinstance(patch_size, int):
            raise TypeError("NeuralSpectralBlock: patch_size must be a sequence with one entry per spatial dim")
        if channels % num_heads:
            raise ValueError(f"NeuralSpectralBlock: channels={channels} is not a multiple of num_heads={num_heads}")
        if num_tokens < 1:
            raise ValueError(f"NeuralSpectralBlock needs num_tokens >= 1; got {num_tokens}")
        self.channels = int(channels)
        self.patch_size = tuple(int(p) for p in patch_size)
        if any(p < 1 for p in self.patch_size):
            raise ValueError(f"NeuralSpectralBlock: patch sizes must be >= 1; got {self.patch_size}")
        self.num_tokens = int(num_tokens)
        self.num_heads = int(num_heads)
        self.head_channels = self.channels // self.num_heads
        self.latent = nn.Parameter(torch.rand(self.num_heads, self.num_tokens, self.head_channels) / self.channels)
        self.encoder_kv = ChannelLinear(self.channels, 2 * self.channels)
        self.decoder_q = ChannelLinear(self.channels, self.channels)
        self.transition = LatentSpectralTransition(self.channels, num_basis)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, patch_size={self.patch_size}, num_tokens={self.num_tokens}, "
                f"num_heads={self.num_heads}")

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, L) -> (N, H, L, C/H)``; channel ``h * C/H + j`` is channel ``j`` of head ``h``."""
        n, _, length = x.shape
        return x.reshape(n, self.num_heads, self.head_channels, length).transpose(2, 3)

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        """Coordinate -> latent: ``(N, C, L) -> (N, H, M, C/H)`` tokens."""
        k, v = self.encoder_kv(patches).chunk(2, dim=1)
        tokens = self.latent.unsqueeze(0).expand(patches.shape[0], -1, -1, -1).to(patches.dtype)
        return F.scaled_dot_product_attention(tokens, self._heads(k), self._heads(v), scale=1.0) + tokens

    def spectral(self, tokens: torch.Tensor) -> torch.Tensor:
        """Latent spectral transition on ``(N, H, M, C/H)`` tokens (per channel ``h * C/H + j``)."""
        n = tokens.shape[0]
        flat = tokens.transpose(1, 2).reshape(n, self.num_tokens, self.channels)  # (N, M, C)
        flat = self.transition(flat)
        return flat.reshape(n, self.num_tokens, self.num_heads, self.head_channels).transpose(1, 2)

    def decode(self, patches: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Latent -> coordinate with residual: ``(N, C, L), (N, H, M, C/H) -> (N, C, L)``."""
        q = self._heads(self.decoder_q(patches))
        out = F.scaled_dot_product_attention(q, tokens, tokens, scale=1.0)  # (N, H, L, C/H)
        n, _, length, _ = out.shape
        return out.transpose(2, 3).reshape(n, self.channels, length) + patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(x.shape[2:])
        if x.shape[1] != self.channels or len(spatial) != len(self.patch_size):
            raise ValueError(f"NeuralSpectralBlock expects (B, {self.channels}, *S) with {len(self.patch_size)} "
                             f"spatial dims; got {tuple(x.shape)}")
        patches = patchify(x, self.patch_size)
        tokens = self.spectral(self.encode(patches))
        return unpatchify(self.decode(patches, tokens), self.patch_size, spatial)
