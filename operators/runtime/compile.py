"""The ``task.compile`` option: ``torch.compile`` a task's network in place.

``compile: false`` (the default) runs eagerly; ``true`` compiles with torch's defaults; a mapping is passed to
``torch.compile`` as keyword arguments (``{mode: max-autotune, dynamic: false}``). The network is compiled with
``nn.Module.compile`` -- in place, so its ``state_dict`` keys (and every checkpoint) are the same compiled or not:
a checkpoint written by a compiled run loads into an eager network and vice versa. Tasks call
:func:`compile_network` from Lightning's ``configure_model`` hook, which every ``trainer.fit`` / ``test`` (also
under DDP and on resume) runs before the strategy wraps the model; code that uses a task without a trainer
(``evaluate.py``) stays eager.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

_ALLOWED = "use true, false or a dict of torch.compile options"


def _compile_keywords() -> tuple[str, ...]:
    """The keyword arguments ``torch.compile`` takes (besides the model)."""
    return tuple(p for p in inspect.signature(torch.compile).parameters if p != "model")


def _compile_modes() -> tuple[str, ...]:
    from torch._inductor import list_mode_options

    return tuple(list_mode_options())


def _plain(value: Any) -> Any:
    """A (possibly nested) mapping, e.g. an OmegaConf ``DictConfig``, as plain ``dict`` s."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def compile_options(value: Any) -> dict[str, Any] | None:
    """The ``torch.compile`` keyword arguments ``value`` asks for: ``None`` for ``false`` / ``None`` (eager),
    ``{}`` for ``true``, the mapping itself (checked) for a mapping. Anything else raises a one-line
    ``ValueError``."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"compile={value!r} is not allowed; {_ALLOWED}")  # noqa: TRY004
    options = _plain(value)
    allowed = _compile_keywords()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"compile has unknown torch.compile option(s) {unknown}; allowed: {list(allowed)}")
    mode = options.get("mode")
    if mode is not None:
        modes = _compile_modes()
        if mode not in modes:
            raise ValueError(f"compile.mode={mode!r} is not allowed; use one of {', '.join(modes)}")
        if options.get("options"):
            raise ValueError("compile.mode and compile.options cannot both be given; torch.compile takes one of them")
    dynamic = options.get("dynamic")
    if dynamic is not None and not isinstance(dynamic, bool):
        raise ValueError(f"compile.dynamic={dynamic!r} is not allowed; use true, false or null")
    return options


def is_compiled(network: nn.Module) -> bool:
    """Whether ``network`` was compiled in place (``nn.Module.compile`` sets ``_compiled_call_impl``)."""
    return getattr(network, "_compiled_call_impl", None) is not None


def compile_network(network: nn.Module, options: dict[str, Any] | None) -> bool:
    """Compile ``network`` in place with ``torch.compile(**options)`` unless ``options`` is ``None`` or it is
    compiled already (``configure_model`` runs again for ``trainer.test`` after ``trainer.fit``). Returns whether
    the network is compiled. Parameters, buffers and ``state_dict`` keys are unchanged."""
    if options is None:
        return False
    if not is_compiled(network):
        network.compile(**options)
        log.info("compiled %s with torch.compile(%s)", type(network).__name__,
                 ", ".join(f"{k}={v!r}" for k, v in options.items()))
    return True
