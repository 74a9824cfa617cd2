"""How an autoregressive rollout advances its state after each network call (the rollout task's pluggable part).

The state of a rollout over time-major rows (:mod:`datasets.batching`: axis 0 rows, axis 1 ``steps * C`` channels)
is the window of the last ``k`` steps the network sees. A network call returns ``m`` new steps; the update says
what the next window is and which steps were predicted:

``WindowShift``        ``m = 1``: the window drops its oldest step and appends the new one (FNO-2D on
                       Navier-Stokes, Li et al. 2021: ``w_{t-k+1..t} -> w_{t+1}``).
``TemporalBundling``   ``m = K``: the network predicts the next ``K`` steps at once and they are the next window
                       (MP-PDE, Brandstetter et al. 2022, Sec. 2.3: fewer calls, less error accumulation).

Both slide a window along axis 1; a particle integrator (positions and velocities advanced from a predicted
acceleration, GIOROM) is a third update with the same interface.
"""
from __future__ import annotations

import torch


class SlidingWindow:
    """Next window = the last ``window_steps`` steps of (window, prediction).

    Args:
        steps_per_call: steps ``m`` the network predicts per call (its output channels are ``m * C``).
    """

    def __init__(self, steps_per_call: int = 1) -> None:
        if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, int) or steps_per_call < 1:
            raise ValueError(f"steps_per_call={steps_per_call!r} is not allowed; use an integer >= 1")
        self.steps_per_call = steps_per_call

    def advance(self, window: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """``window`` ``(rows, k * C, ...)``, ``output`` ``(rows, m * C, ...)`` -> next window ``(rows, k * C, ...)``."""
        k = window.shape[1]
        if output.shape[1] >= k:
            return output[:, output.shape[1] - k:]
        return torch.cat([window[:, output.shape[1]:], output], dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps_per_call={self.steps_per_call})"


class WindowShift(SlidingWindow):
    """One step per call: drop the oldest step of the window, append the prediction."""

    def __init__(self) -> None:
        super().__init__(steps_per_call=1)


class TemporalBundling(SlidingWindow):
    """``time_window`` steps per call (MP-PDE's temporal bundling): the prediction is the next window."""

    def __init__(self, time_window: int = 25) -> None:
        super().__init__(steps_per_call=time_window)
        self.time_window = time_window


def take_steps(trajectory: torch.Tensor, start: torch.Tensor, n_steps: int, step_channels: int) -> torch.Tensor:
    """Steps ``start .. start + n_steps - 1`` of every row of a time-major trajectory.

    Args:
        trajectory: ``(rows, T * C, ...)``.
        start: ``(rows,)`` first step of each row (int64, on the trajectory's device).
        n_steps: steps to take; ``step_channels``: ``C``.
    Returns:
        ``(rows, n_steps * C, ...)``.
    """
    c = step_channels
    offsets = torch.arange(n_steps * c, device=trajectory.device)
    index = start.to(trajectory.device).long().unsqueeze(1) * c + offsets  # (rows, n_steps * C)
    index = index.reshape(index.shape + (1,) * (trajectory.dim() - 2)).expand(-1, -1, *trajectory.shape[2:])
    return torch.gather(trajectory, 1, index)
