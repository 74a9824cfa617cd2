"""Full-precision islands inside mixed-precision (``torch.autocast``, Lightning ``precision="bf16-mixed"``) models.

Autocast runs convolutions and matrix products in bf16 (8 significant bits, relative rounding ``2^-9``). That
suits the bulk of a network but not two kinds of computation, which therefore run *outside* autocast in
"full precision", the promoted dtype of their inputs and parameters (float32 under mixed precision, whose
parameters stay float32; bf16 only for a model converted to bf16 as a whole; float64 for float64 data):

* differences of nearly equal terms, e.g. the multigrid residual ``f - A u`` of a converging iterate
  (:mod:`operators.layers.multigrid`): in bf16 it cancels to a few significant bits;
* the output layer of every network (``full_precision=True`` of
  :class:`~operators.layers.ChannelLinear`, :class:`~operators.layers.ChannelMLP` (last layer) and
  :class:`~operators.layers.SpectralConv`): a network returns float32 for float32 input under autocast, at
  float32 accuracy rather than bf16 values cast up (the targets and the relative errors aimed at, ~1e-3, are
  below bf16's resolution).

Physics residuals of predicted trajectories (:mod:`operators.physics`) are computed in float32 / float64
outside autocast by their own functions.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch


def autocast_disabled(x: torch.Tensor) -> AbstractContextManager:
    """Context in which autocast is off on ``x``'s device type (ops run in their inputs' dtypes)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def full_precision_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The promoted dtype of ``tensors`` (inputs and parameters): float32 for bf16 activations of a float32
    model, float64 for float64 data, bf16 for a bf16 model."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype
