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


def model_config_from_init_checkpoint(cfg: Any) -> dict[str, Any] | None:
    """For ``init_from_ckpt=<file>`` (initialise a new run from a checkpoint's weights, e.g. the
    Spectral-Refiner's fine-tuning of a trained SFNO): load the checkpoint and make the run's ``model`` config
    the checkpoint's (so the network has the trained architecture; ``model.*`` overrides are replaced).
    Returns the loaded checkpoint, or ``None`` when ``init_from_ckpt`` is not set. Unlike ``ckpt_path`` nothing
    else (optimizer, scheduler, epoch, RNG) is restored."""
    from omegaconf import open_dict

    path = cfg.get("init_from_ckpt")
    if not path:
        return None
    ckpt = load_checkpoint(path)
    model_cfg = checkpoint_config(ckpt).get("model")
    if model_cfg is None:
        raise CheckpointError(f"checkpoint {str(path)!r} holds no model config")
    with open_dict(cfg):
        cfg.model = model_cfg
    return ckpt


def init_weights_from_checkpoint(module: nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """Copy a checkpoint's network weights (and matching normaliser statistics) into ``module``, a task.

    A task may define ``load_pretrained_state_dict(state_dict)`` to adapt the stored weights (the
    Spectral-Refiner embeds a trained output layer into its enlarged one); otherwise the ``network.*`` weights
    must match exactly (same keys and shapes)."""
    meta = ckpt[CHECKPOINT_KEY]
    network = getattr(module, "network", None)
    if network is not None and meta.get("network_class"):
        current = f"{type(network).__module__}.{type(network).__qualname__}"
        if meta["network_class"] != current:
            raise CheckpointError(f"init_from_ckpt {str(path)!r} holds a {meta['network_class']} but the "
                                  f"configured model is {current}")
    stored = ckpt["state_dict"]
    loader = getattr(module, "load_pretrained_state_dict", None)
    try:
        if callable(loader):
            loader(stored)
        else:
            own = module.state_dict()
            net = {k: v for k, v in stored.items() if k.startswith("network.")}
            missing = [k for k in own if k.startswith("network.") and k not in net]
            bad = [k for k, v in net.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
            if missing or bad:
                raise CheckpointError(f"init_from_ckpt {str(path)!r} does not fit the model: missing {missing[:3]}, "
                                      f"mismatched {bad[:3]}")
            module.load_state_dict(net, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"init_from_ckpt {str(path)!r} does not fit the model: "
                              f"{str(exc).splitlines()[0]}") from None
    # normaliser statistics travel with the weights they were trained with
    own = module.state_dict()
    extra = {k: v for k, v in stored.items() if not k.startswith("network.") and k in own
             and tuple(own[k].shape) == tuple(v.shape) and "normalizer" in k}
    if extra:
        module.load_state_dict(extra, strict=False)
