"""Shared fixtures: tiny configurations and a runner for the real entry points."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
T = TypeVar("T")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the whole session: tiny datasets are generated once and reused (as in a sweep)."""
    return tmp_path_factory.mktemp("data")


def tiny_darcy(data_dir: Path) -> list[str]:
    """Overrides for a seconds-long FNO run on a 17x17 Darcy set."""
    return [
        "data=darcy_small",
        "data.n_train=16",
        "data.n_val=4",
        "data.n_test=4",
        "data.solver_resolution=33",
        "data.resolution=17",
        "data.batch_size=4",
        "model.width=8",
        "model.modes=[4,4]",
        "model.projection_channels=16",
        "trainer.max_epochs=2",
        "logger=csv",
        "callbacks.rich_model_summary=null",
        "trainer.enable_progress_bar=false",
        f"paths.data_dir={data_dir}",
    ]


def tiny_burgers(data_dir: Path) -> list[str]:
    """Overrides for a seconds-long run on a 64-point Burgers set."""
    return [
        "data=burgers",
        "data.n_train=16",
        "data.n_val=4",
        "data.n_test=4",
        "data.solver_resolution=256",
        "data.resolution=64",
        "data.batch_size=4",
        f"paths.data_dir={data_dir}",
    ]


def run_entry_point(script: str, *args: str, timeout: int = 600, module: bool = False) -> subprocess.CompletedProcess:
    """Run ``python <script> args`` (or ``python -m <script>``) from the repository root."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", HYDRA_FULL_ERROR="0",
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("PDEFORGE_TRACEBACK", None)
    cmd = [sys.executable, "-m", script] if module else [sys.executable, str(ROOT / script)]
    return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# Two background launchers, one per CI core: most of a tiny entry-point run is the interpreter importing torch /
# Lightning (single-threaded), so two independent launches take about the time of one.
_LAUNCHER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="entry-point")


def in_background(fn: Callable[..., T], *args, **kwargs) -> Future[T]:
    """``fn(*args, **kwargs)`` (a function that runs a subprocess) started in the background; ``.result()``
    waits for it and returns its value (or raises its exception)."""
    return _LAUNCHER.submit(fn, *args, **kwargs)


def launch_entry_point(script: str, *args: str, **kwargs) -> Future[subprocess.CompletedProcess]:
    """:func:`run_entry_point` started in the background; ``.result()`` waits for it and gives the process."""
    return in_background(run_entry_point, script, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The test problems are tiny: one intra-op thread is fastest and avoids OpenMP spin-waiting (100x slowdowns)
    when the two cores are shared with the subprocesses the entry-point tests start."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_in_process(overrides: list[str], output_dir: Path) -> dict:
    """Compose ``conf/train.yaml`` with ``overrides`` (Hydra's compose API) and run ``train.train`` in this
    process, writing to ``output_dir``; returns the metrics dict."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    import train as train_module

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, f"paths.output_dir={output_dir}",
                                                      f"hydra.run.dir={output_dir}"], return_hydra_config=True)
        HydraConfig().set_config(cfg)
        return train_module.train(cfg)
