"""OmegaConf resolvers used by the configs in ``conf/``.

- ``${repeat:12,${data.spatial_dims}}`` -> ``[12, 12]``: per-dimension values for a model whose
  dimension follows the data (``model=fno`` trains on 1-D Burgers and 2-D Darcy alike).
- ``${if_else:${data.periodic},0,0.1}`` -> ``0`` for periodic data, ``0.1`` otherwise.
- ``${not:${data.periodic}}`` -> ``true`` for non-periodic data: the grid-embedding convention of the models
  (``grid_endpoint``), the data's own grid (periodic ``j / n``; non-periodic grids include both boundaries,
  ``j / (n - 1)``).
- ``${cuda_accelerator:${trainer.accelerator}}`` -> ``true`` when the trainer runs on CUDA devices (``cuda``;
  ``gpu`` unless Lightning would pick Apple's MPS; ``auto`` with CUDA available), else ``false``:
  ``trainer.sync_batchnorm`` (torch's SyncBatchNorm raises on CPU tensors, so CPU DDP runs keep plain BatchNorm).
- ``${int_div:10,1}`` -> ``10``: exact integer division (input snapshots = input channels / channels per step).
- ``${cwd:}`` -> the directory the command was launched from. Unlike ``${hydra:runtime.cwd}`` it resolves before
  Hydra's run config exists, e.g. in ``hydra.sweep.dir`` when the launcher creates a sweep's directory.
"""
from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf


def _repeat(value: Any, times: Any) -> list:
    n = int(times)
    if n < 1:
        raise ValueError(f"repeat: times={times} is not allowed; use an integer >= 1")
    return [value] * n


def _if_else(condition: Any, if_true: Any, if_false: Any) -> Any:
    if isinstance(condition, str):
        condition = condition.strip().lower() in ("1", "true", "yes")
    return if_true if condition else if_false


def _int_div(a: Any, b: Any) -> int:
    a, b = int(a), int(b)
    if b <= 0 or a % b:
        raise ValueError(f"int_div: {a} is not a whole multiple of {b}")
    return a // b


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{what}: {value!r} is not a boolean; use true or false")


def _not(value: Any) -> bool:
    return not _as_bool(value, "not")


def _cuda_accelerator(accelerator: Any) -> bool:
    import torch

    name = str(accelerator).strip().lower()
    if name == "cuda":
        return True
    if name == "gpu":  # Lightning maps "gpu" to MPS where that is available
        return not torch.backends.mps.is_available()
    if name == "auto":
        return torch.cuda.is_available()
    return False


def _cwd() -> str:
    return os.getcwd()


def register_resolvers() -> None:
    """Register the resolvers once (safe to call repeatedly)."""
    for name, fn in (("repeat", _repeat), ("if_else", _if_else), ("int_div", _int_div),
                     ("cwd", _cwd), ("not", _not), ("cuda_accelerator", _cuda_accelerator)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
