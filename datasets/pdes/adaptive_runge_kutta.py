"""Dormand-Prince 4(5) for batches of independent ODE systems, with per-sample step-size control.

A batch ``y`` of shape ``(B, *S)`` holds ``B`` independent systems ``dy_b/dt = f(t_b, y_b)``. Every sample has
its own time ``t_b`` and step ``h_b``: one loop iteration tries one step of every unfinished sample, accepts or
rejects it *per sample* (scaled RMS norm of the embedded error estimate, Hairer, Norsett & Wanner, *Solving
Ordinary Differential Equations I*, Sec. II.4), and clips each sample's step so that it lands exactly on the next
output time. The right-hand side only ever sees the rows of the samples still running (``active``: their indices
into the batch), so a sample's trajectory is the same whether it is solved alone or in any batch (up to the last
bit of vectorized transcendental functions).

Tableau (Dormand & Prince 1980), FSAL: the 7th stage of an accepted step is the 1st of the next.

Controller (as Hairer's ``DOPRI5``): ``err = sqrt(mean(((y5 - y4) / sc)^2))``, ``sc = atol + rtol max(|y_n|,
|y_{n+1}|)``; accept if ``err <= 1``; next step ``h err^(-0.2 + 0.75 b) err_prev^b / safety`` (PI control,
``b = 0.04``), the factor clipped to ``[fac_min, fac_max]``, never growing right after a rejection.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

#: Dormand-Prince 5(4) Butcher tableau
DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
#: 5th-order weights (= the last row of A: FSAL) and the 4th-order embedded ones
DP_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
#: y5 - y4 = h sum_i E_i k_i
DP_E = tuple(b5 - b4 for b5, b4 in zip(DP_B5, DP_B4))

#: f(t, y, active): t (A,) times, y (A, *S) states, active (A,) long indices of these rows in the full batch
RHS = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(A,) -> (A, 1, ..., 1) broadcastable against ``like`` (A, *S)."""
    return v.reshape(v.shape + (1,) * (like.ndim - 1))


def dopri5_step(f: RHS, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, k1: torch.Tensor,
                active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Dormand-Prince step of every row.

    Args:
        f: right-hand side ``f(t, y, active)``.
        t, h: (A,) start times and step sizes.
        y, k1: (A, *S) states and ``f(t, y)`` (FSAL).
        active: (A,) indices of the rows in the full batch (passed on to ``f``).

    Returns:
        ``y5`` (A, *S) the 5th-order solution at ``t + h``, ``err`` (A, *S) the error estimate ``y5 - y4`` and
        ``k7 = f(t + h, y5)`` (A, *S).
    """
    hc = _col(h, y)
    ks = [k1]
    for stage in range(1, 7):
        ks.append(f(t + DP_C[stage] * h, y + hc * _combine(DP_A[stage], ks), active))
    y5 = y + hc * _combine(DP_B5, ks)  # = the 7th stage's argument (FSAL)
    err = hc * _combine(DP_E, ks)
    return y5, err, ks[6]


def _combine(weights: Sequence[float], ks: Sequence[torch.Tensor]) -> torch.Tensor:
    """sum_i weights[i] ks[i] over the nonzero weights."""
    terms = [(w, k) for w, k in zip(weights, ks) if w != 0.0]
    acc = terms[0][0] * terms[0][1]
    for w, k in terms[1:]:
        acc = acc + w * k
    return acc


def dopri5_fixed(f: RHS, y0: torch.Tensor, t0: float, t1: float, n_steps: int) -> torch.Tensor:
    """``n_steps`` equal Dormand-Prince (5th-order) steps from ``t0`` to ``t1``: (B, *S) -> (B, *S) (for
    convergence tests)."""
    b = y0.shape[0]
    active = torch.arange(b, device=y0.device)
    h = torch.full((b,), (t1 - t0) / n_steps, dtype=y0.dtype, device=y0.device)
    t = torch.full((b,), float(t0), dtype=y0.dtype, device=y0.device)
    y = y0
    k1 = f(t, y, active)
    for i in range(n_steps):
        y, _, k1 = dopri5_step(f, t, y, h, k1, active)
        t = t0 + (i + 1) * h
    return y


def _rms(v: torch.Tensor) -> torch.Tensor:
    """(A, *S) -> (A,) root mean square over the state axes."""
    return v.reshape(v.shape[0], -1).square().mean(-1).sqrt()


def initial_step(f: RHS, t0: torch.Tensor, y0: torch.Tensor, k1: torch.Tensor, active: torch.Tensor,
                 atol: float, rtol: float, order: int = 5) -> torch.Tensor:
    """Hairer's starting step (``II.4``, ``hinit``) per row: (A,) step sizes."""
    sc = atol + rtol * y0.abs()
    d0, d1 = _rms(y0 / sc), _rms(k1 / sc)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
    y1 = y0 + _col(h0, y0) * k1
    d2 = _rms((f(t0 + h0, y1, active) - k1) / sc) / h0
    big = torch.maximum(d1, d2)
    h1 = torch.where(big <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6),
                     (0.01 / big.clamp_min(1e-300)) ** (1.0 / order))
    return torch.minimum(100 * h0, h1)


