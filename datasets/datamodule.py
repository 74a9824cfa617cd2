"""Lightning data module for PDE data on grids and on graphs (Burgers, Darcy, Navier-Stokes, the MP-PDE
combined equation, the wave equation on Chebyshev nodes).

Batches follow the contract of :mod:`datasets.batching`: grid batches (the default) are dicts of ``(B, C, *S)``
tensors; with ``graph`` set, every sample is served as a PyG graph (nodes = the discretization's points, edges
within ``graph.radius`` point spacings, optionally across periodic boundaries) and batches are
``torch_geometric.data.Batch`` es whose rows are nodes. Either way ``params`` carries the per-sample PDE parameters
named in ``parameters``, and time-dependent graph data carry ``time`` / ``time_step`` (scaled by the final
time) for the graph networks that read them.

Batches are dicts ``{"x": (B, C_in, *S), "y": (B, C_out * T_out, *S)}``. Channels are time-major: for
time-dependent fields, channel ``k * C + c`` holds field ``c`` (in ``inputs`` / ``targets`` order) at the
``k``-th selected step; static fields (Darcy ``a``, ``u``) contribute one channel each, after the
time-dependent ones. ``in_channels`` is the total input channel count, ``out_channels`` the target channels
*per step* (what a rollout network produces), ``n_target_steps`` the number of target steps.

Lightning drives the data: ``prepare_data`` runs on local rank 0 of each node (``prepare_data_per_node=true``,
for node-local disks) or on global rank 0 only (``false``, for a shared filesystem), followed by a barrier, and
generates missing data through :class:`datasets.cache.DatasetCache`; ``setup`` then loads the splits into memory
on every rank. Every loader is a plain ``DataLoader`` over a :class:`datasets.tensor_dataset.TensorDictDataset`;
with ``data_on_device`` the split's tensors are first moved to the trainer's root device (the GPU-resident path:
no host copies, no workers; on a CPU root device the same path runs, which is how CI tests it). Training batches
are shuffled by the run's RNG (``seed``; under DDP by Lightning's ``DistributedSampler`` seeded with it);
validation and test batches are sharded by :class:`datasets.evaluation_sampler.EvaluationShardSampler`, so every
sample is evaluated exactly once across ranks.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from datasets.cache import DatasetCache
from datasets.discretization import Discretization, PointSet
from datasets.evaluation_sampler import EvaluationShardSampler
from datasets.generation import DEFAULT_CHUNK_SIZE, make_problem, problem_params  # noqa: F401
from datasets.storage import SPLITS, StoredSplit
from datasets.tensor_dataset import TensorDictDataset, collate_batch, tensors_nbytes

log = logging.getLogger(__name__)

_SLICE = re.compile(r"^\s*(-?\d*)\s*:\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?$")


def parse_steps(spec: Any, n_steps: int, name: str) -> list[int]:
    """Time indices selected by ``spec``: an int, a list of ints, or a ``"a:b"`` / ``"a:b:c"`` slice string.

    Negative indices count from the end, as in Python. Raises a one-line ``ValueError`` naming ``name``."""
    allowed = f"use an int, a list of ints or a slice string 'a:b' within the {n_steps} stored steps"
    if isinstance(spec, bool):
        raise ValueError(f"{name}={spec!r} is not allowed; {allowed}")
    if isinstance(spec, (int, np.integer)):
        items = [int(spec)]
    elif isinstance(spec, str):
        text = spec.strip()
        m = _SLICE.match(text)
        if m:
            parts = [int(p) if p not in ("", None) else None for p in m.groups()]
            if parts[2] == 0:
                raise ValueError(f"{name}={spec!r} is not allowed: slice step 0; {allowed}")
            for p in parts[:2]:
                if p is not None and not -n_steps <= p <= n_steps:
                    raise ValueError(f"{name}={spec!r} is out of range: bound {p} outside [-{n_steps}, {n_steps}];"
                                     f" {allowed}")
            items = list(range(n_steps))[slice(*parts)]
            if not items:
                raise ValueError(f"{name}={spec!r} selects no steps; {allowed}")
            return items
        try:
            items = [int(text)]
        except ValueError:
            raise ValueError(f"{name}={spec!r} is not allowed; {allowed}") from None
    elif isinstance(spec, Sequence) or hasattr(spec, "__iter__"):
        items = []
        for v in spec:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name}={list(spec)!r} is not allowed: {v!r} is not an int; {allowed}")
            items.append(int(v))
        if not items:
            raise ValueError(f"{name}=[] selects no steps; {allowed}")
    else:
        raise ValueError(f"{name}={spec!r} is not allowed; {allowed}")
    out = []
    for i in items:
        if not -n_steps <= i < n_steps:
            raise ValueError(f"{name}={spec!r} is out of range: step {i} outside [-{n_steps}, {n_steps - 1}]; "
                             f"{allowed}")
        out.append(i % n_steps)
    return out


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed; use a positive integer")
    return int(value)


class GridDataModule(pl.LightningDataModule):
    """Generated (and cached) gridded PDE data as ``{"x", "y"}`` batches.

    Args:
        pde: problem name (``burgers``, ``darcy``, ``navier_stokes``).
        n_train / n_val / n_test: samples per split (the first ``n`` of each stored split).
        resolution: grid points per spatial dimension of the loaded data, strided from the stored grid
            (``store_resolution``, by default the solver grid); not part of the cache's config hash, so every
            resolution that subsamples the stored grid reads the same files.
        solver_resolution: grid of the numerical solver.
        seed: data seed (sample ``i`` of a split depends only on ``(seed, split, i)``).
        inputs / targets: stored field names forming ``x`` and ``y`` (default: the problem's).
        input_steps / target_steps: time steps of time-dependent fields: int, list of ints or ``"a:b"``.
        in_channels / out_channels / n_target_steps / n_input_steps: checked against the data when given.
        spatial_dims / periodic: descriptive keys the model configs read; checked when the problem knows them.
        batch_size / eval_batch_size / num_workers / pin_memory: loader settings.
        data_dir: root of the dataset cache.
        data_on_device: ``"auto"`` (a CUDA root device and the data fit under ``device_max_mb``), ``true`` (always,
            whatever the root device: on a CPU the tensors simply stay where they are) or ``false``: keep whole
            splits on the trainer's root device and index batches there.
        prepare_data_per_node: generate missing data on local rank 0 of every node (``true``) or on global rank 0
            only (``false``: one shared filesystem).
        chunk_size: samples generated per written chunk; generation_device: where the solver runs.
        parameters: per-sample parameter fields of the problem (its ``parameter_fields``, e.g. ``[beta]``) served as
            the batch's ``params`` ``(B, P)``; ``n_params`` (``P``) is checked when given.
        snapshot_dt: the time between stored snapshots, checked against the data when given (model configs read it).
        graph: serve graphs instead of grids: ``{radius: 3.0, periodic: false, max_num_neighbors: null}``; nodes
            are the discretization's points, edges join points closer than ``radius`` point spacings (``n * dx``),
            across periodic boundaries when ``periodic``.
        train_steps: steps of the time-dependent input fields served whole to the training split as ``trajectory``
            (for tasks that draw their own windows, e.g. random start times); ``null``: training batches are
            ``x`` / ``y`` like validation's.
        train_passes_per_epoch: passes over the training split per epoch (MP-PDE's official epoch: 250).
        parameter_scale: divisors of the served ``parameters`` (name -> value), so networks see ``O(1)`` values
            (the official MP-PDE code divides alpha by 3, beta by 0.2 (E2) or 0.4 (E3), gamma by 1).
        **pde_params: parameters of the problem (``nu``, ``alpha``, ``tau``, ``t_final``, ``dt``, ...).
    """

    def __init__(
        self,
        pde: str,
        n_train: int,
        n_val: int,
        n_test: int,
        resolution: int,
        solver_resolution: int | None = None,
        seed: int = 0,
        inputs: Sequence[str] | str | None = None,
        targets: Sequence[str] | str | None = None,
        input_steps: Any = None,
        target_steps: Any = None,
        in_channels: int | None = None,
        out_channels: int | None = None,
        n_input_steps: int | None = None,
        n_target_steps: int | None = None,
        spatial_dims: int | None = None,
        periodic: bool | None = None,
        batch_size: int = 20,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        data_dir: str = "data",
        data_on_device: bool | str = "auto",
        device_max_mb: float = 4096.0,
        chunk_size: int | str = DEFAULT_CHUNK_SIZE,
        generation_device: str = "cpu",
        prepare_data_per_node: bool = True,
        parameters: Sequence[str] | None = None,
        n_params: int | None = None,
        snapshot_dt: float | None = None,
        graph: dict | None = None,
        train_steps: Any = None,
        train_passes_per_epoch: int = 1,
        parameter_scale: dict | None = None,
        **pde_params: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not isinstance(prepare_data_per_node, bool):
            raise ValueError(f"prepare_data_per_node={prepare_data_per_node!r} is not allowed; use true or false")
        self.prepare_data_per_node = prepare_data_per_node
        self.sizes = {s: _positive_int(v, f"n_{s}") for s, v in zip(SPLITS, (n_train, n_val, n_test))}
        _positive_int(resolution, "resolution")
        if solver_resolution is not None:
            _positive_int(solver_resolution, "solver_resolution")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} is not allowed; use a non-negative integer")
        _positive_int(batch_size, "batch_size")
        if eval_batch_size is not None:
            _positive_int(eval_batch_size, "eval_batch_size")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers={num_workers!r} is not allowed; use an integer >= 0")
        if data_on_device not in (True, False, "auto"):
            raise ValueError(f"data_on_device={data_on_device!r} is not allowed; use true, false or auto")
        if not isinstance(device_max_mb, (int, float)) or device_max_mb < 0:
            raise ValueError(f"device_max_mb={device_max_mb!r} is not allowed; use a number >= 0")

        params = dict(pde_params)
        params["resolution"] = resolution
        if solver_resolution is not None:
            params["solver_resolution"] = solver_resolution
        self.problem = make_problem(pde, **params, device=generation_device)
        self.cache = DatasetCache(data_dir, chunk_size=chunk_size)
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory

        self._shapes = {k: tuple(int(s) for s in v) for k, v in self.problem.field_shapes().items()}
        self._spatial_dims = self._infer_spatial_dims(spatial_dims)
        self._time_dependent = {k: len(v) == self._spatial_dims + 1 for k, v in self._shapes.items()}
        self.inputs = self._field_list(inputs, "inputs", getattr(self.problem, "default_inputs", None))
        self.targets = self._field_list(targets, "targets", getattr(self.problem, "default_targets", None))
        self.input_steps = self._steps(self.inputs, input_steps, "input_steps")
        self.target_steps = self._steps(self.targets, target_steps, "target_steps")
        self.train_steps = None if train_steps is None else self._steps(self.inputs, train_steps, "train_steps")
        self._check_counts(in_channels, out_channels, n_input_steps, n_target_steps, periodic)
        self.parameters = self._parameter_list(parameters, n_params)
        self.parameter_scale = {str(k): float(v) for k, v in dict(parameter_scale or {}).items()}
        for name, value in self.parameter_scale.items():
            if name not in self.parameters or not value > 0:
                raise ValueError(f"parameter_scale.{name}={value} is not allowed; use divisors > 0 of the served "
                                 f"parameters {self.parameters}")
        self._check_snapshot_dt(snapshot_dt)
        self.graph = self._graph_settings(graph)
        self.train_passes_per_epoch = _positive_int(train_passes_per_epoch, "train_passes_per_epoch")
        self._graph_cache: dict[Any, Any] = {}

        self.data: dict[str, dict[str, torch.Tensor]] = {}
        self.coords: dict[str, np.ndarray] = {}
        self._on_device: torch.device | None = None

    # ------------------------------------------------------------------ configuration checks
    def _infer_spatial_dims(self, given: int | None) -> int:
        dims = getattr(self.problem, "spatial_dims", None)
        if dims is None:
            fields = [s for k, s in self._shapes.items() if k not in self.problem.parameter_fields]
            dims = given if given is not None else min(len(s) for s in fields)
        dims = int(dims)
        if given is not None and int(given) != dims:
            raise ValueError(f"spatial_dims={given} does not match '{self.hparams.pde}', which is {dims}-D")
        return dims

    def _field_list(self, value: Any, name: str, default: Any) -> list[str]:
        if value is None:
            value = default
        if value is None:
            raise ValueError(f"{name} is required for '{self.hparams.pde}'; use a list of {sorted(self._shapes)}")
        names = [value] if isinstance(value, str) else list(value)
        if not names:
            raise ValueError(f"{name}=[] is not allowed; use a non-empty list of {sorted(self._shapes)}")
        for n in names:
            if n not in self._shapes:
                raise ValueError(f"{name} contains {n!r}, which '{self.hparams.pde}' does not store; "
                                 f"use some of {sorted(self._shapes)}")
        return names

    def _steps(self, fields: list[str], spec: Any, name: str) -> list[int] | None:
        timed = [f for f in fields if self._time_dependent[f]]
        if not timed:
            if spec is not None:
                raise ValueError(f"{name}={spec!r} is not allowed: {fields} are not time-dependent; use null")
            return None
        n_steps = self._shapes[timed[0]][0]
        if spec is None:
            raise ValueError(f"{name} is required for time-dependent {timed}; use an int, a list or 'a:b' "
                             f"within the {n_steps} stored steps")
        return parse_steps(spec, n_steps, name)

    def _parameter_list(self, value: Any, n_params: Any) -> list[str]:
        allowed = list(self.problem.parameter_fields)
        names = [] if value is None else ([value] if isinstance(value, str) else list(value))
        for n in names:
            if n not in allowed:
                raise ValueError(f"parameters contains {n!r}, which is not a per-sample parameter of "
                                 f"'{self.hparams.pde}'; use some of {allowed or '[] (it has none)'}")
        self.parameters = names
        if n_params is not None and int(n_params) != self.n_params:
            raise ValueError(f"n_params={n_params} does not match the data: parameters={names} have "
                             f"{self.n_params} values per sample; set n_params={self.n_params}")
        return names

    @property
    def n_params(self) -> int:
        """Values per sample in ``params`` (a vector parameter counts its length)."""
        return sum(int(np.prod(self._shapes[n], dtype=np.int64)) for n in self.parameters)

    def _times(self) -> np.ndarray | None:
        t = self.problem.coordinates().get("t")
        return None if t is None else np.asarray(t, dtype=np.float64)

    @property
    def snapshot_dt(self) -> float | None:
        """Time between stored snapshots (``None`` for steady problems)."""
        t = self._times()
        return float(t[1] - t[0]) if t is not None and len(t) > 1 else None

    def _check_snapshot_dt(self, given: Any) -> None:
        if given is None:
            return
        actual = self.snapshot_dt
        if actual is None or not np.isclose(float(given), actual, rtol=1e-6, atol=0.0):
            raise ValueError(f"snapshot_dt={given} does not match the data, whose snapshots are {actual} apart; "
                             f"set snapshot_dt={actual}")

    def _graph_settings(self, graph: Any) -> dict | None:
        if graph is None or graph is False:
            return None
        allowed = {"radius", "periodic", "max_num_neighbors"}
        settings = {"radius": 3.0, "periodic": False, "max_num_neighbors": None, **dict(graph)}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ValueError(f"graph has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        r = settings["radius"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0:
            raise ValueError(f"graph.radius={r!r} is not allowed; use a number of point spacings > 0, e.g. 3")
        if not isinstance(settings["periodic"], bool):
            raise ValueError(f"graph.periodic={settings['periodic']!r} is not allowed; use true or false")
        return settings

    @property
    def discretization(self) -> Discretization:
        """What the loaded samples sit on (:mod:`datasets.discretization`), from the loaded coordinates."""
        coords = self.coords or self.problem.subsample_coordinates(self.problem.storage_problem().coordinates())
        return self.problem.discretization(coords)

    @property
    def is_graph(self) -> bool:
        """Whether batches are graphs (``graph`` set)."""
        return self.graph is not None

    @property
    def n_input_steps(self) -> int:
        return len(self.input_steps) if self.input_steps is not None else 1

    @property
    def n_target_steps(self) -> int:
        return len(self.target_steps) if self.target_steps is not None else 1

    def _channels(self, fields: list[str], steps: list[int] | None) -> tuple[int, int]:
        """(total channels, channels per step) of ``fields``."""
        timed = sum(self._time_dependent[f] for f in fields)
        static = len(fields) - timed
        n_steps = len(steps) if steps is not None else 0
        return timed * n_steps + static, timed + static

    @property
    def in_channels(self) -> int:
        return self._channels(self.inputs, self.input_steps)[0]

    @property
    def out_channels(self) -> int:
        """Target channels per step."""
        return self._channels(self.targets, self.target_steps)[1]

    @property
    def y_channels(self) -> int:
        return self._channels(self.targets, self.target_steps)[0]

    @property
    def spatial_dims(self) -> int:
        return self._spatial_dims

    @property
    def resolution(self) -> int:
        return int(self.hparams.resolution)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        shape = self._shapes[self.inputs[0]]
        return tuple(shape[1:] if self._time_dependent[self.inputs[0]] else shape)

    @property
    def periodic(self) -> bool | None:
        value = getattr(self.problem, "periodic", None)
        return bool(value) if value is not None else self.hparams.get("periodic")

    @property
    def dataset_dir(self) -> Path:
        return self.cache.directory(self.problem, self.seed)

    def _check_counts(self, in_channels: Any, out_channels: Any, n_input_steps: Any, n_target_steps: Any,
                      periodic: Any) -> None:
        checks = (("in_channels", in_channels, self.in_channels, "the input channels"),
                  ("out_channels", out_channels, self.out_channels, "the target channels per step"),
                  ("n_input_steps", n_input_steps, self.n_input_steps, "the number of input steps"),
                  ("n_target_steps", n_target_steps, self.n_target_steps, "the number of target steps"))
        for name, given, actual, what in checks:
            if given is not None and given != actual:
                raise ValueError(f"{name}={given} does not match the data: {what} of inputs={self.inputs} "
                                 f"input_steps={self.hparams.input_steps!r} targets={self.targets} "
                                 f"target_steps={self.hparams.target_steps!r} is {actual}; set {name}={actual}")
        known = getattr(self.problem, "periodic", None)
        if periodic is not None and known is not None and bool(periodic) != bool(known):
            raise ValueError(f"periodic={periodic} does not match '{self.hparams.pde}' (periodic={bool(known)})")

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> None:
        """Generate (once per config, under a file lock) every split that is missing or too short. Lightning
        calls this on one process per node (or one in all, ``prepare_data_per_node=false``), then a barrier."""
        trainer = getattr(self, "trainer", None)
        log.info("prepare_data on global rank %s", trainer.global_rank if trainer is not None else "- (no trainer)")
        for split, n in self.sizes.items():
            self.cache.ensure_split(self.problem, self.seed, split, n)

    def _assemble(self, stored: StoredSplit, fields: list[str], steps: list[int] | None) -> torch.Tensor:
        timed = [f for f in fields if self._time_dependent[f]]
        static = [f for f in fields if not self._time_dependent[f]]
        parts = []
        if timed:
            # (N, T_sel, C, *S) -> (N, T_sel * C, *S): time-major channels
            arr = np.stack([stored.fields[f][:, steps] for f in timed], axis=2)
            parts.append(arr.reshape(arr.shape[0], arr.shape[1] * arr.shape[2], *arr.shape[3:]))
        for f in static:
            parts.append(stored.fields[f][:, None])
        return torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32))

    def load(self, split: str) -> dict[str, torch.Tensor]:
        """Load ``split`` into memory as ``{"x", "y"}`` CPU tensors (generating it if needed).

        The data are stored at the problem's ``store_resolution`` (default: the solver grid) and read at
        ``resolution`` by striding (whole samples are read in blocks and strided in memory); ``self.coords`` become
        the coordinates of the loaded grid."""
        if split not in self.data:
            stored = self.cache.load_split(self.problem, self.seed, split, self.sizes[split])
            self.coords = stored.coords
            n = stored.n
            if split == "train" and self.train_steps is not None:
                data = {"trajectory": self._assemble(stored, self.inputs, self.train_steps)}
                first = self.train_steps[0]
            else:
                data = {"x": self._assemble(stored, self.inputs, self.input_steps),
                        "y": self._assemble(stored, self.targets, self.target_steps)}
                first = None if self.target_steps is None else self.target_steps[0]
            if self.parameters:
                data["params"] = torch.from_numpy(np.concatenate(
                    [np.asarray(stored.fields[f], dtype=np.float64).reshape(n, -1) / self.parameter_scale.get(f, 1.0)
                     for f in self.parameters], axis=1).astype(np.float32))
            t = self._times()
            if self.is_graph and t is not None and first is not None and len(t) > 1 and t[-1] > 0:
                # the time of the first predicted step (of the trajectory's first step) and the snapshot spacing,
                # over T: what the official MP-PDE code feeds its network
                data["time"] = torch.full((n,), float((t[0] + first * (t[1] - t[0])) / t[-1]))
                data["time_step"] = torch.full((n,), float((t[1] - t[0]) / t[-1]))
            self.data[split] = data
        return self.data[split]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",),
                  None: SPLITS}.get(stage, SPLITS)
        for split in splits:
            self.load(split)

    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole training split as CPU tensors ``(x, y)`` (for normalisers), grid layout."""
        data = self.load("train")
        if "x" not in data:
            raise ValueError("the training split holds whole trajectories (train_steps is set): normalisers "
                             "cannot be fitted on windows; set task.normalize_input=false and "
                             "task.normalize_target=false")
        return data["x"], data["y"]

    def example_batch(self, split: str = "val", n: int = 1) -> Any:
        """The first ``n`` samples of ``split`` as a batch in the loaders' layout (grid dict or graph batch)."""
        data = self.load(split)
        n = min(n, len(TensorDictDataset(data)))
        return self._collate(split)(TensorDictDataset(data).__getitems__(list(range(n))))

    # ------------------------------------------------------------------ graphs
    def _graph_geometry(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Node positions scaled to ``[0, 1]`` ``(N, d)`` and the edges ``(2, E)`` of the fixed point set, on
        ``device`` (computed once)."""
        if device in self._graph_cache:
            return self._graph_cache[device]
        from datasets.neighbors import radius_graph

        disc = self.discretization
        points = disc.points()
        if isinstance(disc, PointSet):
            scaled = (points - np.asarray(disc.origin)) / np.asarray(disc.lengths)
        else:
            scaled = points / np.asarray(disc.lengths)
        r = float(self.graph["radius"]) * disc.spacing() * (1 + 1e-6)  # "within n dx", n dx itself included
        period = disc.periodic_length if self.graph["periodic"] else None
        if self.graph["periodic"] and period is None:
            raise ValueError(f"graph.periodic=true is not allowed: '{self.hparams.pde}' is not periodic")
        edges = radius_graph(torch.as_tensor(points, dtype=torch.float64), r, loop=False,
                             periodic_length=period, max_num_neighbors=self.graph["max_num_neighbors"])
        geometry = (torch.as_tensor(scaled, dtype=torch.float32).to(device), edges.to(device))
        self._graph_cache[device] = geometry
        return geometry

    def _collate(self, split: str) -> Any:
        if not self.is_graph:
            return collate_batch
        return GraphCollate(self)

    def with_resolution(self, resolution: int) -> "GridDataModule":
        """The same data module at another loaded resolution: the same samples, read through the same cache from
        the same store (nothing is solved again when ``resolution`` subsamples the stored grid)."""
        other = type(self)(**{**dict(self.hparams), "resolution": int(resolution)})
        other.cache = self.cache
        return other

    # ------------------------------------------------------------------ loaders
    def _device_for_data(self) -> torch.device | None:
        """The device to keep the splits on (``data_on_device``), or ``None`` to serve them from host memory."""
        setting = self.hparams.data_on_device
        trainer = getattr(self, "trainer", None)
        if setting is False or trainer is None:
            return None
        device = trainer.strategy.root_device
        if setting == "auto":
            if device.type != "cuda":
                return None
            total = sum(tensors_nbytes(d) for d in self.data.values()) / 2**20
            if total > float(self.hparams.device_max_mb):
                log.info("keeping data on the host: %.0f MB > device_max_mb=%s", total, self.hparams.device_max_mb)
                return None
        return device

    def _process_group(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.load(split)
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        device = self._device_for_data()
        num_workers, pin_memory = self.num_workers, self.pin_memory
        if device is not None:
            if any(v.device != device for v in data.values()):
                data = {k: v.to(device, non_blocking=True) for k, v in data.items()}
                self.data[split] = data
                log.info("%s split kept on %s (%.1f MB)", split, device, tensors_nbytes(data) / 2**20)
            num_workers, pin_memory = 0, False  # batches are gathered on the device itself
        dataset = TensorDictDataset(data, repeats=self.train_passes_per_epoch if split == "train" else 1)
        sampler = None
        if split != "train":
            world, rank = self._process_group()
            sampler = EvaluationShardSampler(dataset, num_replicas=world, rank=rank, split=split)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                          sampler=sampler, collate_fn=self._collate(split), num_workers=num_workers,
                          pin_memory=pin_memory, persistent_workers=num_workers > 0)

    def train_dataloader(self) -> Any:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> Any:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> Any:
        return self._loader("test", shuffle=False)


class GraphCollate:
    """``collate_fn`` that turns a gathered grid batch (``{name: (B, C, *S)}``, per-sample ``(B, ...)``) into a PyG
    ``Batch``: one ``Data`` per sample whose node features are the sample's values at the discretization's points,
    ``(N, C)`` (``x``, ``y``, ``trajectory``), with ``pos`` and ``edge_index`` of the fixed point set; per-sample
    tensors (``params`` ``(P,)``, ``time``, ``time_step``) become graph-level attributes (``(B, P)``, ``(B,)``)."""

    node_keys = ("x", "y", "trajectory")

    def __init__(self, datamodule: GridDataModule) -> None:
        self.datamodule = datamodule

    def __call__(self, batch: dict[str, torch.Tensor]) -> Any:
        from torch_geometric.data import Batch, Data

        first = next(iter(batch.values()))
        pos, edge_index = self.datamodule._graph_geometry(first.device)
        n = first.shape[0]
        nodes = {k: v.reshape(n, v.shape[1], -1).transpose(1, 2) for k, v in batch.items() if k in self.node_keys}
        graph = {k: v.reshape(n, 1, -1) if v.dim() > 1 else v.reshape(n, 1) for k, v in batch.items()
                 if k not in self.node_keys}
        data = []
        for i in range(n):
            item = Data(pos=pos, edge_index=edge_index, num_nodes=pos.shape[0])
            for k, v in nodes.items():
                item[k] = v[i]
            for k, v in graph.items():
                item[k] = v[i]
            data.append(item)
        out = Batch.from_data_list(data)
        for k, v in graph.items():  # (B, 1, P) -> (B, P); (B, 1) -> (B,)
            out[k] = out[k].reshape(n, -1) if batch[k].dim() > 1 else out[k].reshape(n)
        return out
