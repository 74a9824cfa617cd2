"""Spectral-Refiner fine-tuning (Cao et al., ICLR 2025, stage 2): fine-tune only the output spectral layer of a
trained SFNO, with its modes enlarged to the full grid, on the ``H^{-1}`` norm of the Navier-Stokes residual
of the predicted trajectory. The loss needs no target data (only inputs), so it also runs on test inputs and
at finer resolutions than the SFNO was trained at.

Initial weights come from a stage-1 checkpoint through ``init_from_ckpt=<stage1.ckpt>`` (train.py, see
:func:`operators.runtime.checkpoints.init_weights_from_checkpoint`), which calls
:meth:`SpectralRefiner.load_pretrained_state_dict`: the trained low modes of the output layer are copied into
the enlarged layer, the new high modes start at zero (so refinement starts from exactly the stage-1 map).

Mixed precision (``trainer.precision=bf16-mixed``): the SFNO runs in autocast and returns float32 (its output
layer keeps full precision); the residual, its finite-difference time derivative and its ``H^{-1}`` norm are
computed in float32 with autocast disabled (:meth:`SpectralRefiner.residual_h_minus_1`).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from datasets.pdes.navier_stokes_spectral import forcing_function
from operators.layers.space_time import ResamplingSpectralConv
from operators.losses import RelativeL2Loss
from operators.physics.navier_stokes_residual import NavierStokesResidual
from operators.tasks.base import OperatorTask

log = logging.getLogger(__name__)


class SpectralRefiner(OperatorTask):
    """Fine-tune the output spectral layer of an :class:`~operators.sfno.SFNO` on the NS residual.

    Args:
        network: an SFNO (needs ``output``, ``latent``, ``enlarge_output_modes``, ``latent_steps``).
        refine_modes: modes ``(m_x, m_y, m_t)`` of the refined output layer; ``null`` entries: spatial ones keep
            the trained modes, the temporal one takes every temporal mode of the latent trajectory (no truncation).
            The configs use ``resolution / 2`` in space: every mode of the refinement grid.
        time_refinement: the residual is evaluated on a trajectory ``time_refinement`` times finer in time than
            the data (the SFNO outputs any number of steps), so the finite-difference time derivative is accurate.
        time_order: 2 or 4, order of that time derivative.
        alpha: ``alpha`` of the ``H^{-1}`` weights.
        nu, forcing_amplitude, dt: PDE parameters; ``None`` (default) takes them from the data module's problem.
        **kwargs: see :class:`~operators.tasks.base.OperatorTask` (``loss`` is ignored: the loss is the residual).
    """

    def __init__(self, network: nn.Module, refine_modes: Sequence[int | None] | None = None,
                 time_refinement: int = 1, time_order: int = 2, alpha: float = 1.0,
                 nu: float | None = None, forcing_amplitude: float | None = None, dt: float | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("normalize_input", False)
        kwargs.setdefault("normalize_target", False)
        if kwargs["normalize_input"] or kwargs["normalize_target"]:
            raise ValueError("SpectralRefiner works on physical fields: set normalize_input/target to false")
        super().__init__(network, **kwargs)
        for attr in ("output", "latent", "enlarge_output_modes", "latent_steps"):
            if not hasattr(network, attr):
                raise ValueError(f"SpectralRefiner needs an SFNO-like network; {type(network).__name__} has no {attr}")
        if int(time_refinement) < 1:
            raise ValueError(f"time_refinement={time_refinement} is not allowed; use an integer >= 1")
        self.time_refinement = int(time_refinement)
        self.time_order = int(time_order)
        self.alpha = float(alpha)
        self.pde_overrides = {"nu": nu, "forcing_amplitude": forcing_amplitude, "dt": dt}
        modes = list(refine_modes) if refine_modes is not None else [None, None, None]
        if len(modes) != 3:
            raise ValueError(f"refine_modes must have 3 entries (x, y, t); got {refine_modes}")
        network.enlarge_output_modes(modes)
        # the stage-1 output layer (frozen), kept to report the metrics before refinement
        self.initial_output = copy.deepcopy(network.output)
        for p in self.parameters():
            p.requires_grad_(False)
        for p in network.output.parameters():
            p.requires_grad_(True)
        self.residual: NavierStokesResidual | None = None

    # ------------------------------------------------------------------ set-up
    def build_residual(self, datamodule: Any) -> NavierStokesResidual:
        nu, amp, dt = (self.pde_overrides[k] for k in ("nu", "forcing_amplitude", "dt"))
        kwargs = {"time_order": self.time_order, "alpha": self.alpha}
        if datamodule is not None and getattr(datamodule, "problem", None) is not None:
            residual = NavierStokesResidual.from_datamodule(datamodule, **kwargs)
        elif nu is None or dt is None:
            raise ValueError("SpectralRefiner needs navier_stokes data or explicit nu and dt")
        else:
            residual = NavierStokesResidual(nu=nu, dt=dt, **kwargs)
        if nu is not None:
            residual.nu = float(nu)
        if dt is not None:
            residual.dt = float(dt)
        if amp is not None:
            residual.set_forcing(forcing_function(amp))
        return residual

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.residual is None:
            self.residual = self.build_residual(getattr(self.trainer, "datamodule", None))

    def _residual(self) -> NavierStokesResidual:
        if self.residual is None:
            raise RuntimeError("SpectralRefiner.residual is not set: call build_residual(datamodule) first")
        return self.residual

    @staticmethod
    def residual_h_minus_1(residual: NavierStokesResidual, pred: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """Per-sample ``H^{-1}`` residual ``(B,)`` of predicted trajectories ``(B, T, n, n)``: the prediction is cast
        to float32 (float64 stays) and the residual computed with autocast disabled, whatever the caller's
        autocast state."""
        pred = pred.to(torch.float64 if pred.dtype == torch.float64 else torch.float32)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return residual.h_minus_1(pred, dt)

    # ------------------------------------------------------------------ weights
    def load_pretrained_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load stage-1 network weights whose output layer has fewer modes: its weights are embedded into the
        enlarged layer (and into the frozen copy of the initial layer)."""
        state = {k: v for k, v in state.items() if k.startswith("network.")}
        key = "network.output.weight"
        target = self.network.output
        if key in state and tuple(state[key].shape) != tuple(target.weight.shape):
            w = state[key]
            old_modes = (w.shape[2] // 2, w.shape[3] // 2, w.shape[4])
            old = ResamplingSpectralConv(w.shape[0], w.shape[1], old_modes, bias=target.bias is not None,
                                         time_padding=target.time_padding)
            with torch.no_grad():
                old.weight.copy_(w)
                if target.bias is not None:
                    old.bias.copy_(state["network.output.bias"])
            new = old.enlarged(target.modes)
            state[key] = new.weight.detach().clone()
        missing, unexpected = self.network.load_state_dict(
            {k[len("network."):]: v for k, v in state.items()}, strict=True)
        assert not missing and not unexpected
        self.initial_output.load_state_dict(self.network.output.state_dict())

    # ------------------------------------------------------------------ predictions
    def _n_steps(self, batch: dict[str, torch.Tensor]) -> int:
        y = batch.get("y")
        c = self.network.out_channels
        return y.shape[1] // c if y is not None else self.network.n_steps_out

    def predict_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.network(batch["x"], n_steps_out=self._n_steps(batch))

    def predict_initial(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The prediction of the stage-1 (unrefined) output layer."""
        net = self.network
        x = batch["x"]
        c = net.in_channels
        b, tc, sx, sy = x.shape
        w = x.reshape(b, tc // c, c, sx, sy).permute(0, 2, 3, 4, 1)
        y = self.initial_output(net.latent(w), out_steps=self._n_steps(batch)) + w[..., -1:]
        return y.permute(0, 4, 1, 2, 3).reshape(b, -1, sx, sy)

    def refinement_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``H^{-1}`` residual (per sample) of the prediction on the ``time_refinement``-times finer time grid."""
        residual = self._residual()
        r = self.time_refinement
        pred = self.network(batch["x"], n_steps_out=r * self._n_steps(batch))
        if self.network.out_channels != 1:
            raise ValueError("SpectralRefiner supports scalar vorticity trajectories (one channel per step)")
        return self.residual_h_minus_1(residual, pred, dt=residual.dt / r)

    # ------------------------------------------------------------------ steps (the base class's loop)
    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.refinement_loss(batch).mean()

    def evaluation_loss(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.refinement_loss(batch).mean()

    def log_extra_metrics(self, pred: torch.Tensor, batch: dict[str, torch.Tensor], stage: str) -> None:
        self.log(f"{stage}/ns_residual_h-1", self.residual_h_minus_1(self._residual(), pred).mean(), on_epoch=True,
                 sync_dist=True, batch_size=batch["x"].shape[0])

    def extra_metrics(self, datamodule: Any) -> dict[str, Callable[[torch.Tensor, dict], torch.Tensor]]:
        """Evaluation metrics of the unrefined (stage-1) output layer: relative L2 and ``H^{-1}`` residual."""
        residual = self.build_residual(datamodule)
        rel = RelativeL2Loss(reduction="none")

        def rel_before(pred: torch.Tensor, batch: dict) -> torch.Tensor:
            return rel.per_sample(self.predict_initial(batch), batch["y"])

        def res_before(pred: torch.Tensor, batch: dict) -> torch.Tensor:
            return self.residual_h_minus_1(residual, self.predict_initial(batch))

        return {"rel_l2_before_refinement": rel_before, "ns_residual_h-1_before_refinement": res_before}

    # ------------------------------------------------------------------ optimisation
    def trainable_parameters(self) -> Any:
        """Only the (enlarged) output spectral layer is trained."""
        return self.network.output.parameters()
