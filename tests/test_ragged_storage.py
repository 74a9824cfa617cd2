"""Ragged per-sample fields (a row count that differs between samples) in the HDF5 storage, and RaggedArray."""
from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datasets import storage
from datasets.ragged import RaggedArray
from datasets.storage import (
    CorruptDatasetError,
    SplitSpec,
    SplitWriter,
    partial_path,
    read_split,
)

#: rows of sample i (zeros first, last-but-one and in a chunk of its own: empty samples everywhere)
COUNTS = [0, 3, 1, 0, 5, 2, 0, 4, 7, 1, 0, 2]
FIELDS = {"pos": (None, 3), "u": (2, 4), "kind": (None,)}


def sample(i: int) -> dict[str, np.ndarray]:
    """Sample ``i``: ragged ``pos`` (n_i, 3) float, ragged ``kind`` (n_i,) int, dense ``u`` (2, 4)."""
    rng = np.random.default_rng(i)
    n_i = COUNTS[i]
    return {"pos": rng.standard_normal((n_i, 3)).astype(np.float32), "u": rng.standard_normal((2, 4)),
            "kind": rng.integers(0, 9, n_i)}


def spec(n_total: int, fields: dict | None = None) -> SplitSpec:
    return SplitSpec(pde="particles", split="train", config={"pde": "particles", "seed": 0},
                     fields=dict(fields or FIELDS), coords={"t": np.arange(2.0)}, n_total=n_total,
                     dtypes={"kind": "int64"})


def chunk(start: int, stop: int, as_ragged: bool = False) -> dict:
    samples = [sample(i) for i in range(start, stop)]
    out = {"u": np.stack([s["u"] for s in samples]) if samples else np.empty((0, 2, 4)),
           "pos": [torch.from_numpy(s["pos"]) for s in samples],  # torch samples are accepted too
           "kind": [s["kind"] for s in samples]}
    if as_ragged:
        out["pos"] = RaggedArray.from_list([s["pos"] for s in samples], feature_shape=(3,))
    return out


def write(path: Path, n_total: int, bounds: list[int], finalize: bool = True) -> SplitWriter:
    """Write the chunks ``[bounds[k], bounds[k + 1])``; finalize (or just close, as an interrupted run)."""
    writer = SplitWriter(path, spec(n_total))
    for k, (a, b) in enumerate(pairwise(bounds)):
        writer.write_chunk(chunk(a, b, as_ragged=k % 2 == 1))
    if finalize:
        writer.finalize()
    else:
        writer.close()
    return writer


