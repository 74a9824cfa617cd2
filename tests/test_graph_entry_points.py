"""Graphs through the unchanged entry points: MP-PDE on Navier-Stokes served as graphs trains, resumes, evaluates
(accumulated error, per-step curves, space-time or field plots), sweeps and runs under DDP on two CPU processes
with exact per-graph metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import launch_entry_point, run_entry_point


def tiny_mppde_ns(data_dir: Path) -> list[str]:
    """Overrides for a seconds-long MP-PDE run on 8 x 8 Navier-Stokes graphs (2 input steps, 4 target steps)."""
    return [
        "experiment=mppde_ns2d",
        "data.n_train=4", "data.n_val=3", "data.n_test=3",
        "data.solver_resolution=16", "data.resolution=8", "data.t_final=8", "data.dt=1e-2",
        "data.input_steps=1:3", "data.target_steps=3:7", "data.in_channels=2", "data.n_target_steps=4",
        "data.train_steps=1:9", "data.train_passes_per_epoch=2", "data.batch_size=2",
        "model.time_window=2", "model.hidden=16", "model.n_layers=2",
        "trainer.max_epochs=2", "logger=csv", "callbacks.rich_model_summary=null",
        "trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}",
    ]


@pytest.fixture(scope="module")
def mppde_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("mppde")
    proc = run_entry_point("train.py", *tiny_mppde_ns(data_dir), f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_mppde_trains_on_graphs_and_reports_per_graph_metrics(mppde_run: Path) -> None:
    metrics = json.loads((mppde_run / "metrics.json").read_text())
    assert 0 < metrics["test/rel_l2"] < 10 and metrics["test/accumulated_error"] > 0
    assert "test/rel_h1" not in metrics  # graphs have no grid to difference on
    assert list((mppde_run / "plots").glob("val_epoch_*.png"))  # 2-D grid nodes drawn as the grid
    ckpt = torch.load(mppde_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["pdeforge"]["network_class"] == "operators.mppde.MPPDE" and ckpt["epoch"] == 1


def test_mppde_evaluates_and_resumes(mppde_run: Path, data_dir: Path, tmp_path: Path) -> None:
    metrics = json.loads((mppde_run / "metrics.json").read_text())
    # the evaluation and the resume only read the trained run: both run at once
    evaluation = launch_entry_point("evaluate.py", f"ckpt_path={metrics['best_checkpoint']}", "logger=csv",
                                    f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'eval'}")
    resumed = tmp_path / "resumed"
    resume = launch_entry_point("train.py", *tiny_mppde_ns(data_dir), "trainer.max_epochs=3", "test=false",
                                f"ckpt_path={mppde_run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={resumed}")
    proc = evaluation.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"]["8"]
    assert out["n_samples"] == 3
    assert out["accumulated_error"] == pytest.approx(metrics["test/accumulated_error"], rel=1e-5)
    assert out["rel_l2"] == pytest.approx(metrics["test/rel_l2"], rel=1e-5)
    assert len(out["mse_per_step"]) == 4 and sum(out["mse_per_step"]) == pytest.approx(out["accumulated_error"],
                                                                                        rel=1e-5)
    assert "accumulated error" in proc.stdout
    assert (tmp_path / "eval" / "plots" / "prediction_res8.png").is_file()
    proc = resume.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2


@pytest.mark.slow
def test_mppde_sweep_under_ddp_counts_every_graph_once(data_dir: Path, tmp_path: Path) -> None:
    """A 2-job sweep, each job DDP on 2 CPU processes with 3 test graphs (uneven shards): each job runs once and
    its test metrics equal a single-process evaluation of its checkpoint."""
    proc = run_entry_point("train.py", "-m", *tiny_mppde_ns(data_dir), "model.hidden=8,16", "trainer=ddp",
                           "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=1",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    assert len(list((tmp_path / "sweep").rglob("multirun.yaml"))) == 1
    # each job ran its own overrides (hidden 8, then 16)
    n_parameters = [json.loads((job / "metrics.json").read_text())["n_parameters"] for job in jobs]
    assert n_parameters[0] < n_parameters[1], n_parameters
    metrics = json.loads((jobs[1] / "metrics.json").read_text())
    proc = run_entry_point("evaluate.py", f"ckpt_path={metrics['best_checkpoint']}", "logger=csv",
                           f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "eval" / "metrics.json").read_text())["results"]["8"]
    assert single["n_samples"] == 3
    assert metrics["test/accumulated_error"] == pytest.approx(single["accumulated_error"], rel=1e-5)
    assert metrics["test/mse"] == pytest.approx(single["mse"], rel=1e-5)


@pytest.mark.parametrize("data, field_names", [
    ("combined_e2", {"u", "alpha", "beta", "gamma", "forcing_amplitude", "forcing_omega", "forcing_phase",
                     "forcing_wavenumber"}),
    ("wave", {"u", "c", "center", "amplitude", "width", "bc_left", "bc_right"}),
])
def test_generate_stores_trajectories_with_their_parameters(data: str, field_names: set, tmp_path: Path) -> None:
    """`python -m datasets.generate` for the MP-PDE data: every trajectory's parameters are stored beside it, and
    re-solving a stored trajectory from its file alone reproduces it."""
    import h5py

    from datasets.pdes import make_problem

    out = tmp_path / "data"
    proc = run_entry_point("datasets.generate", f"data={data}", "data.n_train=2", "data.n_val=1", "data.n_test=1",
                           "generate.splits=[test]", "data.resolution=40" if data == "wave" else "data.t_final=1",
                           "generate.progress=false", f"paths.data_dir={out}", f"hydra.run.dir={tmp_path / 'run'}",
                           module=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob(f"{'wave' if data == 'wave' else 'combined_equation'}/*/test.h5")
    with h5py.File(path, "r") as f:
        assert set(f.keys()) - {"coords"} == field_names
        stored = {k: f[k][()] for k in field_names}
        config = __import__("json").loads(f.attrs["config_json"])
    config.pop("seed"), config.pop("pde")
    problem = make_problem("wave" if data == "wave" else "combined_equation", **config)
    params = {k: torch.as_tensor(v) for k, v in stored.items() if k in problem.parameter_fields}
    again = problem.solve(params).float().numpy()
    assert abs(again - stored["u"]).max() < 1e-5


@pytest.mark.parametrize("experiment", ["fno_pf_e1", "fno_rnn_e1", "mppde_e2"])
def test_mppde_recipes_train_and_report_the_accumulated_error(experiment: str, data_dir: Path,
                                                              tmp_path: Path) -> None:
    """The FNO baselines (bundled + pushforward, one-step recurrent) on the grid and MP-PDE with a PDE parameter
    on graphs, each through a real fit and test on tiny combined-equation data (80 snapshots, 20 points; 30 target
    steps: the second bundled call's surplus is dropped)."""
    from tests.conftest import train_in_process

    sizes = ["data.n_train=4", "data.n_val=2", "data.n_test=2", "data.solver_resolution=40", "data.resolution=20",
             "data.n_snapshots=80", "data.t_final=0.79", "data.snapshot_dt=0.01",
             "data.target_steps=50:80", "data.n_target_steps=30", "data.train_steps=0:80",
             "data.train_passes_per_epoch=2", "data.batch_size=2", "trainer.max_epochs=2", "logger=csv",
             "callbacks.rich_model_summary=null", "trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}"]
    model = ["model.modes=[4]", "model.width=8"] if experiment.startswith("fno") else ["model.hidden=32",
                                                                                        "model.n_layers=1"]
    metrics = train_in_process([f"experiment={experiment}", *sizes, *model], tmp_path)
    assert metrics["test/accumulated_error"] > 0 and 0 < metrics["test/rel_l2"] < 10
    assert ("test/rel_h1" in metrics) == experiment.startswith("fno")  # grids have H1, graphs do not
