"""Training losses for operators on channel-first fields ``(B, C, *S)`` and on graph node features.

Every loss maps ``(pred, target)`` of shape ``(B, C, *S)`` to a scalar (``reduction=
"mean"``: mean over the batch of a per-sample value; ``"sum"``: sum over the batch) or,
with ``reduction="none"``, to the ``(B,)`` per-sample values.

Graph batches (:mod:`datasets.batching`): rows are the nodes of all graphs, ``(N_nodes, C)``, and the losses that
support them (``supports_graphs``: MSE, relative L2, the accumulated error) take the sample of every row,
``index`` (``batch.batch``), and the number of samples ``n``: every per-sample value is then a reduction over the
nodes of one graph, so a graph counts once whatever its node count.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from datasets.batching import sample_counts, sample_sums

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


class _PerSampleLoss(nn.Module, abc.ABC):
    #: whether :meth:`per_sample` takes ``index`` / ``n`` (graph rows); grid-only losses (finite differences,
    #: spectra) raise a one-line error on a graph batch
    supports_graphs = False

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

    @abc.abstractmethod
    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of every sample: ``(B, C, *S), (B, C, *S) -> (B,)``."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
                n: int | None = None) -> torch.Tensor:
        self._check(pred, target)
        return _reduce(self.sample_values(pred, target, index, n), self.reduction)

    def sample_values(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
                      n: int | None = None) -> torch.Tensor:
        """:meth:`per_sample` for grid rows (``index=None``) or graph rows (``index``: the sample of every row)."""
        if index is None:
            return self.per_sample(pred, target)
        if not self.supports_graphs:
            raise ValueError(f"{type(self).__name__} needs grid data (B, C, *S); graph batches support "
                             "MSELoss, RelativeL2Loss, BatchL2NormLoss and AccumulatedSquaredError")
        return self.per_sample(pred, target, index, n)


class MSELoss(_PerSampleLoss):
    """Mean squared error: per sample ``mean((pred - y)**2)`` over ``(C, *S)``.

    With ``reduction="mean"`` this equals ``torch.nn.functional.mse_loss``.
    """

    supports_graphs = True

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
                   n: int | None = None) -> torch.Tensor:
        sq = (pred - target).pow(2)
        if index is None:
            return sq.flatten(1).mean(dim=1)
        return sample_sums(sq, index, n) / sample_counts(sq, index, n).clamp_min(1)


class RelativeL2Loss(_PerSampleLoss):
    """Relative L2 error (the FNO paper's training/test metric): per sample
    ``||pred - y||_2 / ||y||_2`` with the norms over all non-batch dims ``(C, *S)``.

    On a uniform grid the quadrature weight cancels in the ratio, so this is the
    relative L2(domain) error. ``eps`` guards against an all-zero target.
    """

    def __init__(self, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(reduction)
        self.eps = eps

    supports_graphs = True

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
                   n: int | None = None) -> torch.Tensor:
        if index is None:
            diff = (pred - target).flatten(1).norm(dim=1)
            ref = target.flatten(1).norm(dim=1)
        else:  # norms over every node of each graph
            diff = sample_sums((pred - target).pow(2), index, n).sqrt()
            ref = sample_sums(target.pow(2), index, n).sqrt()
        return diff / ref.clamp_min(self.eps)


class BatchL2NormLoss(nn.Module):
    """The L2 norm of the error over the whole batch, ``||pred - y||_2 = sqrt(sum (pred - y)^2)`` over every
    sample, channel and point: MP-PDE's training loss (Brandstetter et al. 2022, the official code takes the square
    root of a summed MSE). Works on grid and graph rows alike (``index`` / ``n`` are accepted and unused)."""

    supports_graphs = True

    def forward(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
                n: int | None = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        return (pred - target).pow(2).sum().sqrt()


def step_mean_squared_error(pred: torch.Tensor, target: torch.Tensor, step_channels: int,
                            index: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
    """Mean squared error of every sample at every step: ``(B, T)``.

    Args:
        pred, target: time-major rows, ``(B, T * C, *S)`` (grids) or ``(N_nodes, T * C)`` (graphs).
        step_channels: ``C``.
        index, n: the sample of every row and the number of samples (graphs), see :mod:`datasets.batching`.
    The mean is over the ``C`` channels and every point (node) of the sample.
    """
    rows, tc = target.shape[:2]
    if tc % step_channels:
        raise ValueError(f"{tc} target channels are not a whole number of steps of {step_channels} channels")
    t = tc // step_channels
    # (rows, T, C, *S) -> squared error summed over C and space per row and step: (rows, T)
    sq = (pred - target).pow(2).reshape(rows, t, -1)
    per_row = sq.sum(dim=-1)
    if index is None:
        return per_row / sq.shape[-1]
    size = int(n) if n is not None else int(index.max()) + 1
    from torch_geometric.utils import scatter

    sums = scatter(per_row, index, dim=0, dim_size=size, reduce="sum")  # (B, T)
    nodes = scatter(torch.ones_like(per_row[:, 0]), index, dim=0, dim_size=size, reduce="sum")
    return sums / (nodes * sq.shape[-1]).clamp_min(1).unsqueeze(1)


class AccumulatedSquaredError(_PerSampleLoss):
    """The accumulated error of a rollout (MP-PDE, Brandstetter et al. 2022, Table 1): per trajectory the sum over
    the predicted steps of the spatial mean of the squared error,
    ``sum_t (1 / N_x) sum_x (u_pred(t, x) - u(t, x))^2``, averaged over trajectories by the metric.

    Args:
        step_channels: channels per step ``C`` of the time-major targets (the mean is also over them).
    """

    supports_graphs = True

    def __init__(self, step_channels: int = 1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.step_channels = int(step_channels)

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
                   n: int | None = None) -> torch.Tensor:
        return step_mean_squared_error(pred, target, self.step_channels, index, n).sum(dim=1)


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


# ---------------------------------------------------------------------------------------------- Sobolev norms
def sobolev_weights(shape: tuple[int, ...], s: float, alpha: float = 1.0, device=None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Squared Sobolev weights ``(alpha + 4 pi^2 |k|^2)^s`` on the ``rfftn`` frequency grid of a periodic
    grid ``shape`` on ``[0, 1]^d`` (integer wavenumbers ``k``; the last dim is the half spectrum).

    With ``alpha = 0`` and ``s < 0`` the mean mode (``k = 0``) gets weight 0 (the seminorm of the
    mean-free part), since ``|k|^(2s)`` is undefined there.
    """
    freqs = [torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=torch.float64) for n in shape[:-1]]
    freqs.append(torch.fft.rfftfreq(shape[-1], d=1.0 / shape[-1], device=device, dtype=torch.float64))
    grids = torch.meshgrid(*freqs, indexing="ij")
    k2 = sum(g**2 for g in grids)
    base = alpha + 4 * math.pi**2 * k2
    if alpha == 0 and s < 0:
        w = torch.where(k2 > 0, base.clamp_min(1e-300) ** s, torch.zeros_like(base))
    else:
        w = base**s
    return w.to(dtype)


