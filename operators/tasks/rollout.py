"""Autoregressive rollout: a network applied repeatedly, its state advanced by a pluggable update."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from datasets.batching import num_samples, optional, per_sample_rows
from operators.tasks.base import OperatorTask
from operators.tasks.state_updates import SlidingWindow, WindowShift, take_steps


class AutoregressiveRollout(OperatorTask):
    """Train and evaluate a network that advances a window of past steps, on grids or graphs.

    Batches (:mod:`datasets.batching`): ``x`` the input window ``(rows, k * C, ...)``, ``y`` the target steps
    ``(rows, T * C, ...)`` (time-major); with ``random_start`` the training batches instead hold whole trajectories
    ``trajectory`` ``(rows, T_all * C, ...)`` (``data.train_steps``). Graph batches also carry ``time`` /
    ``time_step`` (scaled by the final time), which the rollout advances and graph networks read.

    Args:
        network: maps ``k * C`` window channels to ``m * C`` predicted channels (``out_channels``).
        state_update: how the window advances (:mod:`operators.tasks.state_updates`): ``WindowShift`` (default,
            ``m = 1``) or ``TemporalBundling(K)`` (``m = K``, MP-PDE).
        pushforward_unrolls: the pushforward trick (Brandstetter et al. 2022, Sec. 2.3): each training batch first
            unrolls ``N`` calls without gradient from the input window, then takes one call with gradient and
            its loss on the steps that call predicts; ``N`` is drawn uniformly from ``0 .. min(epoch,
            pushforward_unrolls)`` per batch (the official curriculum: 0 in the first epoch). ``0`` with a fixed
            window: the whole target horizon is unrolled with gradient (the FNO-2D Navier-Stokes training).
        random_start: draw every training sample's window start uniformly, ``s`` in
            ``[k, T_all - (N + 1) m]``: window ``[s - k, s)``, target ``[s + N m, s + (N + 1) m)`` (MP-PDE).
        teacher_forcing: probability of feeding the true step back into the window (full-horizon training only).
        per_step_loss: sum the loss of every step (the FNO and LSM papers' training loss); otherwise one loss on
            the whole horizon (full-horizon training only).
        **kwargs: see :class:`operators.tasks.base.OperatorTask`.
    """

    def __init__(self, network: nn.Module, state_update: SlidingWindow | None = None,
                 pushforward_unrolls: int = 0, random_start: bool = False, teacher_forcing: float = 0.0,
                 per_step_loss: bool = True, **kwargs: Any) -> None:
        self.state_update = state_update if state_update is not None else WindowShift()
        if not isinstance(self.state_update, SlidingWindow):
            raise ValueError(f"state_update={state_update!r} is not allowed; use WindowShift or TemporalBundling "
                             "from operators.tasks.state_updates")
        super().__init__(network, **kwargs)
        self.per_step_loss = per_step_loss
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing={teacher_forcing} is not allowed; use a probability in [0, 1]")
        self.teacher_forcing = teacher_forcing
        if isinstance(pushforward_unrolls, bool) or not isinstance(pushforward_unrolls, int) \
                or pushforward_unrolls < 0:
            raise ValueError(f"pushforward_unrolls={pushforward_unrolls!r} is not allowed; use an integer >= 0")
        self.pushforward_unrolls = pushforward_unrolls
        self.random_start = bool(random_start)
        _ = self.step_channels  # fail early on a network whose outputs are not whole steps

    # ------------------------------------------------------------------ geometry of a call
    @property
    def steps_per_call(self) -> int:
        return self.state_update.steps_per_call

    @property
    def step_channels(self) -> int:
        """Channels ``C`` of one step (the network's output channels over the steps it predicts per call)."""
        out = getattr(self.network, "out_channels", None)
        if out is None:
            raise AttributeError(f"{type(self.network).__name__} has no attribute out_channels; rollout needs it")
        if int(out) % self.steps_per_call:
            raise ValueError(f"the network's out_channels={out} are not {self.steps_per_call} steps of whole "
                             f"channels ({self.state_update!r}); set model.out_channels to steps x channels")
        return int(out) // self.steps_per_call

    @property
    def window_steps(self) -> int:
        """Steps ``k`` of the input window (the network's input channels over ``C``)."""
        inp = getattr(self.network, "in_channels", None)
        if inp is None:
            raise AttributeError(f"{type(self.network).__name__} has no attribute in_channels; random_start needs it")
        return int(inp) // self.step_channels

    def metric_step_channels(self) -> int | None:
        return self.step_channels if hasattr(self, "state_update") else None

    def compute_loss(self, pred: torch.Tensor, target: torch.Tensor, batch: Any = None) -> torch.Tensor:
        if not self.per_step_loss:
            return super().compute_loss(pred, target, batch)
        c = self.step_channels
        return sum(super(AutoregressiveRollout, self).compute_loss(pred[:, t:t + c], target[:, t:t + c], batch)
                   for t in range(0, target.shape[1], c))

    def target_for_normalizer(self, y: torch.Tensor) -> torch.Tensor:
        # one step's channels: (N, T*C, *S) -> (N*T, C, *S), so the normaliser acts per step
        c = self.step_channels
        return y.reshape(y.shape[0] * (y.shape[1] // c), c, *y.shape[2:])

    # ------------------------------------------------------------------ the rollout
    def _call(self, window: torch.Tensor, batch: Any, time: torch.Tensor | None) -> torch.Tensor:
        if time is None:
            return self(window, batch)
        return self(window, batch, time=time)

    def rollout(self, x: torch.Tensor, n_steps: int, batch: Any = None, truth: torch.Tensor | None = None,
                time: torch.Tensor | None = None) -> torch.Tensor:
        """Unroll from the window ``x`` ``(rows, k * C, ...)`` until ``n_steps`` steps are predicted:
        ``(rows, n_steps * C, ...)`` (the last call's surplus steps are dropped).

        ``batch`` gives graph networks their geometry; ``time`` ``(B,)`` is the time of the first step the call
        predicts (scaled), advanced by ``m * time_step`` per call; ``truth`` enables teacher forcing (one-step updates)."""
        c, m = self.step_channels, self.steps_per_call
        dt = batch["time_step"] if time is not None and "time_step" in batch else None
        window, steps, done = x, [], 0
        while done < n_steps:
            out = self._call(window, batch, time)
            steps.append(out)
            feed = out
            if truth is not None and self.teacher_forcing > 0 and m == 1 and torch.rand(()) < self.teacher_forcing:
                feed = truth[:, done * c:(done + 1) * c]
            window = self.state_update.advance(window, feed)
            done += m
            if dt is not None:
                time = time + m * dt
        return torch.cat(steps, dim=1)[:, :n_steps * c]

    def predict_batch(self, batch: Any) -> torch.Tensor:
        y = batch["y"]
        n_steps = y.shape[1] // self.step_channels
        truth = y if self.training else None
        return self.rollout(batch["x"], n_steps, batch=batch, truth=truth, time=optional(batch, "time"))

    # ------------------------------------------------------------------ training
    def _n_unrolls(self) -> int:
        """``N`` of the pushforward trick for this batch: uniform in ``0 .. min(epoch, pushforward_unrolls)``."""
        top = min(int(self.current_epoch), self.pushforward_unrolls)
        return int(torch.randint(0, top + 1, ()).item()) if top > 0 else 0  # CPU generator: no device sync

    def _random_windows(self, batch: Any, n_unrolls: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Per-sample random windows of a trajectory batch: (window, target of the gradient call, time)."""
        if "trajectory" not in batch:
            raise ValueError("random_start=true needs whole training trajectories: set data.train_steps "
                             "(e.g. '0:250')")
        traj = batch["trajectory"]
        c, m, k = self.step_channels, self.steps_per_call, self.window_steps
        total = traj.shape[1] // c
        last = total - (n_unrolls + 1) * m
        if last < k:
            raise ValueError(f"trajectories of {total} steps are too short for a window of {k} steps and "
                             f"{n_unrolls + 1} call(s) of {m} steps; use more train_steps or fewer unrolls")
        n = num_samples(batch)
        start = torch.randint(k, last + 1, (n,)).to(traj.device)  # per sample
        rows = per_sample_rows(start, batch)
        window = take_steps(traj, rows - k, k, c)
        target = take_steps(traj, rows + n_unrolls * m, m, c)
        time = None
        if "time" in batch and "time_step" in batch:  # time of the first predicted step
            time = batch["time"] + start.to(batch["time"].dtype) * batch["time_step"]
        return window, target, time

    def training_loss(self, batch: Any) -> torch.Tensor:
        if not self.random_start and self.pushforward_unrolls == 0:
            return super().training_loss(batch)  # the whole horizon, with gradient
        n_unrolls = self._n_unrolls()
        m, c = self.steps_per_call, self.step_channels
        if self.random_start:
            window, target, time = self._random_windows(batch, n_unrolls)
        else:
            y = batch["y"]
            n_unrolls = min(n_unrolls, y.shape[1] // (m * c) - 1)
            window, time = batch["x"], optional(batch, "time")
            target = y[:, n_unrolls * m * c:(n_unrolls + 1) * m * c]
        if n_unrolls:
            with torch.no_grad():  # pushforward: the unrolled calls give the input, not the gradient
                rolled = self.rollout(window, n_unrolls * m, batch=batch, time=time)
                window = self.state_update.advance(window, rolled)
                if time is not None:
                    time = time + n_unrolls * m * batch["time_step"]
        pred = self._call(window, batch, time)
        return super().compute_loss(pred[:, :target.shape[1]], target, batch)
