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
