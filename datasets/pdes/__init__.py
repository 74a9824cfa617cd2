"""The PDE problems pdeforge generates data for, each a :class:`~datasets.pdes.base.PDEProblem`:

``burgers``        1-D viscous Burgers, pseudo-spectral + ETDRK4 (:mod:`datasets.pdes.burgers`)
``darcy``          2-D Darcy flow, five-point finite differences, sparse direct or batched PCG
                   (:mod:`datasets.pdes.darcy`)
``navier_stokes``  2-D incompressible Navier-Stokes in vorticity form on the torus, pseudo-spectral +
                   Crank-Nicolson/Heun (:mod:`datasets.pdes.navier_stokes`)
"""
from __future__ import annotations

from typing import Any

from datasets.pdes.base import PDEProblem
from datasets.pdes.burgers import Burgers
from datasets.pdes.darcy import Darcy
from datasets.pdes.navier_stokes import NavierStokes

PROBLEMS: dict[str, type[PDEProblem]] = {cls.name: cls for cls in (Burgers, Darcy, NavierStokes)}


def make_problem(pde: str, **params: Any) -> PDEProblem:
    """Construct the problem named ``pde`` with ``params`` (``device=`` included)."""
    if pde not in PROBLEMS:
        raise ValueError(f"pde={pde!r} is not allowed; use one of {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[pde](**params)


__all__ = ["PROBLEMS", "PDEProblem", "Burgers", "Darcy", "NavierStokes", "make_problem"]
