"""Autoregressive rollout: a one-step network applied repeatedly over a sliding window of past steps."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from operators.tasks.base import OperatorTask


class AutoregressiveRollout(OperatorTask):
    """Train a step map ``(w_{t-k+1..t}) -> w_{t+1}`` by unrolling it over the whole target horizon.

    Batches: ``{"x": (B, k*C, *S), "y": (B, T*C, *S)}`` with time-major channels, ``C`` channels per step.
    The network maps ``k*C -> C`` channels. Gradients flow through the whole unrolled recurrence, as in the
    FNO paper's Navier-Stokes FNO-2D.

    Args:
        teacher_forcing: probability of feeding the true step back into the window during training.
        per_step_loss: sum the loss of every step (the FNO and LSM papers' training loss,
            sum_t loss(w_t_pred, w_t)); otherwise take the loss of the whole trajectory at once.
        **kwargs: see :class:`operators.tasks.base.OperatorTask`.
    """

    def __init__(self, network: nn.Module, teacher_forcing: float = 0.0, per_step_loss: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(network, **kwargs)
        self.per_step_loss = per_step_loss
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing={teacher_forcing} is not allowed; use a probability in [0, 1]")
        self.teacher_forcing = teacher_forcing

    @property
    def step_channels(self) -> int:
        """Channels produced per step (the network's output channels)."""
        out = getattr(self.network, "out_channels", None)
        if out is None:
            raise AttributeError(f"{type(self.network).__name__} has no attribute out_channels; rollout needs it")
        return int(out)

    def compute_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.per_step_loss:
            return self.loss_fn(pred, target)
        c = self.step_channels
        return sum(self.loss_fn(pred[:, t:t + c], target[:, t:t + c]) for t in range(0, target.shape[1], c))

    def target_for_normalizer(self, y: torch.Tensor) -> torch.Tensor:
        # one step's channels: (N, T*C, *S) -> (N*T, C, *S), so the normaliser acts per step
        c = self.step_channels
        return y.reshape(y.shape[0] * (y.shape[1] // c), c, *y.shape[2:])

    def rollout(self, x: torch.Tensor, n_steps: int, truth: torch.Tensor | None = None) -> torch.Tensor:
        """Unroll ``n_steps`` steps from the window ``x``: ``(B, k*C, *S) -> (B, n_steps*C, *S)``."""
        c = self.step_channels
        window = x
        steps = []
        for t in range(n_steps):
            step = self(window)
            steps.append(step)
            feed = step
            if truth is not None and self.teacher_forcing > 0 and torch.rand(()) < self.teacher_forcing:
                feed = truth[:, t * c:(t + 1) * c]
            window = torch.cat([window[:, c:], feed], dim=1)
        return torch.cat(steps, dim=1)

    def predict_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = batch["y"]
        n_steps = y.shape[1] // self.step_channels
        truth = y if self.training else None
        return self.rollout(batch["x"], n_steps, truth=truth)
