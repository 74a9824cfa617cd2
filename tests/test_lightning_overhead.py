"""benchmarks/lightning_overhead.py on a tiny Darcy run: both paths train the same samples and the table is printed
(no timing is asserted: the ratio is measured by the benchmark, not tested)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import lightning_overhead as bench

TINY = ["data.n_train=16", "data.n_val=4", "data.n_test=4", "data.solver_resolution=33", "data.resolution=17",
        "data.batch_size=4", "model.width=4", "model.modes=[2,2]", "model.n_layers=1", "model.projection_channels=4",
        "callbacks.rich_model_summary=null", "callbacks.prediction_plot=null", "trainer.enable_progress_bar=false"]


def test_both_loops_time_the_same_training_samples(data_dir: Path, tmp_path: Path) -> None:
    overrides = [*bench.CONFIGS["darcy"], *TINY, "logger=csv", f"paths.data_dir={data_dir}"]
    row = bench.measure("darcy", overrides, epochs=2, warmup=1, repeats=1, output_root=tmp_path)
    # one timed epoch of the 16 training samples on each path
    assert row["samples"] == {"bare": 16, "lightning": 16}
    for key in ("bare", "lightning", "ratio"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["ratio"] == pytest.approx(row["lightning"] / row["bare"])
    # the Lightning run went through train.py's callbacks: its checkpoint was written
    assert any((tmp_path / "darcy_lightning_0" / "checkpoints").glob("*.ckpt"))


def test_bare_loop_trains_the_task_network(data_dir: Path, tmp_path: Path) -> None:
    import torch

    cfg = bench.compose([*bench.CONFIGS["darcy"], *TINY, "logger=csv", f"paths.data_dir={data_dir}"], tmp_path)
    datamodule, task = bench.build(cfg)
    before = [p.detach().clone() for p in task.network.parameters()]
    timer = bench.time_bare(cfg, epochs=2, built=(datamodule, task))
    assert timer.epoch_samples == [16, 16] and len(timer.epoch_seconds) == 2
    assert any(not torch.equal(p, q) for p, q in zip(before, task.network.parameters()))
    # a fresh build with the same seed starts from the same weights as the Lightning run's
    _, again = bench.build(cfg)
    for p, q in zip(before, again.network.parameters()):
        torch.testing.assert_close(p, q.detach())


def test_main_prints_one_row_per_config(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rows = bench.main(["--config", "darcy", "--epochs", "2", "--repeats", "1", "--data-dir", str(data_dir),
                       *[arg for o in TINY for arg in ("--override", o)]])
    out = capsys.readouterr().out
    assert [r["config"] for r in rows] == ["darcy"]
    assert "bare" in out and "lightning" in out and "ratio" in out
    assert out.strip().splitlines()[-1].startswith("darcy")
    with pytest.raises(ValueError, match="--epochs=1 is not allowed"):
        bench.main(["--epochs", "1", "--warmup", "1"])
