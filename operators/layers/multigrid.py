"""Multi-channel V-cycle multigrid as a learnable linear operator (MgNO, He, Liu & Xu, ICLR 2024; MgNet, He & Xu 2019).

Every operator of a classical geometric multigrid V-cycle for ``A u = f`` becomes a multi-channel convolution:

=============  ====================================================  ==========================================
symbol         role                                                  layer (per level ``l``)
=============  ====================================================  ==========================================
``A^l``        discrete operator, ``C_u -> C_f``                     3x3 conv, one per level
``S^{l,i}``    smoother of step ``i``, ``C_f -> C_u``                3x3 conv, one per smoothing step
``R^{l+1}``    restriction of the residual, ``C_f -> C_f``           3x3 conv, stride 2
``Pi^{l+1}``   restriction of the iterate (``coarse_guess="restrict"``)  3x3 conv, stride 2, ``C_u -> C_u``
``P^l``        prolongation, ``C_u -> C_u``                          4x4 transposed conv, stride 2
=============  ====================================================  ==========================================

One V-cycle ``u = W f`` (``f^1 = f``, levels ``l = 1..J`` fine to coarse, ``nu_l`` pre- / ``mu_l`` post-steps)::

    for l = 1..J:                                   # down: smoothing, then restriction
        u^l <- u^{l,0}  (0 on the finest level, see coarse_guess below)
        nu_l times:  u^l <- u^l + S^{l,i} (f^l - A^l u^l)     # the first step from u = 0 is u = S f
        if l < J:    f^{l+1} = R^{l+1} (f^l - A^l u^l)        # restricted residual
    for l = J-1..1:                                 # up: prolongation, then post-smoothing
        u^l <- u^l + P^l u^{l+1}
        mu_l times:  u^l <- u^l + S (f^l - A^l u^l)
    return u^1

``coarse_guess`` is the initial iterate of a coarse level: ``"zero"`` is the textbook correction scheme
(``u^{l+1,0} = 0``, the coarse level smooths the error equation); ``"restrict"`` starts from the restricted fine
iterate ``u^{l+1,0} = Pi^{l+1} u^l`` (the MgNet interpolation ``Pi`` that the MgNO authors' code keeps; with it the
paper's Darcy model has the 0.57M parameters the paper reports). Either way ``W`` is linear in ``f``.

Boundary conditions enter only through the padding of the convolutions (``padding_mode``): ``"zeros"`` (Dirichlet),
``"circular"`` (periodic) or ``"reflect"`` (Neumann). The transposed convolution pads its coarse input with the same
mode, so a ``"circular"`` V-cycle commutes exactly with circular shifts by multiples of ``2^(J-1)`` grid points.

Mixed precision: under ``torch.autocast`` the residuals ``f^l - A^l u^l`` (``A^l u^l`` nearly cancels ``f^l`` as
the iterate converges; in bf16 the difference keeps a few significant bits) and the iterates with their smoothing
and prolongation updates ``u^l + S r`` / ``u^l + P u^{l+1}`` are computed in full precision (float32 for a float32
model, :mod:`operators.layers.precision`); the convolutions ``S``, ``R``, ``Pi`` and ``P`` of those residuals and
iterates stay in autocast. The V-cycle output is then float32.

Shapes: ``(B, C_f, H, W) -> (B, C_u, H, W)`` with ``H`` and ``W`` divisible by ``2^(J-1)`` (checked, see
:func:`check_multigrid_size`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from operators.layers.precision import autocast_disabled, full_precision_dtype

PADDING_MODES = ("zeros", "circular", "reflect")
COARSE_GUESSES = ("zero", "restrict")
_F_PAD = {"zeros": "constant", "circular": "circular", "reflect": "reflect"}


def check_padding_mode(padding_mode: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode={padding_mode!r} is not allowed; use one of {', '.join(map(repr, PADDING_MODES))}"
                         " (zeros = Dirichlet, circular = periodic, reflect = Neumann)")
    return padding_mode


def pad_field(x: torch.Tensor, pad: Sequence[int], padding_mode: str) -> torch.Tensor:
    """``F.pad`` of the last two dims with ``pad = (left, right, top, bottom)`` in the given boundary mode."""
    if not any(pad):
        return x
    return F.pad(x, tuple(pad), mode=_F_PAD[check_padding_mode(padding_mode)])


def check_multigrid_size(spatial: Sequence[int], levels: int, what: str = "MgNO") -> None:
    """Raise a one-line ValueError unless every size in ``spatial`` is a positive multiple of ``2^(levels-1)``."""
    factor = 2 ** (levels - 1)
    bad = [n for n in spatial if n < factor or n % factor]
    if bad:
        allowed = ", ".join(str(factor * k) for k in range(1, 5))
        raise ValueError(
            f"{what} with levels={levels} needs grid sizes divisible by 2^(levels-1) = {factor}; got "
            f"{'x'.join(map(str, spatial))} (allowed sizes: {allowed}, ...; or set pad_to_multiple=true, or fewer levels)"
        )


def conv3x3(in_channels: int, out_channels: int, padding_mode: str, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias whose zero / circular / reflect padding keeps (stride 1) or halves (stride 2)
    an even grid."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False,
                     padding_mode=check_padding_mode(padding_mode))


class Prolongation(nn.Module):
    """4x4 stride-2 transposed convolution ``(B, C, n, m) -> (B, C', 2n, 2m)`` without bias whose coarse input is
    extended by the boundary mode (``nn.ConvTranspose2d`` only supports zero padding).

    With ``padding_mode="zeros"`` this equals ``nn.ConvTranspose2d(C, C', 4, stride=2, padding=1, bias=False)``.
    """

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.padding_mode = check_padding_mode(padding_mode)
        # nn.ConvTranspose2d only for its (in, out, 4, 4) weight layout and default initialisation
        self.weight = nn.Parameter(
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, bias=False).weight.detach().clone())

    def extra_repr(self) -> str:
        c_in, c_out = self.weight.shape[:2]
        return f"{c_in}, {c_out}, kernel_size=4, stride=2, padding_mode={self.padding_mode!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[-2:]
        if self.padding_mode == "zeros":
            return F.conv_transpose2d(x, self.weight, stride=2, padding=1)
        # one ghost coarse point each side; output index o of the padded problem is o - 3 of the unpadded one
        y = F.conv_transpose2d(pad_field(x, (1, 1, 1, 1), self.padding_mode), self.weight, stride=2)
        return y[..., 3:3 + 2 * n, 3:3 + 2 * m]


def parse_smoothing(smoothing: Sequence, levels: int) -> list[tuple[int, int]]:
    """Per-level ``(pre, post)`` smoothing counts from a list of ``levels`` entries, each an int (pre only) or a
    pair ``[pre, post]``; ``pre >= 1`` on every level."""
    if len(smoothing) != levels:
        raise ValueError(f"smoothing has {len(smoothing)} entries; give one [pre, post] pair per level ({levels})")
    out = []
    for entry in smoothing:
        pair = (entry, 0) if isinstance(entry, int) else tuple(entry)
        if len(pair) != 2 or any(isinstance(v, bool) or int(v) != v or v < 0 for v in pair) or pair[0] < 1:
            raise ValueError(f"smoothing entry {entry!r} is not allowed; use [pre, post] with integers pre >= 1, post >= 0")
        out.append((int(pair[0]), int(pair[1])))
    return out


class VCycle(nn.Module):
    """One multi-channel V-cycle ``u = W f`` (see the module docstring).

    Args:
        in_channels: channels ``C_f`` of the right-hand side ``f`` (and of the residuals on every level).
        out_channels: channels ``C_u`` of the iterate ``u``.
        levels: number of grids ``J`` (``1`` = smoothing on the input grid only).
        smoothing: per level ``[pre, post]`` step counts (or an int: pre only), fine to coarse; default one
            pre-smoothing step per level.
        padding_mode: ``"zeros"`` (Dirichlet), ``"circular"`` (periodic), ``"reflect"`` (Neumann).
        coarse_guess: ``"zero"`` or ``"restrict"`` initial iterate on the coarse levels.

    Attributes (all bias-free): ``A[l]`` (``None`` where never used), ``S[l]`` (pre then post steps), ``R[l]`` and
    ``Pi[l]`` (restriction from level ``l`` to ``l+1``), ``P[l]`` (prolongation from ``l+1`` to ``l``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        levels: int = 4,
        smoothing: Sequence | None = None,
        padding_mode: str = "zeros",
        coarse_guess: str = "zero",
    ) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels={levels!r} is not allowed; use an integer >= 1")
        if coarse_guess not in COARSE_GUESSES:
            raise ValueError(f"coarse_guess={coarse_guess!r} is not allowed; use one of {COARSE_GUESSES}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.levels = levels
        self.padding_mode = check_padding_mode(padding_mode)
        self.coarse_guess = coarse_guess
        self.smoothing = parse_smoothing([1] * levels if smoothing is None else smoothing, levels)
        c_f, c_u = self.in_channels, self.out_channels
        self.A = nn.ModuleList()
        self.S = nn.ModuleList()
        for level, (pre, post) in enumerate(self.smoothing):
            # A^l is needed for a residual: restriction (all but the coarsest), a step from a nonzero iterate
            nonzero_start = level > 0 and coarse_guess == "restrict"
            uses_a = level < levels - 1 or pre > 1 or post > 0 or nonzero_start
            self.A.append(conv3x3(c_u, c_f, padding_mode) if uses_a else nn.Identity())
            self.S.append(nn.ModuleList(conv3x3(c_f, c_u, padding_mode) for _ in range(pre + post)))
        self.R = nn.ModuleList(conv3x3(c_f, c_f, padding_mode, stride=2) for _ in range(levels - 1))
        self.Pi = nn.ModuleList(conv3x3(c_u, c_u, padding_mode, stride=2) for _ in range(levels - 1)) \
            if coarse_guess == "restrict" else None
        self.P = nn.ModuleList(Prolongation(c_u, c_u, padding_mode) for _ in range(levels - 1))

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, levels={self.levels}, "
                f"smoothing={self.smoothing}, padding_mode={self.padding_mode!r}, coarse_guess={self.coarse_guess!r}")

    def check_size(self, spatial: Sequence[int]) -> None:
        check_multigrid_size(spatial, self.levels, "V-cycle")

    def residual(self, level: int, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``f - A^l u`` of level ``l``, outside autocast in the full-precision dtype of ``u``, ``f`` and ``A^l``
        (float32 for bf16 activations of a float32 model): ``(B, C_u, h, w), (B, C_f, h, w) -> (B, C_f, h, w)``."""
        conv = self.A[level]
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"level {level} of this V-cycle has no operator A (it never forms a residual)")
        dtype = full_precision_dtype(u, f, conv.weight)
        with autocast_disabled(f):
            return f.to(dtype) - conv._conv_forward(u.to(dtype), conv.weight.to(dtype), None)

    def _smooth(self, level: int, u: torch.Tensor | None, f: torch.Tensor, steps: Sequence[nn.Module],
                dtype: torch.dtype) -> torch.Tensor:
        """Smoothing steps ``u <- u + S (f - A u)`` (``u = S f`` from ``u = None``); the iterate is kept in the
        full-precision ``dtype``, the smoothers ``S`` run in autocast."""
        for smoother in steps:
            u = smoother(f).to(dtype) if u is None else u.to(dtype) + smoother(self.residual(level, u, f))
        return u  # type: ignore[return-value]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``(B, C_f, H, W) -> (B, C_u, H, W)``."""
        self.check_size(tuple(f.shape[-2:]))
        dtype = full_precision_dtype(f, self.S[0][0].weight)  # of the iterates (float32 under autocast)
        u_levels: list[torch.Tensor] = []
        f_levels: list[torch.Tensor] = []
        u: torch.Tensor | None = None
        for level, (pre, post) in enumerate(self.smoothing):
            coarsest = level == self.levels - 1  # no up-sweep there: its post-steps follow its pre-steps
            u = self._smooth(level, u, f, self.S[level][:pre + post] if coarsest else self.S[level][:pre], dtype)
            u_levels.append(u)
            f_levels.append(f)
            if level < self.levels - 1:
                f = self.R[level](self.residual(level, u, f))
                u = self.Pi[level](u) if self.Pi is not None else None
        u = u_levels[-1]
        for level in range(self.levels - 2, -1, -1):
            pre, post = self.smoothing[level]
            u = u_levels[level] + self.P[level](u).to(dtype)
            u = self._smooth(level, u, f_levels[level], self.S[level][pre:pre + post], dtype)
        return u
