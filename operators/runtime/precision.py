"""The float32 matmul precision (TF32 on Ampere and newer GPUs), one config key applied by every entry point.

``float32_matmul_precision`` in ``conf/train.yaml`` is stored with the run config in each checkpoint;
``evaluate.py`` applies the checkpoint's value unless its own key overrides it, so a model is evaluated with the
arithmetic it was trained with.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("highest", "high", "medium")


def apply_float32_matmul_precision(value: str | None) -> str:
    """``torch.set_float32_matmul_precision(value)`` after checking it; ``None`` keeps torch's current setting.
    Returns the precision in effect."""
    if value is None:
        return torch.get_float32_matmul_precision()
    if value not in PRECISIONS:
        raise ValueError(f"float32_matmul_precision={value!r} is not allowed; use one of {', '.join(PRECISIONS)}")
    torch.set_float32_matmul_precision(value)
    log.info("float32 matmul precision: %s", value)
    return value
