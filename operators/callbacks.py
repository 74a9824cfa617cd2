"""Lightning callbacks of pdeforge."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from datasets.batching import to_device
from operators.plotting import plot_sample


class PredictionPlotCallback(pl.Callback):
    """Every ``every_n_epochs`` validation epochs (and after the last), plot truth / prediction / error of the
    first validation sample, save the PNG under ``dirpath`` and log it to wandb when a WandbLogger is attached.
    Only rank 0 plots."""

    def __init__(self, every_n_epochs: int = 10, dirpath: str | None = None) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs} is not allowed; use an integer >= 1")
        self.every_n_epochs = every_n_epochs
        self.dirpath = dirpath

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not callable(getattr(datamodule, "example_batch", None)):
            return
        batch = to_device(datamodule.example_batch("val", 1), pl_module.device)
        with torch.no_grad():
            pred = pl_module.predict_batch(batch)
        dirpath = Path(self.dirpath or Path(trainer.default_root_dir) / "plots")
        path = plot_sample(batch, pred, dirpath / f"val_epoch_{epoch + 1:04d}.png", title=f"epoch {epoch + 1}",
                           step_channels=int(getattr(datamodule, "out_channels", 1) or 1),
                           grid_shape=getattr(datamodule.discretization, "shape", None))
        if path is None:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/prediction", images=[str(path)], step=trainer.global_step)
