"""The data-generation library: solve the samples of a split chunk by chunk into its file, resumably.

:func:`generate_split` writes (or resumes, or extends) one split of a problem at a path; :func:`split_spec` and
:func:`generation_config` say what is stored and what identifies it; :func:`run_generation` generates the splits
of a whole data config through :class:`datasets.cache.DatasetCache`. Every split is written chunk by chunk to
``<data_dir>/<pde>/<config hash>/<split>.h5`` (see :mod:`datasets.storage`) at the stored grid
(``data.store_resolution``, default the solver grid; ``data.resolution`` is only what is loaded and is not part of
the hash); an interrupted run resumes where it stopped, and a run asking for more samples than stored extends the
files. The cache, the datamodule, the tests and the benchmarks call this module; its command line is
``python -m datasets.generate`` (:mod:`datasets.generate`).

A data config's PDE parameters are the keys of its problem class's ``defaults`` (:func:`problem_params`); its
other keys are data-module settings.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datasets.storage import SPLITS, SplitSpec, SplitWriter

log = logging.getLogger("pdeforge.generate")

#: samples solved (and written) per chunk, the resume granularity: ``"auto"`` (from the free memory, see
#: :func:`auto_chunk_size`) or a positive integer
DEFAULT_CHUNK_SIZE: int | str = "auto"
#: the chunk size of ``"auto"`` for a problem without a memory estimate (``solve_bytes_per_sample`` is ``None``)
FALLBACK_CHUNK_SIZE = 32
#: share of the free memory an ``"auto"`` chunk may use
AUTO_MEMORY_FRACTION = 0.5
#: the largest ``"auto"`` chunk per device type: a 2-core CPU gains nothing from huge batches, and on a GPU a
#: batch this large is far past the size where kernel launches stop mattering (and bounds the work an
#: interruption loses)
AUTO_MAX_CHUNK = {"cpu": 64, "cuda": 1024}

ProgressFn = Callable[[int, int], None]  # (n_completed, n_total)


# ---------------------------------------------------------------------------------------------- data configs
def _pde(data_cfg: Mapping[str, Any]) -> str:
    if "pde" not in data_cfg:
        raise ValueError("the data config has no 'pde'; set data.pde to the name of a PDE problem")
    return str(data_cfg["pde"])


def problem_params(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The PDE parameters of a data config: its keys that are parameters of the problem named by its ``pde`` (the
    keys of that problem class's ``defaults``); every other key is a data-module setting."""
    from datasets.pdes import problem_class

    names = problem_class(_pde(data_cfg)).defaults
    return {k: v for k, v in data_cfg.items() if k in names}


def check_data_keys(data_cfg: Mapping[str, Any], settings: Iterable[str]) -> None:
    """A one-line ``ValueError`` naming every key of ``data_cfg`` that is neither a parameter of its problem nor
    one of ``settings`` (the data-module settings, e.g. :func:`datasets.generate.datamodule_settings`), and what
    is allowed."""
    from datasets.pdes import problem_class

    pde = _pde(data_cfg)
    params, settings = set(problem_class(pde).defaults), set(settings)
    unknown = sorted(k for k in data_cfg if k not in params and k not in settings)
    if unknown:
        keys = ", ".join(f"data.{k}" for k in unknown)
        raise ValueError(f"{keys} {'is' if len(unknown) == 1 else 'are'} not allowed: neither a parameter of "
                         f"pde={pde!r} ({', '.join(sorted(params))}) nor a data-module setting "
                         f"({', '.join(sorted(settings - params))})")


# ---------------------------------------------------------------------------------------------- problem access
def make_problem(pde: str, **params: Any):
    """The :class:`~datasets.pdes.base.PDEProblem` for ``pde`` (``ValueError`` naming the known ones)."""
    from datasets.pdes import make_problem as _make

    return _make(pde, **params)


def storage_problem(problem: Any) -> Any:
    """The problem whose samples are stored for ``problem``: at its ``store_resolution`` for a gridded problem
    (:meth:`~datasets.pdes.base.PDEProblem.storage_problem`), the problem itself otherwise."""
    make = getattr(problem, "storage_problem", None)
    return make() if callable(make) else problem


