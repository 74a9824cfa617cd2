"""Small reusable building blocks shared by the operators in :mod:`operators`."""

from operators.layers.channel_mlp import ChannelLinear, ChannelMLP, get_activation
from operators.layers.domain_padding import DomainPadding
from operators.layers.grid_embedding import GridEmbedding
from operators.layers.spectral_conv import SpectralConv

__all__ = [
    "ChannelLinear",
    "ChannelMLP",
    "DomainPadding",
    "GridEmbedding",
    "SpectralConv",
    "get_activation",
]
