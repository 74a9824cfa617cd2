"""Evaluation of a trained task on a data split: metrics, per-step rollout error, plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from datasets.batching import num_samples, sample_index, to_device
from operators.losses import step_mean_squared_error
from operators.metrics import default_metrics
from operators.plotting import plot_rollout_error, plot_sample

#: an extra evaluation metric: ``(pred, batch) -> per-sample values (B,)``
ExtraMetric = Callable[[torch.Tensor, dict], torch.Tensor]


def extra_metrics_for(task: Any, datamodule: Any, step_channels: int = 1) -> dict[str, ExtraMetric]:
    """Metrics beyond :func:`default_metrics` for this task and data: physics residuals the data supports
    (the ``H^-1`` Navier-Stokes residual for time-dependent NS vorticity, :mod:`operators.physics`) and whatever
    the task exposes through an ``extra_metrics(datamodule)`` method."""
    from operators.physics import residual_metrics_for

    graph = bool(getattr(datamodule, "is_graph", False))  # the residuals are spectral: grid data only
    metrics: dict[str, ExtraMetric] = {} if graph else dict(residual_metrics_for(datamodule, step_channels))
    hook = getattr(task, "extra_metrics", None)
    if callable(hook):
        metrics.update(hook(datamodule))
    return metrics


def per_step_relative_l2(pred: torch.Tensor, truth: torch.Tensor, step_channels: int,
                         index: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
    """Relative L2 error of every sample at every time step.

    Args:
        pred, truth: time-major rows, ``(B, T * C, *S)`` (grids) or ``(N_nodes, T * C)`` (graphs).
        step_channels: ``C``.
        index, n: the graph of every node row and the number of graphs (graph batches).
    Returns:
        ``(B, T)``.
    """
    err = step_mean_squared_error(pred, truth, step_channels, index, n)
    ref = step_mean_squared_error(torch.zeros_like(truth), truth, step_channels, index, n)
    return err.sqrt() / ref.sqrt().clamp_min(1e-12)


@torch.no_grad()
def evaluate_split(
    task: torch.nn.Module,
    batches: Iterable[Any],
    device: torch.device,
    step_channels: int,
    plot_dir: str | Path | None = None,
    label: str = "",
    extra_metrics: dict[str, ExtraMetric] | None = None,
    periodic: bool = False,
    graph: bool = False,
    grid_shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Average every metric over all samples of ``batches`` (grid or graph batches, :mod:`datasets.batching`);
    for multi-step targets also the error per step and the accumulated error.

    Returns ``{"rel_l2": ..., "rel_h1": ... (grids), "mse": ..., "accumulated_error": ... (rollouts),
    "n_samples": ..., "rel_l2_per_step": [...]?, "mse_per_step": [...]?, "plots": [...]}``, plus one entry per
    ``extra_metrics`` (averaged per sample). ``periodic``: the data's periodicity (the relative H1 metric's finite
    differences wrap around on periodic data); ``grid_shape``: the grid of graph nodes on a regular grid (plots).
    """
    task.eval().to(device)
    step_metric = task.metric_step_channels() if callable(getattr(task, "metric_step_channels", None)) else None
    metrics = {name: m.to(device) for name, m in default_metrics(periodic, graph, step_metric).items()}
    extra_metrics = dict(extra_metrics or {})
    sums: dict[str, float] = {name: 0.0 for name in extra_metrics}
    rel_steps: torch.Tensor | None = None
    mse_steps: torch.Tensor | None = None
    n = 0
    first: tuple[Any, torch.Tensor] | None = None
    for batch in batches:
        batch = to_device(batch, device)
        pred = task.predict_batch(batch)
        y = batch["y"]
        b, index = num_samples(batch), sample_index(batch)
        for metric in metrics.values():
            metric.update(pred, y, index, b)
        for name, fn in extra_metrics.items():
            sums[name] += float(fn(pred, batch).sum())
        rel = per_step_relative_l2(pred, y, step_channels, index, b).sum(0)
        mse = step_mean_squared_error(pred, y, step_channels, index, b).sum(0)
        rel_steps = rel if rel_steps is None else rel_steps + rel
        mse_steps = mse if mse_steps is None else mse_steps + mse
        if first is None:
            first = (batch, pred)
        n += b
    if n == 0:
        raise ValueError("the evaluation split is empty; use n_test >= 1")
    out: dict[str, Any] = {name: float(metric.compute()) for name, metric in metrics.items()}
    out.update({name: total / n for name, total in sums.items()})
    out["n_samples"] = n
    plots: list[str] = []
    if rel_steps is not None and rel_steps.numel() > 1:
        out["rel_l2_per_step"] = (rel_steps / n).tolist()
        out["mse_per_step"] = (mse_steps / n).tolist()
        if plot_dir is not None:
            plots.append(str(plot_rollout_error(out["rel_l2_per_step"], Path(plot_dir) / f"rollout_error{label}.png",
                                                title=f"error vs rollout step {label}".strip())))
    if plot_dir is not None and first is not None:
        path = plot_sample(first[0], first[1], Path(plot_dir) / f"prediction{label}.png",
                           title=f"test sample 0 {label}".strip(), step_channels=step_channels,
                           grid_shape=grid_shape)
        if path is not None:
            plots.append(str(path))
    out["plots"] = plots
    return out
