"""Evaluate a checkpoint: ``python evaluate.py ckpt_path=<file> [eval.resolutions=[64,128,256]]``.

Rebuilds the model and its data pipeline from the config stored in the checkpoint, evaluates the test split
(at other stored resolutions too; data is generated there when missing), prints a table, writes
``metrics.json`` and PNG plots to the run directory and logs them to the configured loggers (wandb offline).
"""
from __future__ import annotations

import atexit
import gc
import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from datasets.pdes.base import resolve_device
from operators.evaluation import evaluate_split, extra_metrics_for
from operators.runtime import resolvers  # noqa: F401
from operators.runtime.builders import build_loggers, finish_wandb, instantiate
from operators.runtime.checkpoints import (
    check_compatible,
    checkpoint_config,
    load_checkpoint,
)
from operators.runtime.errors import exit_on_user_error
from operators.runtime.precision import apply_float32_matmul_precision

log = logging.getLogger("pdeforge.evaluate")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ValueError("ckpt_path is required: python evaluate.py ckpt_path=<file.ckpt>")
    ckpt = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(checkpoint_config(ckpt))
    network = instantiate(run_cfg.model)
    task = instantiate(run_cfg.task, network=network)
    check_compatible(ckpt, task, cfg.ckpt_path)
    task.load_state_dict(ckpt["state_dict"])
    task.run_config = OmegaConf.to_container(run_cfg)
    device = resolve_device(cfg.eval.device)
    precision = cfg.get("float32_matmul_precision")
    apply_float32_matmul_precision(precision if precision is not None else run_cfg.get("float32_matmul_precision"))

    trained_res = int(run_cfg.data.resolution)
    resolutions = list(cfg.eval.resolutions) if cfg.eval.resolutions else [trained_res]
    for r in resolutions:
        if not isinstance(r, int) or r <= 0:
            raise ValueError(f"eval.resolutions contains {r!r}; use positive integers, e.g. [64,128,256]")
    split = cfg.eval.split
    if split not in ("train", "val", "test"):
        raise ValueError(f"eval.split={split!r} is not allowed; use train, val or test")
    output_dir = Path(cfg.paths.output_dir)
    results: dict[str, Any] = {"checkpoint": str(cfg.ckpt_path), "trained_resolution": trained_res,
                               "split": split, "results": {}}
    step_channels = int(run_cfg.data.get("out_channels") or 1)
    for res in resolutions:
        overrides: dict[str, Any] = {"resolution": res, "data_dir": cfg.paths.data_dir}
        if cfg.eval.n_samples:
            overrides[f"n_{split}"] = int(cfg.eval.n_samples)
        if cfg.eval.batch_size:
            overrides["batch_size"] = int(cfg.eval.batch_size)
        datamodule = instantiate(run_cfg.data, **overrides, _recursive_=False)
        # only the evaluated split is generated (if missing) and loaded, not the training data
        loader = {"train": datamodule.train_dataloader, "val": datamodule.val_dataloader,
                  "test": datamodule.test_dataloader}[split]()
        log.info("evaluating %s split at resolution %d", split, res)
        out = evaluate_split(task, loader, device, step_channels, periodic=bool(datamodule.periodic),
                             graph=bool(getattr(datamodule, "is_graph", False)),
                             grid_shape=getattr(datamodule.discretization, "shape", None),
                             plot_dir=output_dir / "plots" if cfg.eval.plots else None, label=f"_res{res}",
                             extra_metrics=extra_metrics_for(task, datamodule, step_channels))
        results["results"][str(res)] = out

    table = Table(title=f"pdeforge evaluation of {cfg.ckpt_path}")
    columns = {"rel_l2": "rel L2", "rel_h1": "rel H1", "mse": "MSE", "accumulated_error": "accumulated error"}
    shown = [k for k in columns if any(k in out for out in results["results"].values())]  # no H1 on graphs
    extra_cols = sorted({k for out in results["results"].values() for k, v in out.items()
                         if isinstance(v, float) and k not in columns and k != "n_samples"})
    for col in ["resolution", "samples"] + [columns[k] for k in shown]:
        table.add_column(col, justify="right")
    for res, out in results["results"].items():
        table.add_row(res, str(out["n_samples"]), *(f"{out[k]:.4e}" if k in out else "-" for k in shown))
    Console().print(table)
    for res, out in results["results"].items():
        extras = [f"{c}={out[c]:.4e}" for c in extra_cols if c in out]
        if extras:  # metrics the data or the task add (e.g. the H^-1 Navier-Stokes residual)
            print(f"resolution {res}: " + " ".join(extras))
        if "rel_l2_per_step" in out:
            steps = out["rel_l2_per_step"]
            print(f"resolution {res}: rel L2 per rollout step " + " ".join(f"{e:.3e}" for e in steps))

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    for logger in build_loggers(cfg):
        flat = {f"eval/res{res}/{k}": v for res, out in results["results"].items()
                for k, v in out.items() if isinstance(v, float)}
        logger.log_metrics(flat, step=0)
        if hasattr(logger, "log_image"):
            for res, out in results["results"].items():
                for plot in out["plots"]:  # one key per figure: wandb wants equal sizes within a key
                    logger.log_image(key=f"eval/res{res}/{Path(plot).stem}", images=[plot], step=0)
        logger.finalize("success")
    finish_wandb()
    print(f"[pdeforge] metrics written to {output_dir / 'metrics.json'}", flush=True)
    return results


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    # When the process ends, skip the interpreter's final garbage collection over the millions of objects that
    # torch / Lightning import (1-1.5 s of every launch: each run, DDP rank and CLI error); files, loggers and
    # wandb are closed explicitly before, and the other atexit handlers still run.
    atexit.register(gc.freeze)
    main()
