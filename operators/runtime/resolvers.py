"""The OmegaConf resolvers of ``conf/``, registered on import: they live in :mod:`datasets.runtime.resolvers` (the
lowest layer, shared with ``python -m datasets.generate``); this module re-exports them for the training side."""
from __future__ import annotations

from datasets.runtime.resolvers import register_resolvers

__all__ = ["register_resolvers"]
