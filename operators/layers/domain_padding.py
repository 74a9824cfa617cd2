"""Zero padding of the spatial domain for non-periodic problems (FNO paper, Darcy/NS-3D)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _is_fraction(p: float | int) -> bool:
    return isinstance(p, float) and 0.0 < p < 1.0


class DomainPadding(nn.Module):
    """Pad the last ``n_dim`` dims with zeros before the Fourier layers and crop after.

    The FFT assumes periodicity; padding a non-periodic field (e.g. Darcy flow, or the
    time axis of the space-time FNO) gives the network room to represent a
    non-periodic function on the original domain.

    Args:
        padding: per-dim amount (a scalar applies to every dim). An ``int`` (or a whole
            float such as ``6.0``) is a number of grid points; a ``float`` in ``(0, 1)``
            is a fraction of that dim's resolution, rounded (``0.11`` pads an 85-point
            grid by 9 points, as the paper's Darcy model).
        n_dim: number of spatial dims.
        mode: ``"one-sided"`` pads at the end of each dim only (as the paper code);
            ``"symmetric"`` pads the same amount at both ends.

    Shapes:
        :meth:`pad`: ``(B, C, *S) -> (B, C, *S_padded)``;
        :meth:`unpad`: ``(B, C, *S_padded) -> (B, C, *S)`` (the sizes of the last
        :meth:`pad` call on this module are used, or pass ``spatial``).
    """

    def __init__(self, padding: float | int | Sequence[float | int], n_dim: int, mode: str = "one-sided") -> None:
        super().__init__()
        if mode not in ("one-sided", "symmetric"):
            raise ValueError(f"DomainPadding mode must be 'one-sided' or 'symmetric'; got {mode!r}")
        if isinstance(padding, (int, float)):
            padding = (padding,) * n_dim
        padding = tuple(padding)
        if len(padding) != n_dim:
            raise ValueError(f"DomainPadding: got {len(padding)} padding values for {n_dim} dims")
        for p in padding:
            if p < 0 or (not _is_fraction(p) and float(p) != int(p)):
                raise ValueError(
                    f"DomainPadding: padding must be a fraction in [0, 1) or a whole number of points; got {padding}"
                )
        self.padding = padding
        self.n_dim = int(n_dim)
        self.mode = mode

    def extra_repr(self) -> str:
        return f"padding={self.padding}, mode={self.mode!r}"

    @property
    def active(self) -> bool:
        return any(p > 0 for p in self.padding)

    def amounts(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Number of points added per dim (per side for ``symmetric``) for grid ``spatial``."""
        out = []
        for p, n in zip(self.padding, spatial):
            out.append(int(round(p * n)) if _is_fraction(p) else int(p))
        return tuple(out)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        spatial = tuple(x.shape[-self.n_dim :])
        amounts = self.amounts(spatial)
        if not any(amounts):
            return x
        pads: list[int] = []
        for a in reversed(amounts):  # F.pad lists the last dim first
            pads += [a, a] if self.mode == "symmetric" else [0, a]
        return F.pad(x, pads)

    def unpad(self, x: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
        """Crop ``x`` back to the original grid ``spatial`` (the sizes before :meth:`pad`)."""
        amounts = self.amounts(spatial)
        if not any(amounts):
            return x
        idx = [slice(None)] * (x.dim() - self.n_dim)
        for a, n in zip(amounts, spatial):
            start = a if self.mode == "symmetric" else 0
            idx.append(slice(start, start + n))
        return x[tuple(idx)]