def sobolev_norm_squared(u: torch.Tensor, s: float, alpha: float = 1.0, n_dim: int | None = None) -> torch.Tensor:
    """``||u||_{H^s}^2`` of a periodic field on ``[0, 1]^d``, computed exactly by Parseval.

    ``u`` has shape ``(..., *S)`` with the last ``d = n_dim`` dims the periodic grid (default: every dim
    after the first two, i.e. ``(B, C, *S)``); the squared norms of all leading dims but the first are summed,
    so the result has shape ``(u.shape[0],)`` (for ``(B, T, S, S)`` trajectories that is the squared Bochner
    norm ``sum_t ||u(t)||^2_{H^s}``). Norm convention: ``||u||^2_{H^s} = sum_k (alpha + 4 pi^2 |k|^2)^s
    |u_k|^2`` with ``u_k`` the Fourier coefficients (``rfftn / N``), so ``H^0`` is the ``L^2([0,1]^d)`` norm
    (the grid mean of ``u^2``). Any real ``s`` (negative included).
    """
    d = u.dim() - 2 if n_dim is None else int(n_dim)
    if d < 1 or d > u.dim() - 1:
        raise ValueError(f"sobolev_norm_squared: n_dim={n_dim} does not fit a tensor of shape {tuple(u.shape)}")
    spatial = tuple(u.shape[-d:])
    uf = u.double() if u.dtype == torch.float64 else u.float()
    u_hat = torch.fft.rfftn(uf, dim=tuple(range(-d, 0)), norm="forward")
    power = u_hat.real**2 + u_hat.imag**2
    # rfft stores each conjugate pair once: double every column of the last dim but k = 0 and the Nyquist one
    n_last = spatial[-1]
    mult = torch.full((power.shape[-1],), 2.0, device=u.device, dtype=power.dtype)
    mult[0] = 1.0
    if n_last % 2 == 0:
        mult[-1] = 1.0
    weights = sobolev_weights(spatial, s, alpha, device=u.device, dtype=power.dtype) * mult
    return (power * weights).flatten(1).sum(dim=1)


