"""The interface every PDE problem implements, and shared parameter validation.

A :class:`PDEProblem` is a configured data generator: it knows its parameters (validated on construction), the
per-sample shapes of the fields it stores, the fixed coordinates stored beside them, and how to produce a batch
of samples ``indices`` of a split from the per-sample generators of :mod:`datasets.seeding` -- so sample ``i``
depends only on ``(seed, split, i)`` and the parameters, never on the batch it was generated in.

Parameter errors are one-line :class:`ValueError` s naming the value and what is allowed.

Stored grid vs loaded grid. A gridded problem (``grid_kind`` set) solves on ``solver_resolution`` points per
dimension, **stores** its samples on ``store_resolution`` (default: the solver grid) and is **loaded** at
``resolution``, a subsampling of the stored grid read by striding (:meth:`PDEProblem.read_selection`). The stored
data are those of :meth:`PDEProblem.storage_problem` and are identified by :meth:`PDEProblem.storage_config`,
which leaves ``resolution`` out: every resolution that subsamples one store reads the same files.
"""
from __future__ import annotations

import abc
import math
import sys
from typing import Any, ClassVar, Iterable

import numpy as np
import torch

from datasets.seeding import sample_generators

#: ``name`` -> class of every :class:`PDEProblem` subclass defined so far (filled by ``__init_subclass__``);
#: :data:`datasets.pdes.PROBLEMS` is this dict once every module of :mod:`datasets.pdes` is imported
_REGISTRY: dict[str, type[PDEProblem]] = {}


def registered_problems() -> dict[str, type[PDEProblem]]:
    """The registry of the problem classes defined so far (the live dict, not a copy)."""
    return _REGISTRY


def _definition(cls: type) -> tuple[str, str]:
    """Where ``cls`` is defined: its source file (its module's name where it has none) and qualified name, so
    that one file imported under two module names defines the same problem."""
    module = sys.modules.get(cls.__module__)
    return str(getattr(module, "__file__", None) or cls.__module__), cls.__qualname__


