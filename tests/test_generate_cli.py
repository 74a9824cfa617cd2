"""``python -m datasets.generate`` as a user runs it: files, summary table, clear errors."""
from __future__ import annotations

from pathlib import Path

from datasets.storage import read_manifest
from tests.conftest import run_entry_point

TINY = ["data=darcy_small", "data.n_train=4", "data.n_val=2", "data.n_test=2", "data.solver_resolution=33",
        "data.resolution=17", "generate.progress=false"]


def test_generates_all_splits_with_summary(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = run_entry_point("datasets.generate", *TINY, f"paths.data_dir={data}", f"hydra.run.dir={tmp_path / 'run'}",
                           module=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(data.glob("darcy/*/*.h5"))
    assert [f.name for f in files] == ["test.h5", "train.h5", "val.h5"]
    sizes = {f.stem: read_manifest(f)["n_total"] for f in files}
    assert sizes == {"train": 4, "val": 2, "test": 2}
    assert not list(data.rglob("*.partial"))
    for word in ("split", "size (MB)", "samples/s", "train.h5", "generated 8 samples"):
        assert word in proc.stdout, proc.stdout
    # a second run finds everything cached and generates nothing
    again = run_entry_point("datasets.generate", *TINY, f"paths.data_dir={data}",
                            f"hydra.run.dir={tmp_path / 'run2'}", module=True, timeout=300)
    assert again.returncode == 0 and "generated 0 samples" in again.stdout and "cached" in again.stdout


def test_unknown_data_option(tmp_path: Path) -> None:
    proc = run_entry_point("datasets.generate", "data=not_a_dataset", f"hydra.run.dir={tmp_path}", module=True)
    assert proc.returncode != 0
    assert "not_a_dataset" in proc.stderr and "darcy_small" in proc.stderr


def _error_line(tmp_path: Path, *overrides: str) -> str:
    """The last stderr line of a generation run that must fail on bad input: exit status 2, no traceback."""
    proc = run_entry_point("datasets.generate", *TINY, *overrides, f"paths.data_dir={tmp_path}",
                           f"hydra.run.dir={tmp_path / 'run'}", module=True)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and "Traceback" not in proc.stderr
    return lines[-1]


def test_negative_size_gives_one_line(tmp_path: Path) -> None:
    assert "n_val=-3" in _error_line(tmp_path, "data.n_val=-3")


def test_unknown_data_key_gives_one_line(tmp_path: Path) -> None:
    line = _error_line(tmp_path, "+data.not_a_key=3")
    assert "data.not_a_key is not allowed" in line and "pde='darcy'" in line and "batch_size" in line
    assert not list(tmp_path.rglob("*.h5"))


NS_TINY = ["data=navier_stokes", "data.n_train=3", "data.n_val=1", "data.n_test=1", "data.solver_resolution=16",
           "data.resolution=8", "data.store_resolution=8", "data.t_final=0.2", "data.record_every=0.1",
           "data.dt=0.01", "data.generation_device=cpu", "generate.progress=false"]


def test_navier_stokes_config_generates_with_auto_chunks(tmp_path: Path) -> None:
    """conf/data/navier_stokes.yaml sets chunk_size: auto; the run records the chunk size it chose."""
    import h5py

    data = tmp_path / "data"
    proc = run_entry_point("datasets.generate", *NS_TINY, f"paths.data_dir={data}",
                           f"hydra.run.dir={tmp_path / 'run'}", module=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(next(data.glob("navier_stokes/*/train.h5"))) as f:
        assert int(f.attrs["chunk_size"]) == 3 and f["w"].shape == (3, 3, 8, 8)  # all 3 fit in memory
    proc = run_entry_point("datasets.generate", *NS_TINY, "data.chunk_size=0", f"paths.data_dir={tmp_path / 'd2'}",
                           f"hydra.run.dir={tmp_path / 'run2'}", module=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "generate.chunk_size=0 is not allowed; use a positive integer or 'auto'" in proc.stderr
