"""The README's documented commands, run verbatim in a temporary copy of the repository (project issue #6).

Every command below is kept as the exact text the README shows (a test asserts it is there, so the test fails
when the README drifts), run with ``cwd`` = a fresh copy of the repository (what ``git ls-files --cached --others
--exclude-standard`` lists, so uncommitted work is included; no ``.venv``, ``data/``, ``logs/``) and without
``PROJECT_ROOT``, exactly as a user runs it from a fresh clone. Only size-shrinking overrides are appended (sample
counts, grids, widths, modes, epochs, trials); never ``paths.*``, ``hydra.run.dir``, ``hydra.sweep.dir`` or a data
directory, so the outputs are checked where a user finds them: ``logs/train/runs/<run>/``,
``logs/train/multiruns/<sweep>/<job>/``, ``logs/evaluate/runs/<run>/`` and the cache ``data/<pde>/<hash>/``.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import in_background

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------ the README's commands
TRAIN = "python train.py"
RESUME = "python train.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
EVALUATE = "python evaluate.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt"
EVALUATE_RESOLUTIONS = "python evaluate.py ckpt_path=... eval.resolutions=[64,128,256]"
SWEEP = "python train.py -m model=fno model.width=32,64 data=burgers,darcy"
GENERATE = "python -m datasets.generate data=darcy"
DDP_CPU = "python train.py trainer=ddp trainer.accelerator=cpu trainer.devices=2"
OPTUNA = "python train.py hparams_search=optuna hydra.sweeper.n_trials=20"
COMPILE = "python train.py task.compile=true"
# "Bad input": the README documents this message (not a command line) and "exit status 2"
MPPDE_E1 = "python train.py experiment=mppde_e1"
MPPDE_BENCHMARK = "python benchmarks/mppde_rollout.py --ckpt <mppde .ckpt>"
BAD_N_TRAIN_ERROR = "error: ValueError: n_train=-5 is not allowed; use a positive integer"

# --------------------------------------------------------------------------- size-shrinking overrides only
# Darcy: (solver_resolution - 1) % (resolution - 1) == 0; 4 modes per dimension fit the 17x17 grid (+ padding).
DARCY_TINY = ["data.n_train=16", "data.n_val=4", "data.n_test=4", "data.batch_size=4",
              "data.solver_resolution=33", "data.resolution=17", "model.width=8", "model.modes=[4,4]",
              "model.projection_channels=16", "trainer.enable_progress_bar=false"]
# The sweep runs 1-D Burgers and 2-D Darcy with the same overrides: a 32-point grid solved at 32 is valid for both
# (Darcy: (32 - 1) % (32 - 1) == 0; Burgers: 32 divides 32), and model=fno's default 12 modes per dimension
# (conf/model/fno.yaml: ${repeat:12,${data.spatial_dims}}) fit both, so model.modes is left as composed.
SWEEP_TINY = ["data.n_train=8", "data.n_val=2", "data.n_test=2", "data.batch_size=4",
              "data.solver_resolution=32", "data.resolution=32", "model.projection_channels=16",
              "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]

TIMEOUT = 300


# ----------------------------------------------------------------------------------------------- helpers
def _documented_commands(readme: str) -> set[str]:
    """Every command line of the README's ``bash`` blocks: continuation lines joined, comments dropped,
    ``a && b`` split, whitespace collapsed."""
    commands: set[str] = set()
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            for part in line.split("&&"):
                part = " ".join(part.split())
                if part:
                    commands.add(part)
    return commands


def assert_documented(repo: Path, text: str, command: bool = True) -> None:
    readme = (repo / "README.md").read_text()
    assert text in readme, f"README.md no longer contains {text!r}: update the README or this test"
    if command:
        assert text in _documented_commands(readme), f"{text!r} is not a whole command line of a bash block"


def _env() -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("PROJECT_ROOT", "PDEFORGE_TRACEBACK", "HYDRA_FULL_ERROR", "PYTHONPATH"):
        env.pop(key, None)
    return env


def run_readme(repo: Path, command: str, *shrink: str, substitute: dict[str, str] | None = None,
               timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    """Run the README's ``command`` in ``repo`` (``python`` = this interpreter) with ``shrink`` appended; the
    placeholders in ``substitute`` are replaced after checking that ``command`` is in the README verbatim."""
    assert_documented(repo, command)
    for placeholder, value in (substitute or {}).items():
        assert placeholder in command
        command = command.replace(placeholder, value)
    argv = shlex.split(command)
    assert argv[0] == "python"
    for arg in shrink:
        assert not arg.startswith(("paths.", "hydra.run", "hydra.sweep.dir", "data.data_dir")), arg
    return subprocess.run([sys.executable, *argv[1:], *shrink], cwd=repo, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _out(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def _dirs(parent: Path) -> set[Path]:
    return {p for p in parent.iterdir() if p.is_dir()} if parent.is_dir() else set()


def _one_new_dir(parent: Path, before: set[Path]) -> Path:
    new = _dirs(parent) - before
    assert len(new) == 1, f"expected one new directory in {parent}, got {sorted(new)}"
    return new.pop()


def _finite(metrics: dict, key: str, upper: float = 5.0) -> float:
    value = metrics.get(key)
    assert isinstance(value, float) and math.isfinite(value) and 0 < value < upper, f"{key}={value!r}"
    return value


def _one_wandb_offline_run(run_dir: Path) -> None:
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"{run_dir}: expected one wandb offline run, got {runs}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _check_cached_split(path: Path, n: int, loaded: int) -> tuple[int, ...]:
    """``data/<pde>/<hash>/<split>.h5``: complete, at least ``n`` samples, finite, on a stored grid that the
    loaded ``resolution`` subsamples (Darcy: ``(stored - 1) % (loaded - 1) == 0``, boundary included); the stored
    grid may be the loaded one or finer (the data layer may store on the solver grid and subsample on read)."""
    import h5py
    import numpy as np

    assert path.is_file() and not path.with_name(path.name + ".partial").exists(), path
    with h5py.File(path, "r") as f:
        assert bool(f.attrs["complete"]) and int(f.attrs["n_completed"]) >= n, dict(f.attrs)
        assert f.attrs["config_hash"] == path.parent.name
        u = f["u"][()]
        assert f["a"].shape == u.shape and u.shape[0] >= n, u.shape
    stored = u.shape[1:]
    assert len(stored) == 2 and stored[0] == stored[1] and (stored[0] - 1) % (loaded - 1) == 0, stored
    assert np.isfinite(u).all() and np.abs(u).max() > 0
    return stored


def _stored_grid(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f["u"].shape[-1])


def _darcy_caches(repo: Path, solver_resolution: int) -> list[Path]:
    return sorted(d for d in _dirs(repo / "data" / "darcy")
                  if json.loads((d / "config.json").read_text())["solver_resolution"] == solver_resolution)


def _jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def pristine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as a fresh clone with the uncommitted work: never run in, only copied from."""
    dest = tmp_path_factory.mktemp("pristine") / "pdeforge"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = Path(os.fsdecode(raw))
        if rel.parts[0] in (".venv", "data", "logs"):
            continue
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for needed in ("README.md", "train.py", "evaluate.py", "conf/train.yaml", "datasets/generate.py"):
        assert (dest / needed).is_file(), needed
    assert not (dest / "data").exists() and not (dest / "logs").exists()
    return dest


