"""GridDataModule: splits, dict batches, step selection, validation; DeviceBatchLoader sharding."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datasets.datamodule import GridDataModule, parse_steps
from datasets.device_loader import DeviceBatchLoader, ShardSampler
from datasets.pdes import PROBLEMS
from tests.test_storage import Toy


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(PROBLEMS, "toy", Toy)


def _dm(tmp_path: Path, **kw) -> GridDataModule:
    args = dict(pde="toy", n_train=6, n_val=2, n_test=3, resolution=8, data_dir=str(tmp_path), inputs=["u"],
                targets=["u"], input_steps="0:2", target_steps=[2, -1], batch_size=4)
    args.update(kw)
    return GridDataModule(**args)


def test_parse_steps() -> None:
    assert parse_steps(3, 5, "s") == [3]
    assert parse_steps(-1, 5, "s") == [4]
    assert parse_steps([0, 2], 5, "s") == [0, 2]
    assert parse_steps("1:4", 5, "s") == [1, 2, 3]
    assert parse_steps(":2", 5, "s") == [0, 1]
    assert parse_steps("0:5:2", 5, "s") == [0, 2, 4]
    for bad in (5, "1:7", [0, 9], "x", "3:1", True):
        with pytest.raises(ValueError, match="s="):
            parse_steps(bad, 5, "s")


def test_batches_and_properties(toy, tmp_path: Path) -> None:
    dm = _dm(tmp_path, in_channels=2, out_channels=1, n_target_steps=2)
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.in_channels, dm.out_channels, dm.n_target_steps, dm.spatial_dims) == (2, 1, 2, 1)
    x, y = dm.train_tensors()
    assert x.shape == (6, 2, 8) and y.shape == (6, 2, 8) and x.dtype == torch.float32
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"x", "y"} and batch["x"].shape == (4, 2, 8)
    assert len(list(dm.val_dataloader())) == 1
    dm.setup("test")
    assert sum(b["x"].shape[0] for b in dm.test_dataloader()) == 3
    # time-major channels: x = u[:, 0:2], y = u[:, [2, 4]]
    from datasets.cache import DatasetCache
    stored = DatasetCache(tmp_path).load_split(dm.problem, 0, "train", 6)
    torch.testing.assert_close(x, torch.from_numpy(stored.fields["u"][:, 0:2]))
    torch.testing.assert_close(y, torch.from_numpy(stored.fields["u"][:, [2, 4]]))
    assert dm.hparams.pde == "toy" and dm.hparams.n_train == 6 and dm.hparams.input_steps == "0:2"


def test_static_and_mixed_fields(toy, tmp_path: Path) -> None:
    dm = _dm(tmp_path, inputs=["a", "u"], targets=["a"], input_steps=[0], target_steps=None)
    assert (dm.in_channels, dm.out_channels) == (2, 1)
    x, y = dm.train_tensors()
    assert x.shape == (6, 2, 8) and y.shape == (6, 1, 8)
    torch.testing.assert_close(x[:, 1], y[:, 0])  # u(t=0) = a; static fields come after the timed ones


def test_with_resolution_and_more_samples(toy, tmp_path: Path) -> None:
    dm = _dm(tmp_path)
    dm16 = dm.with_resolution(16)
    assert dm16.hparams.resolution == 16 and dm16.train_tensors()[0].shape == (6, 2, 16)
    assert dm16.dataset_dir != dm.dataset_dir
    small = dm.train_tensors()[0]
    big = _dm(tmp_path, n_train=10).train_tensors()[0]
    torch.testing.assert_close(big[:6], small)


@pytest.mark.parametrize("kw,words", [
    ({"n_train": -5}, ["n_train=-5", "positive"]),
    ({"n_val": 0}, ["n_val=0"]),
    ({"resolution": 0}, ["resolution=0"]),
    ({"batch_size": 0}, ["batch_size=0"]),
    ({"target_steps": "3:9"}, ["target_steps='3:9'", "out of range"]),
    ({"input_steps": None}, ["input_steps", "required"]),
    ({"inputs": ["v"]}, ["'v'", "'u'"]),
    ({"in_channels": 3}, ["in_channels=3", "set in_channels=2"]),
    ({"out_channels": 2}, ["out_channels=2", "set out_channels=1"]),
    ({"n_target_steps": 5}, ["n_target_steps=5", "2"]),
    ({"data_on_device": "maybe"}, ["data_on_device='maybe'"]),
    ({"pde": "heat"}, ["heat", "darcy"]),
])
def test_bad_settings_give_one_line_errors(toy, tmp_path: Path, kw: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        _dm(tmp_path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_shard_sampler_disjoint_covering_deterministic() -> None:
    n, world = 12, 3
    shards = [ShardSampler(n, shuffle=True, seed=7, num_replicas=world, rank=r) for r in range(world)]
    for s in shards:
        s.set_epoch(0)
    idx = [s.indices().tolist() for s in shards]
    assert sorted(sum(idx, [])) == list(range(n))  # disjoint and covering
    assert all(len(i) == 4 for i in idx)
    again = ShardSampler(n, shuffle=True, seed=7, num_replicas=world, rank=1)
    again.set_epoch(0)
    assert again.indices().tolist() == idx[1]  # deterministic per epoch
    for s in shards:
        s.set_epoch(1)
    idx1 = [s.indices().tolist() for s in shards]
    assert idx1 != idx and sorted(sum(idx1, [])) == list(range(n))
    # uneven: padded so every rank runs the same number of steps, all samples still covered
    uneven = [ShardSampler(10, num_replicas=3, rank=r).indices().tolist() for r in range(3)]
    assert [len(u) for u in uneven] == [4, 4, 4] and set(sum(uneven, [])) == set(range(10))


def test_device_batch_loader_on_cpu_tensors() -> None:
    x = torch.arange(10.0)[:, None]
    loader = DeviceBatchLoader({"x": x, "y": 2 * x}, batch_size=2, shuffle=True, seed=0, num_replicas=2, rank=1)
    assert len(loader) == 3
    loader.sampler.set_epoch(3)  # what Lightning calls each epoch
    batches = list(loader)
    assert all(torch.equal(b["y"], 2 * b["x"]) for b in batches)
    seen = torch.cat([b["x"] for b in batches]).flatten().long().tolist()
    other = DeviceBatchLoader({"x": x, "y": 2 * x}, batch_size=2, shuffle=True, seed=0, num_replicas=2, rank=0)
    other.set_epoch(3)
    seen0 = torch.cat([b["x"] for b in other]).flatten().long().tolist()
    assert sorted(seen + seen0) == list(range(10))


def test_real_darcy_small(tmp_path: Path) -> None:
    dm = GridDataModule(pde="darcy", n_train=4, n_val=2, n_test=2, resolution=17, solver_resolution=33,
                        inputs=["a"], targets=["u"], in_channels=1, out_channels=1, data_dir=str(tmp_path),
                        batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    x, y = dm.train_tensors()
    assert x.shape == (4, 1, 17, 17) and y.shape == (4, 1, 17, 17)
    assert set(torch.unique(x).tolist()) <= {3.0, 12.0}
    assert torch.all(y[:, :, 0, :] == 0) and y.abs().max() > 0
    assert set(dm.coords) >= {"x", "y"}