def contents(path: Path) -> dict:
    """Every dataset's dtype, shape and bytes, and every attribute, of an HDF5 file."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        out["/"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items()}

        def visit(name: str, obj: object) -> None:
            attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                out[name] = (str(obj.dtype), obj.shape, obj[()].tobytes(), attrs)
            else:
                out[name] = attrs

        f.visititems(visit)
    return out


def reference(n: int, name: str = "pos") -> list[np.ndarray]:
    return [sample(i)[name] for i in range(n)]


def test_round_trip_dense_and_ragged_fields(tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    write(path, 12, [0, 1, 3, 4, 7, 12])  # chunk [0, 1) and [3, 4) hold only empty samples
    stored = read_split(path, pde="particles", fields=FIELDS)
    assert stored.n == 12
    np.testing.assert_array_equal(stored.fields["u"], np.stack([sample(i)["u"] for i in range(12)]).astype("f4"))
    pos, kind = stored.fields["pos"], stored.fields["kind"]
    assert isinstance(pos, RaggedArray) and len(pos) == 12 and pos.feature_shape == (3,)
    assert pos.values.dtype == np.float32 and kind.values.dtype == np.int64 and kind.values.shape == (sum(COUNTS),)
    np.testing.assert_array_equal(pos.counts, COUNTS)
    np.testing.assert_array_equal(pos.offsets, kind.offsets)
    for i in range(12):
        np.testing.assert_array_equal(pos[i], sample(i)["pos"])
        np.testing.assert_array_equal(kind[i], sample(i)["kind"])
        assert pos[i].shape == (COUNTS[i], 3)
    # the layout on disk: values + offsets in a group; the manifest names the ragged axis null
    with h5py.File(path, "r") as f:
        assert f["pos"].attrs["layout"] == "ragged"
        assert f["pos/values"].shape == (sum(COUNTS), 3) and f["pos/values"].maxshape == (None, 3)
        assert f["pos/offsets"].dtype == np.int64 and f["pos/offsets"].shape == (13,)
        assert f["pos/offsets"][0] == 0 and f["pos/offsets"][-1] == sum(COUNTS)
        assert f["u"].shape == (12, 2, 4) and f["u"].chunks == (1, 2, 4) and f["u"].dtype == np.float32
        assert json.loads(f.attrs["fields"]) == {"pos": [None, 3], "u": [2, 4], "kind": [None]}
    # expected shapes are checked, ragged against dense too
    with pytest.raises(CorruptDatasetError, match=r"'pos' has sample shape \(None, 3\), expected \(None, 2\)"):
        read_split(path, fields={"pos": (None, 2)})
    with pytest.raises(CorruptDatasetError, match=r"'pos' has sample shape \(None, 3\), expected \(5, 3\)"):
        read_split(path, fields={"pos": (5, 3)})
    # per-sample subsampling applies to the feature axes of a ragged field
    part = read_split(path, select={"pos": (slice(None), slice(0, 3, 2))}).fields["pos"]
    np.testing.assert_array_equal(part.values, pos.values[:, ::2])
    with pytest.raises(CorruptDatasetError, match="row axis cannot be subsampled"):
        read_split(path, select={"pos": (slice(None, None, 2),)})


def test_all_samples_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    writer = SplitWriter(path, spec(4, {"pos": (None, 3)}))
    writer.write_chunk({"pos": [np.zeros((0, 3))] * 2})
    writer.write_chunk({"pos": RaggedArray.from_list([], feature_shape=(3,))})  # a chunk of no samples
    writer.write_chunk({"pos": [np.zeros((0, 3))] * 2})
    writer.finalize()
    pos = read_split(path, fields={"pos": (None, 3)}).fields["pos"]
    assert len(pos) == 4 and pos.values.shape == (0, 3) and pos[3].shape == (0, 3)
    np.testing.assert_array_equal(pos.offsets, [0, 0, 0, 0, 0])
    assert pos.batch_vector().shape == (0,) and pos.select([3, 1]).values.shape == (0, 3)


def test_interrupted_write_resumes_to_the_uninterrupted_file(tmp_path: Path) -> None:
    clean = tmp_path / "clean" / "train.h5"
    write(clean, 12, [0, 1, 3, 4, 7, 12])

    path = tmp_path / "run" / "train.h5"
    write(path, 12, [0, 1, 3, 4], finalize=False)  # closed without finalize: stays .partial
    assert not path.exists()
    resumed = SplitWriter(path, spec(12))
    assert resumed.n_completed == 4
    resumed.write_chunk(chunk(4, 7))
    # a chunk killed after its rows and offsets were written but before n_completed was bumped, plus junk rows
    resumed.write_chunk(chunk(7, 10))
    resumed._file.attrs["n_completed"] = 7
    values = resumed._file["pos/values"]
    values.resize(values.shape[0] + 5, axis=0)
    values[-5:] = 999.0
    resumed._file["pos/offsets"][9:] = 10**6
    resumed.close()
    with h5py.File(partial_path(path), "r") as f:
        assert f["pos/values"].shape[0] == sum(COUNTS[:10]) + 5

    again = SplitWriter(path, spec(12))
    assert again.n_completed == 7
    assert again._file["pos/values"].shape[0] == sum(COUNTS[:7])  # rows beyond offsets[7] dropped
    again.write_chunk(chunk(7, 9))
    again.write_chunk(chunk(9, 12, as_ragged=True))
    again.finalize()
    assert contents(path) == contents(clean)


def test_damaged_offsets_tail_is_rewritten_on_resume(tmp_path: Path) -> None:
    clean = tmp_path / "clean.h5"
    write(clean, 12, [0, 12])
    path = tmp_path / "run.h5"
    write(path, 12, [0, 3, 6], finalize=False)
    with h5py.File(partial_path(path), "r+") as f:
        f["pos/offsets"][5] = 2  # offsets[5] < offsets[4]: samples from 4 on cannot be trusted
    writer = SplitWriter(path, spec(12))
    assert writer.n_completed == 4
    writer.write_chunk(chunk(4, 12))
    writer.finalize()
    assert contents(path) == contents(clean)


def test_extension_equals_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    write(path, 5, [0, 2, 5])
    first = read_split(path).fields["pos"]
    writer = SplitWriter(path, spec(12))
    assert writer.n_completed == 5 and writer.remaining == 7
    writer.write_chunk(chunk(5, 12))
    writer.finalize()
    fresh = tmp_path / "fresh.h5"
    write(fresh, 12, [0, 12])
    assert contents(path) == contents(fresh)
    full = read_split(path).fields["pos"]
    np.testing.assert_array_equal(full[:5].values, first.values)
    assert SplitWriter(path, spec(3)).remaining == 0  # asking for fewer does nothing


def test_writer_checks_ragged_chunks(tmp_path: Path) -> None:
    writer = SplitWriter(tmp_path / "x.h5", spec(4))
    bad = chunk(0, 2)
    bad["pos"] = [np.zeros((2, 3)), np.zeros((1, 4))]
    with pytest.raises(ValueError, match=r"ragged field 'pos': ragged sample 1 has shape \(1, 4\), expected \(n_i, 3\)"):
        writer.write_chunk(bad)
    bad["pos"] = RaggedArray.from_list([np.zeros((2, 2)), np.zeros((1, 2))])
    with pytest.raises(ValueError, match=r"'pos' has feature shape \(2,\), expected \(3,\)"):
        writer.write_chunk(bad)
    assert writer.n_completed == 0 and writer._file["pos/values"].shape == (0, 3)  # nothing was written
    writer.close()
    # a stored file whose ragged feature shape differs does not match the spec
    path = tmp_path / "y.h5"
    write(path, 4, [0, 4])
    with pytest.raises(CorruptDatasetError, match="does not match this configuration"):
        SplitWriter(path, spec(4, {**FIELDS, "pos": (None, 2)}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("not_monotone", r"ragged field 'pos': offsets not monotone \(offsets\[4\] = 4 > offsets\[5\] = 1\)"),
        ("last_offset", r"ragged field 'pos': last offset 27 != 25 stored rows"),
        ("first_offset", r"ragged field 'pos': offsets\[0\] = 1, expected 0"),
        ("missing_offsets", r"ragged field 'pos' has no offsets"),
        ("too_few_offsets", r"ragged field 'pos': 12 offsets for 12 samples \(expected 13\)"),
    ],
)
def test_corrupt_offsets_are_a_one_line_error(tmp_path: Path, damage: str, message: str) -> None:
    path = tmp_path / "train.h5"
    write(path, 12, [0, 12])
    with h5py.File(path, "r+") as f:
        offsets = f["pos/offsets"]
        if damage == "not_monotone":
            offsets[5] = 1
        elif damage == "last_offset":
            offsets[12] = 27
        elif damage == "first_offset":
            offsets[0] = 1
        elif damage == "missing_offsets":
            del f["pos/offsets"]
        else:
            offsets.resize(12, axis=0)
    for kwargs in ({}, {"load": ()}, {"n": 2}):
        with pytest.raises(CorruptDatasetError, match=message) as info:
            read_split(path, pde="particles", fields=FIELDS, **kwargs)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_select_equals_a_python_loop(backend: str) -> None:
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((c, 2, 3)) for c in COUNTS]
    ragged = RaggedArray.from_list(samples)
    if backend == "torch":
        ragged = ragged.to("cpu", dtype=torch.float64)
        assert ragged.is_torch and ragged.offsets.dtype == torch.int64
    n = len(ragged)
    for indices in (rng.integers(-n, n, 40), [3, 0, 0, 10], [], np.arange(n)[::-1], np.array(COUNTS) > 2):
        picked = np.flatnonzero(indices) if np.asarray(indices).dtype == bool else np.asarray(indices, dtype=int)
        chosen = ragged.select(indices).numpy()
        if backend == "torch":  # torch indices give the same
            again = ragged.select(torch.as_tensor(np.array(indices))).numpy()
            np.testing.assert_array_equal(again.values, chosen.values)
            np.testing.assert_array_equal(again.offsets, chosen.offsets)
        expected_values = [samples[i] for i in picked]
        counts = [COUNTS[i] for i in picked]
        np.testing.assert_array_equal(chosen.values, np.concatenate(expected_values or [np.empty((0, 2, 3))]))
        np.testing.assert_array_equal(chosen.offsets, np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]))
        np.testing.assert_array_equal(chosen.batch_vector(), np.repeat(np.arange(len(picked)), counts))
        for j, i in enumerate(picked):
            np.testing.assert_array_equal(chosen[j], samples[i])
    with pytest.raises(IndexError, match="out of range"):
        ragged.select([n])
    with pytest.raises(IndexError, match="out of range"):
        ragged[-n - 1]
    # a slice is a contiguous view with rebased offsets
    part = ragged[4:9].numpy()
    np.testing.assert_array_equal(part.offsets, np.concatenate([[0], np.cumsum(COUNTS[4:9])]))
    np.testing.assert_array_equal(part.values, np.concatenate(samples[4:9]))


def test_ragged_array_validates_offsets() -> None:
    with pytest.raises(ValueError, match="offsets not monotone"):
        RaggedArray(np.zeros((3, 2)), [0, 2, 1, 3])
    with pytest.raises(ValueError, match="last offset 2 != 3 stored rows"):
        RaggedArray(np.zeros((3, 2)), [0, 2])
    with pytest.raises(ValueError, match="needs feature_shape"):
        RaggedArray.from_list([])
    r = RaggedArray.from_counts(np.arange(6.0), [2, 0, 4])
    np.testing.assert_array_equal(r[2], [2.0, 3.0, 4.0, 5.0])
    assert [len(s) for s in r] == [2, 0, 4]


def test_first_n_reads_only_the_rows_of_those_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train.h5"
    write(path, 12, [0, 5, 12])
    full = read_split(path).fields["pos"]
    reads: list[tuple[str, int]] = []
    original = storage._read_subsampled

    def spy(ds: h5py.Dataset, count: int, index: tuple) -> np.ndarray:
        reads.append((ds.name, count))
        return original(ds, count, index)

    monkeypatch.setattr(storage, "_read_subsampled", spy)
    first = read_split(path, n=5, load=["pos", "u"])
    assert sorted(reads) == [("/pos/values", sum(COUNTS[:5])), ("/u", 5)]
    pos = first.fields["pos"]
    assert len(pos) == 5 and first.n == 5
    np.testing.assert_array_equal(pos.offsets, full.offsets[:6])
    np.testing.assert_array_equal(pos.values, full.values[: full.offsets[5]])
    assert len(read_split(path, n=0).fields["pos"]) == 0


def test_selection_builds_a_pyg_batch(tmp_path: Path) -> None:
    pyg = pytest.importorskip("torch_geometric.data")
    path = tmp_path / "train.h5"
    write(path, 12, [0, 12])
    stored = read_split(path)
    indices = [4, 0, 8, 3, 7]  # includes empty graphs
    pos = stored.fields["pos"].select(indices).to("cpu")
    kind = stored.fields["kind"].select(indices).to("cpu")
    batch = pyg.Batch(pos=pos.values, kind=kind.values, batch=pos.batch_vector(), ptr=pos.offsets)
    counts = [COUNTS[i] for i in indices]
    assert batch.num_graphs == 5 and batch.num_nodes == sum(counts)
    assert torch.bincount(batch.batch, minlength=5).tolist() == counts == batch.ptr.diff().tolist()
    for j, i in enumerate(indices):
        torch.testing.assert_close(batch.pos[batch.batch == j], torch.from_numpy(sample(i)["pos"]))
    # the same as PyG's own collation of a Data list
    reference_batch = pyg.Batch.from_data_list([pyg.Data(pos=pos[j], kind=kind[j]) for j in range(len(pos))])
    assert reference_batch.num_graphs == 5
    assert torch.equal(reference_batch.batch, batch.batch) and torch.equal(reference_batch.ptr, batch.ptr)
    assert torch.equal(reference_batch.pos, batch.pos) and torch.equal(reference_batch.kind, batch.kind)


def test_dense_only_files_keep_their_layout(tmp_path: Path) -> None:
    path = tmp_path / "dense.h5"
    writer = SplitWriter(path, spec(3, {"u": (2, 4)}))
    writer.write_chunk({"u": np.ones((3, 2, 4))})
    writer.finalize()
    with h5py.File(path, "r") as f:
        assert set(f) == {"u", "coords"} and f["u"].dtype == np.float32 and f["u"].chunks == (1, 2, 4)
        assert f.attrs["format_version"] == storage.FORMAT_VERSION == 1
    assert isinstance(read_split(path).fields["u"], np.ndarray)
