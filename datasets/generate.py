"""Generate datasets without training: ``python -m datasets.generate data=<name> [overrides]``.

Examples::

    python -m datasets.generate                                   # the laptop default (data=darcy_small)
    python -m datasets.generate data=burgers data.n_train=100 generate.splits=[train]
    python -m datasets.generate data=navier_stokes generate.device=cuda

Every split is written chunk by chunk to ``<data_dir>/<pde>/<config hash>/<split>.h5`` (see
:mod:`datasets.storage`) at the stored grid (``data.store_resolution``, default the solver grid; ``data.resolution``
is only what is loaded and is not part of the hash); an interrupted run resumes where it stopped, and a run asking
for more samples than stored extends the files. The library side (:func:`generate_split`) is what
:mod:`datasets.cache` and the datamodule call.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from operators.runtime import resolvers  # noqa: F401  (the data configs may use them)
from operators.runtime.errors import exit_on_user_error

from datasets.storage import SPLITS, SplitSpec, SplitWriter

log = logging.getLogger("pdeforge.generate")

#: samples solved (and written) per chunk; the resume granularity
DEFAULT_CHUNK_SIZE = 32

ProgressFn = Callable[[int, int], None]  # (n_completed, n_total)

#: constructor arguments of GridDataModule that are not parameters of the PDE problem
DATAMODULE_KEYS = frozenset({
    "_target_", "pde", "n_train", "n_val", "n_test", "seed", "inputs", "targets", "input_steps", "target_steps",
    "in_channels", "out_channels", "n_input_steps", "n_target_steps", "spatial_dims", "periodic", "batch_size",
    "num_workers", "data_dir", "data_on_device", "device_max_mb", "chunk_size", "generation_device",
    "pin_memory", "eval_batch_size", "prepare_data_per_node",
})


def problem_params(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The PDE parameters of a data config (everything that is not a data-module setting)."""
    return {k: v for k, v in data_cfg.items() if k not in DATAMODULE_KEYS}


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
    fields = {k: tuple(int(s) for s in v) for k, v in problem.field_shapes().items()}
    return SplitSpec(pde=problem.name, split=split, config=generation_config(problem, seed), fields=fields,
                     coords=coords, n_total=int(n_total))


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
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressFn | None = None,
) -> SplitResult:
    """Write (or resume, or extend) ``split`` with ``n`` samples at ``path``; return what was done.

    Sample ``i`` depends only on ``(seed, split, i)`` (the problem draws it from its own generator), so a
    resumed or extended file holds exactly what an uninterrupted run writes. A gridded problem is written at its
    ``store_resolution`` (:func:`storage_problem`), whatever its ``resolution``.
    """
    if n <= 0:
        raise ValueError(f"n_{split}={n} is not allowed; use a positive number of samples")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size={chunk_size} is not allowed; use a positive integer")
    problem = storage_problem(problem)
    start_time = time.perf_counter()
    spec = split_spec(problem, seed, split, n)
    with SplitWriter(path, spec) as writer:
        first = writer.n_completed
        if progress is not None:
            progress(writer.n_completed, n)
        if first:
            log.info("%s: resuming '%s' %s at sample %d/%d", writer.partial, problem.name, split, first, n)
        while not writer.done:
            # chunk boundaries are multiples of chunk_size so resumed runs batch samples identically
            start = writer.n_completed
            stop = min(n, (start // chunk_size + 1) * chunk_size)
            writer.write_chunk(_solve(problem, seed, split, start, stop))
            if progress is not None:
                progress(writer.n_completed, n)
        final = writer.finalize()
    return SplitResult(split, final, n, n - first, time.perf_counter() - start_time)


# ---------------------------------------------------------------------------------------------- command line
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
                   chunk_size: int = DEFAULT_CHUNK_SIZE, show_progress: bool = True) -> list[SplitResult]:
    """Generate ``splits`` for a data config (the ``data`` node of a composed config)."""
    from datasets.cache import DatasetCache

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


def summary_table(results: list[SplitResult], title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in ("split", "samples", "generated", "size (MB)", "time (s)", "samples/s", "path"):
        table.add_column(col, justify="left" if col in ("split", "path") else "right")
    for r in results:
        rate = r.n_generated / r.seconds if r.n_generated and r.seconds > 0 else 0.0
        table.add_row(r.split, str(r.n), str(r.n_generated), f"{r.size_mb:.2f}", f"{r.seconds:.2f}",
                      f"{rate:.1f}" if r.n_generated else "cached", str(r.path))
    return table


def _main(cfg: Any) -> list[SplitResult]:
    from rich.console import Console

    gen = cfg.get("generate") or {}
    splits = list(gen.get("splits") or SPLITS)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    start = time.perf_counter()
    results = run_generation(data_cfg, splits, cfg.paths.data_dir, device=str(gen.get("device", "cpu")),
                             chunk_size=int(gen.get("chunk_size", DEFAULT_CHUNK_SIZE)),
                             show_progress=bool(gen.get("progress", True)))
    total = time.perf_counter() - start
    console = Console(width=200)
    console.print(summary_table(results, f"pdeforge data: {data_cfg['pde']} in {results[0].path.parent}"))
    n_gen = sum(r.n_generated for r in results)
    console.print(f"generated {n_gen} samples in {total:.1f} s"
                  + (f" ({n_gen / total:.1f} samples/s)" if n_gen and total > 0 else ""))
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    _main(cfg)


if __name__ == "__main__":
    main()
