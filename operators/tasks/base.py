"""Shared logic of every training task: optimisation, normalisers, metrics, checkpoint contents.

A task wraps a plain ``torch.nn.Module`` network. Grid batches are dicts
``{"x": (B, C_in, *S), "y": (B, C_out * T_out, *S)}`` served by ``datasets.datamodule.GridDataModule``.
"""
from __future__ import annotations

import logging
import math
import random
from typing import Any, Callable

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from operators.losses import MSELoss, RelativeH1Loss, RelativeL2Loss
from operators.normalizers import IdentityNormalizer, UnitGaussianNormalizer

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "pdeforge"
CHECKPOINT_FORMAT = 1


def default_metrics() -> dict[str, nn.Module]:
    """Metrics every grid task reports: relative L2, relative H1 and MSE (per sample, then averaged)."""
    return {"rel_l2": RelativeL2Loss(), "rel_h1": RelativeH1Loss(), "mse": MSELoss()}


class OperatorTask(pl.LightningModule):
    """Base Lightning module for operator learning.

    Args:
        network: the operator, ``(B, C_in, *S) -> (B, C_out, *S)``.
        loss: training loss ``(pred, target) -> scalar``.
        optimizer: partial optimizer, called with the parameters.
        scheduler: partial LR scheduler, called with the optimizer, or ``None``.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        normalize_input / normalize_target: fit channel-wise Gaussian normalisers on the training split
            (saved in the checkpoint with the model).
    """

    def __init__(
        self,
        network: nn.Module,
        loss: nn.Module | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        normalize_input: bool = False,
        normalize_target: bool = False,
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval={scheduler_interval!r} is not allowed; use 'epoch' or 'step'")
        self.network = network
        self.loss_fn = loss if loss is not None else RelativeL2Loss()
        self.optimizer_factory = optimizer
        # an empty scheduler config (task/scheduler=none) composes to {}: constant learning rate
        self.scheduler_factory = scheduler if callable(scheduler) else None
        self.scheduler_interval = scheduler_interval
        self.normalize_input = normalize_input
        self.normalize_target = normalize_target
        # channel-wise statistics (over samples and grid points) stay valid at every resolution
        self.x_normalizer = UnitGaussianNormalizer(reduce_dims="channel") if normalize_input else IdentityNormalizer()
        self.y_normalizer = UnitGaussianNormalizer(reduce_dims="channel") if normalize_target else IdentityNormalizer()
        self.metrics = nn.ModuleDict(default_metrics())
        # the composed run configuration, stored in every checkpoint (set by train.py)
        self.run_config: dict | None = None
        self.best_val: float = math.inf

    # ------------------------------------------------------------------ data-dependent set-up
    def setup(self, stage: str) -> None:
        """Fit the normalisers on the training split only (once; a resumed run restores them)."""
        if stage == "fit":
            self.fit_normalizers(self.trainer.datamodule)

    def fit_normalizers(self, datamodule: Any) -> None:
        """Fit the enabled normalisers on ``datamodule.train_tensors()`` unless they are fitted already."""
        needs_fit = (self.normalize_input and not self.x_normalizer.is_fitted) or (
            self.normalize_target and not self.y_normalizer.is_fitted
        )
        if not needs_fit:
            return
        x, y = datamodule.train_tensors()
        if self.normalize_input:
            self.x_normalizer.fit(x)
        if self.normalize_target:
            self.y_normalizer.fit(self.target_for_normalizer(y))
        log.info("fitted normalisers on %d training samples", x.shape[0])

    def target_for_normalizer(self, y: torch.Tensor) -> torch.Tensor:
        """The tensor the target normaliser is fitted on (``(N, C, *S)``)."""
        return y

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical-space prediction for physical-space input ``x`` (normalisers applied inside)."""
        return self.y_normalizer.decode(self.network(self.x_normalizer.encode(x)))

    def predict_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Prediction with the shape of ``batch["y"]``."""
        return self(batch["x"])

    # ------------------------------------------------------------------ steps
    def compute_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training / monitoring loss of a batch (``self.loss_fn`` on the whole prediction)."""
        return self.loss_fn(pred, target)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        pred = self.predict_batch(batch)
        loss = self.compute_loss(pred, batch["y"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; "
                "lower task.optimizer.lr or check the data"
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=pred.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        pred = self.predict_batch(batch)
        y = batch["y"]
        loss = self.compute_loss(pred, y)
        batch_size = pred.shape[0]
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=batch_size)
        for name, metric in self.metrics.items():
            self.log(f"{stage}/{name}", metric(pred, y), on_epoch=True, sync_dist=True,
                     prog_bar=(name == "rel_l2"), batch_size=batch_size)
        return pred

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        value = self.trainer.callback_metrics.get("val/rel_l2")
        if value is not None and not self.trainer.sanity_checking:
            self.best_val = min(self.best_val, float(value))
            self.log("val/rel_l2_best", self.best_val, sync_dist=False)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval, "frequency": 1},
        }

    # ------------------------------------------------------------------ checkpoint contents
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the run config (rebuilds model + data without the command line) and all RNG states."""
        checkpoint[CHECKPOINT_KEY] = {
            "format": CHECKPOINT_FORMAT,
            "config": self.run_config,
            "network_class": f"{type(self.network).__module__}.{type(self.network).__qualname__}",
            "task_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "best_val": self.best_val,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(CHECKPOINT_KEY)
        if not meta:
            return
        self.best_val = meta.get("best_val", math.inf)
        if self.run_config is None:
            self.run_config = meta.get("config")
        rng = meta.get("rng")
        if rng and self._trainer is not None and self.trainer.state.fn == "fit":
            torch.set_rng_state(rng["torch"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])
            if rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
