"""Figures of predictions and errors, shared by the training callback and ``evaluate.py``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def plot_prediction(
    truth: torch.Tensor, pred: torch.Tensor, path: str | Path, title: str = "", channel: int = -1
) -> Path:
    """Save truth / prediction / error of one sample.

    Args:
        truth, pred: ``(C, *S)`` with ``S`` of one or two dimensions; channel ``channel`` is shown
            (the last one by default, i.e. the final rollout step of time-dependent data).
        path: PNG file to write.
    """
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {tuple(truth.shape)} and prediction shape {tuple(pred.shape)} differ")
    t, p = _as_numpy(truth[channel]), _as_numpy(pred[channel])
    err = p - t
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if t.ndim == 1:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
        grid = np.linspace(0.0, 1.0, t.shape[0], endpoint=False)
        axes[0].plot(grid, t, label="truth")
        axes[0].plot(grid, p, "--", label="prediction")
        axes[0].legend()
        axes[0].set_title("solution")
        axes[1].plot(grid, err, color="tab:red")
        axes[1].set_title("error")
    elif t.ndim == 2:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        vmin, vmax = float(t.min()), float(t.max())
        for ax, data, name in zip(axes, (t, p, err), ("truth", "prediction", "error")):
            im = ax.imshow(data.T, origin="lower", cmap="RdBu_r" if name == "error" else "viridis",
                           vmin=None if name == "error" else vmin, vmax=None if name == "error" else vmax)
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    else:
        raise ValueError(f"plot_prediction supports 1-D and 2-D fields; got a field of shape {t.shape}")
    rel = float(np.linalg.norm(err) / max(np.linalg.norm(t), 1e-12))
    fig.suptitle(f"{title}  relative L2 = {rel:.3e}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_rollout_error(errors: Sequence[float], path: str | Path, title: str = "") -> Path:
    """Save a plot of the relative L2 error against the rollout step (1-based)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(np.arange(1, len(errors) + 1), errors, marker="o", ms=3)
    ax.set_xlabel("rollout step")
    ax.set_ylabel("relative L2 error")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "error vs rollout step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_space_time(truth: torch.Tensor | np.ndarray, pred: torch.Tensor | np.ndarray, path: str | Path,
                    x: np.ndarray | None = None, t: np.ndarray | None = None, title: str = "") -> Path:
    """Save space-time images of a 1-D trajectory: truth, prediction and error side by side.

    Args:
        truth, pred: ``(T, N)`` values at ``T`` steps and ``N`` points.
        x: ``(N,)`` point positions (default ``0..N-1``; non-uniform points are drawn where they are);
        t: ``(T,)`` step times or indices (default ``1..T``, the rollout steps).
    """
    t_np = _as_numpy(torch.as_tensor(truth))
    p_np = _as_numpy(torch.as_tensor(pred))
    if t_np.shape != p_np.shape or t_np.ndim != 2:
        raise ValueError(f"plot_space_time needs two (T, N) arrays; got {t_np.shape} and {p_np.shape}")
    x = np.arange(t_np.shape[1]) if x is None else np.asarray(x, dtype=np.float64)
    t = np.arange(1, t_np.shape[0] + 1) if t is None else np.asarray(t, dtype=np.float64)
    order = np.argsort(x)
    x, t_np, p_np = x[order], t_np[:, order], p_np[:, order]
    err = p_np - t_np
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    vmin, vmax = float(t_np.min()), float(t_np.max())
    emax = max(float(np.abs(err).max()), 1e-12)  # the error map centred on 0
    for ax, data, name in zip(axes, (t_np, p_np, err), ("truth", "prediction", "error")):
        im = ax.pcolormesh(x, t, data, shading="nearest", cmap="RdBu_r" if name == "error" else "viridis",
                           vmin=-emax if name == "error" else vmin, vmax=emax if name == "error" else vmax)
        ax.set_title(name)
        ax.set_xlabel("x")
        fig.colorbar(im, ax=ax, fraction=0.046)
    axes[0].set_ylabel("step")
    acc = float((err ** 2).mean(axis=1).sum())
    fig.suptitle(f"{title}  accumulated error = {acc:.3e}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_sample(batch, pred: torch.Tensor, path: str | Path, title: str = "", step_channels: int = 1,
                grid_shape: Sequence[int] | None = None) -> Path | None:
    """Plot the first sample of a batch (grid or graph, :mod:`datasets.batching`) against its prediction: a 1-D
    trajectory as space-time images (:func:`plot_space_time`), otherwise the last step's field
    (:func:`plot_prediction`). Graph nodes of a 2-D regular grid (``grid_shape``) are drawn as the grid.
    Returns the PNG path, or ``None`` when the sample has no plottable layout."""
    from datasets.batching import first_rows, is_graph

    truth, guess = first_rows(batch["y"], batch), first_rows(pred, batch)
    x = None
    if is_graph(batch):
        pos = first_rows(batch["pos"], batch).detach().cpu().numpy()
        truth, guess = truth.T, guess.T  # (T * C, n_nodes)
        if pos.shape[1] == 1:
            x = pos[:, 0]
        elif grid_shape is not None and int(np.prod(grid_shape)) == truth.shape[1]:
            truth = truth.reshape(truth.shape[0], *grid_shape)
            guess = guess.reshape(guess.shape[0], *grid_shape)
        else:
            return None
    if truth.dim() == 2 and step_channels == 1 and truth.shape[0] > 1:
        return plot_space_time(truth, guess, path, x=x, title=title)
    if truth.dim() in (2, 3):
        return plot_prediction(truth, guess, path, title=title)
    return None
