"""``task.compile``: every network family compiled in place gives the eager forward and gradients, state_dict keys
(and so checkpoints) do not change, bad values are one-line errors, and a compiled train.py run writes a checkpoint
that evaluates eagerly.

Inductor compiles C++ on the CPU (10-60 s per tiny network on 2 cores), so the per-family inductor comparisons and the
end-to-end run are ``slow``; the fast set traces every family through Dynamo + AOTAutograd (``backend=aot_eager``:
the same graph capture and joint forward/backward graph, no code generation).
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from operators.fno import FNO
from operators.lsm import LSM
from operators.mgno import MgNO
from operators.runtime.compile import compile_network, compile_options, is_compiled
from operators.sfno import SFNO
from operators.space_time_fno import SpaceTimeFNO
from operators.tasks.regression import OperatorRegression
from tests.conftest import CONF, run_entry_point, tiny_burgers, train_in_process


def _graph_batch() -> Any:
    from torch_geometric.data import Batch, Data

    from datasets.neighbors import radius_graph

    g = torch.Generator().manual_seed(0)
    graphs = []
    for _ in range(2):
        pos = (torch.arange(16, dtype=torch.float32) / 16)[:, None]
        graphs.append(Data(x=torch.randn(16, 5, generator=g), pos=pos, time=torch.rand(1, generator=g),
                           edge_index=radius_graph(pos, 2.5 / 16, periodic_length=1.0)))
    return Batch.from_data_list(graphs)


def _mppde() -> nn.Module:
    from operators.mppde import MPPDE

    return MPPDE(time_window=5, hidden=8, n_layers=1, dt=0.1, periodic=True)


# family -> (tiny network, its input); the smallest configurations, compile time grows with the graph
NETWORKS: dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]] = {
    "fno1d": (lambda: FNO(1, 1, modes=(6,), width=6, n_layers=1, projection_channels=8),
              lambda: torch.randn(2, 1, 32)),
    "fno2d": (lambda: FNO(1, 1, modes=(3, 3), width=6, n_layers=1, projection_channels=8, padding=0.1),
              lambda: torch.randn(2, 1, 12, 12)),
    "fno3d": (lambda: FNO(1, 1, modes=(2, 2, 2), width=4, n_layers=1, projection_channels=8),
              lambda: torch.randn(2, 1, 6, 6, 6)),
    "space_time_fno": (lambda: SpaceTimeFNO(1, t_in=2, n_steps_out=3, modes=(2, 2, 2), width=4, n_layers=1,
                                            time_padding=2, projection_channels=8),
                       lambda: torch.randn(2, 2, 8, 8)),
    "sfno": (lambda: SFNO(1, t_in=3, n_steps_out=4, modes=(3, 3, 2), width=6, n_layers=1, latent_steps=4,
                          ffn_channels=8), lambda: torch.randn(2, 3, 12, 12)),
    "mgno": (lambda: MgNO(1, 1, width=4, n_layers=1, levels=2, pad_to_multiple=True),
             lambda: torch.randn(2, 1, 9, 9)),
    "lsm": (lambda: LSM(1, 1, width=4, patch_size=(2, 2), num_heads=2, num_basis=2, num_tokens=2, n_scales=2,
                        projection_channels=8), lambda: torch.randn(2, 1, 9, 9)),
    "mppde": (_mppde, _graph_batch),
}


def _compare_compiled(name: str, **options: Any) -> None:
    """Forward and parameter gradients of the compiled network equal the eager ones (float32 round-off)."""
    factory, make_input = NETWORKS[name]
    torch.manual_seed(0)
    eager = factory()
    compiled = copy.deepcopy(eager)
    x = make_input()
    assert compile_network(compiled, options) and is_compiled(compiled)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    outputs = []
    for net in (eager, compiled):
        out = net(x)
        out.square().mean().backward()
        outputs.append(out.detach())
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    # relative to the largest gradient: some are zero up to round-off (a query bias under softmax's shift invariance)
    scale = max(p.grad.abs().max() for p in eager.parameters() if p.grad is not None).clamp_min(1e-12)
    for (key, p), q in zip(eager.named_parameters(), compiled.parameters()):
        if p.grad is None:
            assert q.grad is None, key
            continue
        torch.testing.assert_close(q.grad / scale, p.grad / scale, rtol=1e-5, atol=1e-5, msg=key)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test compiles from scratch (no cached graphs or recompile counts carried between tests)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------- the option
@pytest.mark.parametrize("value,expected", [(False, None), (None, None), (True, {}),
                                            ({"mode": "max-autotune", "dynamic": False},
                                             {"mode": "max-autotune", "dynamic": False})])
def test_compile_values(value: Any, expected: Any) -> None:
    assert compile_options(value) == expected


@pytest.mark.parametrize("value,message", [
    ("fast", "compile='fast' is not allowed; use true, false or a dict of torch.compile options"),
    (1, "compile=1 is not allowed; use true, false or a dict of torch.compile options"),
    ({"speed": 3}, "compile has unknown torch.compile option(s) ['speed']"),
    ({"mode": "ludicrous"}, "compile.mode='ludicrous' is not allowed"),
    ({"mode": "default", "options": {"max_autotune": True}}, "compile.mode and compile.options cannot both"),
    ({"dynamic": "yes"}, "compile.dynamic='yes' is not allowed"),
])
def test_bad_compile_values_are_one_line_errors(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        OperatorRegression(nn.Conv1d(1, 1, 1), compile=value)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_omegaconf_dict_is_accepted() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"backend": "aot_eager", "options": {}})
    assert compile_options(cfg) == {"backend": "aot_eager", "options": {}}
    assert type(compile_options(cfg)["options"]) is dict


def test_configure_model_compiles_in_place_once_and_keeps_checkpoint_keys() -> None:
    factory, _ = NETWORKS["fno1d"]
    eager = OperatorRegression(factory(), normalize_input=True, normalize_target=True)
    task = OperatorRegression(factory(), normalize_input=True, normalize_target=True, compile=True)
    task.load_state_dict(eager.state_dict())
    assert not is_compiled(task.network)
    task.configure_model()
    compiled_call = task.network._compiled_call_impl
    assert compiled_call is not None
    task.configure_model()  # trainer.test after trainer.fit: no second compile
    assert task.network._compiled_call_impl is compiled_call
    # same keys both ways: a compiled run's checkpoint loads eagerly and an eager one loads compiled
    assert list(task.state_dict()) == list(eager.state_dict())
    eager.load_state_dict(task.state_dict(), strict=True)
    task.load_state_dict(eager.state_dict(), strict=True)
    eager.configure_model()  # compile=false: stays eager
    assert not is_compiled(eager.network)


def test_every_task_config_has_the_option_and_task_compile_true_composes() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from operators.runtime import resolvers  # noqa: F401

    tasks = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
    assert {"regression", "rollout", "pushforward", "spectral_refiner"} <= set(tasks)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name in tasks:
            cfg = compose(config_name="train", overrides=[f"task={name}", "paths.output_dir=/tmp/x"])
            assert cfg.task.compile is False, name
        cfg = compose(config_name="train", overrides=["task.compile=true", "paths.output_dir=/tmp/x"])
        assert instantiate(cfg.task, network=nn.Conv2d(1, 1, 1)).compile_options == {}
        cfg = compose(config_name="train", overrides=["task.compile={mode: max-autotune, dynamic: false}",
                                                      "paths.output_dir=/tmp/x"])
        task = instantiate(cfg.task, network=nn.Conv2d(1, 1, 1))
        assert task.compile_options == {"mode": "max-autotune", "dynamic": False}


# ------------------------------------------------------------------------------------- compiled equals eager
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_traced_network_matches_eager(name: str) -> None:
    """Dynamo capture + AOTAutograd's joint graph of every family (no graph break, no code generation)."""
    _compare_compiled(name, backend="aot_eager", fullgraph=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_inductor_compiled_network_matches_eager(name: str) -> None:
    _compare_compiled(name)


# -------------------------------------------------------------------------------------------- through train.py
@pytest.mark.slow
def test_compiled_training_run_evaluates_eagerly(data_dir: Path, tmp_path: Path) -> None:
    """`python train.py task.compile=true` (in process): fit + test compiled; evaluate.py rebuilds the network from
    the checkpoint eagerly and reproduces the test metric; the checkpoint also loads into a compiled task."""
    overrides = [*tiny_burgers(data_dir), "model=fno", "model.width=6", "model.modes=[4]", "model.n_layers=1",
                 "model.projection_channels=8", "trainer.max_epochs=1", "logger=csv", "callbacks.prediction_plot=null",
                 "callbacks.rich_model_summary=null", "trainer.enable_progress_bar=false", "task.compile=true"]
    metrics = train_in_process(overrides, tmp_path / "train")
    assert 0 < metrics["test/rel_l2"] < 5
    ckpt_path = tmp_path / "train" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    assert ckpt["pdeforge"]["config"]["task"]["compile"] is True
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])

    proc = run_entry_point("evaluate.py", f"ckpt_path={ckpt_path}", "logger=csv", "eval.plots=false",
                           f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"]["64"]["rel_l2"]
    # the best checkpoint is the last one after one epoch; train.py tested it compiled, evaluate.py ran eagerly
    assert evaluated == pytest.approx(metrics["test/rel_l2"], rel=1e-4)


@pytest.mark.slow
def test_compiled_training_under_ddp_on_two_cpu_processes(data_dir: Path, tmp_path: Path) -> None:
    """`task.compile=true` with `trainer=ddp` on 2 CPU processes: configure_model compiles the network on every rank
    before DDP wraps it; the run trains, tests, and writes a checkpoint with the eager keys."""
    run = tmp_path / "ddp"
    proc = run_entry_point("train.py", *tiny_burgers(data_dir), "model=fno", "model.width=6", "model.modes=[4]",
                           "model.n_layers=1", "model.projection_channels=8", "trainer.max_epochs=1", "logger=csv",
                           "callbacks.prediction_plot=null", "callbacks.rich_model_summary=null",
                           "trainer.enable_progress_bar=false", "task.compile=true", "trainer=ddp",
                           "trainer.accelerator=cpu", "trainer.devices=2", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "MEMBER: 2/2" in out or "GLOBAL_RANK: 1" in out, out[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["test/rel_l2"] < 5 and math.isfinite(metrics["train/loss"])
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state and not any("_orig_mod" in key for key in state)
