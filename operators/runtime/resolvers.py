"""OmegaConf resolvers used by the configs in ``conf/``.

- ``${repeat:12,${data.spatial_dims}}`` -> ``[12, 12]``: per-dimension values for a model whose
  dimension follows the data (``model=fno`` trains on 1-D Burgers and 2-D Darcy alike).
- ``${if_else:${data.periodic},0,0.1}`` -> ``0`` for periodic data, ``0.1`` otherwise.
- ``${int_div:10,1}`` -> ``10``: exact integer division (input snapshots = input channels / channels per step).
- ``${ceil_div:1000,8}`` -> ``125``: rounded-up division (optimizer steps per epoch = ceil(n_train / batch_size)).
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


def _ceil_div(a: Any, b: Any) -> int:
    a, b = int(a), int(b)
    if b <= 0:
        raise ValueError(f"ceil_div: divisor {b} is not allowed; use an integer >= 1")
    return -(-a // b)


def _cwd() -> str:
    return os.getcwd()


def register_resolvers() -> None:
    """Register the resolvers once (safe to call repeatedly)."""
    for name, fn in (("repeat", _repeat), ("if_else", _if_else), ("int_div", _int_div),
                     ("ceil_div", _ceil_div), ("cwd", _cwd)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