def _clone(pristine: Path, where: Path) -> Path:
    return Path(shutil.copytree(pristine, where / "pdeforge", symlinks=True))


@pytest.fixture(scope="module")
def repo(pristine_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy shared by the train -> resume / evaluate chain."""
    return _clone(pristine_copy, tmp_path_factory.mktemp("repo"))


@pytest.fixture
def fresh_repo(pristine_copy: Path, tmp_path: Path) -> Path:
    """A fresh copy (no logs/, no data/) for a command that should see a fresh clone."""
    return _clone(pristine_copy, tmp_path)


@pytest.fixture(scope="module")
def trained(repo: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """``python train.py``, tiny-sized, 2 epochs: the run the resume and evaluate tests share."""
    before = _dirs(repo / "logs" / "train" / "runs")
    proc = run_readme(repo, TRAIN, *DARCY_TINY, "trainer.max_epochs=2")
    assert proc.returncode == 0, _out(proc)
    return _one_new_dir(repo / "logs" / "train" / "runs", before), proc


@pytest.fixture(scope="module")
def resume_started(repo: Path, trained):
    """The README's resume command (2 -> 3 epochs) on the trained run, started in the background: the old last
    checkpoint, the run directories before it, the checkpoint path it was given, and its future process. It
    writes only a new ``logs/train/runs/<run>`` and reads the trained run and the data cache, none of which
    the evaluation tests' commands change (they write ``logs/evaluate/runs/<run>``)."""
    run_dir, _ = trained
    old = _load_ckpt(run_dir / "checkpoints" / "last.ckpt")
    before = _dirs(repo / "logs" / "train" / "runs")
    # the README's <run> placeholder is replaced by the real run directory, as a user would; max_epochs 2 -> 3
    ckpt = _ckpt_rel(repo, run_dir)
    resume = in_background(run_readme, repo, RESUME, *DARCY_TINY, "trainer.max_epochs=3",
                           substitute={"logs/train/runs/<run>/checkpoints/last.ckpt": ckpt})
    return old, before, ckpt, resume


@pytest.fixture
def resume_in_background(request: pytest.FixtureRequest) -> None:
    """Starts the resume (when its test is selected) before an evaluation test runs its own command, so that the
    two use both cores; the resume test, after the evaluation tests, checks it."""
    if any(getattr(item, "module", None) is request.module and item.originalname == "test_resume_from_last_checkpoint"
           for item in request.session.items):
        request.getfixturevalue("resume_started")


def _ckpt_rel(repo: Path, run_dir: Path) -> str:
    return str((run_dir / "checkpoints" / "last.ckpt").relative_to(repo))


def _load_ckpt(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


# ------------------------------------------------------------------------------------------------- tests
def test_default_train(repo: Path, trained) -> None:
    run_dir, proc = trained
    assert "[pdeforge]" in proc.stdout and "test/rel_l2=" in proc.stdout, _out(proc)  # the one-line summary
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _finite(metrics, "test/rel_l2", 2.0)
    _finite(metrics, "val/rel_l2_best", 2.0)
    for key in ("best_checkpoint", "last_checkpoint"):  # written inside the copy (paths.root_dir = launch dir)
        assert Path(metrics[key]).resolve().is_relative_to(repo.resolve()) and Path(metrics[key]).is_file(), metrics
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and _load_ckpt(last)["epoch"] == 1
    _one_wandb_offline_run(run_dir)
    assert any((run_dir / "wandb").glob("offline-run-*/*.wandb"))  # the offline run's data file, to `wandb sync`
    # the data cache: data/darcy/<config hash>/{train,val,test}.h5 with the requested sizes
    caches = [d for d in _darcy_caches(repo, 33) if (d / "train.h5").exists()]
    assert len(caches) == 1, caches
    for split, n in (("train", 16), ("val", 4), ("test", 4)):
        _check_cached_split(caches[0] / f"{split}.h5", n, loaded=17)


def test_evaluate_checkpoint(repo: Path, trained, resume_in_background) -> None:
    run_dir, _ = trained
    before = _dirs(repo / "logs" / "evaluate" / "runs")
    # the README's <run> placeholder is replaced by the real run directory
    proc = run_readme(repo, EVALUATE, substitute={"<run>": run_dir.name})
    assert proc.returncode == 0, _out(proc)
    assert "rel L2" in proc.stdout
    eval_dir = _one_new_dir(repo / "logs" / "evaluate" / "runs", before)
    out = json.loads((eval_dir / "metrics.json").read_text())
    assert set(out["results"]) == {"17"} and out["trained_resolution"] == 17
    _finite(out["results"]["17"], "rel_l2", 2.0)
    assert out["results"]["17"]["n_samples"] == 4
    assert (eval_dir / "plots" / "prediction_res17.png").is_file()
    _one_wandb_offline_run(eval_dir)


def test_evaluate_at_other_resolutions(repo: Path, trained, resume_in_background) -> None:
    run_dir, _ = trained
    before = _dirs(repo / "logs" / "evaluate" / "runs")
    caches_before = _dirs(repo / "data" / "darcy")
    # "..." is the real checkpoint; [64,128,256] is replaced by resolutions of the tiny 33-point solver grid
    # ((33 - 1) / k + 1: 17 is the training grid, 33 the solver grid: zero-shot super-resolution)
    proc = run_readme(repo, EVALUATE_RESOLUTIONS, substitute={
        "ckpt_path=...": f"ckpt_path={_ckpt_rel(repo, run_dir)}", "[64,128,256]": "[17,33]"})
    assert proc.returncode == 0, _out(proc)
    eval_dir = _one_new_dir(repo / "logs" / "evaluate" / "runs", before)
    out = json.loads((eval_dir / "metrics.json").read_text())
    assert set(out["results"]) == {"17", "33"}
    for res in ("17", "33"):
        _finite(out["results"][res], "rel_l2", 2.0)
        assert out["results"][res]["n_samples"] == 4
        assert (eval_dir / "plots" / f"prediction_res{res}.png").is_file()
    # the 33-point test data is in the copy's cache (generated if it was missing: then the test split only)
    assert any(_check_cached_split(d / "test.h5", 4, loaded=33) for d in _darcy_caches(repo, 33)
               if (d / "test.h5").exists() and _stored_grid(d / "test.h5") >= 33)
    for new in _dirs(repo / "data" / "darcy") - caches_before:
        assert (new / "test.h5").is_file() and not (new / "train.h5").exists(), new


def test_resume_from_last_checkpoint(repo: Path, resume_started) -> None:
    old, before, ckpt, resume = resume_started
    proc = resume.result()
    assert proc.returncode == 0, _out(proc)
    assert f"Restored all states from the checkpoint at {ckpt}" in proc.stdout + proc.stderr, _out(proc)
    new_run = _one_new_dir(repo / "logs" / "train" / "runs", before)
    new = _load_ckpt(new_run / "checkpoints" / "last.ckpt")
    steps_per_epoch = old["global_step"] // (old["epoch"] + 1)
    assert new["epoch"] == old["epoch"] + 1  # continued with the third epoch, not restarted
    assert new["global_step"] == old["global_step"] + steps_per_epoch
    assert (new_run / "checkpoints" / "epoch_002.ckpt").is_file()
    _finite(json.loads((new_run / "metrics.json").read_text()), "test/rel_l2", 2.0)


@pytest.mark.slow
def test_sweep_over_models_and_datasets(fresh_repo: Path) -> None:
    proc = run_readme(fresh_repo, SWEEP, *SWEEP_TINY, timeout=600)
    assert proc.returncode == 0, _out(proc)
    assert "job failed" not in proc.stdout + proc.stderr, _out(proc)
    multiruns = fresh_repo / "logs" / "train" / "multiruns"
    sweep = _one_new_dir(multiruns, set())
    assert len(list((fresh_repo / "logs").rglob("multirun.yaml"))) == 1
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    params: dict[tuple[str, str], int] = {}
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        chosen = dict(o.split("=", 1) for o in overrides if o.startswith(("model.width=", "data=")))
        metrics = json.loads((job / "metrics.json").read_text())
        _finite(metrics, "test/rel_l2")
        assert Path(metrics["last_checkpoint"]).resolve().is_relative_to(fresh_repo.resolve()), metrics
        assert (job / "checkpoints" / "last.ckpt").is_file()
        _one_wandb_offline_run(job)
        # one wandb group per sweep: the sweep directory's name
        assert f"'group': '{sweep.name}'" in (job / "wandb" / "debug.log").read_text()
        params[(chosen["model.width"], chosen["data"])] = metrics["n_parameters"]
    assert set(params) == {(w, d) for w in ("32", "64") for d in ("burgers", "darcy")}
    for data in ("burgers", "darcy"):
        assert params[("64", data)] > params[("32", data)]
    assert params[("32", "burgers")] < params[("32", "darcy")]  # 1-D FNO on Burgers, 2-D on Darcy
    for pde in ("burgers", "darcy"):
        caches = _dirs(fresh_repo / "data" / pde)
        assert len(caches) == 1, caches
        cache = caches.pop()
        assert {p.name for p in cache.glob("*.h5")} == {"train.h5", "val.h5", "test.h5"}
        assert not list(cache.glob("*.partial"))


def test_generate_darcy(fresh_repo: Path) -> None:
    sizes = {"train": 4, "val": 2, "test": 2}
    proc = run_readme(fresh_repo, GENERATE, *(f"data.n_{s}={n}" for s, n in sizes.items()),
                      "data.solver_resolution=33", "data.resolution=17")
    assert proc.returncode == 0, _out(proc)
    caches = _dirs(fresh_repo / "data" / "darcy")
    assert len(caches) == 1, caches
    cache = caches.pop()
    config = json.loads((cache / "config.json").read_text())
    assert config["pde"] == "darcy" and config["solver_resolution"] == 33
    assert {p.name for p in cache.glob("*.h5")} == {f"{split}.h5" for split in sizes}
    grids = {_check_cached_split(cache / f"{split}.h5", n, loaded=17) for split, n in sizes.items()}
    assert len(grids) == 1


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(fresh_repo: Path) -> None:
    proc = run_readme(fresh_repo, DDP_CPU, *DARCY_TINY, "trainer.max_epochs=1")
    assert proc.returncode == 0, _out(proc)
    output = proc.stdout + proc.stderr
    assert "MEMBER: 2/2" in output, _out(proc)
    run_dir = _one_new_dir(fresh_repo / "logs" / "train" / "runs", set())  # rank 1 wrote no run of its own
    assert not (fresh_repo / "logs" / "train" / "multiruns").exists()
    _finite(json.loads((run_dir / "metrics.json").read_text()), "test/rel_l2", 2.0)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    _one_wandb_offline_run(run_dir)


@pytest.mark.slow
def test_compiled_training(fresh_repo: Path) -> None:
    """``task.compile=true``: the network is compiled in place, so the checkpoint has the eager keys and the run
    tests like an eager one."""
    proc = run_readme(fresh_repo, COMPILE, *DARCY_TINY, "trainer.max_epochs=1")
    assert proc.returncode == 0, _out(proc)
    run_dir = _one_new_dir(fresh_repo / "logs" / "train" / "runs", set())
    _finite(json.loads((run_dir / "metrics.json").read_text()), "test/rel_l2", 2.0)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state and not any("_orig_mod" in key for key in state), sorted(state)[:5]


@pytest.mark.slow
def test_optuna_search(fresh_repo: Path) -> None:
    # hydra.sweeper.n_trials=2 appended: a later override of the same key (a size); model.width is searched
    shrink = [o for o in DARCY_TINY if not o.startswith("model.width=")]
    proc = run_readme(fresh_repo, OPTUNA, "hydra.sweeper.n_trials=2", *shrink, "trainer.max_epochs=1", timeout=600)
    assert proc.returncode == 0, _out(proc)
    sweep = _one_new_dir(fresh_repo / "logs" / "train" / "multiruns", set())
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert math.isfinite(results["best_value"]) and 0 < results["best_value"] < 2
    assert set(results["best_params"]) == {"task.optimizer.lr", "task.optimizer.weight_decay", "model.width"}
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    values = []
    for job in jobs:
        values.append(_finite(json.loads((job / "metrics.json").read_text()), "val/rel_l2_best", 2.0))
        _one_wandb_offline_run(job)
    assert results["best_value"] == pytest.approx(min(values))


def test_bad_value_gives_one_error_line_and_exit_2(fresh_repo: Path) -> None:
    assert_documented(fresh_repo, BAD_N_TRAIN_ERROR, command=False)
    assert "exit status 2" in " ".join((fresh_repo / "README.md").read_text().split())
    # the README documents the message; the command that gives it is the default run with data.n_train=-5
    proc = run_readme(fresh_repo, TRAIN, "data.n_train=-5")
    assert proc.returncode == 2, _out(proc)
    assert _last_line(proc.stderr) == BAD_N_TRAIN_ERROR, _out(proc)
    assert "Traceback" not in proc.stderr


# the combined equation shrunk to 80 snapshots on 20 points (the windows and horizon follow the shorter trajectory)
MPPDE_TINY = ["data.n_train=4", "data.n_val=2", "data.n_test=2", "data.solver_resolution=40", "data.resolution=20",
              "data.n_snapshots=80", "data.t_final=0.79", "data.snapshot_dt=0.01", "data.target_steps=50:80",
              "data.n_target_steps=30", "data.train_steps=0:80", "data.train_passes_per_epoch=1",
              "data.batch_size=2"]


@pytest.mark.slow
def test_mppde_train_then_rollout_benchmark(fresh_repo: Path) -> None:
    """`python train.py experiment=mppde_e1` (graphs of the combined-equation grid), then the README's benchmark of
    its checkpoint against our WENO5 solver on the same test trajectories."""
    proc = run_readme(fresh_repo, MPPDE_E1, *MPPDE_TINY, "model.hidden=32", "model.n_layers=1",
                      "trainer.max_epochs=1")
    assert proc.returncode == 0, _out(proc)
    run = _one_new_dir(fresh_repo / "logs" / "mppde_e1" / "runs", set())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/accumulated_error"] > 0 and metrics["n_parameters"] > 0
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = run_readme(fresh_repo, MPPDE_BENCHMARK, "--n", "2", *(f"--set={o}" for o in MPPDE_TINY),
                      substitute={"<mppde .ckpt>": str(ckpt)})
    assert proc.returncode == 0, _out(proc)
    out = proc.stdout
    assert "WENO5 direct solve at nx" in out and "MPPDE rollout" in out and "speed-up WENO5 / MPPDE" in out
    # the benchmark's MP-PDE error on the same 2 test trajectories is the trained run's test error
    row = next(line for line in out.splitlines() if line.startswith("MPPDE rollout"))
    assert float(row.split()[-1]) == pytest.approx(metrics["test/accumulated_error"], abs=5.1e-5)  # printed to 1e-4
