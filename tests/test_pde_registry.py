"""A new PDE is one solver file in ``datasets/pdes/`` plus one ``conf/data/<name>.yaml``: problems register
themselves, ``datasets.pdes`` discovers every module, and a data config's PDE parameters are its problem's
``defaults`` (no hand-kept key lists)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from datasets.pdes.base import PDEProblem

ROOT = Path(__file__).resolve().parents[1]
PDES = ROOT / "datasets" / "pdes"


def _declared_problem_names() -> dict[str, str]:
    """``name`` -> module of every class in ``datasets/pdes/*.py`` that assigns a literal ``name`` (read by ast)."""
    out = {}
    for path in sorted(PDES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
                    value = getattr(stmt, "value", None)
                    if any(isinstance(t, ast.Name) and t.id == "name" for t in targets) and \
                            isinstance(value, ast.Constant) and value.value:
                        out[value.value] = path.stem
    return out


def test_every_solver_module_is_discovered() -> None:
    from datasets.pdes import PROBLEMS

    declared = _declared_problem_names()
    assert {"burgers", "darcy", "navier_stokes"} <= set(declared)
    for name, module in declared.items():
        assert name in PROBLEMS, f"{name} ({module}.py) is not registered"
        assert PROBLEMS[name].__module__ == f"datasets.pdes.{module}"
    # the package lists no solver module: nothing to edit for a new PDE
    init = (PDES / "__init__.py").read_text()
    for module in set(declared.values()):
        assert f"datasets.pdes.{module} import" not in init and f"from .{module} import" not in init


def test_public_names_and_unknown_pde() -> None:
    from datasets.pdes import (
        PROBLEMS,
        Burgers,
        Darcy,
        NavierStokes,
        make_problem,
        problem_class,
    )

    assert (PROBLEMS["burgers"], PROBLEMS["darcy"], PROBLEMS["navier_stokes"]) == (Burgers, Darcy, NavierStokes)
    assert problem_class("darcy") is Darcy and isinstance(make_problem("burgers", resolution=64), Burgers)
    with pytest.raises(ValueError) as info:
        make_problem("not_a_pde")
    message = str(info.value)
    assert "\n" not in message and "pde='not_a_pde' is not allowed" in message
    assert all(name in message for name in ("burgers", "darcy", "navier_stokes"))


def test_subclasses_register_themselves_and_names_are_unique() -> None:
    from datasets.pdes import PROBLEMS

    class Tiny(PDEProblem):
        name = "tiny_registry_test"
        defaults: ClassVar[dict[str, Any]] = {"n": 2}

        def validate(self) -> None: ...
        def field_shapes(self): return {"u": (self.n,)}
        def coordinates(self): return {}
        def generate_batch(self, generators, device): ...

    try:
        assert PROBLEMS["tiny_registry_test"] is Tiny

        class Unnamed(Tiny):  # inherits the name: not a problem of its own
            pass

        assert PROBLEMS["tiny_registry_test"] is Tiny
        with pytest.raises(TypeError, match="already used"):
            class Clash(Tiny):
                name = "tiny_registry_test"
    finally:
        PROBLEMS.pop("tiny_registry_test", None)


@pytest.mark.parametrize("data", sorted(p.stem for p in (ROOT / "conf" / "data").glob("*.yaml")))
def test_every_data_config_key_is_a_parameter_or_a_setting(data: str) -> None:
    from datasets.generate import datamodule_settings
    from datasets.generation import check_data_keys, problem_params
    from datasets.pdes import problem_class

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        composed = compose(config_name="generate", overrides=[f"data={data}"])
    cfg = OmegaConf.to_container(composed.data, resolve=False)  # the keys, as python -m datasets.generate sees them
    check_data_keys(cfg, datamodule_settings(cfg))
    params = problem_params(cfg)
    assert set(params) <= set(problem_class(cfg["pde"]).defaults)
    with pytest.raises(ValueError, match=r"data\.not_a_key is not allowed") as info:
        check_data_keys({**cfg, "not_a_key": 1}, datamodule_settings(cfg))
    assert "\n" not in str(info.value) and "batch_size" in str(info.value)
