"""Marching a spectral state through a list of output times, shared by the time-dependent solvers.

Each interval between consecutive output times is split into the fewest equal steps ``h <= dt``, so the
snapshots fall exactly on the requested times whatever ``dt`` is.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch


def check_output_times(times: Sequence[float]) -> list[float]:
    """``times`` as floats; a one-line ValueError unless they are non-negative and non-decreasing."""
    out = [float(t) for t in times]
    if any(b < a for a, b in zip(out, out[1:])) or (out and out[0] < 0):
        raise ValueError(f"times={out} is not allowed; use non-negative increasing times")
    return out


def march_to_snapshots(
    state: torch.Tensor,
    times: Sequence[float],
    dt: float,
    advance: Callable[[torch.Tensor, float, int], torch.Tensor],
    to_physical: Callable[[torch.Tensor], torch.Tensor],
    name: str,
    check: Callable[[torch.Tensor, float], None] | None = None,
) -> torch.Tensor:
    """Advance ``state`` from t = 0 through ``times`` and collect the physical field at each of them.

    Args:
        state: the solver state at t = 0 (e.g. Fourier coefficients ``(B, ...)``).
        times: non-negative increasing output times (the first may be 0).
        dt: largest time step.
        advance: ``advance(state, h, steps)`` takes ``steps`` steps of size ``h``.
        to_physical: state -> physical field ``(B, *S)``.
        name: the equation, for the error message.
        check: ``check(state, t)`` is called on the initial state and on the state at every output time
            (e.g. a CFL check that raises); once per snapshot, never per step.

    The loop itself never waits on the device: per step it only calls ``advance``; the finiteness test (one
    reduction and one host sync) and ``check`` run once per snapshot.

    Returns:
        ``(B, len(times), *S)``.

    Raises:
        RuntimeError: the solution became non-finite (``dt`` too large for the flow).
    """
    times = check_output_times(times)
    out: torch.Tensor | None = None  # (B, len(times), *S), allocated at the first snapshot (no stacking copy)
    t = 0.0
    if check is not None:
        check(state, 0.0)
    for i, t_next in enumerate(times):
        interval = t_next - t
        if interval > 0:
            steps = max(1, math.ceil(interval / dt - 1e-9))
            state = advance(state, interval / steps, steps)
        field = to_physical(state)
        if not torch.isfinite(field).all():
            raise RuntimeError(f"{name} solution became non-finite before t={t_next}; dt={dt} is too large "
                               "for this flow, use a smaller dt")
        if check is not None and interval > 0:
            check(state, t_next)
        if out is None:
            out = field.new_empty((field.shape[0], len(times), *field.shape[1:]))
        out[:, i] = field
        t = t_next
    if out is None:  # no output times
        raise ValueError("times=[] is not allowed; give at least one output time")
    return out
