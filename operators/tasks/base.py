"""Shared logic of every training task: optimisation, normalisers, metrics, checkpoint contents.

A task wraps a plain ``torch.nn.Module`` network. Batches follow :mod:`datasets.batching`: grid dicts
``{"x": (B, C_in, *S), "y": (B, C_out * T_out, *S)}`` or PyG graph batches whose rows are nodes
(``x``: ``(N_nodes, C_in)``), both served by ``datasets.datamodule.GridDataModule``. The task never asks which: it
calls the network on :func:`datasets.batching.network_input` (the tensor for grids, the graph for graph
networks) and reduces per sample with the batch's sample index.
"""
from __future__ import annotations

import inspect
import logging
import math
import random
from typing import Any, Callable, Iterable

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from datasets.batching import network_input, num_samples, sample_index, to_device
from operators.losses import RelativeL2Loss
from operators.metrics import default_metrics, metric_collection
from operators.normalizers import IdentityNormalizer, UnitGaussianNormalizer
from operators.runtime.compile import compile_network, compile_options

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "pdeforge"
CHECKPOINT_FORMAT = 2

__all__ = ["OperatorTask", "default_metrics", "CHECKPOINT_KEY", "CHECKPOINT_FORMAT"]


class OperatorTask(pl.LightningModule):
    """Base Lightning module for operator learning.

    Args:
        network: the operator, ``(B, C_in, *S) -> (B, C_out, *S)``.
        loss: training loss ``(pred, target) -> scalar``.
        optimizer: partial optimizer, called with the parameters.
        scheduler: partial LR scheduler, called with the optimizer, or ``None``. A scheduler that takes
            ``total_steps`` (``OneCycleLR``) and is not given it (nor ``epochs``) gets Lightning's
            ``trainer.estimated_stepping_batches``, right for any device count and gradient accumulation.
        scheduler_interval: ``"epoch"`` or ``"step"``.
        normalize_input / normalize_target: fit channel-wise Gaussian normalisers on the training split
            (saved in the checkpoint with the model).
        finite_check_every_n_steps: check that the training losses were finite every N training batches (and at the
            end of every epoch); each check waits for the device, so it is not done every step.
        compile: ``false`` (eager), ``true`` or a dict of ``torch.compile`` keyword arguments (``{mode:
            max-autotune, dynamic: false}``): the network is compiled in place (``nn.Module.compile``, same
            ``state_dict`` keys, so checkpoints load compiled or not) in :meth:`configure_model`, i.e. by every
            trainer run; a task used without a trainer (``evaluate.py``) stays eager.

    Predictions, losses and metrics are float32 whatever the trainer's precision: under ``bf16-mixed`` the
    network computes in bf16 where autocast allows, and its output is cast back before it is de-normalised,
    compared or fed back into a rollout.
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
        finite_check_every_n_steps: int = 50,
        compile: bool | dict[str, Any] | None = False,
    ) -> None:
        super().__init__()
        # not ``self.compile``: that is nn.Module.compile
        self.compile_options = compile_options(compile)
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval={scheduler_interval!r} is not allowed; use 'epoch' or 'step'")
        if isinstance(finite_check_every_n_steps, bool) or not isinstance(finite_check_every_n_steps, int) \
                or finite_check_every_n_steps < 1:
            raise ValueError(f"finite_check_every_n_steps={finite_check_every_n_steps!r} is not allowed; "
                             "use an integer >= 1")
        self.network = network
        self.loss_fn = loss if loss is not None else RelativeL2Loss()
        self.optimizer_factory = optimizer
        # an empty scheduler config (task/scheduler=none) composes to {}: constant learning rate
        self.scheduler_factory = scheduler if callable(scheduler) else None
        self.scheduler_interval = scheduler_interval
        self.normalize_input = normalize_input
        self.normalize_target = normalize_target
        self.finite_check_every_n_steps = finite_check_every_n_steps
        self._losses_finite: torch.Tensor | None = None
        # the epoch's sample-weighted mean training loss, accumulated on the device (no host sync per step; the
        # finite check above covers NaNs) and reduced over ranks by torchmetrics when logged at the epoch's end
        self.train_loss = MeanMetric(nan_strategy="disable")
        # channel-wise statistics (over samples and grid points) stay valid at every resolution
        self.x_normalizer = UnitGaussianNormalizer(reduce_dims="channel") if normalize_input else IdentityNormalizer()
        self.y_normalizer = UnitGaussianNormalizer(reduce_dims="channel") if normalize_target else IdentityNormalizer()
        self.periodic = False
        self.graph_data = False
        self._build_metrics(periodic=False)
        # the composed run configuration, stored in every checkpoint (set by train.py)
        self.run_config: dict | None = None
        self.best_val: float = math.inf

    def _build_metrics(self, periodic: bool, graph: bool = False) -> None:
        """Per-sample metric states for validation and test (their finite differences follow the data's
        periodicity; graph data have no grid H1 metric); torchmetrics reduces them over ranks at the end of each
        epoch."""
        self.periodic = bool(periodic)
        self.graph_data = bool(graph)
        self.val_metrics = metric_collection(self.periodic, prefix="val/", graph=self.graph_data,
                                             step_channels=self.metric_step_channels())
        self.test_metrics = metric_collection(self.periodic, prefix="test/", graph=self.graph_data,
                                              step_channels=self.metric_step_channels())

    def metric_step_channels(self) -> int | None:
        """Channels per step for the accumulated-error metric of multi-step tasks (``None``: not a rollout)."""
        return None

    # ------------------------------------------------------------------ data-dependent set-up
    def setup(self, stage: str) -> None:
        """Adopt the data's periodicity for the metrics; for ``fit``, fit the normalisers on the training split
        only (once; a resumed run restores them) and check the network against a training sample."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        periodic = bool(getattr(datamodule, "periodic", False))
        graph = bool(getattr(datamodule, "is_graph", False))
        if periodic != self.periodic or graph != self.graph_data:
            self._build_metrics(periodic, graph)
        if stage == "fit":
            self.fit_normalizers(datamodule)
            self.check_fits_data(datamodule)

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

    def check_fits_data(self, datamodule: Any) -> None:
        """Run one training sample through the task before training: a model/data mismatch (channels, modes
        versus resolution, dimension) fails here with a one-line error instead of deep inside the fit loop."""
        device = self.x_normalizer.fitted.device
        if callable(getattr(datamodule, "example_batch", None)):
            batch = to_device(datamodule.example_batch("val", 1), device)
        else:
            x, y = datamodule.train_tensors()
            batch = {"x": x[:1].float().to(device), "y": y[:1].float().to(device)}
        x, y = batch["x"], batch["y"]
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                pred = self.predict_batch(batch)
        except ValueError:
            raise
        except RuntimeError as exc:
            raise ValueError(
                f"model {type(self.network).__name__} cannot take input of shape {tuple(x.shape[1:])}"
                f"{' (graph node features)' if self.graph_data else ''} "
                f"from data '{datamodule.hparams.get('pde', '?')}': {str(exc).splitlines()[0]}"
            ) from None
        finally:
            self.train(was_training)
        if pred.shape != batch["y"].shape:
            raise ValueError(
                f"model output shape {tuple(pred.shape[1:])} does not match the target shape {tuple(y.shape[1:])}; "
                "set model.out_channels to the target channels, or use task=rollout for time-dependent data"
            )

    def configure_model(self) -> None:
        """Compile the network in place when ``compile`` asks for it (Lightning calls this on every rank before the
        strategy wraps the module, for fit, resume, validate and test; compiling twice is a no-op)."""
        compile_network(self.network, self.compile_options)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, batch: Any = None, **graph_attrs: torch.Tensor) -> torch.Tensor:
        """Physical-space float32 prediction for physical-space input ``x`` (normalisers applied inside).

        ``batch``: the batch ``x`` belongs to; a graph batch gives the network its geometry
        (:func:`datasets.batching.network_input`, with ``graph_attrs`` such as the current ``time`` replaced)."""
        encoded = self.x_normalizer.encode(x.float())
        inputs = encoded if batch is None else network_input(batch, encoded, **graph_attrs)
        return self.y_normalizer.decode(self.network(inputs).float())

    def predict_batch(self, batch: Any) -> torch.Tensor:
        """Prediction with the shape of ``batch["y"]``."""
        return self(batch["x"], batch)

    # ------------------------------------------------------------------ steps
    def compute_loss(self, pred: torch.Tensor, target: torch.Tensor, batch: Any = None) -> torch.Tensor:
        """Training / monitoring loss of a batch (``self.loss_fn`` on the whole prediction; per graph on graph
        batches)."""
        index = sample_index(batch) if batch is not None else None
        if index is None:
            return self.loss_fn(pred, target)
        return self.loss_fn(pred, target, index, num_samples(batch))

    def training_loss(self, batch: Any) -> torch.Tensor:
        """The loss a training step minimises."""
        return self.compute_loss(self.predict_batch(batch), batch["y"], batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        # a device-side "every loss so far was finite" flag: looked at (one host sync) every N steps only
        finite = torch.isfinite(loss.detach())
        self._losses_finite = finite if self._losses_finite is None else self._losses_finite & finite
        if (batch_idx + 1) % self.finite_check_every_n_steps == 0:
            self._raise_if_diverged(f"by step {self.global_step}")
        # Lightning's self.log(on_epoch=True) costs ~1-4 ms of host time per call: the epoch mean is a device-side
        # metric state, and the step value (progress bar, step curves) is logged only when Lightning writes logs
        # one entry per sample = the sample-weighted mean (torchmetrics 1.9 drops `weight` under
        # nan_strategy='disable', and the other strategies read the device on the host every update)
        self.train_loss.update(loss.detach().float().expand(num_samples(batch)))
        if self._writes_step_logs():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, logger=True)
        return loss

    def _writes_step_logs(self) -> bool:
        """Whether Lightning writes step-level logs after this batch (every ``trainer.log_every_n_steps``)."""
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged("during the epoch")
        if self.train_loss.update_called:
            # compute() reduces over every rank's samples: the same value on every rank
            self.log("train/loss", self.train_loss.compute(), on_step=False, on_epoch=True, prog_bar=True)
        self.train_loss.reset()

    def _raise_if_diverged(self, when: str) -> None:
        flag, self._losses_finite = self._losses_finite, None
        if flag is not None and not bool(flag):
            raise FloatingPointError(
                f"training loss became non-finite {when} (epoch {self.current_epoch}); "
                "lower task.optimizer.lr or check the data"
            )

    def evaluation_loss(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss logged as ``<stage>/loss`` for a validation or test batch."""
        return self.compute_loss(pred, batch["y"], batch)

    def log_extra_metrics(self, pred: torch.Tensor, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Hook for metrics a task adds to validation and test (none here)."""

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        pred = self.predict_batch(batch)
        batch_size = num_samples(batch)
        self.log(f"{stage}/loss", self.evaluation_loss(pred, batch), on_epoch=True, sync_dist=True,
                 batch_size=batch_size)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(pred, batch["y"], sample_index(batch), batch_size)
        self.log_dict(metrics, on_epoch=True, on_step=False, batch_size=batch_size)
        self.log_extra_metrics(pred, batch, stage)
        return pred

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        # the per-sample mean over every rank's samples (torchmetrics syncs; one host sync per epoch)
        value = float(self.val_metrics["rel_l2"].compute())
        self.best_val = min(self.best_val, value)
        self.log("val/rel_l2_best", self.best_val, sync_dist=True, prog_bar=True)  # equal on every rank

    # ------------------------------------------------------------------ optimisation
    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters the optimizer updates (all of them here)."""
        return self.parameters()

    def _scheduler_kwargs(self) -> dict[str, Any]:
        factory = self.scheduler_factory
        given = getattr(factory, "keywords", {}) or {}
        try:
            accepted = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            return {}
        if "total_steps" in accepted and given.get("total_steps") is None and given.get("epochs") is None:
            return {"total_steps": int(self.trainer.estimated_stepping_batches)}
        return {}

    def configure_optimizers(self) -> Any:
        params = [p for p in self.trainable_parameters() if p.requires_grad]
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(params, lr=1e-3)
        else:
            optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer, **self._scheduler_kwargs())
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval, "frequency": 1},
        }

    # ------------------------------------------------------------------ checkpoint contents
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the run config (rebuilds model + data without the command line) and every rank's RNG states."""
        checkpoint[CHECKPOINT_KEY] = {
            "format": CHECKPOINT_FORMAT,
            "config": self.run_config,
            "network_class": f"{type(self.network).__module__}.{type(self.network).__qualname__}",
            "task_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "best_val": self.best_val,
            "rng": {"per_rank": _gather_rng_states()},
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
            per_rank = rng["per_rank"] if "per_rank" in rng else [rng]  # format 1: rank 0's states only
            world, rank = self.trainer.world_size, self.trainer.global_rank
            if len(per_rank) != world:
                if rank == 0:
                    log.warning(
                        "resuming on %d process(es) from a checkpoint written by %d: the model, optimizer, scheduler "
                        "and epoch continue exactly, but the random streams (shuffling, dropout, random start "
                        "times) are not a bit-exact continuation of the original run; process %%d takes the "
                        "states of saved process %%d mod %d", world, len(per_rank), len(per_rank))
            _set_rng_states(per_rank[rank % len(per_rank)])


def _rng_states() -> dict[str, Any]:
    """This process's RNG states (torch CPU, numpy, python, and its own CUDA device's)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized()
            else None}


def _gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's :func:`_rng_states`, in rank order (a one-element list on a single process). Lightning
    builds the checkpoint dict on every rank before rank 0 writes it, so all ranks take part in the gather."""
    state = _rng_states()
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, state)
        return gathered
    return [state]


def _set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # format 1 stored every visible device's state
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda)
