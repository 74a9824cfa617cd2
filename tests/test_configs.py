"""Every shipped configuration composes and instantiates (paper experiments included)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from operators.runtime import resolvers  # noqa: F401
from tests.conftest import CONF

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=False)


def test_default_config_is_fno_on_small_darcy() -> None:
    cfg = _compose(["paths.output_dir=/tmp/x"])
    assert cfg.data.pde == "darcy"
    assert cfg.model._target_ == "operators.fno.FNO"
    assert list(cfg.model.modes) == [12, 12]
    assert cfg.model.padding == 0.1  # Darcy is not periodic
    assert cfg.logger.wandb.offline is True


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    network = instantiate(cfg.model)
    task = instantiate(cfg.task, network=network)
    assert sum(p.numel() for p in network.parameters()) > 0
    assert task.network is network
    # the papers' budgets: 500 epochs (FNO, MgNO, LSM, SFNO papers); 20 epochs of 250 passes (MP-PDE and its
    # FNO baselines, Brandstetter et al. 2022)
    if cfg.task._target_.endswith("AutoregressiveRollout") and cfg.task.get("random_start"):
        assert cfg.trainer.max_epochs == 20 and cfg.data.train_passes_per_epoch in (25, 250)
    else:
        assert cfg.trainer.max_epochs == 500


def test_model_dimension_follows_data() -> None:
    cfg = _compose(["model=fno", "data=burgers", "paths.output_dir=/tmp/x"])
    assert list(cfg.model.modes) == [12]
    assert cfg.model.padding == 0  # periodic
    cfg = _compose(["model=fno", "data=darcy", "paths.output_dir=/tmp/x"])
    assert list(cfg.model.modes) == [12, 12]


@pytest.mark.parametrize("experiment,params", [("fno_darcy", None), ("fno_burgers", None)])
def test_paper_model_sizes(experiment: str, params) -> None:
    cfg = _compose([f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    network = instantiate(cfg.model)
    # real parameters, a complex weight counting twice (as the FNO code counts them)
    n = sum(p.numel() * (2 if p.is_complex() else 1) for p in network.parameters())
    # FNO paper models: 2-D Darcy ~ 2.37M (modes 12, width 32), 1-D Burgers ~ 0.55M (modes 16, width 64)
    expected = {"fno_darcy": 2.37e6, "fno_burgers": 0.55e6}[experiment]
    assert abs(n - expected) / expected < 0.1, n


def test_paths_point_outside_the_tree(tmp_path: Path) -> None:
    cfg = _compose([f"paths.data_dir={tmp_path}", "paths.output_dir=/tmp/x"])
    assert cfg.data.data_dir == str(tmp_path)


def test_slurm_launcher_starts_one_task_per_gpu() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["launcher=slurm", "trainer=ddp", "trainer.devices=4",
                                                      "trainer.num_nodes=2", "paths.output_dir=/tmp/x"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4 and launcher.nodes == 2


def test_optuna_search_space_and_direction() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hparams_search=optuna", "paths.output_dir=/tmp/x"],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == "minimize" and cfg.optimized_metric == "val/rel_l2_best"
    assert "task.optimizer.lr" in cfg.hydra.sweeper.params


# ---------------------------------------------------------------------------------------------- data-derived settings
GRID_MODELS = ("operators.fno.FNO", "operators.lsm.LSM", "operators.space_time_fno.SpaceTimeFNO")


# (data, two resolutions the solver grid allows) per model: Darcy's grid includes both boundaries, the others are periodic
GRID_CASES = {
    "fno": [("darcy_small", (33, 65)), ("burgers", (256, 1024)), ("navier_stokes", (64, 128))],
    "fno2d": [("darcy_small", (33, 65)), ("navier_stokes", (64, 128))],
    "lsm": [("darcy_small", (33, 65)), ("navier_stokes", (64, 128))],
}


@pytest.mark.parametrize("model", sorted(GRID_CASES))
def test_grid_embedding_is_the_data_grid_at_every_resolution(model: str) -> None:
    """Zero-shot super-resolution: at any resolution the embedded coordinates are the points of the data's own
    grid (Darcy: both boundaries, j/(n-1); Burgers / Navier-Stokes: periodic, j/n)."""
    import torch

    from datasets.pdes import PROBLEMS

    for data, resolutions in GRID_CASES[model]:
        cfg = _compose([f"data={data}", f"model={model}", "paths.output_dir=/tmp/x"])
        dims = int(cfg.data.spatial_dims)
        network = instantiate(cfg.model)
        for n in resolutions:
            problem = PROBLEMS[cfg.data.pde](resolution=n, solver_resolution=cfg.data.solver_resolution)
            x = torch.as_tensor(problem.coordinates()["x"], dtype=torch.float32)
            coords = network.grid.grid((n,) * dims)  # (d, *S)
            for i in range(dims):
                along = coords[i].movedim(i, 0).reshape(n, -1)[:, 0]
                torch.testing.assert_close(along, x, rtol=0, atol=1e-6, msg=f"{model} on {data} at {n}, dim {i}")


def test_every_experiment_embeds_the_data_grid() -> None:
    checked = []
    for experiment in EXPERIMENTS:
        cfg = _compose([f"experiment={experiment}", "paths.output_dir=/tmp/x"])
        if cfg.model._target_ in GRID_MODELS:
            assert cfg.model.grid_endpoint is (not cfg.data.periodic), experiment
            checked.append(experiment)
    assert {"fno_darcy", "fno_burgers", "fno_ns", "fno3d_ns", "lsm_darcy", "lsm_ns"} <= set(checked)


def test_fno3d_spatial_grid_follows_the_data() -> None:
    cfg = _compose(["data=navier_stokes", "model=fno3d", "paths.output_dir=/tmp/x"])
    assert instantiate(cfg.model).fno.grid.endpoint == (False, False, True)
    cfg = _compose(["data=navier_stokes", "data.periodic=false", "model=fno3d", "paths.output_dir=/tmp/x"])
    assert instantiate(cfg.model).fno.grid.endpoint == (True, True, True)


def test_not_resolver_rejects_non_booleans() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"flag": "yes", "neg": "${not:${flag}}", "ok": "${not:false}"})
    assert cfg.ok is True
    with pytest.raises(Exception, match="not: 'yes' is not a boolean; use true or false"):
        _ = cfg.neg


def test_ddp_syncs_batchnorm_only_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's SyncBatchNorm raises on CPU tensors: CPU DDP runs keep plain BatchNorm (tests/test_zoo_entry_points.py
    trains LSM under `trainer=ddp trainer.accelerator=cpu`)."""
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for accelerator, cuda, expected in [("gpu", False, True), ("cuda", False, True), ("cpu", True, False),
                                        ("auto", True, True), ("auto", False, False)]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        cfg = _compose(["trainer=ddp", f"trainer.accelerator={accelerator}", "model=lsm", "paths.output_dir=/tmp/x"])
        assert cfg.trainer.sync_batchnorm is expected, (accelerator, cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # Lightning's "gpu" is MPS there
    assert _compose(["trainer=ddp", "paths.output_dir=/tmp/x"]).trainer.sync_batchnorm is False