class PDEProblem(abc.ABC):
    """Base class of the data-generating PDE problems.

    Subclasses set ``name`` and ``defaults`` (every allowed parameter and its default value) and implement
    :meth:`validate`, :meth:`field_shapes`, :meth:`coordinates` and :meth:`generate_batch`. A subclass that sets
    its own ``name`` registers itself under it; ``defaults`` are exactly the PDE parameters a data config may set
    (every other key of a data config is a data-module setting).

    Args:
        device: where the solver runs (``cpu``, ``cuda[:N]`` or ``auto``); not part of :meth:`config`, since
            it does not change the data beyond round-off (noise is always drawn on CPU).
        **params: overrides of ``defaults``; an unknown name raises ``ValueError``.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: how a stored grid subsamples at read time: ``"periodic"`` (``n`` points ``x_j = j / n``; a grid of ``n``
    #: is every ``S / n``-th point of one of ``S``), ``"nodes"`` (``n`` points ``x_j = j / (n - 1)``, both
    #: boundaries included; every ``(S - 1) / (n - 1)``-th point), or ``None``: the problem has no
    #: ``store_resolution`` and its data are stored at ``resolution`` itself.
    grid_kind: ClassVar[str | None] = None
    #: number of trailing spatial axes of every stored field (gridded problems)
    space_axes: ClassVar[int] = 0
    #: stored coordinate name -> its number of leading spatial axes, subsampled with the fields at read time
    space_coords: ClassVar[dict[str, int]] = {}
    #: per-sample parameter fields (the PDE coefficients of each sample, shape ``()`` or ``(P,)``): never
    #: subsampled, served to the networks as the batch's ``params`` when a data config asks for them, and enough,
    #: with the coordinates, to solve any stored sample again from the file alone
    parameter_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register every subclass that sets its own non-empty ``name`` (see :func:`registered_problems`)."""
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not name:  # no name, or one inherited from a registered problem: not a problem of its own
            return
        known = _REGISTRY.get(name)
        if known is not None and _definition(known) != _definition(cls):
            raise TypeError(f"pde name {name!r} of {cls.__module__}.{cls.__qualname__} is already used by "
                            f"{known.__module__}.{known.__qualname__}; give every PDEProblem its own name")
        _REGISTRY[name] = cls  # the same class defined again (a module imported again) replaces itself

    def __init__(self, device: str | torch.device = "cpu", **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown {self.name} parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(self.defaults))}"
            )
        merged = dict(self.defaults)
        merged.update(params)
        self.params: dict[str, Any] = merged
        self.device = resolve_device(device)
        self.validate()

    def __getattr__(self, item: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and item in params:
            return params[item]
        raise AttributeError(f"{type(self).__name__} has no attribute {item!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------------------------------ contract
    @abc.abstractmethod
    def validate(self) -> None:
        """Check ``self.params``; raise a one-line ``ValueError`` naming the bad value and what is allowed."""

    @abc.abstractmethod
    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        """Stored field name -> per-sample shape (at the stored resolution)."""

    @abc.abstractmethod
    def coordinates(self) -> dict[str, np.ndarray]:
        """Fixed arrays stored beside the fields (grid coordinates, snapshot times, forcing), float64."""

    @abc.abstractmethod
    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        """Solve one sample per generator: field name -> (B, *shape) tensor (any device, any float dtype)."""

    def solve_bytes_per_sample(self, device: torch.device) -> int | None:
        """Peak memory in bytes that one more sample adds to a batched :meth:`generate_batch` on ``device``
        (the live per-sample arrays of the solver at its working dtype: states, work buffers, the returned
        fields), or ``None`` when the problem gives no estimate (the default).

        Used by :mod:`datasets.generation` to choose the solve batch from the free memory (``chunk_size: auto``):
        a batch of ``B`` samples is expected to need about ``B * solve_bytes_per_sample(device)`` bytes on top of
        the fixed tables. An estimate should err on the large side; it may depend on ``device`` (e.g. the working
        dtype chosen for it)."""
        return None

    def discretization(self, coords: dict[str, np.ndarray]):
        """What the loaded samples sit on (:mod:`datasets.discretization`), given the loaded coordinates: by
        default a :class:`~datasets.discretization.RegularGrid` of the trailing ``space_axes`` of the first field,
        periodic for ``grid_kind == "periodic"``, on the unit box unless the problem has a ``length``. A problem on
        a non-uniform point set (Chebyshev nodes, a mesh) or on particles overrides this."""
        from datasets.discretization import RegularGrid

        shapes = [s for n, s in self.field_shapes().items() if n not in self.parameter_fields]
        dims = self.space_axes or len(shapes[0])
        shape = tuple(shapes[0][len(shapes[0]) - dims:])
        length = float(self.params.get("length", 1.0))
        return RegularGrid.make(shape, periodic=self.grid_kind == "periodic", lengths=[length] * dims)

    # ------------------------------------------------------------------------------------------ driver
    def config(self) -> dict[str, Any]:
        """All parameters (JSON-able), ``resolution`` included."""
        return {"pde": self.name, **{k: _plain(v) for k, v in self.params.items()}}

    def storage_config(self) -> dict[str, Any]:
        """What determines the stored data (the storage manifest and its hash): :meth:`config` without the loaded
        ``resolution`` for a gridded problem (its ``store_resolution`` stays), all of it otherwise."""
        cfg = self.config()
        if self.grid_kind is not None:
            cfg.pop("resolution", None)
        return cfg

    @property
    def read_stride(self) -> int:
        """Stride from the stored grid to the loaded one (1 for a problem without read-time subsampling)."""
        return int(self.__dict__.get("_read_stride", 1))

    def storage_problem(self) -> PDEProblem:
        """The problem whose samples are stored: this one at ``resolution = store_resolution`` (this one itself
        when it is already there or has no read-time subsampling). Same parameters, so the same
        :meth:`storage_config` and the same samples."""
        if self.grid_kind is None or self.read_stride == 1:
            return self
        return type(self)(device=self.device, **{**self.params, "resolution": self.params["store_resolution"]})

    def read_selection(self) -> dict[str, tuple[slice, ...]]:
        """Field name -> per-sample index into the stored arrays (``storage_problem().field_shapes()``) that gives
        this problem's ``field_shapes()``: every spatial axis (the trailing ``space_axes``) strided by
        :attr:`read_stride`, the other axes (time) whole."""
        s = self.read_stride
        out = {}
        for name, shape in self.field_shapes().items():
            lead = len(shape) - self.space_axes
            if name in self.parameter_fields or lead < 0:
                out[name] = ()
                continue
            out[name] = (slice(None),) * lead + (slice(None, None, s),) * self.space_axes
        return out

    def restrict(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fields read with :meth:`read_selection` (``(N, *stored shape)`` arrays) -> the loaded fields
        (``(N, *field_shapes())``). Plain striding needs nothing more (the default returns ``arrays``); a problem
        whose coarse data are *filtered* before subsampling (the MP-PDE combined equation: a 5-point mean, then
        every ``read_stride``-th point) reads its fields whole and does it here."""
        return arrays

    def subsample_coordinates(self, coords: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stored coordinates (at ``store_resolution``) -> those of the loaded grid: the ``space_coords`` strided
        by :attr:`read_stride` along their spatial axes, the others (``t``) unchanged."""
        s = self.read_stride
        out = dict(coords)
        for name, axes in self.space_coords.items():
            if name in out and s != 1:
                out[name] = np.ascontiguousarray(np.asarray(out[name])[(slice(None, None, s),) * axes])
        return out

    def generate(
        self,
        seed: int,
        split: str,
        indices: Iterable[int],
        device: str | torch.device | None = None,
    ) -> dict[str, np.ndarray]:
        """Samples ``indices`` of ``split`` as float32 NumPy arrays ``(B, *shape)`` (one batched solve on
        ``device``, default the problem's)."""
        indices = [int(i) for i in indices]
        if not indices:
            return {k: np.zeros((0, *s), dtype=np.float32) for k, s in self.field_shapes().items()}
        device = self.device if device is None else resolve_device(device)
        out = self.generate_batch(sample_generators(seed, split, indices), device)
        result = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in out.items()}
        for key, shape in self.field_shapes().items():
            got = result[key].shape
            if got != (len(indices), *shape):  # pragma: no cover - internal consistency
                raise RuntimeError(f"{self.name}: field {key} has shape {got}, expected {(len(indices), *shape)}")
            if not np.isfinite(result[key]).all():
                raise RuntimeError(f"{self.name}: non-finite values in field {key}; reduce the time step")
        return result


# ---------------------------------------------------------------------------------------------- helpers
def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; otherwise a checked ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not allowed; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available (no CUDA device); use 'cpu' or 'auto'")
    return dev


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """A positive (``>= minimum``) integer parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= {minimum}")
    return int(value)


def check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    """A positive (or non-negative) finite real parameter."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and (float(value) >= 0 if allow_zero else float(value) > 0)
    if not ok:
        what = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name}={value!r} is not allowed; use {what}")
    return float(value)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; use one of {', '.join(map(repr, allowed))}")
    return value


def check_periodic_subsampling(resolution: int, solver_resolution: int, name: str = "resolution",
                               of: str = "solver_resolution") -> int:
    """Stride that subsamples a periodic grid of ``solver_resolution`` points to ``resolution`` points (``name``
    and ``of`` are the parameter names in the error)."""
    if solver_resolution % resolution != 0:
        raise ValueError(
            f"{name}={resolution} is not allowed with {of}={solver_resolution}; "
            f"use a divisor of {solver_resolution} ({of} % {name} == 0)"
        )
    return solver_resolution // resolution


def check_boundary_subsampling(resolution: int, solver_resolution: int, name: str = "resolution",
                               of: str = "solver_resolution") -> int:
    """Stride that subsamples a grid with both boundary points (``n`` points on ``[0, 1]``)."""
    if resolution < 2 or (solver_resolution - 1) % (resolution - 1) != 0:
        allowed = [r for r in range(2, solver_resolution + 1) if (solver_resolution - 1) % (r - 1) == 0]
        raise ValueError(
            f"{name}={resolution} is not allowed with {of}={solver_resolution}; "
            f"({of} - 1) % ({name} - 1) must be 0, e.g. one of {allowed}"
        )
    return (solver_resolution - 1) // (resolution - 1)


def check_grids(problem: PDEProblem, minimum: int) -> int:
    """Validate ``solver_resolution`` -> ``store_resolution`` -> ``resolution`` of a gridded problem.

    Resolves ``store_resolution: None`` to the solver grid (in ``problem.params``, so equal stores hash
    equally), checks that the stored grid subsamples the solver grid and the loaded grid the stored one
    (``problem.grid_kind`` rules), records the read stride and returns the solver -> loaded stride."""
    p = problem.params
    solver, res = p["solver_resolution"], p["resolution"]
    store = p.get("store_resolution")
    store = solver if store is None else check_int("store_resolution", store, minimum)
    if store > solver:
        raise ValueError(f"store_resolution={store} is not allowed; use at most solver_resolution={solver} "
                         "(null = the solver grid)")
    of = "solver_resolution" if store == solver else "store_resolution"
    if res > store:
        raise ValueError(f"resolution={res} is not allowed; use at most {of}={store}")
    check = check_periodic_subsampling if problem.grid_kind == "periodic" else check_boundary_subsampling
    check(store, solver, name="store_resolution")
    read_stride = check(res, store, of=of)
    p["store_resolution"] = int(store)
    problem.__dict__["_read_stride"] = read_stride
    return check(res, solver)
