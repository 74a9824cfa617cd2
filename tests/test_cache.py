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


# ---------------------------------------------------------------------------------------------- chunk_size auto
def _tiny_ns(**params):
    from datasets.pdes import make_problem

    return make_problem("navier_stokes", **{**dict(solver_resolution=16, resolution=8, store_resolution=8,
                                                 t_final=0.2, record_every=0.1, dt=0.01), **params})


def _spy_batches(problem, monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> list[list[int]]:
    """Record the sample indices of every ``problem.generate`` call (and raise on call ``fail_after + 1``)."""
    from tests.test_storage import Interrupt

    calls: list[list[int]] = []
    original = problem.generate

    def spy(*args, **kwargs):
        if fail_after is not None and len(calls) >= fail_after:
            raise Interrupt("killed")
        calls.append(list(kwargs["indices"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(problem, "generate", spy)
    return calls


def _fake_free_memory(monkeypatch: pytest.MonkeyPatch, problem, samples: float) -> None:
    """Make the free memory hold ``samples`` samples of ``problem`` within ``AUTO_MEMORY_FRACTION``."""
    from datasets import generation

    per_sample = problem.solve_bytes_per_sample(problem.device)
    monkeypatch.setattr(generation, "free_memory_bytes",
                        lambda device: int(samples * per_sample / generation.AUTO_MEMORY_FRACTION))


def test_auto_chunk_size_follows_free_memory_and_keeps_the_data(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """chunk_size auto solves as many samples together as the (mocked) free memory holds; the samples equal
    those of chunk_size 1 and of a fixed chunk size, and the file records the chunk size it was written with."""
    import h5py

    from datasets.generation import generate_split

    problem = _tiny_ns()
    assert problem.solve_bytes_per_sample(problem.device) > 0
    _fake_free_memory(monkeypatch, problem, 2.5)
    calls = _spy_batches(problem, monkeypatch)
    auto = generate_split(problem, 0, "train", 5, tmp_path / "auto.h5", chunk_size="auto")
    assert calls == [[0, 1], [2, 3], [4]]
    one = generate_split(_tiny_ns(), 0, "train", 5, tmp_path / "one.h5", chunk_size=1)
    five = generate_split(_tiny_ns(), 0, "train", 5, tmp_path / "five.h5", chunk_size=5)
    with h5py.File(auto.path) as a, h5py.File(one.path) as b, h5py.File(five.path) as c:
        assert int(a.attrs["chunk_size"]) == 2 and int(b.attrs["chunk_size"]) == 1
        np.testing.assert_allclose(a["w"][()], b["w"][()], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a["w"][()], c["w"][()], rtol=1e-6, atol=1e-7)
        assert np.abs(a["w"][:, -1] - a["w"][:, 0]).max() > 1e-3
    # no memory estimate or no room: the fallback, at least one sample; never more than remain or the cap
    from datasets import generation

    assert generation.auto_chunk_size(Toy(), 100) == generation.FALLBACK_CHUNK_SIZE
    assert generation.auto_chunk_size(Toy(), 3) == 3
    _fake_free_memory(monkeypatch, problem, 0.1)
    assert generation.auto_chunk_size(problem, 10) == 1
    _fake_free_memory(monkeypatch, problem, 1e6)
    assert generation.auto_chunk_size(problem, 10**6) == generation.AUTO_MAX_CHUNK["cpu"]


def test_interrupted_auto_run_resumes_with_its_chunk_boundaries(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An auto run killed after two chunks resumes with the recorded chunk size, though the free memory now
    allows more, and writes exactly the bytes of an uninterrupted run."""
    import h5py

    from datasets.generation import generate_split
    from datasets.storage import partial_path
    from tests.test_storage import Interrupt

    clean_problem = _tiny_ns()
    _fake_free_memory(monkeypatch, clean_problem, 2)
    clean = generate_split(clean_problem, 3, "train", 7, tmp_path / "clean" / "train.h5", chunk_size="auto")

    problem = _tiny_ns()
    path = tmp_path / "run" / "train.h5"
    _spy_batches(problem, monkeypatch, fail_after=2)
    with pytest.raises(Interrupt):
        generate_split(problem, 3, "train", 7, path, chunk_size="auto")
    assert read_manifest(partial_path(path))["n_completed"] == 4
    monkeypatch.undo()
    problem = _tiny_ns()
    _fake_free_memory(monkeypatch, problem, 100)  # auto would now take all 3 remaining samples at once
    calls = _spy_batches(problem, monkeypatch)
    resumed = generate_split(problem, 3, "train", 7, path, chunk_size="auto")
    assert calls == [[4, 5], [6]] and resumed.n_generated == 3
    with h5py.File(clean.path) as a, h5py.File(resumed.path) as b:
        assert a["w"][()].tobytes() == b["w"][()].tobytes() and int(b.attrs["chunk_size"]) == 2


@pytest.mark.parametrize("bad", [0, -2, 1.5, "many", True])
def test_bad_chunk_size_is_one_line(tmp_path: Path, bad) -> None:
    from datasets.generation import check_chunk_size, generate_split

    with pytest.raises(ValueError, match=r"chunk_size=.* is not allowed; use a positive integer or 'auto'") as info:
        generate_split(Toy(), 0, "train", 2, tmp_path / "x.h5", chunk_size=bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="chunk_size"):
        DatasetCache(tmp_path, chunk_size=bad)
    assert check_chunk_size("auto") == "auto" == check_chunk_size("AUTO") and check_chunk_size("8") == 8
