"""Training losses for operators on channel-first fields ``(B, C, *S)``.

Every loss maps ``(pred, target)`` of shape ``(B, C, *S)`` to a scalar (``reduction=
"mean"``: mean over the batch of a per-sample value; ``"sum"``: sum over the batch) or,
with ``reduction="none"``, to the ``(B,)`` per-sample values.
"""

from __future__ import annotations

import torch
from torch import nn

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


class _PerSampleLoss(nn.Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    @staticmethod
    def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if pred.dim() < 2:
            raise ValueError(f"expected (B, C, *S) tensors; got shape {tuple(pred.shape)}")

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check(pred, target)
        return _reduce(self.per_sample(pred, target), self.reduction)


class MSELoss(_PerSampleLoss):
    """Mean squared error: per sample ``mean((pred - y)**2)`` over ``(C, *S)``.

    With ``reduction="mean"`` this equals ``torch.nn.functional.mse_loss``.
    """

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).pow(2).flatten(1).mean(dim=1)


class RelativeL2Loss(_PerSampleLoss):
    """Relative L2 error (the FNO paper's training/test metric): per sample
    ``||pred - y||_2 / ||y||_2`` with the norms over all non-batch dims ``(C, *S)``.

    On a uniform grid the quadrature weight cancels in the ratio, so this is the
    relative L2(domain) error. ``eps`` guards against an all-zero target.
    """

    def __init__(self, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(reduction)
        self.eps = eps

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = (pred - target).flatten(1).norm(dim=1)
        ref = target.flatten(1).norm(dim=1)
        return diff / ref.clamp_min(self.eps)


def finite_difference_gradient(u: torch.Tensor, periodic: bool = False) -> list[torch.Tensor]:
    """Finite-difference gradient of ``u`` of shape ``(B, C, *S)`` on a uniform grid on
    ``[0, 1]^d`` (``d = u.dim() - 2``); returns ``d`` tensors of shape ``(B, C, *S)``.

    * ``periodic=False``: the grid includes both ends, spacing ``h = 1/(n-1)``;
      second-order central differences inside, first-order one-sided at the edges
      (``torch.gradient``).
    * ``periodic=True``: grid ``j/n``, spacing ``h = 1/n``; central differences with
      wrap-around, ``(u[j+1] - u[j-1]) / (2h)``.
    """
    d = u.dim() - 2
    grads = []
    for i in range(d):
        dim = 2 + i
        n = u.shape[dim]
        if periodic:
            h = 1.0 / n
            grads.append((torch.roll(u, -1, dims=dim) - torch.roll(u, 1, dims=dim)) / (2 * h))
        else:
            if n < 2:
                raise ValueError(f"finite differences need >= 2 points per dim; got shape {tuple(u.shape)}")
            grads.append(torch.gradient(u, spacing=1.0 / (n - 1), dim=dim, edge_order=1)[0])
    return grads


class RelativeH1Loss(_PerSampleLoss):
    """Relative H1 error: per sample

    ``sqrt(||e||^2 + sum_i ||d_i e||^2) / sqrt(||y||^2 + sum_i ||d_i y||^2)``, ``e = pred - y``,

    with discrete L2 norms summed over ``(C, *S)`` and the partial derivatives ``d_i``
    over the ``d`` spatial dims taken by :func:`finite_difference_gradient` on a uniform
    grid on ``[0, 1]^d`` (``periodic`` selects the grid convention). The quadrature
    weight ``h^d`` is common to every term and cancels.
    """

    def __init__(self, reduction: str = "mean", periodic: bool = False, eps: float = 1e-12) -> None:
        super().__init__(reduction)
        self.periodic = periodic
        self.eps = eps

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, periodic={self.periodic}"

    def _sq_h1(self, u: torch.Tensor) -> torch.Tensor:
        total = u.flatten(1).pow(2).sum(dim=1)
        for g in finite_difference_gradient(u, periodic=self.periodic):
            total = total + g.flatten(1).pow(2).sum(dim=1)
        return total

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() < 3:
            raise ValueError(f"RelativeH1Loss needs at least one spatial dim; got shape {tuple(pred.shape)}")
        num = self._sq_h1(pred - target)
        den = self._sq_h1(target)
        return num.sqrt() / den.sqrt().clamp_min(self.eps)
