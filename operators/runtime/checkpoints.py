"""Reading pdeforge checkpoints and checking that they fit the model they are loaded into."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from operators.runtime.errors import CheckpointError
from operators.tasks.base import CHECKPOINT_KEY


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file on the CPU, with a one-line error when it is missing, unreadable or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist (expected a .ckpt file written by train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for truncated/garbage files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {str(path)!r} has no 'state_dict'; it was not written by Lightning")
    if CHECKPOINT_KEY not in ckpt or not ckpt[CHECKPOINT_KEY].get("config"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds no pdeforge run config; it was not written by pdeforge's train.py"
        )
    return ckpt


def checkpoint_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The resolved run configuration stored in a pdeforge checkpoint."""
    return ckpt[CHECKPOINT_KEY]["config"]


def check_compatible(ckpt: dict[str, Any], module: nn.Module, path: str | Path) -> None:
    """Raise a one-line CheckpointError unless ``ckpt``'s weights fit ``module`` (same classes, keys and shapes)."""
    meta = ckpt[CHECKPOINT_KEY]
    network = getattr(module, "network", None)
    if network is not None:
        current = f"{type(network).__module__}.{type(network).__qualname__}"
        if meta.get("network_class") and meta["network_class"] != current:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds a {meta['network_class']} but the configured model is {current}; "
                "pass the matching model=... or drop the model override"
            )
    expected = module.state_dict()
    stored = ckpt["state_dict"]
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the configured model: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for key, value in expected.items():
        if hasattr(value, "shape") and tuple(stored[key].shape) != tuple(value.shape) and value.numel() > 0:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match the configured model: {key} has shape "
                f"{tuple(stored[key].shape)} in the checkpoint but {tuple(value.shape)} in the model"
            )
