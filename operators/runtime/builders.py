"""Build the objects of a run (datamodule, network, task, callbacks, loggers) from a composed config."""
from __future__ import annotations

import logging
import sys
from typing import Any

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from operators.runtime.errors import USER_ERRORS

log = logging.getLogger(__name__)


def instantiate(cfg: Any, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets a bad-input error of the constructed class (a ValueError naming
    the bad value) surface as itself instead of wrapped in Hydra's multi-line InstantiationException."""
    try:
        return hydra_instantiate(cfg, *args, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, USER_ERRORS):
            raise cause from None
        raise


def build_datamodule(cfg: DictConfig, **overrides: Any) -> pl.LightningDataModule:
    return instantiate(cfg.data, **overrides, _recursive_=False)


def build_task(cfg: DictConfig) -> pl.LightningModule:
    """Instantiate the network (``cfg.model``) and wrap it in the training task (``cfg.task``)."""
    network = instantiate(cfg.model)
    task = instantiate(cfg.task, network=network)
    task.run_config = resolved_run_config(cfg)
    return task


def resolved_run_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config, resolved, without Hydra's own node (stored in checkpoints and logged)."""
    return {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in cfg.items() if k != "hydra"}


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is not None and "_target_" in cb_cfg:
            log.info("callback %s <%s>", name, cb_cfg._target_)
            callbacks.append(instantiate(cb_cfg))
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    loggers: list[Any] = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if lg_cfg is not None and "_target_" in lg_cfg:
            log.info("logger %s <%s>", name, lg_cfg._target_)
            loggers.append(instantiate(lg_cfg))
    return loggers


def finish_wandb() -> None:
    """Close the active wandb run (if any) so the next job of a sweep starts its own run. A run whose loggers
    never imported wandb does not need it installed: nothing is imported here."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
