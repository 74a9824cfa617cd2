"""Operator regression: ``y = G(x)`` in one forward pass (Burgers u0 -> u(1), Darcy a -> u, ...)."""
from __future__ import annotations

from operators.tasks.base import OperatorTask


class OperatorRegression(OperatorTask):
    """Supervised operator regression with the loss on physical (de-normalised) outputs, as in the FNO paper.

    Batches: ``{"x": (B, C_in, *S), "y": (B, C_out, *S)}``; the network maps ``C_in -> C_out`` channels.
    """
