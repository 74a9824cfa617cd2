"""``train.py`` end to end on tiny budgets: fit + test, metrics.json, checkpoints, exact resume, wandb offline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import tiny_burgers, tiny_darcy, train_in_process


def test_train_darcy_writes_metrics_and_checkpoints(data_dir: Path, tmp_path: Path) -> None:
    metrics = train_in_process(tiny_darcy(data_dir), tmp_path)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["test/rel_l2"] == pytest.approx(metrics["test/rel_l2"])
    assert 0 < stored["test/rel_l2"] < 2.0
    assert {"test/rel_h1", "test/mse", "val/rel_l2_best", "n_parameters"} <= stored.keys()
    assert Path(stored["best_checkpoint"]).is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # the checkpoint rebuilds the run without the command line: config + normalisers + RNG
    assert ckpt["pdeforge"]["config"]["data"]["pde"] == "darcy"
    assert ckpt["pdeforge"]["config"]["model"]["width"] == 8
    assert any(k.startswith("x_normalizer.") for k in ckpt["state_dict"])
    assert "rng" in ckpt["pdeforge"]


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # a resume writes to a new run dir
def test_resume_reproduces_uninterrupted_training(data_dir: Path, tmp_path: Path) -> None:
    # a step schedule: cosine annealing would depend on max_epochs, which differs between the runs
    base = [*tiny_darcy(data_dir), "callbacks.prediction_plot=null", "task/scheduler=step", "task.scheduler.step_size=1"]
    straight = tmp_path / "straight"
    train_in_process([*base, "trainer.max_epochs=3", "test=false"], straight)
    first = tmp_path / "first"
    train_in_process([*base, "trainer.max_epochs=2", "test=false"], first)
    resumed = tmp_path / "resumed"
    train_in_process([*base, "trainer.max_epochs=3", "test=false",
                       f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"], resumed)
    a = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for idx in opt_a:
        torch.testing.assert_close(opt_b[idx]["exp_avg"], opt_a[idx]["exp_avg"], rtol=1e-5, atol=1e-6)
    assert a["lr_schedulers"][0]["last_epoch"] == b["lr_schedulers"][0]["last_epoch"]


def test_train_burgers_with_rollout_data_shapes(data_dir: Path, tmp_path: Path) -> None:
    overrides = [*tiny_burgers(data_dir), "model=fno", "model.width=8", "model.modes=[8]",
                 "model.projection_channels=16", "trainer.max_epochs=2", "logger=csv",
                 "callbacks.rich_model_summary=null", "trainer.enable_progress_bar=false"]
    metrics = train_in_process(overrides, tmp_path)
    assert 0 < metrics["test/rel_l2"] < 5
    assert (tmp_path / "plots").is_dir() and any((tmp_path / "plots").glob("*.png"))


# train.py with the wandb logger (the default), offline: test_readme_commands.py::test_default_train runs it
# and checks the one-line summary, metrics.json and the offline run with its .wandb file.


def test_train_bf16_mixed_precision(data_dir: Path, tmp_path: Path) -> None:
    """bf16 autocast (what `trainer=gpu trainer.precision=bf16-mixed` uses) on the CPU: FFTs stay in float32."""
    metrics = train_in_process([*tiny_darcy(data_dir), "trainer.precision=bf16-mixed"], tmp_path)
    assert 0 < metrics["test/rel_l2"] < 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_on_gpu_bf16_with_data_on_device(data_dir: Path, tmp_path: Path) -> None:
    metrics = train_in_process([*tiny_darcy(data_dir), "trainer=gpu", "trainer.precision=bf16-mixed",
                                 "data.data_on_device=true"], tmp_path)
    assert 0 < metrics["test/rel_l2"] < 2


def test_csv_logger_run_does_not_need_wandb(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `logger=csv` a run must finish where wandb is not installed (`import wandb` raises)."""
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    metrics = train_in_process([*tiny_darcy(data_dir), "trainer.max_epochs=1"], tmp_path)
    assert 0 < metrics["test/rel_l2"] < 2


