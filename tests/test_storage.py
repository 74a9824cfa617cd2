"""HDF5 storage: self-describing files, chunked resumable writing, validation of what is read."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from datasets import storage
from datasets.generation import generate_split, generation_config
from datasets.pdes.base import PDEProblem, check_int, check_positive
from datasets.storage import (
    FORMAT_VERSION,
    CorruptDatasetError,
    config_hash,
    partial_path,
    read_manifest,
    read_split,
)


class Toy(PDEProblem):
    """A fake, instant problem: ``u`` (n_snapshots, resolution) and a static ``a`` (resolution,)."""

    name = "toy"
    defaults = {"resolution": 8, "n_snapshots": 5, "scale": 1.0}

    def validate(self) -> None:
        check_int("resolution", self.params["resolution"])
        check_int("n_snapshots", self.params["n_snapshots"])
        check_positive("scale", self.params["scale"])

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"u": (self.n_snapshots, self.resolution), "a": (self.resolution,)}

    def coordinates(self) -> dict[str, np.ndarray]:
        return {"t": np.linspace(0, 1, self.n_snapshots), "x": np.arange(self.resolution) / self.resolution}

    def generate_batch(self, generators: list[torch.Generator], device: torch.device) -> dict[str, torch.Tensor]:
        a = torch.stack([torch.randn(self.resolution, generator=g) for g in generators]) * self.scale
        t = torch.linspace(0, 1, self.n_snapshots)
        u = a[:, None, :] * torch.exp(-t)[None, :, None]
        return {"u": u, "a": a}


class Interrupt(Exception):
    """Raised by a patched generator to simulate a killed generation."""


def interrupt_after(problem: PDEProblem, n_calls: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``problem.generate`` raise on its ``n_calls + 1``-th call (an interrupted generation)."""
    original = problem.generate
    calls = {"n": 0}

    def patched(*args: Any, **kwargs: Any):
        calls["n"] += 1
        if calls["n"] > n_calls:
            raise Interrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(problem, "generate", patched)


def _read(path: Path, problem: PDEProblem, seed: int = 0, n: int | None = None):
    return read_split(path, pde=problem.name, expected_hash=config_hash(generation_config(problem, seed)), n=n,
                      fields=problem.field_shapes())


def test_file_is_self_describing(tmp_path: Path) -> None:
    problem = Toy(scale=2.0)
    result = generate_split(problem, seed=3, split="train", n=7, path=tmp_path / "train.h5", chunk_size=3)
    assert result.path == tmp_path / "train.h5" and result.n_generated == 7
    assert not partial_path(result.path).exists()
    with h5py.File(result.path, "r") as f:
        assert f["u"].shape == (7, 5, 8) and f["a"].shape == (7, 8) and f["u"].dtype == np.float32
        assert np.allclose(f["coords/t"][()], np.linspace(0, 1, 5))
        attrs = dict(f.attrs)
    # every PDE parameter is an attribute, plus the manifest
    assert attrs["scale"] == 2.0 and attrs["resolution"] == 8 and attrs["seed"] == 3
    assert attrs["format_version"] == FORMAT_VERSION and attrs["complete"]
    assert attrs["n_total"] == attrs["n_completed"] == 7
    config = json.loads(attrs["config_json"])
    assert config_hash(config) == attrs["config_hash"] and config["pde"] == "toy"
    stored = _read(result.path, problem, seed=3)
    assert stored.n == 7 and set(stored.coords) == {"t", "x"}
    assert _read(result.path, problem, seed=3, n=4).fields["u"].shape == (4, 5, 8)


def test_samples_depend_only_on_seed_split_index(tmp_path: Path) -> None:
    problem = Toy()
    a = generate_split(problem, 0, "train", 6, tmp_path / "a.h5", chunk_size=4)
    b = generate_split(problem, 0, "train", 6, tmp_path / "b.h5", chunk_size=6)
    c = generate_split(problem, 0, "test", 6, tmp_path / "c.h5", chunk_size=6)
    ua, ub, uc = (_read(r.path, problem).fields["u"] for r in (a, b, c))
    np.testing.assert_array_equal(ua, ub)
    assert not np.allclose(ua, uc)


