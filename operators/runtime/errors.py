"""User-facing errors: bad input ends with one clear line, not a traceback.

The generic part (:data:`USER_ERRORS`, :func:`one_line`, :func:`exit_on_user_error`) lives in
:mod:`datasets.runtime.errors`, the lowest layer, shared with ``python -m datasets.generate``; it is re-exported
here. :class:`CheckpointError` belongs to the training side."""
from __future__ import annotations

from datasets.runtime.errors import USER_ERRORS, exit_on_user_error, one_line


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, not from pdeforge, or does not match the configured model."""


__all__ = ["USER_ERRORS", "CheckpointError", "exit_on_user_error", "one_line"]
