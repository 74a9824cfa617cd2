"""The real entry points as a user runs them: evaluate, DDP on 2 CPU processes, multiruns, Optuna, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import launch_entry_point, run_entry_point, tiny_darcy, train_in_process


@pytest.fixture(scope="module")
def trained_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained Darcy model: the checkpoint the commands below read. Trained in this process (the same
    ``train.train`` that train.py runs; ``python train.py`` itself is run as a user runs it by
    test_readme_commands.py), which saves an interpreter start."""
    run_dir = tmp_path_factory.mktemp("trained")
    train_in_process(tiny_darcy(data_dir), run_dir)
    return run_dir


def _error_line(proc) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_evaluate_at_several_resolutions(trained_run: Path, data_dir: Path, tmp_path: Path) -> None:
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    cached = {p: p.stat().st_mtime_ns for p in (data_dir / "darcy").rglob("*.h5")}
    proc = run_entry_point("evaluate.py", f"ckpt_path={ckpt}", "eval.resolutions=[17,33]", "logger=csv",
                           f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "metrics.json").read_text())
    assert set(out["results"]) == {"17", "33"}
    for res in ("17", "33"):
        assert 0 < out["results"][res]["rel_l2"] < 2
        assert out["results"][res]["n_samples"] == 4
    assert (tmp_path / "plots" / "prediction_res33.png").is_file()
    assert "rel L2" in proc.stdout
    # the data is stored at the solver grid (33) and subsampled on loading: a new evaluation resolution
    # solved nothing and wrote nothing
    assert {p: p.stat().st_mtime_ns for p in (data_dir / "darcy").rglob("*.h5")} == cached


