"""Evaluation of a trained task on a data split: metrics, per-step rollout error, plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from operators.plotting import plot_prediction, plot_rollout_error
from operators.metrics import default_metrics

#: an extra evaluation metric: ``(pred, batch) -> per-sample values (B,)``
ExtraMetric = Callable[[torch.Tensor, dict], torch.Tensor]


def extra_metrics_for(task: Any, datamodule: Any, step_channels: int = 1) -> dict[str, ExtraMetric]:
    """Metrics beyond :func:`default_metrics` for this task and data: physics residuals the data supports
    (the ``H^-1`` Navier-Stokes residual for time-dependent NS vorticity, :mod:`operators.physics`) and whatever
    the task exposes through an ``extra_metrics(datamodule)`` method."""
    from operators.physics import residual_metrics_for

    metrics: dict[str, ExtraMetric] = dict(residual_metrics_for(datamodule, step_channels))
    hook = getattr(task, "extra_metrics", None)
    if callable(hook):
        metrics.update(hook(datamodule))
    return metrics


def per_step_relative_l2(pred: torch.Tensor, truth: torch.Tensor, step_channels: int) -> torch.Tensor:
    """Relative L2 error of every sample at every time step.

    Args:
        pred, truth: ``(B, T * C, *S)`` with time-major channels.
        step_channels: ``C``.
    Returns:
        ``(B, T)``.
    """
    b, tc = truth.shape[:2]
    if tc % step_channels:
        raise ValueError(f"{tc} target channels are not a whole number of steps of {step_channels} channels")
    diff = (pred - truth).reshape(b, tc // step_channels, -1)
    ref = truth.reshape(b, tc // step_channels, -1)
    return diff.norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)


@torch.no_grad()
def evaluate_split(
    task: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    device: torch.device,
    step_channels: int,
    plot_dir: str | Path | None = None,
    label: str = "",
    extra_metrics: dict[str, ExtraMetric] | None = None,
    periodic: bool = False,
) -> dict[str, Any]:
    """Average every metric over all samples of ``batches``; for multi-step targets also the error per step.

    Returns ``{"rel_l2": ..., "rel_h1": ..., "mse": ..., "n_samples": ..., "rel_l2_per_step": [...]?,
    "plots": [...]}``, plus one entry per ``extra_metrics`` (averaged per sample). ``periodic``: the data's
    periodicity (the relative H1 metric's finite differences wrap around on periodic data).
    """
    task.eval().to(device)
    metrics = {name: m.to(device) for name, m in default_metrics(periodic).items()}
    extra_metrics = dict(extra_metrics or {})
    sums: dict[str, float] = {name: 0.0 for name in extra_metrics}
    step_sum: torch.Tensor | None = None
    n = 0
    first: tuple[torch.Tensor, torch.Tensor] | None = None
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = task.predict_batch(batch)
        y = batch["y"]
        b = y.shape[0]
        for metric in metrics.values():
            metric.update(pred, y)
        for name, fn in extra_metrics.items():
            sums[name] += float(fn(pred, batch).sum())
        steps = per_step_relative_l2(pred, y, step_channels).sum(0)
        step_sum = steps if step_sum is None else step_sum + steps
        if first is None:
            first = (y[0].cpu(), pred[0].cpu())
        n += b
    if n == 0:
        raise ValueError("the evaluation split is empty; use n_test >= 1")
    out: dict[str, Any] = {name: float(metric.compute()) for name, metric in metrics.items()}
    out.update({name: total / n for name, total in sums.items()})
    out["n_samples"] = n
    plots: list[str] = []
    if step_sum is not None and step_sum.numel() > 1:
        out["rel_l2_per_step"] = (step_sum / n).tolist()
        if plot_dir is not None:
            plots.append(str(plot_rollout_error(out["rel_l2_per_step"], Path(plot_dir) / f"rollout_error{label}.png",
                                                title=f"error vs rollout step {label}".strip())))
    if plot_dir is not None and first is not None and first[0].dim() in (2, 3):
        plots.append(str(plot_prediction(first[0], first[1], Path(plot_dir) / f"prediction{label}.png",
                                         title=f"test sample 0 {label}".strip())))
    out["plots"] = plots
    return out