def test_interrupted_generation_resumes_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = generate_split(Toy(), 1, "train", 10, tmp_path / "clean" / "train.h5", chunk_size=3)

    problem = Toy()
    path = tmp_path / "run" / "train.h5"
    interrupt_after(problem, 2, monkeypatch)
    with pytest.raises(Interrupt):
        generate_split(problem, 1, "train", 10, path, chunk_size=3)
    # the half-written file never carries the final name, and records its progress
    assert not path.exists() and partial_path(path).exists()
    manifest = read_manifest(partial_path(path))
    assert manifest["n_completed"] == 6 and not manifest["complete"]
    with pytest.raises(CorruptDatasetError, match="did not finish"):
        read_split(partial_path(path), pde="toy")

    monkeypatch.undo()
    seen: list[int] = []
    resumed = generate_split(problem, 1, "train", 10, path, chunk_size=3, progress=lambda d, t: seen.append(d))
    assert seen[0] == 6 and resumed.n_generated == 4
    with h5py.File(clean.path, "r") as f1, h5py.File(resumed.path, "r") as f2:
        for name in ("u", "a"):
            assert f1[name][()].tobytes() == f2[name][()].tobytes()


def test_extending_keeps_the_first_samples(tmp_path: Path) -> None:
    problem = Toy()
    path = tmp_path / "train.h5"
    generate_split(problem, 0, "train", 4, path, chunk_size=2)
    first = _read(path, problem).fields["u"]
    extended = generate_split(problem, 0, "train", 9, path, chunk_size=2)
    assert extended.n_generated == 5
    full = _read(path, problem).fields["u"]
    assert full.shape[0] == 9
    np.testing.assert_array_equal(full[:4], first)
    np.testing.assert_array_equal(full, _read(generate_split(problem, 0, "train", 9, tmp_path / "c.h5").path,
                                              problem).fields["u"])
    # asking for fewer does nothing
    assert generate_split(problem, 0, "train", 3, path).n_generated == 0


def test_reader_rejects_mismatches(tmp_path: Path) -> None:
    problem = Toy()
    path = generate_split(problem, 0, "val", 4, tmp_path / "val.h5").path
    with pytest.raises(CorruptDatasetError, match="config hash"):
        read_split(path, pde="toy", expected_hash="0" * 16)
    with pytest.raises(CorruptDatasetError, match="4 samples, 5 requested"):
        _read(path, problem, n=5)
    with pytest.raises(CorruptDatasetError, match="sample shape"):
        read_split(path, pde="toy", fields={"u": (5, 16)})
    with pytest.raises(CorruptDatasetError, match="holds problem 'toy'"):
        read_split(path, pde="darcy")
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(CorruptDatasetError, match=r"val\.h5.*'toy'"):
        read_split(path, pde="toy")


def test_reader_subsamples_while_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problem = Toy(resolution=12)
    path = generate_split(problem, 0, "train", 5, tmp_path / "train.h5").path
    full = _read(path, problem)
    monkeypatch.setattr(storage, "READ_BLOCK_BYTES", 500)  # a u sample is 5 x 12 x 4 bytes: blocks of 2 + 1
    part = read_split(path, pde="toy", n=3, select={"u": (slice(None, None, 2), slice(None, None, 3))})
    assert part.fields["u"].shape == (3, 3, 4) and part.fields["a"].shape == (3, 12)  # "a" not named: whole
    np.testing.assert_array_equal(part.fields["u"], full.fields["u"][:3, ::2, ::3])
    np.testing.assert_array_equal(part.fields["a"], full.fields["a"][:3])
    with pytest.raises(CorruptDatasetError, match="field 'a' has 1 sample axes"):
        read_split(path, pde="toy", select={"a": (slice(None), slice(None))})


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_unreadable_file_is_a_corrupt_dataset(tmp_path: Path, damage: str) -> None:
    path = generate_split(Toy(), 0, "test", 6, tmp_path / "test.h5").path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 500)
    with pytest.raises(CorruptDatasetError) as info:
        read_split(path, pde="toy")
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value) and "toy" in str(info.value)


def test_nonpositive_n_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_train=0"):
        generate_split(Toy(), 0, "train", 0, tmp_path / "x.h5")
