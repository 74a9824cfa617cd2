"""How a dataset discretizes space: what its samples' values sit on.

Every :class:`~datasets.pdes.base.PDEProblem` states its discretization (:meth:`PDEProblem.discretization`):

``RegularGrid``   ``n_1 x ... x n_d`` points of a box, periodic (``x_j = j L / n``) or with both boundary nodes
                  (``x_j = j L / (n - 1)``); FNO-type networks see ``(B, C, n_1, ..., n_d)`` tensors, graph networks
                  see its points as nodes.
``PointSet``      one fixed set of ``N`` points (non-uniform nodes such as Chebyshev points, or a mesh's vertices)
                  shared by every sample: served as graphs.
``ParticleSets``  a different point set in every sample (Lagrangian particles), stored ragged (values plus
                  offsets) and served as graphs.

The discretization decides how batches are laid out (:mod:`datasets.batching`), and from that the task's losses,
metrics, rollout and plots follow without asking which kind of data they see.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Discretization:
    """Base of the discretizations. ``spatial_dims``: dimension ``d`` of the domain; ``periodic_length``: the box
    side lengths of a periodic domain (``None``: not periodic), which graph edges may wrap around."""

    spatial_dims: int
    periodic_length: tuple[float, ...] | None = None

    @property
    def periodic(self) -> bool:
        return self.periodic_length is not None

    @property
    def fixed_points(self) -> bool:
        """Whether every sample has the same points (grids and point sets; not particles)."""
        return True

    def points(self) -> np.ndarray:
        """The ``(N, d)`` node positions shared by every sample."""
        raise NotImplementedError(f"{type(self).__name__} has no fixed point set")

    def spacing(self) -> float:
        """A typical distance between neighbouring points (the grid step; the mean nearest-neighbour distance of a
        point set): the unit in which graph radii are given (``n * dx``)."""
        pts = self.points()
        if len(pts) < 2:
            return 1.0
        if pts.shape[1] == 1:
            return float(np.mean(np.diff(np.sort(pts[:, 0]))))
        d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=-1)
        np.fill_diagonal(d, np.inf)
        return float(d.min(axis=1).mean())


@dataclass(frozen=True)
class RegularGrid(Discretization):
    """A tensor-product grid of ``shape`` points on ``[0, L_1] x ... x [0, L_d]`` (``lengths``, default 1).

    ``periodic``: ``x_j = j L / n`` (the right boundary is the left one); otherwise ``x_j = j L / (n - 1)``.
    """

    shape: tuple[int, ...] = ()
    lengths: tuple[float, ...] = ()
    endpoint: bool = False

    @classmethod
    def make(cls, shape: Sequence[int], periodic: bool, lengths: Sequence[float] | None = None) -> "RegularGrid":
        shape = tuple(int(s) for s in shape)
        lengths = tuple(float(v) for v in (lengths if lengths is not None else [1.0] * len(shape)))
        if len(lengths) != len(shape):
            raise ValueError(f"lengths={list(lengths)} do not match a grid of shape {list(shape)}")
        return cls(spatial_dims=len(shape), periodic_length=lengths if periodic else None, shape=shape,
                   lengths=lengths, endpoint=not periodic)

    def axes(self) -> list[np.ndarray]:
        return [np.linspace(0.0, length, n, endpoint=self.endpoint) for n, length in zip(self.shape, self.lengths)]

    def points(self) -> np.ndarray:
        """Node positions in C order of the grid (the order of ``field.reshape(C, -1)``), ``(prod(shape), d)``."""
        mesh = np.meshgrid(*self.axes(), indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=-1)

    def spacing(self) -> float:
        steps = [length / (n if not self.endpoint else max(n - 1, 1)) for n, length in zip(self.shape, self.lengths)]
        return float(min(steps))


@dataclass(frozen=True)
class PointSet(Discretization):
    """One fixed set of points shared by all samples (``positions``: ``(N, d)``; ``lengths``: the domain's extent,
    used to scale positions to ``[0, 1]`` for the networks)."""

    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    lengths: tuple[float, ...] = ()
    origin: tuple[float, ...] = ()

    @classmethod
    def make(cls, positions: np.ndarray, periodic_length: Sequence[float] | None = None,
             lengths: Sequence[float] | None = None, origin: Sequence[float] | None = None) -> "PointSet":
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim == 1:
            pos = pos[:, None]
        lo, hi = pos.min(axis=0), pos.max(axis=0)
        lengths = tuple(float(v) for v in (lengths if lengths is not None else np.maximum(hi - lo, 1e-12)))
        origin = tuple(float(v) for v in (origin if origin is not None else lo))
        period = tuple(float(v) for v in periodic_length) if periodic_length is not None else None
        return cls(spatial_dims=pos.shape[1], periodic_length=period, positions=pos, lengths=lengths, origin=origin)

    def points(self) -> np.ndarray:
        return self.positions


@dataclass(frozen=True)
class ParticleSets(Discretization):
    """A different point set in every sample (positions are a ragged per-sample field named ``positions_field``)."""

    positions_field: str = "pos"

    @property
    def fixed_points(self) -> bool:
        return False
