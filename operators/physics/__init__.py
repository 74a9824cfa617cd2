"""Physics of the PDEs the operators learn: residuals of predicted trajectories (loss terms and metrics)."""
from operators.physics.navier_stokes_residual import (
    NavierStokesResidual,
    residual_metrics_for,
)

__all__ = ["NavierStokesResidual", "residual_metrics_for"]
