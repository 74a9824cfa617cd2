"""Pointwise (1x1) channel mixing layers for channel-first n-D fields."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

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

    Shapes:
        ``(B, C_in, *S) -> (B, C_out, *S)`` for any number of spatial dims (incl. 0).

    Has exactly the parameters of ``nn.Linear(in_channels, out_channels)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        lin = nn.Linear(self.in_channels, self.out_channels, bias=bias)  # default nn.Linear init
        self.weight = nn.Parameter(lin.weight.detach().clone())  # (C_out, C_in)
        self.bias = nn.Parameter(lin.bias.detach().clone()) if bias else None

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, bias={self.bias is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        y = F.conv1d(x.reshape(b, c, -1), self.weight.unsqueeze(-1), self.bias)
        return y.reshape(b, self.out_channels, *spatial)


class ChannelMLP(nn.Module):
    """Pointwise MLP over the channel dim: ``n_layers`` :class:`ChannelLinear` layers
    with ``activation`` between them (none after the last).

    Args:
        in_channels, out_channels: channel counts of input / output.
        hidden_channels: width of the hidden layers (default ``out_channels``).
        n_layers: number of linear layers (``1`` is a single :class:`ChannelLinear`).
        activation: name or module, see :func:`get_activation`.
        dropout: dropout probability after each hidden activation.

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
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"ChannelMLP needs n_layers >= 1; got {n_layers}")
        hidden = out_channels if hidden_channels is None else int(hidden_channels)
        sizes = [in_channels] + [hidden] * (n_layers - 1) + [out_channels]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(ChannelLinear(sizes[i], sizes[i + 1]))
            if i < n_layers - 1:
                layers.append(get_activation(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