class SobolevLoss(_PerSampleLoss):
    """Sobolev ``H^s`` error on periodic grids (any real ``s``; ``s = -1`` is the ``H^{-1}`` norm used by the
    Spectral-Refiner), computed spectrally with weights ``(alpha + 4 pi^2 |k|^2)^(s/2)`` (Parseval).

    Per sample: ``||pred - y||_{H^s}`` over all channels (for time-major trajectories ``(B, T*C, *S)`` this is
    the Bochner norm ``L^2(0, T; H^s)`` with the time sum as quadrature), or, with ``relative=True``,
    ``||pred - y|| / ||y||``. ``time_average=True`` instead averages the per-step (``step_channels``
    channels each) relative errors over the steps. ``n_dim`` periodic dims (default: all after the channels).
    ``s = 0, relative=True`` equals :class:`RelativeL2Loss` (the relative Bochner ``L^2(0,T;L^2)`` norm).
    """

    def __init__(self, s: float = 0.0, alpha: float = 1.0, relative: bool = False, time_average: bool = False,
                 step_channels: int = 1, n_dim: int | None = None, reduction: str = "mean",
                 eps: float = 1e-12) -> None:
        super().__init__(reduction)
        self.s = float(s)
        self.alpha = float(alpha)
        if self.alpha < 0:
            raise ValueError(f"SobolevLoss: alpha={alpha} is not allowed; use alpha >= 0")
        self.relative = bool(relative)
        self.time_average = bool(time_average)
        if time_average and not relative:
            raise ValueError("SobolevLoss: time_average=True needs relative=True")
        self.step_channels = int(step_channels)
        self.n_dim = n_dim
        self.eps = eps

    def extra_repr(self) -> str:
        return (f"s={self.s}, alpha={self.alpha}, relative={self.relative}, time_average={self.time_average}, "
                f"reduction={self.reduction!r}")

    def _sq(self, u: torch.Tensor) -> torch.Tensor:
        return sobolev_norm_squared(u, self.s, self.alpha, self.n_dim)

    def per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() < 3:
            raise ValueError(f"SobolevLoss needs at least one periodic dim; got shape {tuple(pred.shape)}")
        diff = pred - target
        if self.time_average:
            b, tc = pred.shape[:2]
            c = self.step_channels
            if tc % c:
                raise ValueError(f"{tc} channels are not a whole number of steps of {c} channels")
            d = self.n_dim if self.n_dim is not None else pred.dim() - 2
            steps_diff = diff.reshape(b * (tc // c), c, *pred.shape[2:])
            steps_ref = target.reshape(b * (tc // c), c, *pred.shape[2:])
            rel = (sobolev_norm_squared(steps_diff, self.s, self.alpha, d).sqrt()
                   / sobolev_norm_squared(steps_ref, self.s, self.alpha, d).sqrt().clamp_min(self.eps))
            return rel.reshape(b, tc // c).mean(dim=1)
        num = self._sq(diff).sqrt()
        if not self.relative:
            return num.to(pred.dtype)
        return (num / self._sq(target).sqrt().clamp_min(self.eps)).to(pred.dtype)


class RelativeSobolevLoss(SobolevLoss):
    """Relative ``H^s`` error (:class:`SobolevLoss` with ``relative=True``)."""

    def __init__(self, s: float = 0.0, alpha: float = 1.0, time_average: bool = False, step_channels: int = 1,
                 n_dim: int | None = None, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(s=s, alpha=alpha, relative=True, time_average=time_average, step_channels=step_channels,
                         n_dim=n_dim, reduction=reduction, eps=eps)


class BochnerRelativeL2Loss(RelativeSobolevLoss):
    """Relative Bochner ``L^2(0, T; L^2)`` error of a trajectory ``(B, T*C, *S)``, computed spectrally
    (Spectral-Refiner stage 1 training loss; numerically equal to :class:`RelativeL2Loss`)."""

    def __init__(self, reduction: str = "mean", eps: float = 1e-12) -> None:
        super().__init__(s=0.0, alpha=1.0, reduction=reduction, eps=eps)