def generation_config(problem: Any, seed: int) -> dict[str, Any]:
    """What determines the stored data: the problem's storage config (its full config without the loaded
    ``resolution`` of a gridded problem) plus the data seed (never ``n``)."""
    config = getattr(problem, "storage_config", None)
    cfg = dict(config() if callable(config) else problem.config())
    cfg.setdefault("pde", problem.name)
    cfg["seed"] = int(seed)
    return cfg


def split_spec(problem: Any, seed: int, split: str, n_total: int) -> SplitSpec:
    """The :class:`SplitSpec` of ``split`` for ``problem`` (shapes and coordinates of its stored grid)."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not allowed; use one of {', '.join(SPLITS)}")
    problem = storage_problem(problem)
    coords = {k: np.asarray(v) for k, v in problem.coordinates().items()}
    # a leading None is a ragged axis (a different length per sample, datasets.ragged)
    fields = {k: tuple(None if s is None else int(s) for s in v) for k, v in problem.field_shapes().items()}
    return SplitSpec(pde=problem.name, split=split, config=generation_config(problem, seed), fields=fields,
                     coords=coords, n_total=int(n_total))


def check_chunk_size(value: Any, name: str = "chunk_size") -> int | str:
    """``"auto"`` or a positive integer (also given as a string, as on a command line); a one-line ``ValueError``
    naming the value otherwise."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        if value.strip().isdigit():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed; use a positive integer or 'auto'")
    return int(value)


