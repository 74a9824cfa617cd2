"""Dataset cache: one directory per generation config, generated once under a lock, corrupt files regenerated."""
from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.cache import CorruptDatasetWarning, DatasetCache, dataset_dir
from datasets.storage import read_manifest
from tests.test_storage import Toy


class CountingToy(Toy):
    """Toy problem that appends one line to ``log`` per solved chunk (and is slow enough to race)."""

    def __init__(self, log: str, **params) -> None:
        super().__init__(**params)
        self.__dict__["log"] = log

    def generate_batch(self, generators, device):
        with open(self.__dict__["log"], "a") as f:
            f.write(f"{len(generators)}\n")
        time.sleep(0.05)
        return super().generate_batch(generators, device)


def test_directory_follows_config_and_seed_not_n(tmp_path: Path) -> None:
    cache = DatasetCache(tmp_path)
    d = cache.directory(Toy(), 0)
    assert d.parent == tmp_path / "toy"
    assert cache.directory(Toy(), 0) == d == dataset_dir(tmp_path, Toy(), 0)
    assert cache.directory(Toy(), 1) != d
    assert cache.directory(Toy(scale=2.0), 0) != d
    r1 = cache.ensure_split(Toy(), 0, "train", 4)
    r2 = cache.ensure_split(Toy(), 0, "train", 3)
    assert r1.path == r2.path and r1.n_generated == 4 and r2.n_generated == 0
    assert (d / "config.json").is_file()
    r3 = cache.ensure_split(Toy(), 0, "train", 7)  # more than stored: extended in place
    assert r3.n_generated == 3 and read_manifest(r3.path)["n_total"] == 7
    stored = cache.load_split(Toy(), 0, "train", 5)
    assert stored.fields["u"].shape == (5, 5, 8)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_cached_file_is_regenerated(tmp_path: Path, damage: str) -> None:
    cache = DatasetCache(tmp_path, chunk_size=4)
    path = cache.ensure_split(Toy(), 0, "val", 6).path
    good = cache.load_split(Toy(), 0, "val", 6).fields["u"].copy()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x89HDF\r\n\x1a\n" + b"\x07" * 4000)
    with pytest.warns(CorruptDatasetWarning, match="regenerating"):
        stored = cache.load_split(Toy(), 0, "val", 6)
    np.testing.assert_array_equal(stored.fields["u"], good)
    assert read_manifest(path)["complete"]


def test_file_of_another_config_under_this_hash_is_regenerated(tmp_path: Path) -> None:
    cache = DatasetCache(tmp_path)
    other = cache.ensure_split(Toy(scale=3.0), 0, "test", 3).path
    target = cache.path(Toy(), 0, "test")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(other.read_bytes())  # a stale file copied in by hand
    with pytest.warns(CorruptDatasetWarning):
        result = cache.ensure_split(Toy(), 0, "test", 3)
    assert result.n_generated == 3
    np.testing.assert_allclose(cache.load_split(Toy(), 0, "test", 3).fields["a"] * 3.0,
                               cache.load_split(Toy(scale=3.0), 0, "test", 3).fields["a"], rtol=1e-6)


def _worker(data_dir: str, log: str, barrier) -> None:
    torch.set_num_threads(1)
    barrier.wait()
    DatasetCache(data_dir, chunk_size=2).ensure_split(CountingToy(log), 0, "train", 8)


def test_concurrent_jobs_generate_once(tmp_path: Path) -> None:
    """Two processes (two jobs of a sweep) ask for the same split at the same time: it is solved once."""
    log = tmp_path / "solves.log"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "data"), str(log), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    chunks = [int(line) for line in log.read_text().split()]
    assert sum(chunks) == 8 and len(chunks) == 4  # 8 samples in chunks of 2, solved by one process only
    stored = DatasetCache(tmp_path / "data").load_split(Toy(), 0, "train", 8)
    assert stored.n == 8
