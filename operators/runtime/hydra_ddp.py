"""Make Lightning's ``ddp`` strategy work inside Hydra runs and multiruns.

Lightning starts the other local ranks by re-running ``sys.argv`` with ``hydra.run.dir=<HydraConfig run.dir>``
appended. Inside a multirun, ``sys.argv`` holds the whole sweep (``-m model.width=32,64``), so every child
would launch the sweep again; and ``run.dir`` may still contain ``${now:...}``, which resolves to a new time
in the child. Before fitting we therefore point ``sys.argv`` at *this job's* overrides, force ``hydra.mode=RUN``
(an ``hparams_search`` config sets MULTIRUN) and pin ``run.dir`` to this job's output directory.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

import torch

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

log = logging.getLogger(__name__)


def uses_subprocess_ddp(strategy: object) -> bool:
    """True for strategies that start other local ranks by re-running the script (``ddp`` and its aliases)."""
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    name = str(name).lower()
    return name.startswith("ddp") and "spawn" not in name and "notebook" not in name and "fork" not in name


def child_argv(argv0: str, job_overrides: list[str]) -> list[str]:
    """The command line a DDP child must run: this job alone, in RUN mode."""
    kept = [o for o in job_overrides if not o.startswith(("hydra.mode=", "hydra.run.dir="))]
    return [argv0, *kept, "hydra.mode=RUN"]


def prepare_for_ddp_relaunch() -> None:
    """Call in the launching process (LOCAL_RANK unset or 0) before ``trainer.fit`` when the strategy is ddp."""
    if not HydraConfig.initialized() or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        sys.argv = child_argv(sys.argv[0], list(hc.overrides.task))
        log.info("DDP inside a multirun: local ranks will re-run this job only (%s)", " ".join(sys.argv[1:]))
    with read_write(hc), open_dict(hc):
        hc.run.dir = hc.runtime.output_dir


@contextlib.contextmanager
def isolated_distributed_job() -> Iterator[None]:
    """Run one job so that the next job of a sweep starts clean: afterwards the process group is destroyed and
    the environment variables DDP set (MASTER_PORT, WORLD_SIZE, ...) are restored, so the next job's DDP
    picks a fresh port and launches its own ranks."""
    env_before = dict(os.environ)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key in set(os.environ) - set(env_before):
            del os.environ[key]
        for key, value in env_before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