def free_memory_bytes(device: Any) -> int | None:
    """Free memory of ``device``: ``torch.cuda.mem_get_info`` on CUDA, the available RAM (psutil, else
    ``/proc/meminfo``) on CPU; ``None`` when it cannot be found out."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        import psutil
    except ImportError:
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024  # kB
        except OSError:
            return None
        return None
    return int(psutil.virtual_memory().available)


def auto_chunk_size(problem: Any, remaining: int) -> int:
    """The solve batch of ``chunk_size: auto``: ``min(remaining, cap, max(1, floor(AUTO_MEMORY_FRACTION *
    free / per_sample)))`` with ``per_sample = problem.solve_bytes_per_sample(device)`` and the free memory of the
    problem's device (:func:`free_memory_bytes`), ``cap = AUTO_MAX_CHUNK[device type]``; ``FALLBACK_CHUNK_SIZE``
    (also capped by ``remaining``) when the problem gives no estimate or the free memory is unknown. Logged."""
    import torch

    device = torch.device(getattr(problem, "device", None) or "cpu")
    estimate = getattr(problem, "solve_bytes_per_sample", None)
    per_sample = estimate(device) if callable(estimate) else None
    free = free_memory_bytes(device) if per_sample else None
    if not per_sample or free is None:
        chunk = max(1, min(int(remaining), FALLBACK_CHUNK_SIZE))
        log.info("chunk_size auto: %d samples per solve for '%s' on %s (no memory estimate)", chunk,
                 getattr(problem, "name", "?"), device)
        return chunk
    fits = max(1, int(AUTO_MEMORY_FRACTION * free // per_sample))
    chunk = max(1, min(int(remaining), fits, AUTO_MAX_CHUNK.get(device.type, fits)))
    log.info("chunk_size auto: %d samples per solve for '%s' on %s (%.1f MB per sample, %.2f GB free, %d fit in "
             "%g of it)", chunk, getattr(problem, "name", "?"), device, per_sample / 2**20, free / 2**30, fits,
             AUTO_MEMORY_FRACTION)
    return chunk


def _solve(problem: Any, seed: int, split: str, start: int, stop: int) -> dict[str, np.ndarray]:
    out = problem.generate(seed=seed, split=split, indices=range(start, stop))
    return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------- library API
@dataclass
class SplitResult:
    split: str
    path: Path
    n: int
    n_generated: int
    seconds: float

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.exists() else 0.0


def generate_split(
    problem: Any,
    seed: int,
    split: str,
    n: int,
    path: str | Path,
    chunk_size: int | str = DEFAULT_CHUNK_SIZE,
    progress: ProgressFn | None = None,
) -> SplitResult:
    """Write (or resume, or extend) ``split`` with ``n`` samples at ``path``; return what was done.

    Sample ``i`` depends only on ``(seed, split, i)`` (the problem draws it from its own generator), so a
    resumed or extended file holds exactly what an uninterrupted run writes. A gridded problem is written at its
    ``store_resolution`` (:func:`storage_problem`), whatever its ``resolution``.

    ``chunk_size`` (samples solved together and written at once) is a positive integer or ``"auto"``: the chunk
    size the file records (attribute ``chunk_size``, written by every run) when it is being resumed or extended,
    else one chosen from the free memory (:func:`auto_chunk_size`). Chunk boundaries are multiples of it, so a
    resumed run batches the samples exactly as the interrupted one did.
    """
    if n <= 0:
        raise ValueError(f"n_{split}={n} is not allowed; use a positive number of samples")
    chunk_size = check_chunk_size(chunk_size)
    problem = storage_problem(problem)
    start_time = time.perf_counter()
    spec = split_spec(problem, seed, split, n)
    with SplitWriter(path, spec) as writer:
        first = writer.n_completed
        if progress is not None:
            progress(writer.n_completed, n)
        if first:
            log.info("%s: resuming '%s' %s at sample %d/%d", writer.partial, problem.name, split, first, n)
        if writer.attrs is not None:
            recorded = writer.attrs.get("chunk_size")
            if chunk_size == "auto":
                chunk_size = int(recorded) if recorded is not None else auto_chunk_size(problem, writer.remaining)
            writer.attrs["chunk_size"] = chunk_size
        while not writer.done:
            # chunk boundaries are multiples of chunk_size so resumed runs batch samples identically
            start = writer.n_completed
            stop = min(n, (start // chunk_size + 1) * chunk_size)
            writer.write_chunk(_solve(problem, seed, split, start, stop))
            if progress is not None:
                progress(writer.n_completed, n)
        final = writer.finalize()
    return SplitResult(split, final, n, n - first, time.perf_counter() - start_time)


# ---------------------------------------------------------------------------------------------- whole configs
def _rich_progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())


def run_generation(data_cfg: Mapping[str, Any], splits: list[str], data_dir: str | Path, device: str = "cpu",
                   chunk_size: int | str = DEFAULT_CHUNK_SIZE, show_progress: bool = True,
                   settings: Iterable[str] | None = None) -> list[SplitResult]:
    """Generate ``splits`` for a data config (the ``data`` node of a composed config) through the dataset cache.

    The problem is built from the config's PDE parameters (:func:`problem_params`); its other keys are data-module
    settings and are ignored here. With ``settings`` (the allowed data-module settings) any key that is neither
    raises a one-line ``ValueError`` first (:func:`check_data_keys`)."""
    from datasets.cache import DatasetCache

    if settings is not None:
        check_data_keys(data_cfg, settings)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"generate.splits contains {split!r}; use a subset of {list(SPLITS)}")
    sizes = {s: data_cfg.get(f"n_{s}") for s in splits}
    for s, n in sizes.items():
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise ValueError(f"data.n_{s}={n} is not allowed; use a positive integer")
    problem = make_problem(str(data_cfg["pde"]), **problem_params(data_cfg), device=device)
    cache = DatasetCache(data_dir, chunk_size=chunk_size)
    results = []
    progress = _rich_progress() if show_progress else None
    if progress is not None:
        progress.start()
    try:
        for split in splits:
            n = int(sizes[split])
            task = None
            t0 = time.perf_counter()
            if progress is not None:
                task = progress.add_task(f"{problem.name} {split}", total=n, rate="")

            def update(done: int, total: int, task=task, t0=t0) -> None:
                if progress is not None and task is not None:
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    progress.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f} samples/s")

            results.append(cache.ensure_split(problem, int(data_cfg.get("seed", 0)), split, n, progress=update))
    finally:
        if progress is not None:
            progress.stop()
    return results
