"""The PDE problems pdeforge generates data for, each a :class:`~datasets.pdes.base.PDEProblem` in a module of
this package (its docstring describes the equation and the solver).

Registration is automatic: every ``PDEProblem`` subclass with its own ``name`` registers itself when its class is
defined (``PDEProblem.__init_subclass__``), and the first use of :data:`PROBLEMS`, :func:`make_problem`,
:func:`problem_class` or a problem class by its name (``from datasets.pdes import NavierStokes``) imports every
module of this package. A new PDE is therefore one solver file here plus one ``conf/data/<name>.yaml``; nothing in
this file changes. A solver module that fails to import makes that first use fail with an ``ImportError`` naming
the module.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any

from datasets.pdes.base import PDEProblem, registered_problems

_discovered = False
_discovering = False


def _discover() -> dict[str, type[PDEProblem]]:
    """Import every module of this package once (their classes register themselves); the registry."""
    global _discovered, _discovering
    if not (_discovered or _discovering):
        _discovering = True
        try:
            for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
                module = f"{__name__}.{info.name}"
                try:
                    importlib.import_module(module)
                except Exception as exc:
                    raise ImportError(f"cannot import the PDE module {module}: {type(exc).__name__}: {exc}") from exc
            _discovered = True
        finally:
            _discovering = False
    return registered_problems()


def problem_class(pde: str) -> type[PDEProblem]:
    """The problem class named ``pde`` (a one-line ``ValueError`` listing the known names otherwise)."""
    problems = _discover()
    if pde not in problems:
        raise ValueError(f"pde={pde!r} is not allowed; use one of {', '.join(sorted(problems))}")
    return problems[pde]


def make_problem(pde: str, **params: Any) -> PDEProblem:
    """Construct the problem named ``pde`` with ``params`` (``device=`` included)."""
    return problem_class(pde)(**params)


def __getattr__(name: str) -> Any:
    """``PROBLEMS`` (name -> class, every module imported) and the problem classes by their class name."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "PROBLEMS":
        return _discover()
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: import just that one
        return importlib.import_module(f"{__name__}.{name}")
    for cls in _discover().values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "PROBLEMS", *(cls.__name__ for cls in _discover().values())})


__all__ = ["PROBLEMS", "PDEProblem", "make_problem", "problem_class"]
