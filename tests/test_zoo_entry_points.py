"""MgNO, LSM and SFNO through the unchanged entry points: a multirun under DDP (2 CPU processes per job) and
checkpoint evaluation at a finer resolution than the one trained at."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import launch_entry_point, run_entry_point, tiny_darcy
from tests.test_sfno import tiny_ns


@pytest.mark.slow
def test_mgno_and_lsm_multirun_under_ddp_then_evaluate_at_finer_grid(data_dir: Path, tmp_path: Path) -> None:
    overrides = [o for o in tiny_darcy(data_dir) if not o.startswith("model.")]
    sweep = tmp_path / "sweep"
    proc = run_entry_point("train.py", "-m", *overrides, "model=mgno,lsm", "model.width=8", "trainer=ddp",
                           "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=1",
                           f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    # no DDP child re-ran the sweep: only this sweep's multirun.yaml exists
    assert len(list(sweep.rglob("multirun.yaml"))) == 1
    evaluations = {}
    for job, name in zip(jobs, ("MgNO", "LSM")):
        metrics = json.loads((job / "metrics.json").read_text())
        assert 0 < metrics["test/rel_l2"] < 5, job
        # each job trained its own model (on both ranks: a rank with the other job's model would not sync)
        ckpt = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["pdeforge"]["config"]["model"]["_target_"] == f"operators.{name.lower()}.{name}", job
        # the two evaluations are independent: both run at once
        out = tmp_path / f"eval_{name}"
        evaluations[name] = launch_entry_point("evaluate.py", f"ckpt_path={job / 'checkpoints' / 'last.ckpt'}",
                                               "eval.resolutions=[17,33]", "logger=csv", "eval.plots=false",
                                               f"paths.data_dir={data_dir}", f"hydra.run.dir={out}")
    for name, evaluation in evaluations.items():
        proc = evaluation.result()
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads((tmp_path / f"eval_{name}" / "metrics.json").read_text())["results"]
        assert set(results) == {"17", "33"} and all(0 < r["rel_l2"] < 5 for r in results.values())


@pytest.mark.slow
def test_sfno_under_ddp_then_evaluate_at_finer_grid(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_entry_point("train.py", "experiment=sfno_ns", *tiny_ns(data_dir), "model.modes=[4,4,2]",
                           "model.width=8", "model.n_layers=2", "model.latent_steps=4", "model.ffn_channels=16",
                           "trainer.max_epochs=1", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                           f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "eval"
    proc = run_entry_point("evaluate.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "eval.resolutions=[16,32]",
                           "logger=csv", "eval.plots=false", f"paths.data_dir={data_dir}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert set(results) == {"16", "32"}
    for r in results.values():
        assert 0 < r["rel_l2"] < 5 and len(r["rel_l2_per_step"]) == 4 and r["ns_residual_h-1"] > 0
