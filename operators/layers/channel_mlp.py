"""Pointwise (1x1) channel mixing layers for channel-first n-D fields."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from operators.layers.precision import autocast_disabled, full_precision_dtype

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def get_activation(activation: str | nn.Module | None) -> nn.Module:
    """Return an activation module from a name (``gelu``, ``relu``, ``silu``, ``tanh``,
    ``identity``), an ``nn.Module`` (returned as is) or ``None`` (identity)."""
    if activation is None:
        return nn.Identity()
    if isinstance(activation, nn.Module):
        return activation
    try:
        return _ACTIVATIONS[activation.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}") from None


class ChannelLinear(nn.Module):
    """Pointwise linear map over the channel dim (a 1x1 convolution in any dimension).

    Args:
        in_channels, out_channels: channel counts of input / output.
        bias: add a learned bias.
        full_precision: compute outside autocast in the promoted dtype of input and weights
            (:mod:`operators.layers.precision`): under mixed precision a float32 output from bf16
            activations. The output layer of every network sets it.

    Shapes:
        ``(B, C_in, *S) -> (B, C_out, *S)`` for any number of spatial dims (incl. 0).

    Has exactly the parameters of ``nn.Linear(in_channels, out_channels)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, full_precision: bool = False) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.full_precision = bool(full_precision)
        lin = nn.Linear(self.in_channels, self.out_channels, bias=bias)  # default nn.Linear init
        self.weight = nn.Parameter(lin.weight.detach().clone())  # (C_out, C_in)
        self.bias = nn.Parameter(lin.bias.detach().clone()) if bias else None

    def extra_repr(self) -> str:
        extra = ", full_precision=True" if self.full_precision else ""
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, bias={self.bias is not None}{extra}"

    def _linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, c, *spatial = x.shape
        # one batched GEMM, B x (C_out, C_in) @ (C_in, prod(S)): ~3x faster than a 1x1 conv1d on CPU
        # (forward + backward); autocast treats bmm/baddbmm like conv1d
        x, weight = x.reshape(b, c, -1), weight.expand(b, -1, -1)
        y = torch.bmm(weight, x) if bias is None else torch.baddbmm(bias.view(1, -1, 1), weight, x)
        return y.reshape(b, self.out_channels, *spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *S) -> (B, C_out, *S)``."""
        if not self.full_precision:
            return self._linear(x, self.weight, self.bias)
        dtype = full_precision_dtype(x, self.weight)
        with autocast_disabled(x):
            bias = None if self.bias is None else self.bias.to(dtype)
            return self._linear(x.to(dtype), self.weight.to(dtype), bias)


class ChannelMLP(nn.Module):
    """Pointwise MLP over the channel dim: ``n_layers`` :class:`ChannelLinear` layers
    with ``activation`` between them (none after the last).

    Args:
        in_channels, out_channels: channel counts of input / output.
        hidden_channels: width of the hidden layers (default ``out_channels``).
        n_layers: number of linear layers (``1`` is a single :class:`ChannelLinear`).
        activation: name or module, see :func:`get_activation`.
        dropout: dropout probability after each hidden activation.
        full_precision_output: the last layer computes in full precision (see :class:`ChannelLinear`): the
            projection of a network, whose output is then float32 for float32 input under autocast.

    Shapes:
        ``(B, C_in, *S) -> (B, C_out, *S)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int | None = None,
        n_layers: int = 2,
        activation: str | nn.Module | None = "gelu",
        dropout: float = 0.0,
        full_precision_output: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"ChannelMLP needs n_layers >= 1; got {n_layers}")
        hidden = out_channels if hidden_channels is None else int(hidden_channels)
        sizes = [in_channels] + [hidden] * (n_layers - 1) + [out_channels]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            last = i == n_layers - 1
            layers.append(ChannelLinear(sizes[i], sizes[i + 1], full_precision=full_precision_output and last))
            if not last:
                layers.append(get_activation(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