def test_evaluate_rollout_error_per_step(data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "train"
    ns = ["data=navier_stokes", "data.n_train=8", "data.n_val=2", "data.n_test=2", "data.solver_resolution=32",
          "data.resolution=16", "data.t_final=6", "data.dt=1e-2", "data.input_steps=1:3", "data.target_steps=3:7",
          "data.in_channels=2", "data.n_target_steps=4", "data.batch_size=4", "task=rollout", "model=fno2d",
          "model.modes=[4,4]", "model.width=8", "model.padding=0", "model.projection_channels=16",
          "trainer.max_epochs=1", "logger=csv", "callbacks.rich_model_summary=null",
          f"paths.data_dir={data_dir}"]
    train_in_process(ns, run_dir)  # the rollout checkpoint that evaluate.py reads
    proc = run_entry_point("evaluate.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "logger=csv",
                           f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    steps = out["results"]["16"]["rel_l2_per_step"]
    assert len(steps) == 4 and all(s > 0 for s in steps)
    assert (tmp_path / "eval" / "plots" / "rollout_error_res16.png").is_file()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # a resume writes to a new run dir
def test_ddp_on_two_cpu_processes(data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """2 CPU processes with 5 validation / test samples (uneven shards): the test metric equals a single-process
    evaluation of the same checkpoint (every sample counted once), each rank's RNG states are saved, and the run
    resumes on one process with a message about what is no longer bit-exact."""
    import logging

    import torch

    sizes = ["data.n_val=5", "data.n_test=5"]
    run = tmp_path / "ddp"
    proc = run_entry_point("train.py", *tiny_darcy(data_dir), *sizes, "trainer=ddp", "trainer.accelerator=cpu",
                           "trainer.devices=2", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "MEMBER: 2/2" in out or "GLOBAL_RANK: 1" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["test/rel_l2"] < 2
    # Lightning drove prepare_data: only rank 0 checked / generated the data (for fit and for test), and no
    # process called it before the Trainer existed
    assert "prepare_data on global rank 0" in out, out[-3000:]
    assert "prepare_data on global rank 1" not in out and "no trainer" not in out

    # the single-process evaluation runs in the background while this process resumes the run (both only read
    # the checkpoint and the cached data)
    evaluation = launch_entry_point("evaluate.py", f"ckpt_path={metrics['best_checkpoint']}", "logger=csv",
                                    f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'eval'}")

    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert len(ckpt["pdeforge"]["rng"]["per_rank"]) == 2
    with caplog.at_level(logging.WARNING, logger="operators.tasks.base"):
        resumed = train_in_process([*tiny_darcy(data_dir), *sizes, "trainer.max_epochs=3", "test=false",
                                    f"ckpt_path={last}"], tmp_path / "resumed")
    assert "from a checkpoint written by 2" in caplog.text and "not a bit-exact continuation" in caplog.text
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)["epoch"] == 2
    assert resumed["val/rel_l2"] > 0

    proc = evaluation.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"]["17"]
    assert single["n_samples"] == 5
    assert metrics["test/rel_l2"] == pytest.approx(single["rel_l2"], rel=1e-5)
    assert metrics["test/mse"] == pytest.approx(single["mse"], rel=1e-5)


# Multiruns under DDP (each job once, one multirun.yaml, each job's own overrides on both ranks) are tested by
# test_zoo_entry_points.py (MgNO x LSM on Darcy grids) and test_graph_entry_points.py (a width sweep); the README's
# model x dataset sweep with one wandb run per job by test_readme_commands.py::test_sweep_over_models_and_datasets.


@pytest.mark.slow
def test_optuna_sweep_survives_a_diverging_trial(data_dir: Path, tmp_path: Path) -> None:
    proc = run_entry_point("train.py", *tiny_darcy(data_dir), "hparams_search=optuna", "trainer.max_epochs=1",
                           "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
                           "hydra.sweeper.params={task.optimizer.lr: 'choice(0.001, 1e12)', model.width: 'choice(4, 8)'}",
                           f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert results["best_value"] < 2.0
    assert len([p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit()]) == 3


@pytest.mark.slow
def test_diverging_job_does_not_kill_the_sweep(data_dir: Path, tmp_path: Path) -> None:
    proc = run_entry_point("train.py", "-m", *tiny_darcy(data_dir), "task.optimizer.lr=1e12,1e-3",
                           "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "job failed, sweep continues" in (tmp_path / "0" / "train.log").read_text()
    assert (tmp_path / "1" / "metrics.json").is_file()


# ---------------------------------------------------------------------------------------------- bad input
# Each test below checks its own command. The commands are independent, so the selected ones are all started
# (two at a time: a launch is mostly the interpreter importing torch / Lightning) when the first of these tests
# runs, and each test waits for its own.
def _bad_input_commands(data_dir: Path, trained_run: Path | None, tmp: Path) -> dict[str, tuple[str, ...]]:
    bad = tmp / "bad.ckpt"
    bad.write_bytes(b"\x00garbage" * 100)
    commands = {
        "test_unknown_config_option_is_named": ("train.py", "model=not_a_model", f"hydra.run.dir={tmp / 'option'}"),
        "test_unknown_key_is_named": ("train.py", "model.not_a_key=3", f"hydra.run.dir={tmp / 'key'}"),
        "test_negative_size_gives_one_line": ("train.py", *tiny_darcy(data_dir), "data.n_train=-5",
                                              f"hydra.run.dir={tmp / 'size'}"),
        "test_modes_too_large_for_resolution": ("train.py", *tiny_darcy(data_dir), "model.modes=[12,12]",
                                                f"hydra.run.dir={tmp / 'modes'}"),
        "test_corrupt_checkpoint": ("evaluate.py", f"ckpt_path={bad}", "logger=csv", f"hydra.run.dir={tmp / 'e1'}"),
        "test_missing_checkpoint": ("evaluate.py", f"ckpt_path={tmp / 'nope.ckpt'}", "logger=csv",
                                    f"hydra.run.dir={tmp / 'e2'}"),
    }
    if trained_run is not None:
        commands["test_checkpoint_of_another_model"] = (
            "train.py", *tiny_darcy(data_dir), "model.width=12",
            f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp / 'other'}")
    return commands


@pytest.fixture(scope="module")
def bad_input(request: pytest.FixtureRequest, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``bad_input(test_name)``: the finished process of that test's command (all selected ones run together)."""
    selected = {item.originalname for item in request.session.items if getattr(item, "module", None) is request.module}
    # the checkpoint (and the data cache that the Darcy commands read) of the module's trained run
    trained = request.getfixturevalue("trained_run") if selected & {
        "test_checkpoint_of_another_model", "test_modes_too_large_for_resolution"} else None
    commands = _bad_input_commands(data_dir, trained, tmp_path_factory.mktemp("bad_input"))
    runs = {name: launch_entry_point(*command) for name, command in commands.items() if name in selected}
    yield lambda name: runs[name].result()
    for run in runs.values():
        run.result()


def test_unknown_config_option_is_named(bad_input) -> None:
    proc = bad_input("test_unknown_config_option_is_named")
    assert proc.returncode != 0
    assert "not_a_model" in proc.stderr and "fno" in proc.stderr


def test_unknown_key_is_named(bad_input) -> None:
    proc = bad_input("test_unknown_key_is_named")
    assert proc.returncode != 0
    assert "not_a_key" in proc.stderr


def test_negative_size_gives_one_line(bad_input) -> None:
    proc = bad_input("test_negative_size_gives_one_line")
    assert proc.returncode == 2
    line = _error_line(proc)
    assert line.startswith("error:") and "n_train" in line and "-5" in line
    assert "Traceback" not in proc.stderr


def test_modes_too_large_for_resolution(bad_input) -> None:
    proc = bad_input("test_modes_too_large_for_resolution")
    assert proc.returncode == 2
    line = _error_line(proc)
    assert line.startswith("error:") and "modes" in line and "12" in line
    assert "Traceback" not in proc.stderr


def test_corrupt_checkpoint(bad_input) -> None:
    proc = bad_input("test_corrupt_checkpoint")
    assert proc.returncode == 2
    line = _error_line(proc)
    assert line.startswith("error:") and "bad.ckpt" in line and "not a readable" in line


def test_missing_checkpoint(bad_input) -> None:
    proc = bad_input("test_missing_checkpoint")
    assert proc.returncode == 2 and "does not exist" in _error_line(proc)


def test_checkpoint_of_another_model(bad_input) -> None:
    proc = bad_input("test_checkpoint_of_another_model")
    assert proc.returncode == 2
    line = _error_line(proc)
    assert line.startswith("error:") and "does not match" in line and "last.ckpt" in line
