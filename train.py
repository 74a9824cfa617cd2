"""Train (and test) a neural operator: ``python train.py [overrides]``.

Everything is composed from ``conf/`` (see ``conf/train.yaml``): ``data``, ``model``, ``task``, ``trainer``,
``logger``, ``callbacks``, ``experiment``, ``hparams_search``, ``launcher``. Returns the value of
``optimized_metric`` so Hydra sweepers (Optuna) can minimise it.
"""
from __future__ import annotations

import atexit
import gc
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from operators.runtime import resolvers  # noqa: F401  (registers ${repeat:...} and ${if_else:...})
from operators.runtime.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_task,
    finish_wandb,
    instantiate,
    resolved_run_config,
)
from operators.runtime.checkpoints import (
    check_compatible,
    init_weights_from_checkpoint,
    load_checkpoint,
    model_config_from_init_checkpoint,
)
from operators.runtime.errors import USER_ERRORS, exit_on_user_error, one_line
from operators.runtime.precision import apply_float32_matmul_precision
from operators.runtime.hydra_ddp import isolated_distributed_job, prepare_for_ddp_relaunch, uses_subprocess_ddp

log = logging.getLogger("pdeforge.train")


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test the configured model; return the metrics dict also written to ``metrics.json``."""
    output_dir = Path(cfg.paths.output_dir)
    apply_float32_matmul_precision(cfg.get("float32_matmul_precision"))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    if _in_multirun() and cfg.get("logger") and cfg.logger.get("wandb"):
        with open_dict(cfg):  # one wandb group per sweep
            cfg.logger.wandb.group = Path(HydraConfig.get().sweep.dir).name

    init_ckpt = model_config_from_init_checkpoint(cfg)  # init_from_ckpt: the trained model's config + weights
    datamodule = build_datamodule(cfg)
    task = build_task(cfg)
    if init_ckpt is not None:
        init_weights_from_checkpoint(task, init_ckpt, cfg.init_from_ckpt)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        check_compatible(load_checkpoint(ckpt_path), task, ckpt_path)

    # Lightning drives the data from here on: prepare_data (generation) on one rank per node or globally
    # (data.prepare_data_per_node), a barrier, then setup on every rank; the task checks the network against
    # the data in its own setup, once the training split is loaded.

    callbacks = build_callbacks(cfg)
    loggers = build_loggers(cfg)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    if uses_subprocess_ddp(trainer.strategy if cfg.trainer.get("strategy") is None else cfg.trainer.strategy):
        prepare_for_ddp_relaunch()

    n_params = sum(p.numel() for p in task.network.parameters())
    for logger in trainer.loggers:
        logger.log_hyperparams({"config": resolved_run_config(cfg), "n_parameters": n_params})

    metrics: dict[str, Any] = {"n_parameters": n_params}
    start = time.time()
    if cfg.get("train", True):
        # our checkpoints hold the run config and RNG states (pickled): load only checkpoints you trust
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
        metrics["fit_seconds"] = time.time() - start
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))})
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    metrics["best_checkpoint"] = best or None
    if trainer.checkpoint_callback is not None:
        metrics["last_checkpoint"] = trainer.checkpoint_callback.last_model_path or None
    if cfg.get("test", True):
        test_ckpt = best if best else (ckpt_path if not cfg.get("train", True) else None)
        results = trainer.test(task, datamodule=datamodule, ckpt_path=test_ckpt or None, weights_only=False)
        metrics.update({k: float(v) for k, v in (results[0] if results else {}).items()})

    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_hyperparams({"checkpoint/best": best, "checkpoint/last": metrics.get("last_checkpoint")})
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        summary = ", ".join(f"{k}={metrics[k]:.4g}" for k in ("test/rel_l2", "test/rel_h1", "val/rel_l2_best")
                            if isinstance(metrics.get(k), float))
        log.info("finished in %.1f s: %s", time.time() - start, summary)
        print(f"[pdeforge] {summary}  (metrics: {output_dir / 'metrics.json'})", flush=True)
    finish_wandb()
    return metrics


def run(cfg: DictConfig) -> float:
    """One job: train, then return ``cfg.optimized_metric`` (NaN for a failed trial inside a sweep)."""
    try:
        with isolated_distributed_job():
            metrics = train(cfg)
    except USER_ERRORS + (RuntimeError,) as exc:
        finish_wandb()
        if not _in_multirun():
            raise
        # a crashed or diverged trial must not kill the sweep: report it and return the worst value
        log.error("job failed, sweep continues: %s", one_line(exc))
        return _worst_value()
    value = metrics.get(cfg.get("optimized_metric") or "")
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return _worst_value()
    return float(value)


def _worst_value() -> float:
    """What a failed or diverged trial reports to the sweeper: +inf when minimising, -inf when maximising.
    (Optuna 2.x, which hydra-optuna-sweeper needs, cannot record a NaN-valued trial.)"""
    direction = "minimize"
    if HydraConfig.initialized():
        direction = str(HydraConfig.get().sweeper.get("direction", "minimize"))
    return -math.inf if "max" in direction.lower() else math.inf


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    # When the process ends, skip the interpreter's final garbage collection over the millions of objects that
    # torch / Lightning import (1-1.5 s of every launch: each run, DDP rank and CLI error); files, loggers and
    # wandb are closed explicitly before, and the other atexit handlers still run.
    atexit.register(gc.freeze)
    main()