def dopri5_adaptive(
    f: RHS,
    y0: torch.Tensor,
    times: Sequence[float] | torch.Tensor,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    h0: float | None = None,
    max_step: float | None = None,
    min_step: float | None = None,
    max_iterations: int = 1_000_000,
    safety: float = 0.9,
    fac_min: float = 0.2,
    fac_max: float = 10.0,
    pi_beta: float = 0.04,
    name: str = "ODE",
    stats: dict | None = None,
) -> torch.Tensor:
    """Integrate ``B`` independent systems from ``times[0]`` through ``times`` with per-sample adaptive steps.

    Args:
        f: right-hand side ``f(t, y, active)`` with ``t`` (A,), ``y`` (A, *S) and ``active`` (A,) the batch
            indices of the rows (so per-sample coefficients can be gathered); returns (A, *S).
        y0: (B, *S) states at ``times[0]``.
        times: (T,) non-decreasing output times, the first being the start time.
        atol, rtol: tolerances of the scaled RMS error norm.
        h0: first step (default: Hairer's starting-step estimate, per sample).
        max_step: largest step (default: unbounded; steps are always clipped to the next output time).
        min_step: a step below this raises (default ``1e-12 * max(1, |times[-1]|)``).
        max_iterations: loop iterations (accepted + rejected steps of the slowest sample) before raising.
        name: the equation, for the error messages.
        stats: if given, filled with ``accepted`` / ``rejected`` (B,) step counts and ``rhs_evaluations`` (the
            number of batched calls of ``f``).

    Returns:
        (B, T, *S) the states at ``times``.

    Raises:
        RuntimeError (one line): a non-finite initial state; a step fell below ``min_step`` (the state became
        non-finite, or the error estimate could not be met: a blow-up); or ``max_iterations`` was exceeded.
    """
    device, dtype = y0.device, y0.dtype
    tout = torch.as_tensor(times, dtype=torch.float64).tolist() if not isinstance(times, list) else list(times)
    tout = [float(v) for v in tout]
    if not tout or any(b < a for a, b in itertools.pairwise(tout)):
        raise ValueError(f"times={tout} is not allowed; use non-decreasing output times")
    b = y0.shape[0]
    n_out = len(tout)
    tout_t = torch.tensor(tout, dtype=dtype, device=device)
    min_step = 1e-12 * max(1.0, abs(tout[-1])) if min_step is None else float(min_step)
    out = torch.empty((b, n_out) + tuple(y0.shape[1:]), dtype=dtype, device=device)
    out[:, 0] = y0
    accepted = torch.zeros(b, dtype=torch.long, device=device)
    rejected = torch.zeros(b, dtype=torch.long, device=device)
    n_calls = 0

    def rhs(t: torch.Tensor, y: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        nonlocal n_calls
        n_calls += 1
        return f(t, y, active)

    # per-sample state of the samples still running (row r is sample idx[r])
    idx = torch.arange(b, device=device)
    # outputs at the start time are copies of y0
    n0 = sum(1 for v in tout if v <= tout[0])
    out[:, :n0] = y0.unsqueeze(1)
    if n0 >= n_out or b == 0:
        _fill_stats(stats, accepted, rejected, n_calls)
        return out
    nxt = torch.full((b,), n0, dtype=torch.long, device=device)  # index of each row's next output time
    if not bool(torch.isfinite(y0).all()):
        r = int((~torch.isfinite(y0.reshape(b, -1))).any(-1).nonzero()[0, 0])
        raise RuntimeError(f"{name}: the initial state of sample {r} is not finite")
    t = torch.full((b,), tout[0], dtype=dtype, device=device)
    y = y0.clone()
    k1 = rhs(t, y, idx)
    if h0 is None:
        h = initial_step(rhs, t, y, k1, idx, atol, rtol)
    else:
        h = torch.full((b,), float(h0), dtype=dtype, device=device)
    if max_step is not None:
        h = h.clamp(max=float(max_step))
    err_prev = torch.full((b,), 1e-4, dtype=dtype, device=device)
    last_rejected = torch.zeros(b, dtype=torch.bool, device=device)
    expo = 0.2 - 0.75 * pi_beta

    for _ in range(max_iterations):
        target = tout_t[nxt]
        remaining = target - t
        hit = h >= remaining
        h_step = torch.where(hit, remaining, h)
        small = ~(h_step >= min_step)  # NaN included
        if bool(small.any()):
            r = int(small.nonzero()[0, 0])
            raise RuntimeError(f"{name}: the adaptive step fell to {float(h_step[r]):.3g} < {min_step:.3g} at "
                               f"t={float(t[r]):.6g} in sample {int(idx[r])}; the solution is blowing up (reduce "
                               "the coefficients or use a finer grid)")
        y5, e, k7 = dopri5_step(rhs, t, y, h_step, k1, idx)
        sc = atol + rtol * torch.maximum(y.abs(), y5.abs())
        err = _rms(e / sc)
        finite = torch.isfinite(err) & torch.isfinite(y5.reshape(y5.shape[0], -1)).all(-1)
        err = torch.where(finite, err, torch.full_like(err, math.inf))
        ok = err <= 1.0
        # step-size proposal (PI controller); rejected: shrink, never grow
        e_safe = err.clamp(min=1e-10)
        fac11 = torch.where(finite, e_safe ** expo, torch.full_like(err, 1.0 / fac_min))
        fac_acc = (fac11 / err_prev ** pi_beta / safety).clamp(1.0 / fac_max, 1.0 / fac_min)
        h_acc = h_step / fac_acc
        h_acc = torch.where(last_rejected, torch.minimum(h_acc, h_step), h_acc)
        h_rej = h_step / (fac11 / safety).clamp(min=1.0, max=1.0 / fac_min)
        h_new = torch.where(ok, h_acc, h_rej)
        if max_step is not None:
            h_new = h_new.clamp(max=float(max_step))
        # accept per sample
        okc = _col(ok, y)
        y = torch.where(okc, y5, y)
        k1 = torch.where(okc, k7, k1)
        t = torch.where(ok, torch.where(hit, target, t + h_step), t)
        err_prev = torch.where(ok, err.clamp(min=1e-4), err_prev)
        last_rejected = ~ok
        h = h_new
        accepted.index_add_(0, idx, ok.long())
        rejected.index_add_(0, idx, (~ok).long())
        landed = ok & hit
        if bool(landed.any()):
            rows = landed.nonzero().squeeze(-1)
            out[idx[rows], nxt[rows]] = y[rows]
            nxt = nxt + landed.long()
            # an output time equal to the one just reached is the same state
            while True:
                dup = (nxt < n_out) & landed & (tout_t[nxt.clamp(max=n_out - 1)] <= t)
                if not bool(dup.any()):
                    break
                rows = dup.nonzero().squeeze(-1)
                out[idx[rows], nxt[rows]] = y[rows]
                nxt = nxt + dup.long()
            keep = nxt < n_out
            if not bool(keep.all()):
                if not bool(keep.any()):
                    _fill_stats(stats, accepted, rejected, n_calls)
                    return out
                rows = keep.nonzero().squeeze(-1)
                idx, nxt, t, y, k1, h = idx[rows], nxt[rows], t[rows], y[rows], k1[rows], h[rows]
                err_prev, last_rejected = err_prev[rows], last_rejected[rows]
    raise RuntimeError(f"{name}: no solution after {max_iterations} steps; the problem is too stiff for an "
                       "explicit solver at this resolution")


def _fill_stats(stats: dict | None, accepted: torch.Tensor, rejected: torch.Tensor, n_calls: int) -> None:
    if stats is not None:
        stats["accepted"] = accepted.cpu()
        stats["rejected"] = rejected.cpu()
        stats["rhs_evaluations"] = n_calls
