"""Generate datasets without training: ``python -m datasets.generate data=<name> [overrides]``.

Examples::

    python -m datasets.generate                                   # the laptop default (data=darcy_small)
    python -m datasets.generate data=burgers data.n_train=100 generate.splits=[train]
    python -m datasets.generate data=navier_stokes generate.device=cuda

This is only the command line (config ``conf/generate.yaml``): the generation itself, with its storage layout,
resuming and extending, is the library :mod:`datasets.generation`, which the cache and the datamodule call. A key
of ``data`` that is neither a parameter of the problem (its class's ``defaults``) nor a setting of the data
module named by ``data._target_`` (its constructor's parameters) is a one-line error.
"""
from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Mapping
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from datasets.generation import (
    DEFAULT_CHUNK_SIZE,
    SplitResult,
    check_chunk_size,
    run_generation,
)
from datasets.runtime import resolvers  # noqa: F401  (the data configs may use them)
from datasets.runtime.errors import exit_on_user_error
from datasets.storage import SPLITS

#: keys Hydra reads when it instantiates a config node
HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})
DEFAULT_DATAMODULE = "datasets.datamodule.GridDataModule"


def datamodule_settings(data_cfg: Mapping[str, Any]) -> frozenset[str]:
    """The keys a data config may hold besides the PDE parameters: the named parameters of the constructor of its
    data module (``_target_``, default :class:`~datasets.datamodule.GridDataModule`) and Hydra's keys."""
    target = str(data_cfg.get("_target_") or DEFAULT_DATAMODULE)
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"data._target_={target!r} cannot be imported ({type(exc).__name__}: {exc}); use a data "
                         f"module class such as {DEFAULT_DATAMODULE}") from exc
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind in kinds}
    return frozenset(names - {"self"}) | HYDRA_KEYS


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
                             chunk_size=check_chunk_size(gen.get("chunk_size", DEFAULT_CHUNK_SIZE),
                                                         "generate.chunk_size"),
                             show_progress=bool(gen.get("progress", True)), settings=datamodule_settings(data_cfg))
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