def test_evaluate_uses_the_trained_float32_matmul_precision(data_dir: Path, tmp_path: Path) -> None:
    """One config key, applied by train.py and (from the checkpoint, unless overridden) by evaluate.py."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    import evaluate as evaluate_module
    from tests.conftest import CONF

    before = torch.get_float32_matmul_precision()
    try:
        train_in_process([*tiny_darcy(data_dir), "trainer.max_epochs=1", "test=false",
                          "float32_matmul_precision=highest"], tmp_path / "train")
        assert torch.get_float32_matmul_precision() == "highest"
        torch.set_float32_matmul_precision("medium")
        for override, expected in ((None, "highest"), ("high", "high")):
            out = tmp_path / f"eval_{override}"
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose(config_name="evaluate", return_hydra_config=True, overrides=[
                    f"ckpt_path={tmp_path / 'train' / 'checkpoints' / 'last.ckpt'}", "logger=csv", "eval.plots=false",
                    f"paths.data_dir={data_dir}", f"paths.output_dir={out}", f"hydra.run.dir={out}",
                    *([f"float32_matmul_precision={override}"] if override else [])])
                HydraConfig().set_config(cfg)
                evaluate_module.evaluate(cfg)
            assert torch.get_float32_matmul_precision() == expected
    finally:
        torch.set_float32_matmul_precision(before)


def test_one_cycle_schedule_spans_the_real_optimizer_steps(data_dir: Path, tmp_path: Path) -> None:
    """OneCycle's length is Lightning's estimated_stepping_batches: with gradient accumulation (or several
    devices) the run takes fewer optimizer steps than ceil(n_train / batch_size) per epoch, and the schedule
    must still end annealed."""
    train_in_process([*tiny_darcy(data_dir), "task/scheduler=onecycle", "task.scheduler_interval=step",
                      "trainer.accumulate_grad_batches=2", "trainer.max_epochs=2", "test=false"], tmp_path)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    sched = ckpt["lr_schedulers"][0]
    # 16 samples / batch 4 = 4 batches per epoch, 2 per optimizer step, 2 epochs: 4 optimizer steps, and the
    # schedule (whose last step is the fully annealed max_lr / (div * final_div)) was used up exactly
    assert sched["total_steps"] == 4 and sched["last_epoch"] == 4


def test_relative_h1_metric_follows_the_data_periodicity(data_dir: Path, tmp_path: Path) -> None:
    """Burgers is periodic: the H1 metric's finite differences wrap around (Darcy's do not)."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    from operators.runtime import resolvers  # noqa: F401
    from operators.runtime.builders import build_datamodule, build_task
    from tests.conftest import CONF

    for data, periodic in ((tiny_burgers(data_dir), True), (tiny_darcy(data_dir), False)):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*data, "model=fno", "model.width=4",
                                                          "paths.output_dir=" + str(tmp_path)])
        task, dm = build_task(cfg), build_datamodule(cfg)
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_train_batches=1, limit_val_batches=1,
                             default_root_dir=str(tmp_path))
        trainer.fit(task, datamodule=dm)
        assert task.periodic is periodic
        assert task.test_metrics["rel_h1"].loss.periodic is periodic


def _tiny_ns_rollout(data_dir: Path) -> list[str]:
    return ["data=navier_stokes", "data.n_train=16", "data.n_val=4", "data.n_test=4", "data.solver_resolution=32",
            "data.resolution=16", "data.t_final=8", "data.dt=1e-2", "data.input_steps=1:3", "data.target_steps=3:9",
            "data.in_channels=2", "data.n_target_steps=6", "data.batch_size=4", "task=rollout", "model=fno2d",
            "model.modes=[6,6]", "model.width=16", "model.padding=0", "model.projection_channels=32",
            f"paths.data_dir={data_dir}"]


def test_bf16_mixed_rollout_stays_float32_and_as_accurate(data_dir: Path, tmp_path: Path) -> None:
    """Under bf16 autocast the rollout's states, outputs and losses stay float32 (bf16-rounded states fed back
    would compound), and its per-step error stays within a small factor of the fp32 rollout's."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    from operators.evaluation import per_step_relative_l2
    from operators.runtime import resolvers  # noqa: F401
    from operators.runtime.builders import build_datamodule, build_task
    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*_tiny_ns_rollout(data_dir), f"paths.output_dir={tmp_path}"])
    pl.seed_everything(0)
    task, dm = build_task(cfg), build_datamodule(cfg)
    trainer = pl.Trainer(max_epochs=15, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(task, datamodule=dm)
    batch = dm.load("test")
    task.eval()
    with torch.no_grad():
        fp32 = task.predict_batch(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = task.predict_batch(batch)
            loss = task.compute_loss(bf16, batch["y"])
    assert bf16.dtype == torch.float32 and loss.dtype == torch.float32
    err32 = per_step_relative_l2(fp32, batch["y"], 1).mean(0)
    err16 = per_step_relative_l2(bf16, batch["y"], 1).mean(0)
    print("per-step rel L2 fp32", err32.tolist(), "bf16", err16.tolist())
    assert float(err32[-1]) < 0.5, err32  # a model that has learnt something, so the comparison means something
    assert torch.all(err16 <= 1.25 * err32 + 5e-3), (err32, err16)
