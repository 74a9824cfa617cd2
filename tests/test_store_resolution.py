"""Data stored at the solver grid (or ``store_resolution``) and subsampled to ``resolution`` while reading: a second
resolution of the same store solves nothing and returns exactly the strided stored values and coordinates."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datasets.cache import CorruptDatasetWarning, DatasetCache
from datasets.datamodule import GridDataModule
from datasets.generation import generate_split, generation_config
from datasets.pdes import Burgers, Darcy, NavierStokes, make_problem
from datasets.pdes.navier_stokes import forcing
from datasets.storage import config_hash, read_split

BURGERS = dict(pde="burgers", n_train=4, n_val=2, n_test=2, solver_resolution=64, n_snapshots=3, dt=1e-2,
               inputs=["u"], targets=["u"], input_steps=0, target_steps=-1, batch_size=2, spatial_dims=1)
DARCY = dict(pde="darcy", n_train=3, n_val=2, n_test=2, solver_resolution=33, inputs=["a"], targets=["u"],
             batch_size=2)
NS = dict(pde="navier_stokes", n_train=2, n_val=2, n_test=2, solver_resolution=16, t_final=2.0, dt=1e-2,
          inputs=["w"], targets=["w"], input_steps="0:1", target_steps="1:3", batch_size=2, spatial_dims=2)


def _no_solving(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    def refuse(self, generators, device):
        raise AssertionError(f"{cls.__name__} was solved again")

    monkeypatch.setattr(cls, "generate_batch", refuse)


def _files(data_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted(data_dir.rglob("*.h5"))}


@pytest.mark.parametrize("second", ["with_resolution", "new module"])
def test_second_resolution_reads_the_same_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: str) -> None:
    dm32 = GridDataModule(**BURGERS, resolution=32, data_dir=str(tmp_path))
    dm32.prepare_data()
    x32, y32 = dm32.train_tensors()
    files = _files(tmp_path)
    assert len(list((tmp_path / "burgers").iterdir())) == 1 and len(files) == 3
    _no_solving(monkeypatch, Burgers)
    if second == "with_resolution":
        dm16 = dm32.with_resolution(16)
        assert dm16.cache is dm32.cache
    else:  # what evaluate.py does: a new module from the same config at another resolution
        dm16 = GridDataModule(**BURGERS, resolution=16, data_dir=str(tmp_path))
    dm16.prepare_data()
    dm16.setup("test")
    x16, y16 = dm16.train_tensors()
    assert dm16.dataset_dir == dm32.dataset_dir and _files(tmp_path) == files  # no new file, none rewritten
    with h5py.File(dm32.dataset_dir / "train.h5", "r") as f:
        stored, x = f["u"][()], f["coords/x"][()]
        assert "resolution" not in f.attrs and f.attrs["store_resolution"] == 64
    assert stored.shape == (4, 3, 64)  # the solver grid
    for res, (xs, ys) in {32: (x32, y32), 16: (x16, y16)}.items():
        s = 64 // res
        assert torch.equal(xs[:, 0], torch.from_numpy(stored[:, 0, ::s]))
        assert torch.equal(ys[:, 0], torch.from_numpy(stored[:, -1, ::s]))
    np.testing.assert_array_equal(dm16.coords["x"], x[::4])
    np.testing.assert_array_equal(dm16.coords["x"], np.arange(16) / 16)
    np.testing.assert_array_equal(dm16.coords["t"], [0.0, 0.5, 1.0])
    assert dm16.spatial_shape == (16,) and dm16.problem.field_shapes() == {"u": (3, 16)}


def test_darcy_nodes_keep_both_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm17 = GridDataModule(**DARCY, resolution=17, data_dir=str(tmp_path))
    a17, u17 = dm17.train_tensors()
    files = _files(tmp_path)
    _no_solving(monkeypatch, Darcy)
    dm9 = dm17.with_resolution(9)  # (33 - 1) / (9 - 1) = 4
    a9, u9 = dm9.train_tensors()
    assert _files(tmp_path) == files and len(list((tmp_path / "darcy").iterdir())) == 1
    with h5py.File(dm17.dataset_dir / "train.h5", "r") as f:
        a, u = f["a"][()], f["u"][()]
    assert a.shape == u.shape == (3, 33, 33)
    for (a_res, u_res), s in (((a9, u9), 4), ((a17, u17), 2)):
        assert torch.equal(a_res[:, 0], torch.from_numpy(a[:, ::s, ::s]))
        assert torch.equal(u_res[:, 0], torch.from_numpy(u[:, ::s, ::s]))
    assert torch.all(u9[:, 0, [0, -1], :] == 0) and torch.all(u9[:, 0, :, [0, -1]] == 0)  # boundary nodes kept
    np.testing.assert_array_equal(dm9.coords["x"], np.linspace(0, 1, 33)[::4])
    assert dm9.coords["x"][[0, -1]].tolist() == [0.0, 1.0] and dm9.coords["y"].shape == (9,)
    with pytest.raises(ValueError) as info:  # the same one-line error as before for an impossible resolution
        dm17.with_resolution(10)
    assert str(info.value) == ("resolution=10 is not allowed with solver_resolution=33; (solver_resolution - 1) % "
                               "(resolution - 1) must be 0, e.g. one of [2, 3, 5, 9, 17, 33]")


def test_navier_stokes_forcing_coordinate_is_subsampled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm8 = GridDataModule(**NS, resolution=8, data_dir=str(tmp_path))
    x8, _ = dm8.train_tensors()
    _no_solving(monkeypatch, NavierStokes)
    dm4 = dm8.with_resolution(4)
    x4, y4 = dm4.train_tensors()
    assert x4.shape == (2, 1, 4, 4) and y4.shape == (2, 2, 4, 4)
    torch.testing.assert_close(x4, x8[..., ::2, ::2], rtol=0, atol=0)
    np.testing.assert_array_equal(dm4.coords["f"], forcing(16).numpy()[::4, ::4])
    np.testing.assert_array_equal(dm8.coords["f"], forcing(16).numpy()[::2, ::2])
    np.testing.assert_array_equal(dm4.coords["y"], np.arange(4) / 4)


def test_store_resolution_below_the_solver_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = GridDataModule(**BURGERS, resolution=16, data_dir=str(tmp_path / "full")).train_tensors()[0]
    dm = GridDataModule(**BURGERS, resolution=16, store_resolution=32, data_dir=str(tmp_path / "small"))
    x16 = dm.train_tensors()[0]
    with h5py.File(dm.dataset_dir / "train.h5", "r") as f:
        assert f["u"].shape == (4, 3, 32)
    torch.testing.assert_close(x16, full, rtol=0, atol=0)  # same samples, whatever the store
    _no_solving(monkeypatch, Burgers)
    assert dm.with_resolution(8).train_tensors()[0].shape == (4, 1, 8)
    with pytest.raises(ValueError, match="^resolution=64 is not allowed; use at most store_resolution=32$"):
        dm.with_resolution(64)
    # the knob is part of the stored data's identity, resolution is not
    p = Burgers(solver_resolution=64, resolution=16, n_snapshots=3, dt=1e-2)
    assert config_hash(generation_config(p, 0)) == config_hash(generation_config(
        Burgers(solver_resolution=64, resolution=32, n_snapshots=3, dt=1e-2, store_resolution=64), 0))
    assert config_hash(generation_config(p, 0)) != config_hash(generation_config(
        Burgers(solver_resolution=64, resolution=16, n_snapshots=3, dt=1e-2, store_resolution=32), 0))


def test_generate_split_writes_the_stored_grid(tmp_path: Path) -> None:
    p = make_problem("darcy", solver_resolution=17, resolution=5)
    path = generate_split(p, 0, "val", 2, tmp_path / "val.h5").path
    expected = config_hash(generation_config(p, 0))
    stored = read_split(path, pde="darcy", expected_hash=expected, fields={"a": (17, 17), "u": (17, 17)})
    loaded = read_split(path, pde="darcy", expected_hash=expected, select=p.read_selection())
    assert loaded.fields["a"].shape == (2, 5, 5)
    np.testing.assert_array_equal(loaded.fields["u"], stored.fields["u"][:, ::4, ::4])
    np.testing.assert_array_equal(p.generate(0, "val", [0, 1])["a"], loaded.fields["a"])


def test_corrupt_store_is_regenerated_for_any_resolution(tmp_path: Path) -> None:
    cache = DatasetCache(tmp_path, chunk_size=2)
    p32 = Burgers(solver_resolution=64, resolution=32, n_snapshots=3, dt=1e-2)
    good = cache.load_split(p32, 0, "test", 3).fields["u"].copy()
    path = cache.path(p32, 0, "test")
    path.write_bytes(path.read_bytes()[:2000])  # truncated
    p16 = Burgers(solver_resolution=64, resolution=16, n_snapshots=3, dt=1e-2)
    assert cache.path(p16, 0, "test") == path
    with pytest.warns(CorruptDatasetWarning, match="regenerating"):
        again = cache.load_split(p16, 0, "test", 3)
    np.testing.assert_array_equal(again.fields["u"], good[..., ::2])
    np.testing.assert_array_equal(again.coords["x"], np.arange(16) / 16)
