"""Append normalised grid coordinates to a field's channels (FNO "use_grid")."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class GridEmbedding(nn.Module):
    """Concatenate the coordinates of a uniform grid on ``[0, 1]^d`` as extra channels.

    Args:
        n_dim: number of spatial dims ``d``.
        endpoint: if ``False`` (default) the coordinates are ``j / n`` (a periodic grid,
            consistent across resolutions: the 64-point grid is the even points of the
            128-point grid); if ``True`` they are ``j / (n - 1)`` (``linspace(0, 1, n)``,
            as the FNO paper code; right for grids that include both boundaries, e.g.
            Darcy). A sequence gives one flag per dim (e.g. periodic space, closed
            time interval for the space-time FNO). The model configs take it from the data
            (``grid_endpoint: ${not:${data.periodic}}``), so the coordinates are the data's
            own grid points at every resolution (zero-shot super-resolution).

    Shapes:
        ``(B, C, *S) -> (B, C + d, *S)``; channel ``C + i`` holds the coordinate of dim ``i``.
    """

    def __init__(self, n_dim: int, endpoint: bool | Sequence[bool] = False) -> None:
        super().__init__()
        self.n_dim = int(n_dim)
        if isinstance(endpoint, bool):
            endpoint = (endpoint,) * self.n_dim
        if len(endpoint) != self.n_dim:
            raise ValueError(f"GridEmbedding: got {len(endpoint)} endpoint flags for {self.n_dim} dims")
        self.endpoint = tuple(bool(e) for e in endpoint)

    def extra_repr(self) -> str:
        return f"n_dim={self.n_dim}, endpoint={self.endpoint}"

    def grid(self, spatial: tuple[int, ...], device=None, dtype=None) -> torch.Tensor:
        """The ``(d, *S)`` coordinate tensor of grid ``spatial``."""
        axes = []
        for n, endpoint in zip(spatial, self.endpoint):
            if endpoint:
                axes.append(torch.linspace(0.0, 1.0, n, device=device, dtype=dtype))
            else:
                axes.append(torch.arange(n, device=device, dtype=dtype) / n)
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(x.shape[-self.n_dim :])
        g = self.grid(spatial, device=x.device, dtype=x.dtype)
        return torch.cat([x, g.unsqueeze(0).expand(x.shape[0], *g.shape)], dim=1)
