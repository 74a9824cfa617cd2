"""User-facing errors: bad input ends with one clear line, not a traceback (every entry point wraps its ``main``
in :func:`exit_on_user_error`)."""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

#: exception types that describe bad input; they end the run with one line (set PDEFORGE_TRACEBACK=1 to see more)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FloatingPointError, KeyError)


def one_line(exc: BaseException) -> str:
    """``<ExceptionType>: <first line of its message>`` (a ``KeyError``'s quotes removed)."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    if isinstance(exc, KeyError) and msg.startswith("'") and msg.endswith("'"):
        msg = msg[1:-1]
    return f"{type(exc).__name__}: {msg}"


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user error raised by ``fn`` into ``error: <one line>`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            if os.environ.get("PDEFORGE_TRACEBACK"):
                raise
            print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper
