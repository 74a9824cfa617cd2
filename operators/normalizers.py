"""Data normalizers (fit on the training set, stored in the model's ``state_dict``)."""

from __future__ import annotations

import abc

from typing import Sequence

import torch
from torch import nn


class _Normalizer(nn.Module, abc.ABC):
    """Common API: ``fit(x)``, ``encode(x)``, ``decode(x)``; ``forward`` is ``encode``.
    A boolean ``fitted`` buffer records whether :meth:`fit` was called (or a fitted
    state was loaded) and travels in the ``state_dict``; a Python mirror of it answers
    :attr:`is_fitted`, so encoding and decoding never wait for the device."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fitted", torch.tensor(False))
        self._is_fitted = False

    @property
    def is_fitted(self) -> bool:
        return self._is_fitted

    def _mark_fitted(self) -> None:
        self.fitted.fill_(True)
        self._is_fitted = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        key = prefix + "fitted"
        if key in state_dict:  # read once when a state is loaded, never on the hot path
            self._is_fitted = bool(state_dict[key])

    @abc.abstractmethod
    def fit(self, x: torch.Tensor) -> "_Normalizer":
        """Fit the statistics on the training tensor ``x`` ``(N, C, *S)``."""

    @abc.abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical -> normalised."""

    @abc.abstractmethod
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised -> physical."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


class IdentityNormalizer(_Normalizer):
    """No-op normalizer with the :class:`UnitGaussianNormalizer` API."""

    def fit(self, x: torch.Tensor) -> "IdentityNormalizer":
        self._mark_fitted()
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


class UnitGaussianNormalizer(_Normalizer):
    """Standardise to zero mean / unit std: ``encode(x) = (x - mean) / (std + eps)``.

    As in the FNO code, the statistics are *pointwise* by default (``reduce_dims=
    "pointwise"`` or ``(0,)``): ``mean`` and ``std`` are taken over the sample (batch) dim
    only, so every channel and grid point gets its own statistics, of shape
    ``(1, *x.shape[1:])`` (they then only apply at the training resolution).
    ``reduce_dims="channel"`` reduces over every dim but the channel dim 1 (statistics of
    shape ``(1, C, 1, ..., 1)``, usable at any resolution); an explicit tuple of dims is
    also accepted. ``std`` is the unbiased estimate (``torch.std``).

    ``mean``, ``std`` and ``fitted`` are buffers, so they are saved in and restored from
    the ``state_dict`` of any module holding the normalizer (an unfitted normalizer
    accepts a fitted state of any shape).

    Shapes:
        :meth:`fit`: the training tensor ``(N, C, *S)``; :meth:`encode` / :meth:`decode`:
        any tensor broadcastable with the statistics, typically ``(B, C, *S)``.
    """

    def __init__(self, eps: float = 1e-5, reduce_dims: str | Sequence[int] = "pointwise") -> None:
        super().__init__()
        self.eps = float(eps)
        if isinstance(reduce_dims, str):
            if reduce_dims not in ("pointwise", "channel"):
                raise ValueError(f"reduce_dims must be 'pointwise', 'channel' or a tuple of dims; got {reduce_dims!r}")
            self.reduce_dims: str | tuple[int, ...] = reduce_dims
        else:
            self.reduce_dims = tuple(int(d) for d in reduce_dims)
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("std", torch.ones(0))

    def _dims(self, x: torch.Tensor) -> tuple[int, ...]:
        if self.reduce_dims == "pointwise":
            return (0,)
        if self.reduce_dims == "channel":
            return (0,) + tuple(range(2, x.dim()))
        return self.reduce_dims  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return f"eps={self.eps}, reduce_dims={self.reduce_dims}, fitted={self.is_fitted}"

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> "UnitGaussianNormalizer":
        """Compute the statistics of the training tensor ``x`` (in float64) and store them."""
        if x.shape[0] < 2:
            raise ValueError("UnitGaussianNormalizer.fit needs at least 2 samples")
        xd = x.detach().double()
        dims = self._dims(x)
        # keep the statistics on the module's device (fit may get a CPU training tensor)
        self.mean = xd.mean(dim=dims, keepdim=True).to(device=self.fitted.device, dtype=x.dtype)
        self.std = xd.std(dim=dims, keepdim=True).to(device=self.fitted.device, dtype=x.dtype)
        self._mark_fitted()
        return self

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("UnitGaussianNormalizer is not fitted; call fit(train_tensor) first")

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean``, ``std`` shaped for ``x``: channel statistics ``(1, C, 1, ..., 1)`` fitted on grid tensors also
        apply to graph node rows ``(N_nodes, C)`` (:mod:`datasets.batching`: channels are axis 1 in both)."""
        if self.reduce_dims == "channel" and self.mean.dim() != x.dim():
            shape = (1, -1) + (1,) * (x.dim() - 2)
            return self.mean.reshape(shape), self.std.reshape(shape)
        return self.mean, self.std

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._require_fitted()
        mean, std = self._stats(x)
        return (x - mean) / (std + self.eps)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        self._require_fitted()
        mean, std = self._stats(x)
        return x * (std + self.eps) + mean

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The statistics' shape is only known after fit(): adopt the stored shapes.
        for name in ("mean", "std"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
