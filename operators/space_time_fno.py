"""Space-time FNO: the paper's FNO-3D for Navier-Stokes (Li et al., ICLR 2021, Sec. 5.3).

The ``T_in`` input snapshots are stacked as channels, repeated along a new time axis of
length ``n_steps_out``, the ``(x, y, t)`` grid is appended, and a 3-D :class:`FNO`
(padded along time only, since the solution is not periodic in time) maps this to all
``n_steps_out`` future snapshots at once.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from operators.fno import FNO


class SpaceTimeFNO(nn.Module):
    """FNO-3D over ``(x, y, t)`` predicting ``n_steps_out`` steps from ``T_in`` steps.

    Channel layout (inputs and outputs): time-major, i.e. channel ``t * C + c`` holds
    physical channel ``c`` at step ``t`` (``(B, T, C, S, S)`` reshaped to
    ``(B, T*C, S, S)``); for scalar fields (``C = 1``, the paper's vorticity) it is
    simply one channel per step.

    Args:
        in_channels: physical channels ``C`` per snapshot.
        t_in: number of input snapshots ``T_in``.
        n_steps_out: default number of output snapshots ``T_out``.
        modes: Fourier modes ``(m_x, m_y, m_t)`` (paper: ``(8, 8, 8)``).
        width: channels of the Fourier layers (paper: 20).
        n_layers: number of Fourier layers (paper: 4).
        time_padding: zero-padding points appended along time (paper: 6).
        grid_endpoint: spatial grid convention, see :class:`~operators.layers.GridEmbedding`: ``False``
            (default) ``j / S`` (periodic, e.g. Navier-Stokes), ``True`` ``linspace(0, 1, S)`` (grids that
            include both boundaries); the time coordinates are always ``linspace(0, 1, T_out)``.
        out_channels: physical channels per output snapshot (default ``in_channels``).
        **fno_kwargs: passed to :class:`~operators.fno.FNO` (``projection_channels``,
            ``lifting_channels``, ``activation``, ...).

    The time grid spans ``[0, 1]`` whatever the number of steps, so passing a different
    ``n_steps_out`` to :meth:`forward` samples the *same* time window more finely or
    coarsely (the paper's zero-shot super-resolution in time); the spatial grid follows
    ``grid_endpoint``.

    Shapes:
        ``(B, C*T_in, S_x, S_y) -> (B, C_out*T_out, S_x, S_y)``.
    """

    def __init__(
        self,
        in_channels: int,
        t_in: int,
        n_steps_out: int,
        modes: Sequence[int] = (8, 8, 8),
        width: int = 20,
        n_layers: int = 4,
        time_padding: int = 6,
        out_channels: int | None = None,
        grid_endpoint: bool = False,
        **fno_kwargs,
    ) -> None:
        super().__init__()
        if len(tuple(modes)) != 3:
            raise ValueError(f"SpaceTimeFNO needs 3 modes (x, y, t); got {modes}")
        for key in ("padding", "use_grid"):
            if key in fno_kwargs:
                raise TypeError(f"SpaceTimeFNO sets `{key}` itself; use `time_padding`")
        if not isinstance(grid_endpoint, bool):
            raise ValueError(f"SpaceTimeFNO: grid_endpoint={grid_endpoint!r} is not allowed; use true or false "
                             "(one flag for both spatial dims)")
        self.in_channels = int(in_channels)
        self.out_channels = int(in_channels if out_channels is None else out_channels)
        self.t_in = int(t_in)
        self.n_steps_out = int(n_steps_out)
        self.fno = FNO(
            self.in_channels * self.t_in,
            self.out_channels,
            modes=modes,
            width=width,
            n_layers=n_layers,
            padding=(0, 0, int(time_padding)),
            use_grid=True,
            grid_endpoint=(grid_endpoint, grid_endpoint, True),
            **fno_kwargs,
        )

    def count_parameters(self) -> int:
        """Number of trainable real parameters (complex weights count twice)."""
        return self.fno.count_parameters()

    def forward(self, x: torch.Tensor, n_steps_out: int | None = None) -> torch.Tensor:
        """``(B, C*T_in, S_x, S_y) -> (B, C_out*T_out, S_x, S_y)``, ``T_out = n_steps_out``
        (default: the constructor's)."""
        t_out = self.n_steps_out if n_steps_out is None else int(n_steps_out)
        if x.dim() != 4 or x.shape[1] != self.in_channels * self.t_in:
            raise ValueError(
                f"SpaceTimeFNO expects (B, {self.in_channels * self.t_in}, S_x, S_y) "
                f"(C={self.in_channels} x T_in={self.t_in}); got shape {tuple(x.shape)}"
            )
        b, _, sx, sy = x.shape
        x = x.unsqueeze(-1).expand(b, x.shape[1], sx, sy, t_out)  # (B, C*T_in, Sx, Sy, T_out)
        y = self.fno(x)  # (B, C_out, Sx, Sy, T_out)
        return y.permute(0, 4, 1, 2, 3).reshape(b, t_out * self.out_channels, sx, sy)
