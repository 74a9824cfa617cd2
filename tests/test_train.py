"""``train.py`` end to end on tiny budgets: fit + test, metrics.json, checkpoints, exact resume, wandb offline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import run_entry_point, tiny_burgers, tiny_darcy, train_in_process


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


@pytest.mark.slow
def test_train_cli_with_wandb_offline(data_dir: Path, tmp_path: Path) -> None:
    overrides = [o for o in tiny_darcy(data_dir) if o != "logger=csv"]
    proc = run_entry_point("train.py", *overrides, "logger=wandb", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[pdeforge]" in proc.stdout and "test/rel_l2=" in proc.stdout
    assert (tmp_path / "metrics.json").is_file()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs, "wandb offline run directory missing"
    assert any(runs[0].rglob("*.wandb"))


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
