"""Spatiotemporal FNO (SFNO) of Cao et al., "Spectral-Refiner: Accurate Fine-Tuning of Spatiotemporal Fourier
Neural Operator for Turbulent Flows" (ICLR 2025): a trajectory-to-trajectory operator between Bochner spaces.

Architecture (fields ``(B, C, S_x, S_y, T)``, 3-D FFTs over ``(x, y, t)``)::

    w(t_1..t_Tin) --[space-time positional encoding, layer norm, pointwise lift to width]-->
        lifting spectral conv  (T_in steps -> latent_steps, resampled in temporal frequency)
        (n_layers - 1) x [ v <- act( FFN(SpectralConv(v)) + W v ) ]
        pointwise reduction to C channels
        output spectral conv   (latent_steps -> T_out steps by zero-padding the temporal spectrum, the time axis
                                zero-padded in front so the trajectory need not be periodic in time)
    --> w(t_Tin) + increments  =  w(t_Tin+1 .. t_Tin+T_out)

``n_layers`` counts every hidden spectral convolution (the lifting one included, as the paper's code), so
``n_layers=4`` has four space-time spectral convolutions before the output layer. No dataset normaliser is
needed (layer norm on the input; the output is the last input frame plus predicted increments), so the model
takes any input length, any output length and any resolution large enough for the modes.

The output layer (``output``) maps one channel to one channel per physical field; the Spectral-Refiner
(:class:`operators.tasks.spectral_refiner.SpectralRefiner`) enlarges its modes to the full grid
(:meth:`SFNO.enlarge_output_modes`) and fine-tunes only it.

Paper / reference configuration for 2-D Navier-Stokes (nu = 1e-3, FNO data, 10 -> 40 steps at 64 x 64):
``SFNO(modes=(12, 12, 5), width=20, n_layers=4, latent_steps=10, ffn_channels=128)``: 9,245,131 real
parameters in the reference code; here :meth:`SFNO.count_parameters` = 9,239,371 (tests/test_sfno.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from operators.layers import ChannelLinear, ChannelMLP, SpectralConv, get_activation
from operators.layers.space_time import (
    ChannelLayerNorm,
    ResamplingSpectralConv,
    SpaceTimePositionalEncoding,
)


class SpaceTimeBlock(nn.Module):
    """``v -> act(FFN(K v) + W v)``: 3-D spectral conv, pointwise FFN (width -> ffn_channels -> width), linear
    skip. Shapes ``(B, width, S_x, S_y, T) -> same``."""

    def __init__(self, width: int, modes: Sequence[int], ffn_channels: int, activation: str = "gelu") -> None:
        super().__init__()
        self.spectral = SpectralConv(width, width, modes)
        self.ffn = ChannelMLP(width, width, hidden_channels=ffn_channels, n_layers=2, activation=activation)
        self.skip = ChannelLinear(width, width)
        self.activation = get_activation(activation)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.activation(self.ffn(self.spectral(v)) + self.skip(v))


class SFNO(nn.Module):
    """Spatiotemporal FNO: ``T_in`` snapshots in, any number ``T_out`` of following snapshots out.

    Args:
        in_channels: physical channels ``C`` per snapshot (1 for vorticity).
        t_in: input snapshots ``T_in`` (the default; inputs of another length also work, see ``forward``).
        n_steps_out: default number of output snapshots.
        out_channels: physical output channels (default ``in_channels``; must equal it: the prediction is the
            last input frame plus increments).
        modes: kept modes ``(m_x, m_y, m_t)`` of the hidden spectral convolutions (paper: 12, 12, 5).
        width: hidden channels (paper: 20).
        n_layers: hidden space-time spectral convolutions, the lifting one included (paper: 4).
        latent_steps: time steps of the hidden layers (paper: 10).
        ffn_channels: hidden width of the pointwise FFN after each spectral conv (paper: 128).
        output_modes: modes of the output spectral layer (default ``modes``).
        n_time_features, pe_time_step, pe_beta: temporal positional encoding, see
            :class:`~operators.layers.space_time.SpaceTimePositionalEncoding`.
        activation: activation name.

    Shapes (time-major channels as the data modules serve them): ``forward(x, n_steps_out=None)``:
    ``(B, T_in * C, S_x, S_y) -> (B, T_out * C, S_x, S_y)``; :meth:`forward_trajectory` works on
    ``(B, C, S_x, S_y, T)`` tensors. The output has the input's dtype also under ``torch.autocast`` (the output
    spectral layer keeps its float32 result, see :mod:`operators.layers.precision`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        t_in: int = 10,
        n_steps_out: int = 40,
        out_channels: int | None = None,
        modes: Sequence[int] = (12, 12, 5),
        width: int = 20,
        n_layers: int = 4,
        latent_steps: int = 10,
        ffn_channels: int = 128,
        output_modes: Sequence[int] | None = None,
        n_time_features: int | None = None,
        pe_time_step: float = 0.01,
        pe_beta: float = 0.01,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        modes = tuple(int(m) for m in modes)
        if len(modes) != 3:
            raise ValueError(f"SFNO needs 3 modes (x, y, t); got {modes}")
        if n_layers < 1:
            raise ValueError(f"SFNO needs n_layers >= 1; got {n_layers}")
        self.in_channels = int(in_channels)
        self.out_channels = int(in_channels if out_channels is None else out_channels)
        if self.out_channels != self.in_channels:
            raise ValueError(f"SFNO predicts increments of the input fields: out_channels={out_channels} must "
                             f"equal in_channels={in_channels}")
        self.t_in = int(t_in)
        self.n_steps_out = int(n_steps_out)
        self.modes = modes
        self.width = int(width)
        self.n_layers = int(n_layers)
        self.latent_steps = int(latent_steps)
        n_time_features = self.width if n_time_features is None else int(n_time_features)

        self.encoding = SpaceTimePositionalEncoding(2, n_time_features, time_step=pe_time_step, beta=pe_beta)
        lift_in = self.in_channels + self.encoding.n_features
        self.norm = ChannelLayerNorm(lift_in)
        self.lifting = ChannelLinear(lift_in, self.width)
        self.lifting_spectral = ResamplingSpectralConv(self.width, self.width, modes, out_steps=self.latent_steps)
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(self.width, modes, ffn_channels, activation) for _ in range(self.n_layers - 1)
        )
        self.reduction = ChannelLinear(self.width, self.out_channels)
        out_modes = modes if output_modes is None else tuple(int(m) for m in output_modes)
        # full precision: float32 increments for float32 input under autocast
        self.output = ResamplingSpectralConv(self.out_channels, self.out_channels, out_modes, time_padding=True,
                                             full_precision=True)

    # ------------------------------------------------------------------ utilities
    def count_parameters(self, trainable_only: bool = True) -> int:
        """Real parameters (complex spectral weights count twice)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def enlarge_output_modes(self, modes: Sequence[int | None]) -> None:
        """Replace the output spectral layer by one with ``modes`` (values are clipped below at the current
        modes; a ``None`` spatial entry keeps the current value, a ``None`` temporal entry takes every temporal
        mode of the latent trajectory); trained low-mode weights are copied, the new ones start at 0."""
        current = self.output.modes
        modes = list(modes)
        if modes[-1] is None:
            modes[-1] = self.output.max_time_modes(self.latent_steps)
        target = tuple(c if m is None else max(int(m), c) for m, c in zip(modes, current))
        if target != current:
            self.output = self.output.enlarged(target)

    # ------------------------------------------------------------------ forward
    def latent(self, w: torch.Tensor) -> torch.Tensor:
        """``(B, C, S_x, S_y, T_in) -> (B, C, S_x, S_y, latent_steps)``: everything before the output layer."""
        v = self.lifting(self.norm(self.encoding(w)))
        v = self.lifting_spectral(v, out_steps=self.latent_steps)
        for block in self.blocks:
            v = block(v)
        return self.reduction(v)

    def forward_trajectory(self, w: torch.Tensor, n_steps_out: int | None = None) -> torch.Tensor:
        """``(B, C, S_x, S_y, T_in) -> (B, C, S_x, S_y, T_out)``."""
        t_out = self.n_steps_out if n_steps_out is None else int(n_steps_out)
        return self.output(self.latent(w), out_steps=t_out) + w[..., -1:]

    def forward(self, x: torch.Tensor, n_steps_out: int | None = None) -> torch.Tensor:
        """``(B, T_in * C, S_x, S_y) -> (B, T_out * C, S_x, S_y)``, time-major channels."""
        c = self.in_channels
        if x.dim() != 4 or x.shape[1] % c:
            raise ValueError(f"SFNO expects (B, T_in*{c}, S_x, S_y) with time-major channels; got {tuple(x.shape)}")
        b, tc, sx, sy = x.shape
        w = x.reshape(b, tc // c, c, sx, sy).permute(0, 2, 3, 4, 1)  # (B, C, Sx, Sy, T_in)
        y = self.forward_trajectory(w, n_steps_out)
        t_out = y.shape[-1]
        return y.permute(0, 4, 1, 2, 3).reshape(b, t_out * c, sx, sy)
