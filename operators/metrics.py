"""Per-sample metrics as torchmetrics states: exact averages over samples on one process and under DDP.

A metric of pdeforge is a per-sample loss (:mod:`operators.losses`: relative L2, relative H1, MSE) averaged over
the samples of a split. :class:`PerSampleMean` keeps the *sum* of the per-sample values and the *number* of
samples as states reduced by summation over ranks, so the epoch value is ``sum_i m_i / N`` over exactly the
evaluated samples, whatever the batch sizes and however the samples were sharded (with the unpadded
:class:`datasets.evaluation_sampler.EvaluationShardSampler`, every sample counts once).
"""
from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from operators.losses import (
    AccumulatedSquaredError,
    MSELoss,
    RelativeH1Loss,
    RelativeL2Loss,
)


class PerSampleMean(Metric):
    """Average over samples of ``loss.per_sample(pred, target)``.

    Args:
        loss: a per-sample loss (anything with ``per_sample(pred, target) -> (B,)``).

    Shapes: ``update(pred, target)`` takes ``(B, C, *S)`` grid tensors, or graph rows ``(N_nodes, C)`` with
    ``index`` (the graph of every node) and ``n`` (the number of graphs), so each graph counts once (any float dtype;
    evaluated in float32); ``compute()`` returns a float32 scalar.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(loss, "sample_values", None)):
            raise ValueError(f"{type(loss).__name__} has no per_sample(pred, target) method")
        self.loss = loss
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None,
               n: int | None = None) -> None:
        values = self.loss.sample_values(pred.float(), target.float(), index, n)
        self.total += values.detach().double().sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


def default_metrics(periodic: bool = False, graph: bool = False,
                    step_channels: int | None = None) -> dict[str, PerSampleMean]:
    """What every task reports, each averaged per sample: relative L2 and MSE; on grids also relative H1
    (finite differences that wrap around on periodic data, :func:`operators.losses.finite_difference_gradient`;
    graphs have no grid to difference on); for rollouts (``step_channels`` given) the accumulated error
    (:class:`operators.losses.AccumulatedSquaredError`)."""
    metrics = {"rel_l2": PerSampleMean(RelativeL2Loss(reduction="none"))}
    if not graph:
        metrics["rel_h1"] = PerSampleMean(RelativeH1Loss(reduction="none", periodic=periodic))
    metrics["mse"] = PerSampleMean(MSELoss(reduction="none"))
    if step_channels is not None:
        metrics["accumulated_error"] = PerSampleMean(AccumulatedSquaredError(step_channels, reduction="none"))
    return metrics


def metric_collection(periodic: bool, prefix: str, graph: bool = False,
                      step_channels: int | None = None) -> MetricCollection:
    """:func:`default_metrics` as a ``MetricCollection`` whose keys are ``<prefix><name>`` (e.g. ``val/rel_l2``)."""
    return MetricCollection(default_metrics(periodic, graph, step_channels), prefix=prefix, compute_groups=False)
