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
